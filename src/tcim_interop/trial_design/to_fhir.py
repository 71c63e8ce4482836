"""TS, TA, TE, TI, TV -> the overall ResearchStudy (and an eligibility Group), for to-fhir.

What FHIR has an element for is written there: TITLE -> title, TPHASE -> phase, REGID -> identifier,
SPONSOR -> sponsor (R4, a display-only Reference) / associatedParty (R5), INDIC -> condition,
TINDTP -> primaryPurposeType, SSTDTC/SENDTC -> period, PLANSUB -> recruitment.targetNumber (R5), TA's
arms -> arm (R4) / comparisonGroup (R5), TI -> a Group of criteria (R4 enrollment, R5
recruitment.eligibility). Most of TS, and TE and TV, have no FHIR element: every record of these
datasets rides, cell by cell, in an sdtm-record extension of the study, so that to-sdtm gives the
datasets back exactly (trial_design/build.py).
"""

from __future__ import annotations

import re
from typing import Any

from ..fhir.extensions import dataset_extension, whole_record_extension
from ..mapping.reverse_algorithms import declare_arm, resource_id
from ..sdtm.dataset import Dataset, present
from ..sdtm.text import join_text
from . import CARRIED, MADE, ON_SUBJECTS
from .build import IE_SYSTEM
from .summary import REGISTRIES, SNOMED, SPONSOR_ROLES

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_THO = "http://terminology.hl7.org/CodeSystem/"


def add_trial_design(builder) -> None:
    """builder: mapping/to_fhir.py's Builder, after DM (the studies and their arms exist)."""
    dm_spec = builder.specs["DM"]
    for name in (*CARRIED, *ON_SUBJECTS):  # ON_SUBJECTS's records: on each subject (Builder.subjects_part)
        ds: Dataset | None = builder.sdtm.get(name)
        if ds is None:
            continue
        for studyid in dict.fromkeys(str(s) for s in ds.column("STUDYID")):
            study = builder._study(dm_spec, studyid)
            study.setdefault("extension", []).append(
                dataset_extension(name, ds.label, [(v.name, v.label, v.type) for v in ds.variables]))
    for name in CARRIED:
        for i, r in enumerate(builder.records.get(name, ())):
            study = builder._study(dm_spec, str(r["STUDYID"]))
            study.setdefault("extension", []).append(
                whole_record_extension(name, i, r))
    for studyid, study in builder.studies.items():
        mine = {n: [r for r in builder.records.get(n, []) if str(r["STUDYID"]) == studyid] for n in MADE}
        _summary(study, mine["TS"], builder)
        for r in mine["TA"]:
            declare_arm(builder.arms[studyid], str(r["ARMCD"]), str(r["ARM"]) if present(r.get("ARM")) else None)
        if mine["TI"]:
            _criteria(study, studyid, mine["TI"], builder)


def _ts_value(r: dict) -> str:
    """TSVAL with its continuation TSVAL1..n joined back."""
    n, parts = 1, [str(r.get("TSVAL") or "")]
    while present(r.get(f"TSVAL{n}")):
        parts.append(str(r[f"TSVAL{n}"]))
        n += 1
    return join_text(parts)


def _summary(study: dict, ts: list[dict], builder) -> None:
    version, codelists = builder.version, builder.ms.codelists
    by_parm: dict[str, list[dict]] = {}
    for r in ts:
        if present(r.get("TSVAL")):
            by_parm.setdefault(str(r["TSPARMCD"]), []).append(r)
    if "TITLE" in by_parm:  # the title as the sponsor wrote it: the record the translation table translates
        titles = [_ts_value(r) for r in by_parm["TITLE"]]
        table = builder.ms.verbatim
        study.setdefault("title", next((t for t in titles if table is not None and table.translate(t)), titles[0]))
    if "TPHASE" in by_parm:
        value = _ts_value(by_parm["TPHASE"][0])
        coding = codelists.fhir_coding("TPHASE", "PHASE", value)
        study["phase"] = {"coding": [coding], "text": value} if coding else {"text": value}
    if "TINDTP" in by_parm:
        value = _ts_value(by_parm["TINDTP"][0])
        coding = codelists.fhir_coding("TINDTP", "PURPOSE", value)
        study["primaryPurposeType"] = {"coding": [coding], "text": value} if coding else {"text": value}
    systems = {name: system for system, name in reversed(list(REGISTRIES.items()))}
    for r in by_parm.get("REGID", []):
        value = _ts_value(r)
        if not any(i.get("value") == value for i in study.get("identifier") or []):
            ident = {"system": systems[r["TSVCDREF"]]} if r.get("TSVCDREF") in systems else {}
            study.setdefault("identifier", []).append({**ident, "value": value})
    for r in by_parm.get("INDIC", []):
        cond: dict[str, Any] = {"text": _ts_value(r)}
        if r.get("TSVCDREF") == "SNOMED" and present(r.get("TSVALCD")):
            cond["coding"] = [{"system": SNOMED, "code": str(r["TSVALCD"]), "display": _ts_value(r)}]
        study.setdefault("condition", []).append(cond)
    period = {k: _ts_value(by_parm[p][0]) for k, p in (("start", "SSTDTC"), ("end", "SENDTC"))
              if p in by_parm and _DATE.match(_ts_value(by_parm[p][0]))}
    if period:
        study["period"] = period
    if "SPONSOR" in by_parm:
        name = _ts_value(by_parm["SPONSOR"][0])
        if version == "R4":
            study["sponsor"] = {"display": name}
        else:
            role = sorted(SPONSOR_ROLES)[-1]  # "sponsor"
            study["associatedParty"] = [{"name": name, "role": {"coding": [
                {"system": _THO + "research-study-party-role", "code": role}]}}]
    plansub = _ts_value(by_parm["PLANSUB"][0]) if "PLANSUB" in by_parm else ""
    if version == "R5" and plansub.isdigit():
        study.setdefault("recruitment", {})["targetNumber"] = int(plansub)


def _criteria(study: dict, studyid: str, ti: list[dict], builder) -> None:
    """TI -> a definitional Group: one characteristic per criterion (exclude = IECAT EXCLUSION)."""
    group: dict[str, Any] = {"resourceType": "Group", "id": resource_id(studyid, "TI"), "type": "person",
             "characteristic": [{"code": {"coding": [{"system": IE_SYSTEM, "code": str(r["IETESTCD"])}],
                                          **({"text": str(r["IETEST"])} if present(r.get("IETEST")) else {})},
                                 "valueBoolean": True, "exclude": r.get("IECAT") == "EXCLUSION"} for r in ti]}
    group.update({"actual": False} if builder.version == "R4" else {"membership": "definitional"})
    builder.out.add(group)
    ref = {"reference": f"Group/{group['id']}"}
    if builder.version == "R4":
        study["enrollment"] = [ref]
    else:
        study.setdefault("recruitment", {})["eligibility"] = ref
