"""The complete vocabulary of named algorithms: every module that registers one is imported here, so a
name looked up through this module is found whichever module was imported first (registry.py: the kinds)."""

from __future__ import annotations

from collections.abc import Callable

from . import derivations, disposition, dosing, ongoing, reverse_algorithms, row_algorithms, selectors  # noqa: F401  (registration)
from .registry import ALGORITHMS, REVERSES, Algorithm


def get(name: str) -> Algorithm:
    return ALGORITHMS[name]


def get_reverse(name: str) -> Callable | None:
    return REVERSES.get(name)


def known(kind: str) -> list[str]:
    return sorted(n for n, a in ALGORITHMS.items() if a.kind == kind)
