"""DS (Disposition): a subject's enrolment events, each read as an R5 ResearchSubject.progress entry.

Whatever FHIR holds an event, its row sees it as `%event`, shaped as R5's progress entry (type,
subjectState, milestone, reason, startDate), so that one set of DS variables reads them all:

    Consent          the informed consent milestone (research-subject-milestone SignedUp), dated by the
                     consent; only the Consents a study subject's ResearchSubject.consent names
    ResearchSubject  R5 progress, or R4's pre-adopted extension-ResearchSubject.progress: its milestones
                     and the state that ended the subject's participation; R4 without it: the status
                     and period.end; the assigned arm as the RANDOMIZED milestone when no entry says so

A subject has one disposition event for the study: the last end state (a state DSDECOD's map knows).
When that state says nothing of why (off-study, the selector's `unexplained`), the reason is the
subject's death (on or before that date) or an adverse event that caused the discontinuation.

FHIR that to-fhir made from a DS dataset is read as written: every progress entry it added is a row, in
order, and nothing is inferred (mapping/to_fhir.py writes the events back the same way).
"""

from __future__ import annotations

from typing import Any

from ..fhir.extensions import read_records
from ..fhir.read import InputResource
from ..mapping_spec.model import DomainSpec, RowCriteria
from .context import Row, RunContext
from .registry import algorithm, reverse
from .reverse_algorithms import Target
from .row_algorithms import assign_ct
from .selectors import out_of_scope

THO = "http://terminology.hl7.org/CodeSystem/"
PROGRESS_URL = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ResearchSubject.progress"  # R5 element, in R4
STATE_TYPE = THO + "research-subject-state-type"
MILESTONE_SYSTEM = THO + "research-subject-milestone"
STATE_SYSTEM = THO + "research-subject-state"
CONSENTED = {"system": MILESTONE_SYSTEM, "code": "SignedUp"}  # the subject signed the informed consent
RANDOMIZED = {"system": MILESTONE_SYSTEM, "code": "Randomized"}
CODED = ("type", "subjectState", "milestone", "reason")  # the CodeableConcepts of a progress entry
DATES = ("startDate", "endDate")


def _concept(coding: dict) -> dict:
    return {"coding": [dict(coding)]}


def _kind(milestone: bool) -> dict:
    return _concept({"system": STATE_TYPE, "code": "Milestone" if milestone else "Enrollment"})


def _coding(text: str) -> dict:
    system, _, code = str(text).rpartition("|")
    return {"system": system, "code": code}


# -- the progress entries of a ResearchSubject, R4 and R5 -----------------------------------------------
def progress_of(data: dict, version: str) -> list[dict]:
    """R5 progress, or R4's extension-ResearchSubject.progress read into the same shape."""
    if version != "R4":
        return [p for p in data.get("progress") or [] if isinstance(p, dict)]
    out = []
    for ext in data.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == PROGRESS_URL:
            entry: dict[str, Any] = {}
            for sub in ext.get("extension") or []:
                name = sub.get("url") if isinstance(sub, dict) else None
                if name in CODED and "valueCodeableConcept" in sub:
                    entry[name] = sub["valueCodeableConcept"]
                elif name in DATES and "valueDateTime" in sub:
                    entry[name] = sub["valueDateTime"]
            out.append(entry)
    return out


def progress_extension(entry: dict) -> dict:
    """An R5 progress entry as R4's pre-adopted extension (what progress_of reads)."""
    subs = [{"url": k, "valueCodeableConcept": entry[k]} for k in CODED if k in entry]
    subs += [{"url": k, "valueDateTime": entry[k]} for k in DATES if k in entry]
    return {"url": PROGRESS_URL, "extension": subs}


def add_progress(subject: dict, entry: dict, version: str) -> None:
    """Append an event to a ResearchSubject: R5 progress, R4 its pre-adopted extension."""
    if version == "R4":
        subject.setdefault("extension", []).append(progress_extension(entry))
    else:
        subject.setdefault("progress", []).append(entry)


def is_consent(entry: dict) -> bool:
    return any(c.get("system") == CONSENTED["system"] and c.get("code") == CONSENTED["code"]
               for c in (entry.get("milestone") or {}).get("coding") or [])


# -- the rows ---------------------------------------------------------------------------------------
def _memo(run: RunContext, name: str, make) -> Any:
    if name not in run.memo:
        run.memo[name] = make()
    return run.memo[name]


def _subjects(run: RunContext) -> dict[str, Row]:
    """ResearchSubject key -> its DM row (the subjects DM kept)."""
    return _memo(run, "ds.subjects", lambda: {r.resource.key: r for rows in run.subjects_by_patient.values()
                                              for r in rows})


def _consents(run: RunContext) -> dict[str, Row]:
    """Consent key -> the DM row of the subject whose ResearchSubject names it (R4 one, R5 a list)."""
    def make() -> dict[str, Row]:
        out: dict[str, Row] = {}
        for row in _subjects(run).values():
            refs = row.resource.data.get("consent")
            for ref in refs if isinstance(refs, list) else [refs] if refs else []:
                found = run.index.resolve(ref, "Consent")
                if found is not None:
                    out.setdefault(found.key, row)
        return out
    return _memo(run, "ds.consents", make)


def _made_from(resource, domain: str) -> tuple[bool, int]:
    """(made by to-fhir, how many records of `domain` it carries)."""
    records = read_records(resource.data)
    return bool(records), sum(1 for r in records if r[0] == domain)


def _event_row(resource, run: RunContext, spec: DomainSpec, subject: Row, event: dict) -> Row:
    holder = InputResource(event, resource.file, "", key=f"{resource.key}#event", version="R5")
    return Row(resource, run, spec.domain, refs={**subject.refs, "subject": subject.resource, "event": holder},
               subject_row=subject)


def _first(criteria: RowCriteria, name: str, resource, roots=None) -> Any:
    path = criteria.path(name, resource.version)
    if path is None:
        return None
    values = path.values(roots or (lambda var: resource.data if var is None else None))
    return values[0] if values else None


@algorithm("consent_event", "select", optional=("date",), paths=("date",), many=True)
def consent_event(resource, run: RunContext, spec: DomainSpec, criteria: RowCriteria) -> list[Row]:
    """DS rows of a Consent: the informed consent milestone of the study subject whose ResearchSubject
    names it, dated by `date`; none for a Consent the rows' out_of_scope rules name (refused, in error)."""
    subject = _consents(run).get(resource.key)
    if subject is None or out_of_scope(resource, criteria) is not None:
        return []
    if _made_from(subject.resource, spec.domain)[0] and not _made_from(resource, spec.domain)[1]:
        return []  # made by to-fhir for DM's RFICDTC, from a package whose DS had no consent record
    event: dict[str, Any] = {"type": _kind(True), "milestone": _concept(CONSENTED)}
    date = _first(criteria, "date", resource)
    if date is not None:
        event["startDate"] = date
    return [_event_row(resource, run, spec, subject, event)]


@algorithm("enrolment_events", "select", params=("term", "unexplained"),
           optional=("state", "end", "arm", "death", "discontinued", "death_reason", "discontinued_reason"),
           paths=("state", "end", "arm", "death", "discontinued"),
           values=("unexplained", "death_reason", "discontinued_reason"), many=True)
def enrolment_events(resource, run: RunContext, spec: DomainSpec, criteria: RowCriteria) -> list[Row]:
    """DS rows of a study subject's ResearchSubject: the milestones of its progress that `term`'s map
    knows (the RANDOMIZED milestone from the assigned `arm` when none says so), and one disposition
    event: the last progress state the map knows (R4 without progress: `state`, dated `end`). A state
    that says nothing of why (`unexplained`, off-study) takes the reason `death_reason` when the
    Patient died (`death`) on or before it, else `discontinued_reason` when one of the subject's
    AdverseEvents says it caused the discontinuation (`discontinued`)."""
    subject = _subjects(run).get(resource.key)
    if subject is None:
        return []
    entries = progress_of(resource.data, resource.version)
    made, carried = _made_from(resource, spec.domain)
    if made:  # to-fhir's own: the last `carried` entries are the DS records, as written
        events = entries[len(entries) - carried:] if carried else []
    else:
        events = _hospital_events(resource, run, criteria, subject, entries)
    return [_event_row(resource, run, spec, subject, e) for e in events]


def _hospital_events(resource, run: RunContext, criteria: RowCriteria, subject: Row, entries: list[dict]) -> list[dict]:
    term = criteria.deciders["term"]
    codelists = run.mappings.codelists

    def known(concept: Any) -> bool:
        return any(codelists.lookup(term.codelist or "", term.map, c.get("system"), c.get("code")) is not None
                   for c in (concept or {}).get("coding") or [] if isinstance(c, dict))

    if not entries and (state := _first(criteria, "state", resource)) is not None:
        entries = [{"subjectState": _concept({"system": STATE_SYSTEM, "code": state})}]
        if (end := _first(criteria, "end", resource)) is not None:
            entries[0]["startDate"] = end
    milestones = [e for e in entries if known(e.get("milestone"))]
    ends = [e for e in entries if not known(e.get("milestone")) and known(e.get("subjectState"))]
    events = [e if "type" in e else {"type": _kind(True), **e} for e in milestones]
    randomized = any(c.get("system") == RANDOMIZED["system"] and c.get("code") == RANDOMIZED["code"]
                     for e in milestones for c in e["milestone"].get("coding") or [])
    if not randomized and _first(criteria, "arm", resource) is not None:
        events.insert(0, {"type": _kind(True), "milestone": _concept(RANDOMIZED)})
    final = dict(ends[-1]) if ends else {}
    if len(ends) > 1:
        run.report.add("info", "DS_LAST_STATE", f"{len(ends)} end states in the subject's progress: the last is "
                       "the disposition event", domain="DS", source=resource.key,
                       usubjid=subject.values.get("USUBJID", ""))
    reason = _inferred_reason(resource, run, criteria, subject, final)
    if reason is not None and not known(final.get("reason")):
        final.setdefault("subjectState", _concept(_coding(criteria.params["unexplained"])))
        if reason[1] is not None and "startDate" not in final:
            final["startDate"] = reason[1]
        final["reason"] = _concept(_coding(reason[0]))
    if final:
        events.append({"type": _kind(False), **final} if "type" not in final else final)
    return events


def _inferred_reason(resource, run: RunContext, criteria: RowCriteria, subject: Row,
                     final: dict) -> tuple[str, str | None] | None:
    """(reason code, its date) for a disposition whose state says nothing of why, or that is missing."""
    unexplained = _coding(criteria.params["unexplained"])
    states = (final.get("subjectState") or {}).get("coding") or []
    if final and not any(c.get("system") == unexplained["system"] and c.get("code") == unexplained["code"]
                         for c in states):
        return None
    patient = subject.refs.get("patient")
    death = _first(criteria, "death", resource,
                   lambda var: patient.data if var == "patient" and patient is not None else None)
    ended = final.get("startDate")
    if criteria.params.get("death_reason") and (death is True or isinstance(death, str)):
        when = death if isinstance(death, str) else None
        if not (when and isinstance(ended, str) and when[:10] > ended[:10]):  # a death after the end is no reason
            return criteria.params["death_reason"], when
    if criteria.params.get("discontinued_reason") and patient is not None and \
            patient.key in _discontinued(run, criteria):
        return criteria.params["discontinued_reason"], None
    return None


def _discontinued(run: RunContext, criteria: RowCriteria) -> set[str]:
    """Patient keys of the AdverseEvents whose `discontinued` flag is true, but those the AE spec puts out
    of scope (a potential event, one entered in error)."""
    rules = [s.rows for s in run.mappings.domains.values() if s.row_resource == "AdverseEvent" and not s.sources]

    def make() -> set[str]:
        out = set()
        for line in run.index.of_type("AdverseEvent"):
            ae = line.loaded()  # an NDJSON line parsed once here
            if any(out_of_scope(ae, r) is not None for r in rules):
                continue
            if _first(criteria, "discontinued", ae) is True:
                patient = run.index.resolve(ae.data.get("subject"), "Patient")
                if patient is not None:
                    out.add(patient.key)
        return out
    return _memo(run, "ds.discontinued", make)


# -- DSTERM and DSDECOD -------------------------------------------------------------------------------
@algorithm("verbatim", "row", needs_source=True, params=("of",))
def verbatim(row: Row, var) -> str | None:
    """The text the source yields; without one (an event recorded as a code only), the standardized
    term of params.of (DSTERM = DSDECOD)."""
    value = row.first_of(var)
    return str(value) if value not in (None, "") else row.values.get(var.params["of"])


@algorithm("disposition_term", "row", needs_source=True)
def disposition_term(row: Row, var) -> str | None:
    """DSDECOD: the term the first mappable code of the event maps to (its reason, milestone or state),
    as assign_ct; to-fhir writes it back in the element of its code system."""
    return assign_ct(row, var)


@reverse("verbatim")
def verbatim_back(t: Target, var, value: Any) -> None:
    """Written only when it is not the standardized term (which forward gives back by itself)."""
    if value != t.record.get(var.params["of"]):
        t.write(var, str(value))


@reverse("disposition_term")
def disposition_term_back(t: Target, var, value: Any) -> None:
    """The term's coding in the element of its code system (params.elements: system -> element of the
    event; reason for the others, such as the NCI Thesaurus); a reason alone is given the state
    params.unexplained (off-study), so that the entry says the subject's participation ended."""
    coding = t.mappings.codelists.fhir_coding(var.codelist, var.map, str(value), t.version)
    event = t.resources.get("event")
    if coding is None or event is None:
        return
    element = (var.params.get("elements") or {}).get(coding["system"], "reason")
    event.setdefault(element, {}).setdefault("coding", []).append(coding)
    category = t.record.get(var.params.get("category", ""))
    if element == "reason" and category == var.params.get("ends"):
        event.setdefault("subjectState", _concept(_coding(var.params["unexplained"])))
