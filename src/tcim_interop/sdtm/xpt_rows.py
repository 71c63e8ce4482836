"""An XPT v5 dataset's rows read here, whole or a range of rows at a time (to-fhir reads the rows of a
part of the subjects, never the whole dataset at once).

Read here: `decode` gives the values pyreadstat (ReadStat) gives for the same bytes, cell for cell
(tests/test_xpt_rows.py holds the two together on the example, the CDISC pilot and random bytes); what
ReadStat decodes by the whole file (text that is not ASCII) or cuts (a NUL in text), and a numeric
variable with a format (pyreadstat makes dates of some), are left to pyreadstat. Reading here costs a
fraction of pyreadstat's fixed cost per read, which was most of the time of reading a small package.

The rows of an XPT v5 file are fixed width and follow each other from the record after the OBS header:
rows i..j are the bytes obs + i * width .. obs + j * width. They are read by offset and decoded (or given
to pyreadstat behind the file's own header records), so that every value is read as a read of the whole
file gives it. Opening the file reads it once, a few megabytes at a time, for where each subject's rows
are. A file is read so only when (else open_rows gives None and the caller reads it whole):

- it has USUBJID (character), and each subject's rows follow each other: SDTMIG 3.4 sorts a dataset by
  its keys, STUDYID and USUBJID first;
- its text is ASCII: other bytes are decoded as UTF-8 or, when that fails anywhere in the file, as
  Windows-1252, which only the whole file tells;
- it holds one dataset (no second MEMBER header) and no row is all blanks (pyreadstat takes blank rows
  at the end of what it reads for the padding of the last record);
- it is larger than WHOLE_BYTES: a smaller one costs little memory read whole, and one read instead of
  one for every range read (most of a small to-fhir's time went to pyreadstat's fixed cost per read).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import InputError
from .dataset import VariableMeta, frame_of
from .xport import ibm_floats

CHUNK_BYTES = 8 << 20  # the rows read at a time when the file is opened
WHOLE_BYTES = 1 << 20  # a file up to this size is read whole (module docstring)
MEMBER = b"HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!"
NAMESTR = b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!"


@dataclass(frozen=True)
class Column:
    """A variable's place in a row (its NAMESTR record)."""
    name: str
    char: bool
    position: int
    length: int


@dataclass(frozen=True)
class Layout:
    columns: tuple[Column, ...]
    width: int  # bytes per row
    obs: int  # the byte offset of the first row
    namestr: int = 140  # bytes per variable description (NAMESTR record)


@dataclass(frozen=True)
class Meta:
    """What the reading of a package takes of pyreadstat's metadata, when made from the file's own header
    records (header_meta): the same names."""
    table_name: str
    file_label: str
    column_names: list[str]
    column_names_to_labels: dict[str, str]
    readstat_variable_types: dict[str, str]


def header_meta(head: bytes, layout: Layout) -> Meta | None:
    """The metadata pyreadstat reads from the header records before the OBS record (head), or None when
    pyreadstat must read them: a name or label that is not ASCII (decoded by what the whole file holds)
    or holds a NUL, a numeric variable with a format (pyreadstat makes dates of some)."""
    at, width = head.find(NAMESTR), layout.namestr
    texts = [head[at - 160:at - 80][8:16], head[at - 80:at][32:72]]  # the member's name and label
    for k, c in enumerate(layout.columns):
        ns = head[at + 80 + k * width:at + 80 + (k + 1) * width]
        if not c.char and ns[56:64].strip(b" \0"):
            return None
        texts += [ns[8:16], ns[16:56]]
    texts = [t.rstrip(b" \0") for t in texts]  # what ReadStat strips
    if not all(t.isascii() and b"\0" not in t for t in texts):
        return None
    table, label, *names_labels = [t.decode("ascii") for t in texts]
    names, labels = names_labels[0::2], names_labels[1::2]
    return Meta(table, label, names, dict(zip(names, labels, strict=True)),
                {n: "string" if c.char else "double" for n, c in zip(names, layout.columns, strict=True)})


def decode(layout: Layout, data: bytes) -> pd.DataFrame | None:
    """The rows of `data` (the bytes from the first row on) as pyreadstat and typed() give them: whole
    rows only, the all-blank rows at the end taken for the last record's padding (as ReadStat does);
    text with its trailing blanks stripped, numbers as xport.ibm_floats gives them (NaN for one of 2
    bytes, which ReadStat does not read). None when pyreadstat must read them: text that is not ASCII
    (decoded as UTF-8 or Windows-1252 by what the whole file holds) or holds a NUL (ReadStat ends the
    text there)."""
    width = layout.width
    count = len(data) // width if width else 0
    rows = np.frombuffer(data, dtype=np.uint8, count=count * width).reshape(count, width)
    while count and (rows[count - 1] == 0x20).all():
        count -= 1
    rows = rows[:count]
    columns: dict[str, Any] = {}
    for c in layout.columns:
        block = rows[:, c.position:c.position + c.length]
        if c.char:
            if ((block >= 0x80) | (block == 0)).any():
                return None
            text = block.tobytes().decode("ascii")
            columns[c.name] = [text[i:i + c.length].rstrip(" ") for i in range(0, len(text), c.length)]
        elif c.length < 3:
            columns[c.name] = np.full(count, np.nan)
        else:
            cells = np.zeros((count, 8), dtype=np.uint8)
            cells[:, :c.length] = block
            columns[c.name] = ibm_floats(cells)
    return frame_of(columns, {c.name for c in layout.columns if not c.char})


def read_whole(path: Path, layout: Layout) -> tuple[pd.DataFrame, Meta] | None:
    """The file's rows (typed) and metadata as pyreadstat and typed() give them, read here (pyreadstat's
    fixed cost per read was most of the time of reading a small package), or None when pyreadstat must
    read it (header_meta, decode, or a second member after the first one's rows)."""
    raw = path.read_bytes()
    meta = header_meta(raw[:layout.obs], layout)
    data = raw[layout.obs:]
    if meta is None or meta.column_names != [c.name for c in layout.columns] or MEMBER in data:
        return None
    frame = decode(layout, data)
    return (frame, meta) if frame is not None else None


def pyreadstat_whole(path: Path) -> tuple[pd.DataFrame, Any]:
    """The file read whole by pyreadstat, typed: what read_whole leaves to it."""
    import pyreadstat

    try:
        frame, meta = pyreadstat.read_xport(str(path))
    except UnicodeDecodeError:
        # XPT v5 records no encoding; files written on Windows SAS are often cp1252 ("’" = 0x92)
        frame, meta = pyreadstat.read_xport(str(path), encoding="windows-1252")
    return typed(frame, variables_of(meta)), meta


def variables_of(meta: Any) -> list[VariableMeta]:
    """The variables pyreadstat's metadata describes, in file order."""
    types = meta.readstat_variable_types
    return [VariableMeta(c, meta.column_names_to_labels.get(c) or "", "Char" if types[c] == "string" else "Num")
            for c in meta.column_names]


def typed(frame: pd.DataFrame, variables: list[VariableMeta]) -> pd.DataFrame:
    """The variables' columns as the converter holds them: text as str ("" where missing), numbers as
    float64 (what XPT v5 holds of them: the IBM double keeps every IEEE double in its range). The frame is
    built once from its columns: assigned one by one, pandas' own work dominated on small datasets."""
    columns: dict[str, Any] = {}
    for v in variables:
        col = frame[v.name]
        columns[v.name] = (["" if m else x for x, m in zip(col.tolist(), col.isna().tolist(), strict=True)]
                           if v.type == "Char" else pd.to_numeric(col, errors="coerce").to_numpy("float64"))
    return frame_of(columns, {v.name for v in variables if v.type == "Num"}, frame.index)


class XptRows:
    """The rows of an XPT v5 file, read a range at a time (see the module's docstring)."""

    def __init__(self, path: Path, layout: Layout, head: bytes, count: int, subjects: dict[str, range], meta: Any):
        self.path, self.layout, self.head, self.count = path, layout, head, count
        self.subjects = subjects  # USUBJID -> its rows
        self.meta = meta
        self.variables = variables_of(meta)

    def __len__(self) -> int:
        return self.count

    def frame(self, start: int, stop: int) -> pd.DataFrame:
        """Rows start..stop (typed)."""
        start, stop = max(0, start), min(stop, self.count)
        width = self.layout.width
        try:
            with self.path.open("rb") as f:
                data = os.pread(f.fileno(), max(0, stop - start) * width, self.layout.obs + start * width)
            if len(data) != max(0, stop - start) * width:
                raise OSError("the file is shorter than when it was opened")
            frame = decode(self.layout, data)
            if frame is None:
                frame = typed(_read(self.head, data)[0], self.variables)
        except Exception as e:  # the file changed since it was opened: OSError, pyreadstat's errors
            raise InputError(f"{self.path}: cannot read rows {start + 1} to {stop}: {' '.join(str(e).split())}") from None
        return frame

    def records(self, start: int, stop: int) -> list[dict]:
        return self.frame(start, stop).to_dict("records")


def _read(head: bytes, data: bytes, usecols: list[str] | None = None) -> tuple[pd.DataFrame, Any]:
    import pyreadstat

    return pyreadstat.read_xport(io.BytesIO(head + data), usecols=usecols)


def open_rows(path: Path, layout: Layout) -> XptRows | None:
    """The file's rows to read a range at a time, or None when it must be read whole (module docstring).
    pyreadstat's errors (a damaged file) are raised as they are."""
    if path.stat().st_size <= WHOLE_BYTES:
        return None
    try:
        return _indexed(path, layout)
    except UnicodeDecodeError:  # not UTF-8: the whole file's read decides how it is decoded
        return None


def _indexed(path: Path, layout: Layout) -> XptRows | None:
    usubjid = next((c for c in layout.columns if c.name.upper() == "USUBJID"), None)
    if usubjid is None or not usubjid.char or not layout.width:
        return None
    text = np.zeros(layout.width, dtype=bool)  # the bytes of character values in a row
    for c in layout.columns:
        text[c.position:c.position + c.length] = c.char
    size, width = path.stat().st_size, layout.width
    fitting = max(0, size - layout.obs) // width  # rows the file can hold; the last ones may be padding
    step = max(1, CHUNK_BYTES // width)
    subjects: dict[str, range] = {}
    current, first, count, tail = None, 0, 0, b""
    with path.open("rb") as f:
        head = f.read(layout.obs)
        fd = f.fileno()
        meta = _read(head, os.pread(fd, width if fitting else 0, layout.obs))[1]
        if [c.name for c in layout.columns] != list(meta.column_names):
            return None
        for start in range(0, fitting, step):
            last = start + step >= fitting  # the last chunk runs to the end of the file, padding included
            at = layout.obs + start * width
            data = os.pread(fd, size - at if last else step * width, at)
            if MEMBER in tail + data[:len(MEMBER)] or MEMBER in data:
                return None
            tail = data[-len(MEMBER):]
            ids = typed(_read(head, data, ["USUBJID"])[0], [VariableMeta("USUBJID", "", "Char")])["USUBJID"].tolist()
            rows = np.frombuffer(data, dtype=np.uint8, count=len(ids) * width).reshape(len(ids), width)
            if len(ids) and ((rows[:, text] >= 0x80).any() or (rows == 0x20).all(axis=1).any()):
                return None
            if (len(ids) != step and not last) or (last and data[len(ids) * width:].strip(b" ")):
                return None  # rows pyreadstat did not read, or bytes after the last row that are no padding
            for k, u in enumerate(map(str, ids), start=start):
                if u != current:
                    if current is not None:
                        subjects[current] = range(first, k)
                    if u in subjects:
                        return None  # a subject's rows apart: not sorted by subject
                    current, first = u, k
            count = start + len(ids)
    if current is not None:
        subjects[current] = range(first, count)
    return XptRows(path, layout, head, count, subjects, meta)
