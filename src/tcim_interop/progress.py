"""A progress line on the terminal for long runs: silent for the first two seconds, then redrawn at
most five times a second, and never when stderr is not a terminal (CI, pipes, files). The run calls it
once per resource; the cost is one clock read per call."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, stream=None, delay: float = 2.0, interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.enabled = hasattr(self.stream, "isatty") and self.stream.isatty()
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
            filled = int(width * done / total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
        else:
            bar = f"{done}"
        self.stream.write(f"\r{stage:<10} {bar}  {now - self.start:5.1f}s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()
            self.drawn = False
