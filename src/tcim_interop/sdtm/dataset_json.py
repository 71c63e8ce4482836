"""CDISC Dataset-JSON v1.1: the datasets as UTF-8 JSON, beside the XPT files.

Written as the CDISC examples are (one top-level object, `rows` last, an array of arrays), with
one row per line so that two runs can be diffed. Conventions (docs/define-and-dataset-json.md):
  - Char variables are "string", ISO 8601 --DTC variables "date" (no value has a time) or
    "datetime"; Num variables are "integer" when every value is integral, else "double" (SAS
    numbers are IEEE doubles: "double" says so, and the shortest repr reads back bit for bit).
  - Missing values are null (Char and Num alike); "" stays "".
  - Text is not folded to ASCII: UTF-8 holds it as collected.
  - Lengths: given by the caller (the define's), else the longest value (see text_length).
The same input and `created` give the same bytes.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from ..atomic import write_atomic
from ..errors import InputError, OutputError
from .dataset import Dataset, VariableMeta, frame_of
from .text import xpt_length

VERSION = "1.1.0"
_NUMERIC = {"integer", "float", "double", "decimal"}
_TEXT = {"string", "date", "datetime", "time", "URI"}
_MAX_EXACT_INT = 2**53  # beyond it a double no longer holds every integer


def item_oid(dataset: str, variable: str) -> str:
    """The variable's OID, the same in Define-XML (ItemDef/@OID) and Dataset-JSON (itemOID)."""
    return f"IT.{dataset}.{variable}"


def is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (value != value)  # NaN is the only value unequal to itself


def present(values: Iterable[Any]) -> list[Any]:
    return [v for v in values if not is_missing(v)]


def distinct(values: Iterable[Any]) -> list[Any]:
    """The distinct non-missing values: what a column's define metadata depends on (tested once each)."""
    return [v for v in set(values) if not is_missing(v)]


def text_length(values: Iterable[Any]) -> int:
    """The longest value, at least 1: in characters, or in bytes once folded for XPT when that is
    more ("ﬁ" -> "fi"), so that the define's length holds the value in both files."""
    texts = {str(v) for v in distinct(values)}
    return max([1] + [len(t) if t.isascii() else max(len(t), xpt_length(t)) for t in texts])


def is_integral(values: Iterable[Any]) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) and float(v).is_integer()
               and abs(v) < _MAX_EXACT_INT for v in distinct(values))


def column_type(var: VariableMeta, values: Iterable[Any]) -> str:
    """The Dataset-JSON dataType of a column (the define's DataType follows from it)."""
    values = list(values)
    if var.type == "Num":
        return "integer" if is_integral(values) else "double"
    if var.name.endswith("DTC"):
        return "datetime" if any("T" in str(v) for v in distinct(values)) else "date"
    return "string"


def write_dataset_json(ds: Dataset, path: str | os.PathLike, *, study_oid: str, created: datetime,
                       keys: Iterable[str] = (), lengths: dict[str, int] | None = None,
                       metadata_version_oid: str | None = None, define_file: str | None = "define.xml",
                       originator: str = "tcim-interop") -> None:
    """Write one dataset as Dataset-JSON v1.1, atomically (temporary file, then rename)."""
    path = Path(path)
    keys = list(keys)
    frame = ds.frame
    columns, kinds = [], []
    for var in ds.variables:
        values = frame[var.name].tolist() if var.name in frame else [None] * len(frame)
        kind = column_type(var, values)
        col: dict[str, Any] = {"itemOID": item_oid(ds.name, var.name), "name": var.name, "label": var.label,
                               "dataType": kind}
        if kind == "string":
            col["length"] = int((lengths or {}).get(var.name) or text_length(values))
        if var.name in keys:
            col["keySequence"] = keys.index(var.name) + 1
        columns.append(col)
        kinds.append(kind)
    stamp = created.isoformat(timespec="seconds")
    header: dict[str, Any] = {
        "datasetJSONCreationDateTime": stamp, "datasetJSONVersion": VERSION,
        "fileOID": f"{study_oid}/{path.stem}", "dbLastModifiedDateTime": stamp,  # created = the input's last update
        "originator": originator, "sourceSystem": {"name": "tcim-interop", "version": package_version()},
        "studyOID": study_oid}
    if metadata_version_oid:
        header["metaDataVersionOID"] = metadata_version_oid
    if define_file:
        header["metaDataRef"] = define_file
    header.update({"itemGroupOID": f"IG.{ds.name}", "records": len(frame), "name": ds.name, "label": ds.label,
                   "columns": columns})
    cells = [frame[v.name].tolist() if v.name in frame else [None] * len(frame) for v in ds.variables]
    try:
        lines = [_dumps([_cell(c[i], k) for c, k in zip(cells, kinds, strict=True)]) for i in range(len(frame))]
    except ValueError as e:
        raise OutputError(f"{path}: {ds.name}: {e}") from None
    text = _dumps(header)[:-1] + ',"rows":[' + ("\n" + ",\n".join(lines) + "\n" if lines else "") + "]}\n"
    write_atomic(path, text)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _cell(value: Any, kind: str) -> Any:
    if is_missing(value):
        return None
    if kind == "integer":
        return int(value)
    if kind == "double":
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"{number} cannot be written (SDTM numbers are finite)")
        return number
    return value if isinstance(value, str) else str(value)


@functools.cache  # the installed distribution's metadata is read from disk: once a process
def package_version() -> str:
    try:
        return metadata.version("tcim-interop")
    except metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def read_dataset_json(path: str | os.PathLike) -> Dataset:
    """A Dataset-JSON v1.1 file (.json, or .ndjson: metadata line then one row a line), checked:
    anything malformed is an InputError naming the file."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: not UTF-8 (byte {e.start})") from None
    if path.suffix.lower() == ".ndjson":
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise InputError(f"{path}: empty file")
        doc = _loads(path, lines[0], "line 1")
        if isinstance(doc, dict):
            doc["rows"] = [_loads(path, line, f"line {n}") for n, line in enumerate(lines[1:], start=2)]
    else:
        doc = _loads(path, text, "")
    return _dataset(path, doc)


def _loads(path: Path, text: str, where: str) -> Any:
    # orjson, not json: json takes NaN, Infinity and 1e999 (no SDTM value) and overflows the stack on
    # deep nesting; orjson refuses them all, nesting beyond 1024 levels included
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        at = where or f"line {e.lineno} column {e.colno}"
        raise InputError(f"{path}: not JSON ({at}: {e.msg})") from None


def _dataset(path: Path, doc: Any) -> Dataset:
    def bad(message: str) -> InputError:
        return InputError(f"{path}: not Dataset-JSON: {message}")

    if not isinstance(doc, dict):
        raise bad("the top level is not an object")
    for key, expected in (("name", str), ("columns", list), ("rows", list)):
        if not isinstance(doc.get(key), expected):
            raise bad(f"missing or malformed {key!r}")
    variables: list[VariableMeta] = []
    kinds: list[str] = []
    for n, col in enumerate(doc["columns"], start=1):
        kind = col.get("dataType") if isinstance(col, dict) else None
        if not (isinstance(col, dict) and isinstance(col.get("name"), str) and isinstance(kind, str)
                and kind in _NUMERIC | _TEXT):
            raise bad(f"column {n} has no name or an unknown dataType ({kind if isinstance(col, dict) else col!r})")
        if any(v.name == col["name"] for v in variables):
            raise bad(f"column {n} repeats the name {col['name']!r}")
        variables.append(VariableMeta(col["name"], str(col.get("label", "")), "Num" if kind in _NUMERIC else "Char"))
        kinds.append(kind)
    rows, width = doc["rows"], len(variables)
    if "records" in doc and doc["records"] != len(rows):
        raise bad(f"'records' says {doc['records']} but there are {len(rows)} rows (truncated?)")
    for r, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != width:
            raise bad(f"row {r} has {len(row) if isinstance(row, list) else 'no'} values, not {width}")
    plain = [_plain_column(column, kind) for column, kind in
             zip(zip(*rows, strict=True) if rows else [()] * width, kinds, strict=True)]
    data: list[list[Any]] = [column for column in plain if column is not None]
    if len(data) < width:  # a value to convert or refuse: cell by cell, in row order
        data = [[] for _ in variables]
        for r, row in enumerate(rows, start=1):
            for c, (value, kind) in enumerate(zip(row, kinds, strict=True)):
                data[c].append(_value(value, kind, lambda: bad(f"row {r}, {variables[c].name}: {value!r} is not {kind}")))  # noqa: B023 (called at once)
    frame = frame_of({v.name: col for v, col in zip(variables, data, strict=True)},
                     {v.name for v in variables if v.type == "Num"})
    return Dataset(doc["name"], str(doc.get("label", "")), variables, frame)


def read_back(ds: Dataset) -> Dataset:
    """ds as read_dataset_json gives it back from the file write_dataset_json writes of it, without the
    file: each cell as written (_cell), then as read (_value; what _cell gives, _value takes)."""
    columns = {}
    for var in ds.variables:
        values = ds.frame[var.name].tolist() if var.name in ds.frame else [None] * len(ds.frame)
        kind = column_type(var, values)
        columns[var.name] = [_value(_cell(x, kind), kind, ValueError) for x in values]
    frame = frame_of(columns, {v.name for v in ds.variables if v.type == "Num"})
    return Dataset(ds.name, ds.label, ds.variables, frame)


def _plain_column(column: tuple, kind: str) -> list | None:
    """A column's values as _value gives them when each is plainly of its kind (text, or a number that is
    not a bool, or null): one pass a column instead of a call a cell. None when one is not."""
    if kind in _NUMERIC:
        if all(v is None or type(v) is float or type(v) is int for v in column):
            return [math.nan if v is None else float(v) for v in column]
        return None
    return list(column) if all(v is None or type(v) is str for v in column) else None


def _value(value: Any, kind: str, bad) -> Any:
    if value is None:
        return math.nan if kind in _NUMERIC else None
    if kind in _NUMERIC:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, (int, float)):
            return float(value)
        if kind == "decimal" and isinstance(value, str):  # decimals may travel as text to keep precision
            try:
                number = float(value)
            except ValueError:
                raise bad() from None
            if math.isfinite(number):  # "NaN" and "1e999" are text float() takes
                return number
        raise bad()
    if not isinstance(value, str):
        raise bad()
    return value
