"""Conversions run with Python's cyclic garbage collector paused.

A conversion holds the whole parsed input (hundreds of thousands of dicts and lists) while it allocates
rows: every allocation burst triggers a collection that walks all of it, although nothing of it is
garbage and the converter makes no reference cycles worth collecting (reference counting frees the
rest). Pausing the collector for the run took a fifth off `to-sdtm --fast` on the shipped example,
with the same output. The collector is restored as it was found, also when the run fails.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)


def paused_gc(fn: F) -> F:
    @functools.wraps(fn)
    def run(*args, **kwargs):
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if was_enabled:
                gc.enable()

    return run  # type: ignore[return-value]
