"""SE, Subject Elements: the elements of TE each subject went through, with their actual dates.

Each element of study.yaml `trial_design.elements` names its transition event, `start: {date: <DM
variable>, next_day: true|false}` (the start of screening is informed consent, RFICDTC; of a treatment
element the first study treatment, RFXSTDTC; of follow-up the day after the last one, RFXENDTC + 1).

    sequence  the subject's actual arm's elements (ACTARMCD, study.yaml trial_design.arms); a subject
              with no actual arm (a screen failure, one not treated, or any subject of a masked
              delivery) goes through the elements every arm shares, in order; where the arms differ the
              element is not known, and a subject treated there gets ETCD UNPLAN (SE assumption 4)
    dates     an element starts at its transition event; the subject stops before the first element
              whose event has no date; SEENDTC is the next element's SESTDTC (no gap, SE assumption 8),
              the last element's the subject's disposition event for the study (study.yaml
              trial_design.end: DS DISPOSITION EVENT's DSSTDTC) when dated and not before the element's
              start, else the end of participation, RFPENDTC (a screen failure's screening ends when he
              failed screening, not at a later death)
    TAETORD   the element's place in the planned arm's sequence (ARMCD), empty when it is not there
    EPOCH     the element's epoch (the same in every arm where the element is not known)

Only the subjects of the study study.yaml describes (study.studyid) get records, as for TE and TV.
The EPOCH of the other domains is derived from this dataset (mapping/derivations.py `epoch`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import pandas as pd

from ..mapping_spec.model import MappingSet
from ..sdtm.dataset import Dataset, VariableMeta, frame_of, present
from ..sdtm.dates import complete_date, study_day

UNPLANNED = "UNPLAN"  # SDTMIG's ETCD of an unplanned element
NOT_KNOWN = "Study treatment of an arm that is not known"


def subject_elements(dm: pd.DataFrame, mappings: MappingSet, frames: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The SE records (SDTMIG 3.4 variable names) of the DM subjects, in SE's order. frames: the
    datasets by name, where the events that end the last element are (trial_design.end)."""
    design = mappings.study.get("trial_design") or {}
    ends = _last_ends(design.get("end"), frames or {})
    elements = {e["etcd"]: e for e in design.get("elements") or []}
    arms = {str(k): [elements[c] for c in v.get("elements") or [] if c in elements]
            for k, v in (design.get("arms") or {}).items()}
    studyid = (mappings.study.get("study") or {}).get("studyid")
    records: list[dict[str, Any]] = []
    for subject in dm.to_dict("records") if elements and len(dm) else ():
        if subject.get("STUDYID") != studyid:
            continue
        actual = subject.get("ACTARMCD")
        sequence = arms.get(str(actual)) if present(actual) else None
        planned = [e["etcd"] for e in arms.get(str(subject.get("ARMCD")), [])]
        records += _records(subject, sequence or _shared(list(arms.values())), planned, ends.get(subject["USUBJID"]))
    return _frame(records, mappings)


def _last_ends(rule: dict | None, frames: dict[str, pd.DataFrame]) -> dict[str, str]:
    """USUBJID -> the date of its last event the rule names (study.yaml trial_design.end: {domain, date,
    where}): the disposition event for the study that ends the last element."""
    frame = frames.get(rule["domain"]) if rule else None
    if rule is None or frame is None or not len(frame):
        return {}
    keep = pd.Series(True, index=frame.index)
    for name, value in (rule.get("where") or {}).items():
        keep &= frame[name] == value
    out: dict[str, str] = {}
    for usubjid, date in zip(frame.loc[keep, "USUBJID"], frame.loc[keep, rule["date"]], strict=True):
        if present(date) and str(date) > out.get(usubjid, ""):
            out[usubjid] = str(date)
    return out


def _shared(sequences: list[list[dict]]) -> list[dict]:
    """The elements every arm has at each place, while the arms agree on its epoch and transition event;
    where they differ in the element only, an element that is not known (ETCD UNPLAN)."""
    out: list[dict] = []
    for place in zip(*sequences, strict=False) if sequences else ():
        if len({e["etcd"] for e in place}) == 1:
            out.append(place[0])
        elif len({(e.get("epoch"), repr(e.get("start"))) for e in place}) == 1:
            out.append({"etcd": UNPLANNED, "epoch": place[0].get("epoch"), "start": place[0].get("start"),
                        "upd": NOT_KNOWN})
        else:
            break
    return out


def _start(subject: dict, rule: Any) -> str | None:
    """An element's start for a subject: the DM date its rule names, the day after when next_day."""
    value = subject.get(rule.get("date")) if isinstance(rule, dict) else None
    if not present(value):
        return None
    if not rule.get("next_day"):
        return str(value)
    day = complete_date(str(value))
    return (day + timedelta(days=1)).isoformat() if day else None


def _records(subject: dict, sequence: list[dict], planned: list[str], last_end: str | None = None) -> list[dict]:
    starts = []
    for element in sequence:
        start = _start(subject, element.get("start"))
        if start is None:
            break
        starts.append((element, start))
    end_of_study = subject.get("RFPENDTC") if present(subject.get("RFPENDTC")) else None
    if last_end is not None and starts and not _before(last_end, starts[-1][1]):
        end_of_study = last_end
    out = []
    for n, (element, start) in enumerate(starts):
        end = starts[n + 1][1] if n + 1 < len(starts) else end_of_study
        etcd = element["etcd"]
        out.append({"STUDYID": subject["STUDYID"], "DOMAIN": "SE", "USUBJID": subject["USUBJID"], "SESEQ": n + 1, "ETCD": etcd,
                    "ELEMENT": element.get("element"),
                    "TAETORD": planned.index(etcd) + 1 if etcd in planned else None,
                    "EPOCH": element.get("epoch"), "SESTDTC": start, "SEENDTC": end,
                    "SESTDY": study_day(start, subject.get("RFSTDTC")), "SEENDY": study_day(end, subject.get("RFSTDTC")),
                    "SEUPDES": element.get("upd")})
    return out


def _before(a: str, b: str) -> bool:
    """ISO 8601 a before b, compared at the precision both have (2021-06 is not before 2021-06-15)."""
    n = min(len(a), len(b))
    return a[:n] < b[:n]


def _frame(records: list[dict], mappings: MappingSet) -> pd.DataFrame:
    return records_frame(se_variables(mappings), records)


def records_frame(variables: list[VariableMeta], records: list[dict]) -> pd.DataFrame:
    """A dataset's frame from its records (dicts): Char as str or None, Num as float."""
    return frame_of({v.name: [_cell(r.get(v.name), v.type) for r in records] for v in variables},
                    {v.name for v in variables if v.type == "Num"})


def _cell(value: Any, kind: str) -> Any:
    if kind == "Char":
        return str(value) if present(value) else None
    return float(value) if present(value) else float("nan")


def se_variables(mappings: MappingSet) -> list[VariableMeta]:
    """SE's variables: mappings/trial_design.yaml `datasets: SE`."""
    return list(mappings.trial_design.datasets["SE"][1]) if mappings.trial_design else []


def se_dataset(frame: pd.DataFrame, mappings: MappingSet) -> Dataset:
    return Dataset("SE", mappings.trial_design.datasets["SE"][0], se_variables(mappings), frame)


def carried_elements(described: tuple[str, list] | None, records: Iterable[tuple[str, int, dict]]) -> Dataset | None:
    """The SE records that to-fhir carried (sdtm-record extensions: on each subject's ResearchSubject, or
    on the overall study as earlier releases wrote them), given back exactly, with the dataset's own
    variables (described: its sdtm-dataset extension's (label, variables)); None when SE is not described.
    records: every (dataset, row, cells) the input's sdtm-record extensions hold."""
    if described is None:
        return None
    variables = [VariableMeta(*v) for v in described[1]]
    rows = sorted(((row, cells) for name, row, cells in records if name == "SE"), key=lambda rc: rc[0])
    return Dataset("SE", described[0], variables, records_frame(variables, [cells for _, cells in rows]))
