"""An SDTM dataset in memory: its records (a DataFrame, or an XPT file's rows read a range at a time),
its variables' metadata, and for every record the FHIR resource(s) it came from."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

# The trial design datasets of SDTMIG 3.4 (section 7): about the study, not a subject (no USUBJID).
TRIAL_DESIGN = ("TS", "TA", "TE", "TI", "TV", "TD", "TM")
CHUNK_ROWS = 20_000  # the records made at a time when every one is read in turn


def present(value: Any) -> bool:
    """An SDTM value that is not null: None, "" and NaN are SDTM's nulls."""
    return value is not None and value != "" and not (isinstance(value, float) and math.isnan(value))


def cell_text(value: Any) -> str:
    """A cell as text: "" for SDTM's nulls, integral numbers without ".0" (--SEQ 3.0 is IDVARVAL "3",
    VISITNUM 1.0 is codelist term "1")."""
    if type(value) is str:  # most cells: checked first ("" is its own text)
        return value
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    return str(value)


def frame_of(columns: Mapping[str, Sequence[Any]], numeric: Collection[str], index: pd.Index | None = None) -> pd.DataFrame:
    """A frame of these columns, in their order: those named in `numeric` float64 (None as NaN), the
    others object (str or None: never pandas' string dtype, which pandas 3 infers from text). Built in
    two blocks, not column by column: pandas' work per column was most of the time on the small
    datasets of a run."""
    names = list(columns)
    at = {name: k for k, name in enumerate(names)}
    texts = [n for n in names if n not in numeric]
    numbers = [n for n in names if n in numeric]
    rows = len(next(iter(columns.values()))) if columns else (len(index) if index is not None else 0)
    block = np.empty((len(texts), rows), dtype=object)  # pandas' layout: a block's row is a column
    for i, name in enumerate(texts):
        block[i] = columns[name]
    blocks = [(block, np.array([at[n] for n in texts], dtype=np.intp))]
    if numbers:
        values = np.array([columns[n] for n in numbers], dtype="float64").reshape(len(numbers), rows)
        blocks.append((values, np.array([at[n] for n in numbers], dtype=np.intp)))
    # the blocks placed at their columns at once: built in one block each and put in order, the
    # reordering (a copy of every column) cost as much again
    return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(rows) if index is None else index,
                                        columns=pd.Index(names))


def records_as_frame(records: Sequence[Mapping[str, Any]], variables: Sequence[VariableMeta]) -> pd.DataFrame:
    """Records (dicts) as a frame of the variables' columns, values as they are (an absent one None),
    in frame_of's dtypes: text in object columns, as in every dataset the converter makes (a frame built
    from dicts of text would take pandas 3's string dtype)."""
    return frame_of({v.name: [r.get(v.name) for r in records] for v in variables},
                    {v.name for v in variables if v.type == "Num"})


def with_text_columns(frame: pd.DataFrame, texts: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    """The frame with the columns of `texts` replaced by object columns of those values, the others as
    they are. A frame of text and float64 columns (every frame the converter makes) is built again in
    its two blocks (frame_of); another, from the new text block and its other columns."""
    kept = [c for c in frame.columns if c not in texts]
    kinds = frame.dtypes
    if all(kinds[c] in ("object", "float64") for c in kept):
        return frame_of({c: texts[c] if c in texts else frame[c].to_numpy() for c in frame.columns},
                        {c for c in kept if kinds[c] == "float64"}, frame.index)
    whole = pd.concat([frame_of(texts, (), frame.index), frame[kept]], axis=1)
    return whole[list(frame.columns)]


@dataclass(frozen=True)
class VariableMeta:
    name: str
    label: str
    type: str  # "Char" | "Num"
    core: str = "Perm"


class RowSource(Protocol):
    """Rows read a range at a time (sdtm/xpt_rows.XptRows)."""
    @property
    def subjects(self) -> Mapping[str, Sequence[int]]: ...  # USUBJID -> its rows

    def __len__(self) -> int: ...

    def frame(self, start: int, stop: int) -> pd.DataFrame: ...

    def records(self, start: int, stop: int) -> list[dict[str, Any]]: ...


class _NotHeld:
    """The frame of a dataset whose rows are read a range at a time (Dataset.rows): there is none, and
    using it is a mistake told at once, not an empty dataset."""

    def __getattr__(self, name: str):
        raise AttributeError(f"the dataset's rows are read a range at a time (Dataset.rows): no frame .{name}")

    def __len__(self) -> int:
        raise TypeError("the dataset's rows are read a range at a time (Dataset.rows): use len(dataset)")


NOT_HELD = cast(pd.DataFrame, _NotHeld())


@dataclass
class Dataset:
    name: str  # "DM", "SUPPAE"
    label: str
    variables: list[VariableMeta]
    frame: pd.DataFrame
    sources: list[str] = field(default_factory=list)  # per record: "ResourceType/id"
    notes: dict[str, str] = field(default_factory=dict)  # for define.xml: full texts SDTM had to shorten
    dictionaries: dict[str, str] = field(default_factory=dict)  # for define.xml: dictionary -> version coded in
    rows: RowSource | None = None  # the rows of an XPT file, read a range at a time; the frame is then NOT_HELD

    @property
    def file_stem(self) -> str:
        return self.name.lower()

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.frame)

    @property
    def columns(self) -> list[str]:
        return [v.name for v in self.variables] if self.rows is not None else list(self.frame.columns)

    def records(self, start: int, stop: int) -> list[dict[str, Any]]:
        """The records start..stop, each a dict of its values."""
        if self.rows is not None:
            return self.rows.records(start, stop)
        return self.frame.iloc[start:stop].to_dict("records")

    def column(self, name: str) -> list:
        """One variable's values, every record's."""
        if self.rows is None:
            return self.frame[name].tolist()
        return [x for start in range(0, len(self), CHUNK_ROWS)
                for x in self.rows.frame(start, start + CHUNK_ROWS)[name].tolist()]

    def subject_rows(self) -> Mapping[str, Sequence[int]]:
        """USUBJID -> the rows of its records, in order (none without USUBJID)."""
        if self.rows is not None:
            return dict(self.rows.subjects)
        out: dict[str, list[int]] = {}
        for i, u in enumerate(self.frame["USUBJID"].tolist() if "USUBJID" in self.frame.columns else ()):
            out.setdefault(str(u), []).append(i)
        return out
