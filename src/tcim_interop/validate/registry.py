"""The registry of named checks: one small function per check, looked up by name.

A check takes the Context (context.py) and yields Findings, each naming the CDISC CORE rule (and the
SDTMIG conformance rule, CGnnnn) it applies. `rules` lists every rule a check can report, for the
documentation (docs/validate.md) and for `tcim-interop validate --help`'s readers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..findings import Finding


@dataclass(frozen=True)
class Check:
    name: str
    rules: tuple[str, ...]
    summary: str
    run: Callable[..., Iterable[Finding]]


_CHECKS: dict[str, Check] = {}


def check(name: str, *rules: str):
    """Register the decorated function as the check `name`, covering `rules`."""

    def register(fn: Callable[..., Iterable[Finding]]) -> Callable[..., Iterable[Finding]]:
        if name in _CHECKS:
            raise ValueError(f"check {name!r} registered twice")
        summary = " ".join((fn.__doc__ or name).split())
        _CHECKS[name] = Check(name, tuple(rules), summary, fn)
        return fn

    return register


def get(name: str) -> Check:
    return _CHECKS[name]


def all_checks() -> list[Check]:
    """The checks in the order they run and are reported: the order validate/engine.py imports their modules
    (importing this package does, so that the registry never imports the modules that register into it)."""
    return list(_CHECKS.values())
