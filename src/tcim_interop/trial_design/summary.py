"""Where TS parameter values come from: one small named source per kind of parameter.

A source takes the design context and the parameter and returns its values, each a TsValue; the
builder adds TSVALCD/TSVCDREF/TSVCDVER from the parameter's codelist or reference terminology.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..fhir.index import ResourceIndex
from ..fhir.read import InputResource
from ..findings import Report
from ..mapping.row_algorithms import study_arms
from ..sdtm.dataset import present

if TYPE_CHECKING:
    from ..mapping_spec.model import MappingSet

SNOMED = "http://snomed.info/sct"
# Registries by identifier system -> TSVCDREF of REGID (the registry's own name, as SDTMIG's example)
REGISTRIES = {"http://clinicaltrials.gov": "ClinicalTrials.gov", "https://clinicaltrials.gov": "ClinicalTrials.gov",
              "http://www.clinicaltrialsregister.eu": "EudraCT", "https://www.clinicaltrialsregister.eu": "EudraCT"}
SPONSOR_ROLES = {"sponsor", "lead-sponsor", "sponsor-investigator"}  # R5 research-study-party-role


@dataclass(frozen=True)
class TsValue:
    value: str
    code: str = ""  # TSVALCD when the value comes from a coded FHIR element (SNOMED, a registry)
    ref: str = ""  # TSVCDREF of that code when it is not the parameter's (study.yaml {value, code, ref})


@dataclass
class DesignContext:
    study: InputResource
    index: ResourceIndex
    mappings: MappingSet
    dm: pd.DataFrame  # this study's DM records
    report: Report
    used: set[str]  # keys of supporting resources read (the sponsor's Organization, the criteria's Group)
    studyid: str = ""

    @property
    def configured(self) -> dict:
        """study.yaml's trial_design and visits, for the study it configures only: another study in the
        input (the CDISC pilot made FHIR) gets what its ResearchStudy says, never this trial's protocol."""
        study = self.mappings.study
        if self.studyid != (study.get("study") or {}).get("studyid"):
            return {}
        return {**(study.get("trial_design") or {}), "visits": study.get("visits") or []}

    @property
    def data(self) -> dict:
        return self.study.data

    @property
    def version(self) -> str:
        return self.study.version

    def resolve(self, reference: Any, resource_type: str) -> dict | None:
        found = self.index.resolve(reference, resource_type)
        if found is None:
            return None
        self.used.add(found.key)
        return found.data


SOURCES: dict[str, Callable[[DesignContext, Any], list[TsValue]]] = {}


def source(name: str):
    def register(fn):
        SOURCES[name] = fn
        return fn
    return register


def _codings(concept: Any) -> list[dict]:
    return [c for c in (concept or {}).get("coding") or [] if isinstance(c, dict)] if isinstance(concept, dict) else []


def _coded(ctx: DesignContext, concept: Any, codelist: str, map_name: str) -> list[TsValue]:
    for c in _codings(concept):
        value = ctx.mappings.codelists.lookup(codelist, map_name, c.get("system"), c.get("code"))
        if value:
            return [TsValue(value)]
    if _codings(concept):
        c = _codings(concept)[0]
        ctx.report.add("warning", "CT_UNMAPPED", f"{c.get('system')}|{c.get('code')} maps to no {codelist} term",
                       domain="TS", source=ctx.study.key, hint=ctx.mappings.codelists.unmapped_hint(codelist, map_name))
    return []


@source("title")
def title(ctx: DesignContext, param) -> list[TsValue]:
    return [TsValue(ctx.data["title"])] if present(ctx.data.get("title")) else []


@source("phase")
def phase(ctx: DesignContext, param) -> list[TsValue]:
    return _coded(ctx, ctx.data.get("phase"), "TPHASE", "PHASE")


@source("purpose")
def purpose(ctx: DesignContext, param) -> list[TsValue]:
    return _coded(ctx, ctx.data.get("primaryPurposeType"), "TINDTP", "PURPOSE")


@source("registry_ids")
def registry_ids(ctx: DesignContext, param) -> list[TsValue]:
    """Identifiers issued by a registry (ClinicalTrials.gov, EudraCT): TSVALCD is the identifier too."""
    return [TsValue(i["value"], i["value"]) for i in ctx.data.get("identifier") or []
            if isinstance(i, dict) and i.get("system") in REGISTRIES and present(i.get("value"))]


def registry_name(ctx: DesignContext, value: str) -> str:
    system = next((i.get("system") for i in ctx.data.get("identifier") or [] if i.get("value") == value), "")
    return REGISTRIES.get(system, "")


@source("sponsor")
def sponsor(ctx: DesignContext, param) -> list[TsValue]:
    """R4 sponsor (an Organization); R5 associatedParty with a sponsor role (its name, else its party's)."""
    if ctx.version == "R4":
        ref = ctx.data.get("sponsor")
        org = ctx.resolve(ref, "Organization")
        name = (org or {}).get("name") or (ref or {}).get("display")
        return [TsValue(str(name))] if present(name) else []
    for party in ctx.data.get("associatedParty") or []:
        if any(c.get("code") in SPONSOR_ROLES for c in _codings(party.get("role"))):
            name = party.get("name") or (ctx.resolve(party.get("party"), "Organization") or {}).get("name")
            if present(name):
                return [TsValue(str(name))]
    return []


@source("conditions")
def conditions(ctx: DesignContext, param) -> list[TsValue]:
    """The conditions studied: the SNOMED CT display and code (FDA asks for SNOMED in INDIC), else the text."""
    out = []
    for cond in ctx.data.get("condition") or []:
        snomed = next((c for c in _codings(cond) if c.get("system") == SNOMED), None)
        if snomed and present(snomed.get("display")):
            out.append(TsValue(snomed["display"], snomed.get("code", "")))
        elif present((cond or {}).get("text")):
            out.append(TsValue(cond["text"]))
    return out


@source("planned_subjects")
def planned_subjects(ctx: DesignContext, param) -> list[TsValue]:
    """R5 recruitment.targetNumber; R4 has no element for it: study.yaml."""
    target = (ctx.data.get("recruitment") or {}).get("targetNumber") if ctx.version == "R5" else None
    return [TsValue(str(int(target)))] if isinstance(target, (int, float)) else config(ctx, param)


@source("actual_subjects")
def actual_subjects(ctx: DesignContext, param) -> list[TsValue]:
    """Subjects enrolled, screen failures excluded (CT C98703: may include subjects not randomized)."""
    actual = (ctx.data.get("recruitment") or {}).get("actualNumber") if ctx.version == "R5" else None
    if isinstance(actual, (int, float)):
        return [TsValue(str(int(actual)))]
    if not len(ctx.dm):
        return []
    reasons = ctx.dm["ARMNRS"].fillna("") if "ARMNRS" in ctx.dm else pd.Series([""] * len(ctx.dm))
    return [TsValue(str(int((reasons != "SCREEN FAILURE").sum())))]


@source("arms")
def arms(ctx: DesignContext, param) -> list[TsValue]:
    n = len(study_arms(ctx.data, ctx.version))
    return [TsValue(str(n))] if n else []


@source("countries")
def countries(ctx: DesignContext, param) -> list[TsValue]:
    return [TsValue(c) for c in sorted({c for c in ctx.dm.get("COUNTRY", []) if present(c)})]


@source("start_date")
def start_date(ctx: DesignContext, param) -> list[TsValue]:
    """CT C69208: the earliest informed consent of any subject (RFICDTC), else the study's period.start."""
    dates = sorted(str(d)[:10] for d in ctx.dm.get("RFICDTC", []) if present(d) and len(str(d)) >= 10)
    start = dates[0] if dates else (ctx.data.get("period") or {}).get("start")
    return [TsValue(str(start)[:10])] if present(start) else []


@source("end_date")
def end_date(ctx: DesignContext, param) -> list[TsValue]:
    end = (ctx.data.get("period") or {}).get("end")
    return [TsValue(str(end)[:10])] if present(end) else []


@source("products")
def products(ctx: DesignContext, param) -> list[TsValue]:
    """TRT, COMPTRT: the study.yaml products whose `ts` names the parameter, by their EXTRT: the one
    name of each product, in TS and EX alike."""
    if not ctx.configured:
        return []
    return [TsValue(str(p["extrt"])) for p in ctx.mappings.study.get("products") or [] if p.get("ts") == param.parmcd]


def config(ctx: DesignContext, param) -> list[TsValue]:
    """study.yaml trial_design.summary: a value or a list of values; a value may be {value, code, ref}
    (a term of another terminology: CURTRT's UNII)."""
    value = (ctx.configured.get("summary") or {}).get(param.parmcd)
    values = value if isinstance(value, list) else [] if value is None else [value]
    out = []
    for v in values:
        if isinstance(v, dict):
            if present(v.get("value")):
                out.append(TsValue(str(v["value"]).strip(), str(v.get("code") or ""), str(v.get("ref") or "")))
        elif present(v):
            out.append(TsValue(str(v).strip()))
    return out
