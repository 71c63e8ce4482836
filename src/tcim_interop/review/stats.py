"""Means with t-based 95% intervals, without a statistics library: Student's t quantile from a table
(df 1-30, to 6 decimals) and the Cornish-Fisher expansion beyond (error < 2e-6 from df 31)."""

from __future__ import annotations

import math
from dataclasses import dataclass

_Z975 = 1.959963984540054
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with df degrees of freedom (df >= 1)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = _Z975, float(df)
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3))


@dataclass(frozen=True)
class Mean:
    n: int
    mean: float
    low: float | None   # None with one value: no interval
    high: float | None


def mean_ci(values: list[float]) -> Mean:
    """Mean and t-based 95% confidence interval of the mean (sample standard deviation, n - 1)."""
    n = len(values)
    m = math.fsum(values) / n
    if n < 2:
        return Mean(n, m, None, None)
    sd = math.sqrt(math.fsum((x - m) ** 2 for x in values) / (n - 1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return Mean(n, m, m - half, m + half)
