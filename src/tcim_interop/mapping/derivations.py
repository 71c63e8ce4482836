"""Derivations: whole columns computed after every row of every domain exists.

Shape: fn(data, var) -> list of values, one per record of data.frame (already sorted by the spec's
sort keys). DM is derived first, since every other domain's study days and baseline flags depend
on DM's reference dates.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..findings import Report
from ..sdtm.dataset import cell_text, present
from ..sdtm.dates import complete_date, study_day as _study_day
from .registry import algorithm


@dataclass
class DeriveContext:
    domain: str
    frame: pd.DataFrame
    datasets: dict[str, pd.DataFrame]  # every domain's frame, by domain code
    report: Report
    # relrec: role -> (its domain, for each record the rows of that domain's frame the record is related to)
    related: dict[str, tuple[str, list[list[int]]]] = field(default_factory=dict)

    def dm_column(self, name: str) -> dict[str, Any]:
        return by_subject(self.datasets.get("DM"), name)


def by_subject(frame: pd.DataFrame | None, name: str) -> dict[str, Any]:
    """A column of a domain's frame by USUBJID (DM's RFSTDTC, ...); empty when the frame has none."""
    if frame is None or frame.empty or name not in frame:
        return {}
    return dict(zip(frame["USUBJID"], frame[name], strict=True))


@algorithm("sequence", "derive", origin="Derived",
           method="{target} numbers each subject's records 1, 2, 3 and so on, in the order of the dataset's keys.")
def sequence(data: DeriveContext, var) -> list[float]:
    """--SEQ: 1, 2, ... within each USUBJID, in the spec's sort order."""
    counters: dict[str, int] = {}
    out = []
    for u in data.frame["USUBJID"]:
        counters[u] = counters.get(u, 0) + 1
        out.append(float(counters[u]))
    return out


@algorithm("study_day", "derive", origin="Derived", params=("date",),
           method="{target} is the study day of {date}: the days from DM.RFSTDTC (the first study treatment) to {date}, "
           "plus one when {date} is on or after RFSTDTC, so that there is no day 0. Empty when either date is partial.")
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


@algorithm("first_exposure", "derive", origin="Derived", params=("domain", "var"),
           method="{target} is the earliest {var} of the subject's {domain} records.")
def first_exposure(data: DeriveContext, var) -> list[str | None]:
    """RFXSTDTC: the earliest params.var of the subject's params.domain records."""
    return _exposure(data, var, min)


@algorithm("last_exposure", "derive", origin="Derived", params=("domain", "var"),
           method="{target} is the latest {var} of the subject's {domain} records.")
def last_exposure(data: DeriveContext, var) -> list[str | None]:
    """RFXENDTC: the latest params.var of the subject's params.domain records."""
    return _exposure(data, var, max)


@algorithm("copy", "derive", origin="Derived", params=("of",),
           method="{target} is {of} of the same record.")
def copy(data: DeriveContext, var) -> list[Any]:
    """The value of another variable of the same record."""
    return list(data.frame[var.params["of"]])


@algorithm("numeric", "derive", origin="Derived", params=("of",),
           method="{target} is {of} as a number when {of} is numeric, empty otherwise.")
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


@algorithm("baseline_flag", "derive", origin="Derived", params=("date", "result", "by"),
           method="{target} is Y on the last record with a value in {result}, per {by}, whose {date} is before the subject's "
           "first study treatment (DM.RFXSTDTC); empty on every other record.")
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


@algorithm("group_id", "derive", origin="Derived", params=("by",),
           method="{target} groups the results of one recording: a subject's records with the same {by} "
                  "share one number, 1, 2, 3 and so on in the order of those values.")
def group_id(data: DeriveContext, var) -> list[str | None]:
    """--GRPID: the records of a subject with the same values of params.by share one group id, "1",
    "2", ... per subject in the order of those values (nulls first)."""
    frame = data.frame
    cols = [frame[k].tolist() for k in var.params["by"]]
    keys = [tuple((1, v) if present(v) else (0, "") for v in cells) for cells in zip(*cols, strict=True)] \
        if cols else [()] * len(frame)
    numbers: dict[str, dict[tuple, int]] = {}
    for u, key in sorted(set(zip(frame["USUBJID"], keys, strict=True)), key=lambda uk: (str(uk[0]), uk[1])):
        numbers.setdefault(u, {})[key] = len(numbers.get(u, {})) + 1
    return [str(numbers[u][key]) for u, key in zip(frame["USUBJID"], keys, strict=True)]


def _matches(value: Any, patterns: list) -> bool:
    if not present(value):
        return False
    return any(fnmatch.fnmatchcase(cell_text(value).casefold(), str(p).casefold()) for p in patterns)


@algorithm("from_related", "derive", origin="Derived", params=("role", "suffix", "when"),
           method="{target} is --{suffix} of the record RELREC relates this one to, on the records the spec "
                  "names (injection-site events); empty when it is related to none, or to records that disagree.")
def from_related(data: DeriveContext, var) -> list[Any]:
    """A value of the record this one is related to (the spec's relrec: entry for params.role): that
    record's --<params.suffix> (AELOC from EXLOC), for the records whose variables match params.when
    (variable: [patterns], any match; * is any text). Empty when the record is related to none, or to
    records that do not agree on the value."""
    domain, rows = data.related.get(var.params["role"], ("", []))
    other = data.datasets.get(domain)
    column = f"{domain}{var.params['suffix']}"
    if other is None or column not in other or not rows:
        return [None] * len(data.frame)
    values = other[column].tolist()
    when = {name: p if isinstance(p, list) else [p] for name, p in var.params["when"].items()}
    out = []
    for i, related in enumerate(rows):
        wanted = any(_matches(data.frame.at[i, name], patterns) for name, patterns in when.items())
        found = {values[j] for j in related if present(values[j])}
        out.append(found.pop() if wanted and len(found) == 1 else None)
    return out


# Subjects never in an arm have no reference period (SDTMIG 3.4 DM, RFENDTC: "null for screen failures
# or unassigned subjects"); ARMNRS says who they are.
NO_ARM = ("SCREEN FAILURE", "NOT ASSIGNED")


def _latest_record_dates(data: DeriveContext) -> dict[str, str]:
    """The latest date of each subject's records: every --DTC of every other domain (EX, AE, the
    findings, CM...) and DM's own collected dates (RFICDTC, DTHDTC). Compared as ISO 8601 text: a
    right-truncated date sorts before the full dates it holds, a time after its date."""
    latest: dict[str, str] = {}
    frames = [(d, f) for d, f in data.datasets.items() if d != data.domain and f is not None and not f.empty]
    frames.append((data.domain, data.frame[["USUBJID", *[c for c in ("RFICDTC", "DTHDTC") if c in data.frame]]]))
    for _, frame in frames:
        for col in [c for c in frame.columns if c.endswith("DTC")]:
            for u, d in zip(frame["USUBJID"], frame[col], strict=True):
                if isinstance(d, str) and d and (u not in latest or d > latest[u]):
                    latest[u] = d
    return latest


@algorithm("reference_end", "derive", origin="Derived", needs_source=True, collect="iso_datetime", params=("reason",),
           method="{target} is the end of the subject's participation as collected (FHIR ResearchSubject.period.end), "
                  "else the latest date of the subject's records; empty for a subject never in an arm ({reason} "
                  "SCREEN FAILURE or NOT ASSIGNED).")
def reference_end(data: DeriveContext, var) -> list[str | None]:
    """RFENDTC: the end of the subject's participation as collected (the source: the last contact),
    else the latest date of the subject's records; null for a subject never in an arm (params.reason,
    ARMNRS, is SCREEN FAILURE or NOT ASSIGNED)."""
    latest = _latest_record_dates(data)
    out = []
    for u, collected, reason in zip(data.frame["USUBJID"], data.frame[var.name], data.frame[var.params["reason"]],
                                    strict=True):
        out.append(None if reason in NO_ARM else collected if present(collected) else latest.get(u))
    return out


@algorithm("participation_end", "derive", origin="Derived", needs_source=True, collect="iso_datetime",
           method="{target} is the last date of the subject's participation, follow-up included: the end as "
                  "collected (FHIR ResearchSubject.period.end), or the date of a later record of the subject.")
def participation_end(data: DeriveContext, var) -> list[str | None]:
    """RFPENDTC: the last date of participation, follow-up included: the end as collected (the source),
    unless a record of the subject is dated later (at the precision both have), then that record's date
    (SDTMIG 3.4 DM assumption 10d: the last date of any record); screen failures too."""
    latest = _latest_record_dates(data)
    out = []
    for u, collected in zip(data.frame["USUBJID"], data.frame[var.name], strict=True):
        last = latest.get(u)
        out.append(last if last is not None and (not present(collected) or _later(last, str(collected))) else collected)
    return out


def _later(a: str, b: str) -> bool:
    """a is after b at the precision both have: a measurement at 09:51 on the day the subject's
    participation ended (a date) is not later than that end."""
    n = min(len(a), len(b))
    return a[:n] > b[:n]


@algorithm("epoch", "derive", origin="Derived", params=("date",),
           method="{target} is the epoch of the subject's element (SE) in which {date} falls; empty when {date} "
                  "is partial, before the first element or after the last, or on the day of a transition without a time.")
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


@algorithm("flag_if", "derive", origin="Derived", params=("value", "if"),
           method="{target} is {value} on the records where {if} has a value (a planned visit), empty otherwise.")
def flag_if(data: DeriveContext, var) -> list[Any]:
    """params.value on the records where the variable params.if has a value, once every record's visit
    is known (SV's SVPRESP and SVOCCUR: Y on a planned visit, the one whose VISITDY the schedule gives)."""
    return [var.params["value"] if present(v) else None for v in data.frame[var.params["if"]]]
