"""Derivations: whole columns computed after every row of every domain exists.

Shape: fn(data, var) -> list of values, one per record of data.frame (already sorted by the spec's
sort keys). DM is derived first, since every other domain's study days and baseline flags depend
on DM's reference dates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..findings import Report
from ..sdtm.dataset import present
from ..sdtm.dates import complete_date, study_day as _study_day
from .registry import algorithm


@dataclass
class DeriveContext:
    domain: str
    frame: pd.DataFrame
    datasets: dict[str, pd.DataFrame]  # every domain's frame, by domain code
    report: Report

    def dm_column(self, name: str) -> dict[str, Any]:
        return by_subject(self.datasets.get("DM"), name)


def by_subject(frame: pd.DataFrame | None, name: str) -> dict[str, Any]:
    """A column of a domain's frame by USUBJID (DM's RFSTDTC, ...); empty when the frame has none."""
    if frame is None or frame.empty or name not in frame:
        return {}
    return dict(zip(frame["USUBJID"], frame[name], strict=True))


@algorithm("sequence", "derive", origin="Derived")
def sequence(data: DeriveContext, var) -> list[float]:
    """--SEQ: 1, 2, ... within each USUBJID, in the spec's sort order."""
    counters: dict[str, int] = {}
    out = []
    for u in data.frame["USUBJID"]:
        counters[u] = counters.get(u, 0) + 1
        out.append(float(counters[u]))
    return out


@algorithm("study_day", "derive", origin="Derived", params=("date",))
def study_day(data: DeriveContext, var) -> list[float | None]:
    """--DY from params.date and DM.RFSTDTC (SDTMIG 4.4.4: no day 0, complete dates only)."""
    rfst = data.dm_column("RFSTDTC")
    out = []
    for u, d in zip(data.frame["USUBJID"], data.frame[var.params["date"]], strict=True):
        day = _study_day(d, rfst.get(u))
        out.append(float(day) if day is not None else None)
    return out


def _exposure(data: DeriveContext, var, pick) -> list[str | None]:
    ex = data.datasets.get(var.params["domain"])
    by_subject: dict[str, list[str]] = {}
    if ex is not None and not ex.empty:
        for u, d in zip(ex["USUBJID"], ex[var.params["var"]], strict=True):
            if present(d):
                by_subject.setdefault(u, []).append(d)
    return [pick(by_subject[u]) if u in by_subject else None for u in data.frame["USUBJID"]]


@algorithm("first_exposure", "derive", origin="Derived", params=("domain", "var"))
def first_exposure(data: DeriveContext, var) -> list[str | None]:
    """RFXSTDTC: the earliest params.var of the subject's params.domain records."""
    return _exposure(data, var, min)


@algorithm("last_exposure", "derive", origin="Derived", params=("domain", "var"))
def last_exposure(data: DeriveContext, var) -> list[str | None]:
    """RFXENDTC: the latest params.var of the subject's params.domain records."""
    return _exposure(data, var, max)


@algorithm("copy", "derive", origin="Derived", params=("of",))
def copy(data: DeriveContext, var) -> list[Any]:
    """The value of another variable of the same record."""
    return list(data.frame[var.params["of"]])


@algorithm("numeric", "derive", origin="Derived", params=("of",))
def numeric(data: DeriveContext, var) -> list[float | None]:
    """--STRESN: the standard result as a number, when it is one."""
    out = []
    for v in data.frame[var.params["of"]]:
        try:
            out.append(float(v) if present(v) else None)
        except (TypeError, ValueError):
            out.append(None)
    return out


def _before_exposure(dtc: str, rfx: str) -> bool:
    """Collected before first exposure. Compared at the precision both have: with times on both, by
    time; otherwise by date, where the same day counts as before (the protocol measures MUNE before
    injecting)."""
    if "T" in dtc and "T" in rfx:
        return dtc < rfx
    d, r = complete_date(dtc), complete_date(rfx)
    return d is not None and r is not None and d <= r


@algorithm("baseline_flag", "derive", origin="Derived", params=("date", "result", "by"))
def baseline_flag(data: DeriveContext, var) -> list[str | None]:
    """--LOBXFL = Y on the last record with a result collected before first exposure (DM.RFXSTDTC),
    per params.by group; empty elsewhere."""
    rfx = data.dm_column("RFXSTDTC")
    frame = data.frame
    best: dict[tuple, tuple[str, int]] = {}
    cols = [frame[k].tolist() for k in var.params["by"]]  # not frame[k].iat per row: slow
    by = list(zip(*cols, strict=True)) if cols else [()] * len(frame)
    for i, (u, d, res) in enumerate(zip(frame["USUBJID"], frame[var.params["date"]], frame[var.params["result"]], strict=True)):
        ref = rfx.get(u)
        if not (present(res) and present(d) and present(ref) and _before_exposure(d, str(ref))):
            continue
        key = by[i]
        if key not in best or d >= best[key][0]:
            best[key] = (d, i)
    flagged = {i for _, i in best.values()}
    return ["Y" if i in flagged else None for i in range(len(frame))]


@algorithm("epoch", "derive", origin="Derived", params=("date",))
def epoch(data: DeriveContext, var) -> list[str | None]:
    """EPOCH: the epoch of the subject's element (SE) in which params.date falls (SDTMIG 3.4 4.1.3.1: a
    finding's --DTC, an event's or intervention's --STDTC). Compared at the precision both dates have:
    on or after SESTDTC and before the next element's; the last element to its SEENDTC, that day
    included. Empty, never imputed, for a date that is not complete, one before the first element
    (before informed consent) or after the last, and a date on the day of a transition whose time the
    record lacks (which element it fell in is not known)."""
    se = data.datasets.get("SE")
    spans: dict[str, list[tuple[str, str | None, str | None]]] = {}
    if se is not None and not se.empty and {"SESTDTC", "EPOCH"} <= set(se.columns):
        ends = se["SEENDTC"] if "SEENDTC" in se.columns else [None] * len(se)
        for u, start, end, ep in zip(se["USUBJID"], se["SESTDTC"], ends, se["EPOCH"], strict=True):
            if present(start):
                spans.setdefault(u, []).append((str(start), str(end) if present(end) else None,
                                                str(ep) if present(ep) else None))
    return [epoch_at(d, sorted(spans.get(u, []), key=lambda s: s[0]))
            for u, d in zip(data.frame["USUBJID"], data.frame[var.params["date"]], strict=True)]


def epoch_at(dtc: Any, spans: list[tuple[str, str | None, str | None]]) -> str | None:
    """The epoch of the (start, end, epoch) span, in date order, that holds dtc (see `epoch`)."""
    if complete_date(dtc) is None:
        return None
    held = None
    for n, (start, end, name) in enumerate(spans):
        order = _compare(str(dtc), start)
        if order is None:
            return None
        if order < 0:
            break
        held = (n, end, name)
    if held is None:
        return None
    n, end, name = held
    if n == len(spans) - 1 and end is not None and (_compare(str(dtc), end) or 0) > 0:
        return None
    return name


def _compare(dtc: str, boundary: str) -> int | None:
    """-1, 0 or 1 as dtc is before, at or after the boundary, at the precision both have; None when
    they are the same at dtc's precision but the boundary is more precise (a date against a date-time)."""
    n = min(len(dtc), len(boundary))
    a, b = dtc[:n], boundary[:n]
    if a != b:
        return -1 if a < b else 1
    return None if len(boundary) > len(dtc) else 0


@algorithm("flag_if", "derive", origin="Derived", params=("value", "if"))
def flag_if(data: DeriveContext, var) -> list[Any]:
    """params.value on the records where the variable params.if has a value, once every record's visit
    is known (SV's SVPRESP and SVOCCUR: Y on a planned visit, the one whose VISITDY the schedule gives)."""
    return [var.params["value"] if present(v) else None for v in data.frame[var.params["if"]]]
