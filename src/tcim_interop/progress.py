"""A progress line on the terminal for long runs: silent for the first two seconds, then redrawn at
most five times a second, and never when stderr is not a terminal (CI, pipes, files), with --quiet, or
on a terminal that cannot redraw a line (TERM=dumb). The run calls it once per resource; the cost is one
clock read per call.

Each draw returns to the start of the line and erases to its end (ANSI EL), so a shorter line never
leaves the tail of a longer one behind; close() erases the line. No colour is written (NO_COLOR holds
trivially)."""

from __future__ import annotations

import os
import sys
import time

ERASE_LINE = "\r\x1b[2K"


class Progress:
    def __init__(self, stream=None, delay: float = 2.0, interval: float = 0.2, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.enabled = (not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
                        and os.environ.get("TERM") != "dumb")
        self.start = time.monotonic()
        self.delay, self.interval, self.next_draw = delay, interval, self.start + delay
        self.drawn = False

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self.next_draw:
            return
        self.next_draw = now + self.interval
        if total:
            width = 30
            filled = int(width * min(done, total) / total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            bar = f"{done}"
        self.stream.write(f"{ERASE_LINE}{stage:<10} {bar}  {now - self.start:.1f} s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write(ERASE_LINE)
            self.stream.flush()
            self.drawn = False
