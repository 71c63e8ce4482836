"""Visits by date: VISITNUM and VISIT for what a hospital sends without a visit code.

The row algorithm `visit` gives a record the visit its Encounter's type codes (in study.yaml's visit
system, directly or through the site's ConceptMaps). An Encounter with no such code, and a record with
no Encounter, are left to this step when study.yaml declares visit windows: their date (the
Encounter's period.start, else the record's own --DTC, params.by_date) is a study day, and the visit
whose window holds that day is theirs (SDTMIG 4.4.5).

    occasion   one Encounter; a record with no Encounter joins the one Encounter of its subject that
               starts on its date, else the records of that subject and date are one occasion
    planned    the visit whose window holds the occasion's study day, unless a visit code or an earlier
               occasion already took that visit: a subject has each planned visit once
    join only  a record that names no Encounter and whose date is the only thing that could place it
               (DS: Consent and progress have no encounter element) takes the visit of the subject's one
               Encounter of its date, else none: a date alone makes no visit of it
    unplanned  outside every window, or a planned visit taken already: VISITNUM is the subject's last
               planned visit before it (in date order, 0 before any) plus .01, .02 ..., VISIT
               "UNSCHEDULED 2.01"; unique per subject and consistent across domains, sorting by date

A subject with no RFSTDTC (never treated) has no study day: the occasion keeps an empty VISITNUM and a
warning says what is missing. Records that to-fhir made (an sdtm-record extension) are not given a visit
by date: their VISITNUM is their Encounter's code, or what the extension recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..mapping_spec.model import MappingSet
from ..sdtm.dates import DateError, complete_date, study_day, to_iso8601

UNPLANNED_NAME = "UNSCHEDULED {visitnum:.2f}"
MAX_UNPLANNED = 99  # N.01 to N.99: one more would reach the next whole number, a planned VISITNUM


@dataclass
class Pending:
    """A record whose visit is told by date: its Encounter (None: the record's own date, date_var)."""

    row: Any  # context.Row
    encounter: str | None
    date_var: str | None
    fields: dict[str, tuple[str, bool]] = field(default_factory=dict)  # variable -> (study.yaml field, is Char)
    join_only: bool = False  # only the visit of an Encounter on its date, never one told by windows (DS)


@dataclass
class VisitLedger:
    """What the row algorithm `visit` leaves for the step after DM: the encounters whose visit code gave
    a visit, and the records with none."""

    coded: dict[str, dict[str, dict]] = field(default_factory=dict)  # USUBJID -> encounter key -> visit
    pending: dict[str, Pending] = field(default_factory=dict)  # by the record's resource key
    pointed_at: set[str] = field(default_factory=set)  # keys of the Encounters of pending records

    def code(self, row, encounter: str, visit: dict) -> None:
        self.coded.setdefault(_subject(row), {})[encounter] = visit

    def defer(self, row, encounter: str | None, var, join_only: bool = False) -> None:
        entry = self.pending.setdefault(row.source, Pending(row, encounter, None, join_only=join_only))
        if encounter is not None:
            self.pointed_at.add(encounter)
        entry.date_var = entry.date_var or var.params.get("by_date")
        entry.fields[var.name] = (var.params["field"], var.is_char)


@dataclass
class _Occasion:
    key: str  # the Encounter's resource key, or "USUBJID date" for records with no Encounter
    start: str | None  # ISO 8601, local time as recorded
    encounter: bool  # the key is an Encounter's
    visit: dict | None = None  # the planned visit its code gives (a coded Encounter)
    pending: list[Pending] = field(default_factory=list)


def _subject(row) -> str:
    return str(row.values.get("USUBJID") or (row.subject_row.values.get("USUBJID") if row.subject_row else ""))


def assign_visits_by_date(ledger: VisitLedger, mappings: MappingSet, index, rfstdtc: dict[str, Any],
                          used: set[str]) -> set[str]:
    """Fill VISITNUM/VISIT of the pending records (their Row values); the domains whose records changed.
    index: the run's resources (the Encounters' period.start); rfstdtc: DM's RFSTDTC by USUBJID; used:
    the run's supporting resources that fed a record (an Encounter that gave a visit joins them)."""
    by_subject: dict[str, list[Pending]] = {}
    for p in ledger.pending.values():
        by_subject.setdefault(_subject(p.row), []).append(p)
    changed: set[str] = set()
    joined: dict[str, list[Pending]] = {}  # domain -> its records that took a coded Encounter's visit by day
    for usubjid, pending in by_subject.items():
        dated, undated = _occasions(pending, ledger.coded.get(usubjid, {}), index)
        for o in undated:
            _tell(o, "warning", "VISIT_NO_DATE", "no visit code, and no complete date to tell the visit by",
                  "give the Encounter a period.start with a full date, or the record a complete date")
        reference = rfstdtc.get(usubjid)
        if complete_date(reference) is None:
            for o in dated:
                if o.pending and o.visit is None:
                    _tell(o, "warning", "VISIT_NO_REFERENCE_DATE",
                          f"no visit code, and no study day to tell the visit by: {usubjid} has no RFSTDTC",
                          "visits by date count study days from RFSTDTC, the first study treatment; a subject never "
                          "treated has none: give the Encounter a type coding of "
                          f"{mappings.study.get('visit_system')}, or map its type to one in a ConceptMap of the site "
                          "folder (--site)")
            dated = [o for o in dated if o.visit is not None]  # records on a coded Encounter's day: its visit
        for o, visitnum, visit, message in _schedule(dated, mappings, reference):
            if visitnum is None:
                _tell(o, "error", "VISIT_UNPLANNED_OVERFLOW", message,
                      f"more than {MAX_UNPLANNED} unplanned visits follow one planned visit: review the encounters")
                continue
            values = {"visitnum": visitnum, "visit": UNPLANNED_NAME.format(visitnum=visitnum)}
            for p in o.pending:
                for name, (fld, is_char) in p.fields.items():
                    value = visit.get(fld) if visit is not None else values.get(fld)  # VISITDY: planned only
                    p.row.values[name] = None if value is None else (str(value) if is_char else float(value))
                changed.add(p.row.domain)
            if o.encounter:
                used.add(o.key)
            if o.visit is not None:  # a coded Encounter: its records joined it by day
                for p in o.pending:
                    joined.setdefault(p.row.domain, []).append(p)
            else:
                _tell(o, "info", "VISIT_BY_DATE", message)
    _tell_joined(joined)
    return changed


def _tell_joined(joined: dict[str, list[Pending]]) -> None:
    """One finding per domain for its records with no Encounter that took the visit of the subject's coded
    Encounter of the same day: the visit is the code's, the day only joins them (a Consent and a
    ResearchSubject have no encounter element), so one line says it instead of one per record."""
    for domain, pending in joined.items():
        row = pending[0].row
        row.run.report.add("info", "VISIT_BY_DATE",
                           f"{len(pending)} {domain} record(s) with no Encounter took the visit of their subject's "
                           f"coded Encounter on the same day (the first: {row.resource.key})", domain=domain,
                           variable=next(iter(pending[0].fields)), source=row.resource.key, file=row.resource.where)


def _occasions(pending: list[Pending], coded: dict[str, dict], index) -> tuple[list[_Occasion], list[_Occasion]]:
    """The subject's occasions with a complete date (its coded Encounters too: they take their visits
    and place the unplanned ones), and those of its pending records with none."""
    occasions = {key: _Occasion(key, _start(index, key), True, visit) for key, visit in coded.items()}
    for p in pending:
        if p.encounter is not None:
            occasions.setdefault(p.encounter, _Occasion(p.encounter, _start(index, p.encounter), True)).pending.append(p)
    for o in occasions.values():  # an Encounter without period.start: the earliest date of its records
        if o.start is None and o.pending:
            o.start = min((d for p in o.pending if (d := _own_date(p)) is not None), default=None)
    undated = [o for o in occasions.values() if o.pending and complete_date(o.start) is None]
    for p in pending:
        if p.encounter is not None:
            continue
        day = _own_date(p)
        if day is None and p.join_only:  # an undated event (R4 RANDOMIZED): no visit, nothing to tell
            continue
        if day is None:
            undated.append(_Occasion(p.row.resource.key, None, False, pending=[p]))
            continue
        same_day = [o for o in occasions.values() if o.encounter and o.start is not None and o.start[:10] == day[:10]]
        if p.join_only and len(same_day) != 1:  # a date alone makes no visit of it
            continue
        key = same_day[0].key if len(same_day) == 1 else f"{_subject(p.row)} {day[:10]}"
        occasions.setdefault(key, _Occasion(key, day[:10], False)).pending.append(p)
    return [o for o in occasions.values() if complete_date(o.start) is not None], undated


def _schedule(occasions: list[_Occasion], mappings: MappingSet, reference: Any):
    """(occasion, VISITNUM, its planned visit or None, what was decided) of each occasion with pending
    records, in date order. VISITNUM is None where no unplanned number is left."""
    taken = {float(o.visit["visitnum"]): o.key for o in occasions if o.visit is not None}
    last = 0.0  # the last planned VISITNUM in date order
    count: dict[float, int] = {}  # how many unplanned visits follow each planned one
    for o in sorted(occasions, key=lambda o: (o.start, o.key)):
        if o.visit is not None:  # a coded Encounter; pending here: records with no Encounter on its day
            last = float(o.visit["visitnum"])
            if o.pending:
                yield o, last, o.visit, f"on the day of {o.key}, visit {o.visit['visit']}"
            continue
        day = study_day(o.start, reference)
        visit = mappings.visit_on(day) if day is not None else None
        if visit is not None and float(visit["visitnum"]) not in taken:
            last = float(visit["visitnum"])
            taken[last] = o.key
            yield o, last, visit, f"no visit code: study day {day} is in the window of {visit['visit']}"
            continue
        why = (f"study day {day} is in the window of {visit['visit']}, which {taken[float(visit['visitnum'])]} is "
               "already" if visit is not None else f"study day {day} is outside every visit window")
        count[last] = n = count.get(last, 0) + 1
        if n > MAX_UNPLANNED:
            yield o, None, None, f"no visit code: {why}, and visit {last:g} has {MAX_UNPLANNED} unplanned visits already"
            continue
        visitnum = round(last + n / 100, 2)
        yield o, visitnum, None, f"no visit code: {why}: unplanned visit {visitnum:.2f}"


def _start(index, key: str) -> str | None:
    """The Encounter's period.start (R5 actualPeriod.start) as ISO 8601 (local time as recorded), or None."""
    res = index.by_key.get(key)
    period = (res.data.get("actualPeriod" if res.version == "R5" else "period") or {}) if res is not None else {}
    start = period.get("start") if isinstance(period, dict) else None
    try:
        return to_iso8601(start) if isinstance(start, str) else None
    except DateError:
        return None


def _own_date(p: Pending) -> str | None:
    """The record's own date (params.by_date), when complete."""
    value = p.row.values.get(p.date_var) if p.date_var else None
    return value if complete_date(value) is not None else None


def _tell(o: _Occasion, severity: str, code: str, message: str, hint: str = "") -> None:
    """One finding per occasion, on its first record."""
    first = o.pending[0]
    what = o.key if o.encounter else f"{len(o.pending)} record(s) with no Encounter on {o.start or 'no date'}"
    first.row.finding(severity, code, f"{what}: {message}", next(iter(first.fields)), hint=hint)
