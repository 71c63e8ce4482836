"""A dataset's records as dicts, made when they are needed instead of all held beside the dataset.

to-fhir reads its datasets a part of the subjects at a time: `hold` makes the records of the rows of
the part being built (and drops the previous part's); `hold_all` makes every record of a dataset that
every part reads (DM, the trial design, RELREC); any other record is made when asked for; iterating
makes the records a chunk at a time. A held record is the same dict on every call: callers copy it
before they change it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .dataset import CHUNK_ROWS, Dataset


class Records(Sequence):
    def __init__(self, ds: Dataset):
        self.ds = ds
        self._held: dict[int, dict[str, Any]] = {}
        self.whole = False  # every record held (hold_all)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i):  # type: ignore[override]  # an index only, no slice
        held = self._held.get(i)
        if held is not None:
            return held
        if not 0 <= i < len(self.ds):
            raise IndexError(f"{self.ds.name} has no record {i}")
        return self.ds.records(i, i + 1)[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.whole:
            yield from self._held.values()
            return
        for start in range(0, len(self.ds), CHUNK_ROWS):
            yield from self.ds.records(start, start + CHUNK_ROWS)

    def hold(self, rows: Iterable[int]) -> None:
        """Hold the records of these rows only (a dataset held whole stays so)."""
        if self.whole:
            return
        self._held = {}
        for run in _runs(sorted(rows)):
            self._held.update(zip(run, self.ds.records(run.start, run.stop), strict=True))

    def hold_all(self) -> None:
        self._held, self.whole = dict(enumerate(self.ds.records(0, len(self.ds)))), True


def _runs(rows: Sequence[int]) -> Iterator[range]:
    """Ascending rows as runs of consecutive ones."""
    start = None
    for k, i in enumerate(rows):
        if start is None:
            start = i
        elif i != rows[k - 1] + 1:
            yield range(start, rows[k - 1] + 1)
            start = i
    if start is not None:
        yield range(start, rows[-1] + 1)
