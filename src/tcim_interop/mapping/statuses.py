"""The statuses to-fhir writes, derived from the package, never constants (docs/decisions.md, Statuses).

    ResearchSubject  the state DS wrote (R4 status, R5 progress: its last disposition event), else DM's:
                     a screen failure (ARMNRS SCREEN FAILURE, or the arm code SDTMIG before 3.3 wrote
                     for it, dm.yaml ARMNRS params.legacy_arms) is ineligible; a subject of a completed
                     study is off-study; else nothing ends it: R4 on-study, R5 no progress entry.
    ResearchStudy    completed when its end is recorded (TS SENDTC, the study's period.end: the date the
                     last data item was collected from the last subject) or every subject's participation
                     has ended; else active. R4 status; R5 status is the record's publication status
                     (active) and progressStatus holds the state, with the overall study's actual period.

A state derived here is one to-sdtm gives back nothing from (DS reads only the progress entries its own
records made, ARMNRS reads ineligible as SCREEN FAILURE, as sent): the round trip is not touched.
"""

from __future__ import annotations

from ..mapping_spec.model import MappingSet
from .disposition import STATE_SYSTEM, STATE_TYPE
from .reverse_algorithms import legacy_arm_reason

STUDY_STATE_SYSTEM = "http://hl7.org/fhir/research-study-status"  # R5's progressStatus.state codes
COMPLETED, ACTIVE = "completed", "active"  # in R4 status and R5 progressStatus.state alike
OVERALL = "overall-study"  # R5: the entry that dates the overall study
INELIGIBLE, OFF_STUDY, ON_STUDY = "ineligible", "off-study", "on-study"


def _ending_states(ms: MappingSet) -> set[str]:
    """The subject states that end participation: those DS's disposition term map knows (disposition.py
    reads them so), and the two this module writes."""
    maps = {s.criteria.deciders["term"].map for spec in ms.domains.values() for s in spec.sources
            if "term" in s.criteria.deciders}
    known = {key.rpartition("|")[2] for m in maps if m for key in ms.codelists.maps.get(m, {})
             if key.rpartition("|")[0] == STATE_SYSTEM}
    return known | {INELIGIBLE, OFF_STUDY}


def _state_written(subject: dict, version: str) -> str | None:
    """The state DS wrote on the subject: R4 status, R5 the last progress entry's subjectState."""
    if version == "R4":
        return subject.get("status")
    states = [c.get("code") for p in subject.get("progress") or []
              for c in (p.get("subjectState") or {}).get("coding") or [] if c.get("system") == STATE_SYSTEM]
    return states[-1] if states else None


def _write_state(subject: dict, state: str, version: str) -> None:
    """R4 status; R5 a progress entry placed first, before the entries DS records made (to-sdtm reads those
    as the last ones)."""
    if version == "R4":
        subject["status"] = state
    else:
        subject.setdefault("progress", []).insert(0, {
            "type": {"coding": [{"system": STATE_TYPE, "code": "Enrollment"}]},
            "subjectState": {"coding": [{"system": STATE_SYSTEM, "code": state}]}})


class Statuses:
    """Each subject's state as its part is built (subject), then the studies' once every subject is seen
    (studies): a study is completed when its end is recorded or every subject's participation ended."""

    def __init__(self, ms: MappingSet, version: str):
        self.ms, self.version, self.ending = ms, version, _ending_states(ms)
        self.ended: dict[int, list[bool]] = {}  # id(study or site) -> whether each subject's participation ended

    def subject(self, record: dict, roles: dict[str, dict]) -> None:
        """The subject's state, from what DS wrote, else DM (record: the DM record; roles: the subject's
        resources by role: resource, site, study), written after the subject's records are built."""
        subject, study = roles["resource"], roles["study"]
        state = _state_written(subject, self.version)
        if state not in self.ending:
            reason = record.get("ARMNRS") or legacy_arm_reason(self.ms, record.get("ARMCD"))
            state = INELIGIBLE if reason == "SCREEN FAILURE" else OFF_STUDY if _end(study) else None
            if state is not None:
                _write_state(subject, state, self.version)
            elif self.version == "R4":  # nothing says the subject's participation ended
                subject["status"] = ON_STUDY
        for holder in (study, roles["site"]):
            self.ended.setdefault(id(holder), []).append(state in self.ending)

    def studies(self, studies: list[dict]) -> None:
        """Every ResearchStudy written (overall and site), once every subject's state is written."""
        overall = {f"ResearchStudy/{s['id']}": s for s in studies if "partOf" not in s}
        for study in studies:
            parent = overall.get(((study.get("partOf") or [{}])[0]).get("reference", ""), study)
            mine = self.ended.get(id(study), [])
            _write_study_state(study, COMPLETED if _end(parent) or (mine and all(mine)) else ACTIVE, self.version)


def _end(study: dict) -> str | None:
    """The overall study's recorded end: period.end, which TS SENDTC gives (trial_design/to_fhir.py)."""
    return (study.get("period") or {}).get("end")


def _write_study_state(study: dict, state: str, version: str) -> None:
    if version == "R4":
        study["status"] = state
        return
    study["progressStatus"] = [{"state": {"coding": [{"system": STUDY_STATE_SYSTEM, "code": state}]}, "actual": True}]
    period = study.get("period")
    if period:  # the overall study's dates, as TS records them: actual, not planned
        study["progressStatus"].append({"state": {"coding": [{"system": STUDY_STATE_SYSTEM, "code": OVERALL}]},
                                        "actual": True, "period": dict(period)})
