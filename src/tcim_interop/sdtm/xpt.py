"""SAS XPORT v5 output, after every constraint has been checked.

The order is xportr's: fold text to the ASCII policy -> check names, labels, lengths and values of
every dataset -> collect ALL violations -> stop (nothing written) or go on -> write each file to a
temporary name and rename it into place, so that a failed run leaves no partial file.
Character lengths are the longest value present; the file's bytes are made by xport.py.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import OutputError
from ..findings import Report
from .dataset import Dataset, with_text_columns
from .text import MAX_BYTES, fold_ascii
from .xport import IBM_BEYOND, IBM_MIN, xport_bytes

_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,7}$")


def xpt_frame(ds: Dataset, non_ascii: str, report: Report) -> pd.DataFrame:
    """The dataset as it will be written: text folded to ASCII (policy "fold", each change
    reported) or left for check() to reject (policy "error"). The text columns are replaced in one
    block (with_text_columns): assigned one by one, pandas' own work dominated on small datasets."""
    return with_text_columns(ds.frame, {v.name: _text_column(ds, v.name, non_ascii, report)
                                        for v in ds.variables if v.type == "Char"})


def _text_column(ds: Dataset, name: str, non_ascii: str, report: Report) -> list:
    values = ds.frame[name].tolist()
    if not _plain_text(values):  # the usual column has nothing to fold, nothing to report
        values = [_folded(ds, name, i, value, non_ascii, report) for i, value in enumerate(values)]
    return values


def _folded(ds: Dataset, name: str, i: int, value: object, non_ascii: str, report: Report) -> str:
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    if non_ascii == "fold" and not (text.isascii() and text.isprintable()):
        folded = fold_ascii(text)
        usubjid = ds.frame.at[i, "USUBJID"] if "USUBJID" in ds.frame else ""
        report.warning("ASCII_FOLDED", f"non-ASCII text folded to {folded!r}", domain=ds.name,
                       variable=name, usubjid=usubjid, source=_source(ds, i), value=text)
        return folded
    return text


def _plain_text(values: list) -> bool:
    """Every value is text of printable ASCII (one C-level test over the joined column, not one per cell)."""
    if not set(map(type, values)) <= {str}:
        return False
    joined = "".join(values)
    return joined.isascii() and joined.isprintable()


def _source(ds: Dataset, i: int) -> str:
    return ds.sources[i] if i < len(ds.sources) else f"{ds.file_stem}.xpt row {i + 1}"


def check(ds: Dataset, frame: pd.DataFrame, report: Report) -> int:
    """Record every XPT v5 violation of one dataset as an error finding; return how many."""
    before = len(report.errors)

    def bad(code: str, message: str, **where) -> None:
        report.error(code, message, domain=ds.name, **where)

    if not _NAME.match(ds.name):
        bad("XPT_NAME", f"dataset name {ds.name!r} is not A-Z/0-9, <= 8 characters, starting with a letter")
    if len(ds.label) > 40:
        bad("XPT_LABEL", f"dataset label is {len(ds.label)} characters, more than 40")
    for v in ds.variables:
        if not _NAME.match(v.name):
            bad("XPT_NAME", f"variable name {v.name!r} is not valid in XPT v5", variable=v.name)
        if len(v.label) > 40 or not v.label.isascii():
            bad("XPT_LABEL", f"label {v.label!r} is not <= 40 ASCII characters", variable=v.name)
        if v.type != "Char":
            col = frame[v.name]
            if col.dtype == "float64":  # vectorised: the per-value loop below only when a value is out of range
                a = np.abs(col.to_numpy())
                if not ((a == a) & (a != 0) & ~((a >= IBM_MIN) & (a < IBM_BEYOND))).any():
                    continue
            for i, x in enumerate(col):  # IBM floating point: ~5.4e-79 <= |x| <= ~7.2e75, or 0
                if isinstance(x, (int, float)) and x == x and x != 0 and not IBM_MIN <= abs(x) < IBM_BEYOND:
                    bad("XPT_NUM_RANGE", f"value {float(x)!r} cannot be stored in XPT v5 (IBM floating point: "
                        "|x| from 5.4E-79 to 7.2E+75)", variable=v.name, source=_source(ds, i), row=i + 1,
                        value=repr(float(x)))
            continue
        texts = frame[v.name].tolist()
        if _plain_text(texts) and max(map(len, texts), default=0) <= MAX_BYTES:
            continue
        for i, text in enumerate(texts):
            if not (text.isascii() and text.isprintable()):
                bad("XPT_NOT_ASCII", "value is not printable ASCII", variable=v.name, source=_source(ds, i),
                    row=i + 1, value=text)
            elif len(text) > MAX_BYTES:
                bad("XPT_TOO_LONG", f"value is {len(text)} bytes, more than {MAX_BYTES}", variable=v.name,
                    source=_source(ds, i), row=i + 1)
    return len(report.errors) - before


def write(ds: Dataset, frame: pd.DataFrame, path: Path, created: datetime) -> None:
    """The dataset's checked frame (xpt_frame, check) as an XPT v5 file, stamped with the run's creation
    time (not the clock's), so that the same input gives the same bytes."""
    columns = [frame[v.name].tolist() if v.type == "Char"
               else pd.to_numeric(frame[v.name], errors="coerce").to_numpy(dtype="float64") for v in ds.variables]
    data = xport_bytes(ds.name, ds.label, [(v.name, v.label, v.type == "Char") for v in ds.variables], columns, created)
    try:
        path.write_bytes(data)
    except OSError as e:
        raise OutputError(f"{path}: cannot write XPT: {e.strerror or e}") from None
