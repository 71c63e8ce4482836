"""Row algorithms: the value of one variable of one record, from the row's FHIR sources.

All share one shape, fn(row, var) -> value, and report problems as findings on the row; a value
they cannot determine is left empty (None), never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Any

from ..fhir.extensions import read_record
from ..mapping_spec.model import name_key
from ..sdtm.dates import DateError, age_in_years, to_iso8601
from .context import Row
from .registry import algorithm

MEDDRA_SYSTEM = "http://terminology.hl7.org/CodeSystem/mdr"
MEDDRA_LEVEL_URL = "http://tcim-interop.org/fhir/StructureDefinition/meddra-level"
ISO3166_SYSTEM = "urn:iso:std:iso:3166"
_DATE_HINT = "write it as FHIR does: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with an offset (Z, +01:00)"


def _number(row: Row, var, value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        row.finding("error", "NOT_A_NUMBER", f"{value!r} is not a number", var.name, value)
        return None
    if not math.isfinite(x):
        row.finding("error", "NOT_A_NUMBER", f"{value!r} is not a finite number", var.name, value)
        return None
    return x


@algorithm("assign", "row", needs_source=True)
def assign(row: Row, var) -> Any:
    """The first value the source yields, as text (Char) or number (Num)."""
    value = row.first_of(var)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        row.finding("error", "NOT_A_PRIMITIVE", "the source is a complex element, not a value", var.name)
        return None
    if not var.is_char:
        return _number(row, var, value)
    return format_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def format_number(x: float | int) -> str:
    """Shortest text that reads back as the same number (45 -> "45", 4.25 -> "4.25")."""
    if isinstance(x, int):
        return str(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def codes_of(row: Row, var, values: list[Any]) -> list[tuple[str | None, str | None, str]]:
    """(system, code, shown-as) of each value: a Coding, a Quantity, or a primitive code."""
    out = []
    for v in values:
        if isinstance(v, dict) and ("code" in v or "system" in v):
            out.append((v.get("system"), v.get("code"), f"{v.get('system')}|{v.get('code')}"))
        elif isinstance(v, dict) and var.params.get("quantity"):
            if v.get("unit") is not None:
                out.append((None, None, f"unit {v.get('unit')!r} without a UCUM code"))
        elif isinstance(v, str):
            out.append((var.params.get("system"), v, v))
        elif isinstance(v, dict) and "text" in v:
            out.append((None, None, f"text only: {v['text']!r}"))
    return out


@algorithm("assign_ct", "row", needs_source=True)
def assign_ct(row: Row, var) -> str | None:
    """The submission value the first mappable code maps to (the var's map, or its codelist's NCI
    codes, directly or through the ConceptMaps); codes present but unmapped are reported and the value
    left empty."""
    values = row.values_of(var)
    if not values:
        return None
    codes = codes_of(row, var, values)
    dimensionless = _frozen(tuple(var.params.get("dimensionless", ())))
    for system, code, _ in codes:
        if code in dimensionless and system in (None, "http://unitsofmeasure.org"):
            return None
        hit = row.run.mappings.codelists.lookup(var.codelist, var.map, system, code)
        if hit is not None:
            return hit
    report_unmapped(row, var, [c[2] for c in codes])
    return None


def report_unmapped(row: Row, var, shown_codes: list[str]) -> None:
    if shown_codes:
        shown = ", ".join(shown_codes)
        row.finding("warning", "CT_UNMAPPED", f"no {var.codelist} term for {shown}", var.name, shown,
                    row.run.mappings.codelists.unmapped_hint(var.codelist, var.map))


@algorithm("study_id", "row", needs_source=True)
def study_id(row: Row, var) -> Any:
    """The study's identifier (as assign); a study that is this trial under another name takes the
    configured study id (study.yaml study.studyid): one whose identifiers include the trial's registry id,
    protocol number or EU CT number, or the ResearchStudy the site folder's site.yaml `study` names."""
    study = row.refs.get("study")
    mappings = row.run.mappings
    if study is not None and (names := _trial_names(mappings)):
        ids = [i for i in study.data.get("identifier") or [] if isinstance(i, dict)]
        given = {study.key} | {str(i.get("value")) for i in ids} | {f"{i.get('system')}|{i.get('value')}" for i in ids}
        if given & names:
            return str(mappings.study["study"]["studyid"])
    return assign(row, var)


def _trial_names(mappings) -> set[str]:
    """What identifies this trial: study.yaml's identifiers, and the site's name for its ResearchStudy."""
    trial = mappings.study.get("study") or {}
    names = {str(trial[k]) for k in ("studyid", "registry_id", "protocol", "eu_ct_number") if trial.get(k)}
    if mappings.site is not None and mappings.site.study:
        names.add(mappings.site.study)
    return names if trial.get("studyid") else set()


@algorithm("site_id", "row", needs_source=True)
def site_id(row: Row, var) -> Any:
    """The site study's identifier (as assign); a subject enrolled straight in a study that has no site
    studies (a hospital's single ResearchStudy) takes the site folder's site.yaml site_id."""
    if row.refs.get("site") is None and row.run.mappings.site is not None:
        return row.run.mappings.site.site_id
    return assign(row, var)


@algorithm("study_product", "row", needs_source=True)
def study_product(row: Row, var) -> str | None:
    """The study product a medication CodeableConcept names: its first coding the map knows (directly
    or through the ConceptMaps), else its text, a study product's name or synonym in study.yaml
    `products` (case and accents aside). Neither: reported, left empty."""
    concepts = row.values_of(var)
    product = product_of(concepts, row.run.mappings, var)
    if product is None:
        codings = [c for cc in concepts if isinstance(cc, dict) for c in cc.get("coding") or [] if isinstance(c, dict)]
        texts = [cc["text"] for cc in concepts if isinstance(cc, dict) and isinstance(cc.get("text"), str)]
        report_unmapped(row, var, [f"{c.get('system')}|{c.get('code')}" for c in codings] + [f"text {t!r}" for t in texts])
    return product


def product_of(concepts: list, mappings, var) -> str | None:
    """study_product's value, without a finding (the EX selector asks it too)."""
    codelists = mappings.codelists
    for concept in concepts:
        for c in (concept.get("coding") or []) if isinstance(concept, dict) else []:
            if isinstance(c, dict) and (hit := codelists.lookup(var.codelist, var.map, c.get("system"), c.get("code"))):
                return hit
    for concept in concepts:
        text = concept.get("text") if isinstance(concept, dict) else None
        if isinstance(text, str) and (hit := mappings.product_names.get(name_key(text))):
            return hit
    return None


@cache
def _frozen(items: tuple) -> frozenset:
    return frozenset(items)


@algorithm("hardcode", "row", origin="Assigned", params=("value",))
def hardcode(row: Row, var) -> Any:
    """A constant from the spec (checked against the codelist when the spec is loaded)."""
    return var.params["value"]


@algorithm("hardcode_if", "row", origin="Assigned", params=("value", "if"))
def hardcode_if(row: Row, var) -> Any:
    """A constant, when another variable of the row has a value (AGEU only when AGE is known). With a
    source, the term its code maps to when it gives one (AGEU: the unit of an age as collected)."""
    if var.source and row.values_of(var):
        return assign_ct(row, var)
    return var.params["value"] if row.values.get(var.params["if"]) is not None else None


@algorithm("domain_code", "row", origin="Assigned")
def domain_code(row: Row, var) -> str:
    """The two-letter domain code of the spec that runs (XM, or NV for the same data)."""
    return row.domain


@algorithm("concat", "row", origin="Derived", params=("of",),
           method="{target} is {of} joined by \"{sep}\".")
def concat(row: Row, var) -> str | None:
    """Variables of the row joined by params.sep (USUBJID = STUDYID-SITEID-SUBJID); a value the source
    gives wins (FHIR made from another study's SDTM names its USUBJID, which need not be so joined)."""
    if var.source and (given := row.first_of(var)) not in (None, ""):
        return str(given)
    parts = [row.values.get(n) for n in var.params["of"]]
    if any(p in (None, "") for p in parts):
        return None
    return str(var.params.get("sep", "")).join(map(str, parts))


@algorithm("subject_var", "row", origin="Derived", params=("of",),
           method="{target} is {of} of the subject's DM record.")
def subject_var(row: Row, var) -> Any:
    """A variable of the subject's DM record (STUDYID, USUBJID)."""
    return row.subject_row.values.get(var.params["of"]) if row.subject_row else None


@algorithm("iso_datetime", "row", needs_source=True)
def iso_datetime(row: Row, var) -> str | None:
    """FHIR date/dateTime/instant -> ISO 8601, local time as recorded, partial dates kept partial."""
    value = row.first_of(var)
    if value is None:
        return None
    try:
        return to_iso8601(value)
    except DateError as e:
        row.finding("error", "BAD_DATE", str(e), var.name, value, _DATE_HINT)
        return None


@algorithm("death_flag", "row", needs_source=True)
def death_flag(row: Row, var) -> str | None:
    """Y when the Patient is deceased (a death date, or deceasedBoolean true); else empty."""
    value = row.first_of(var)
    return "Y" if value is True or isinstance(value, str) else None


@algorithm("birth_date", "row", needs_source=True)
def birth_date(row: Row, var) -> str | None:
    """Patient.birthDate under the privacy policy of study.yaml (birth_date: year | full | omit)."""
    value = row.first_of(var)
    policy = row.run.mappings.study.get("birth_date", "year")
    if value is None or policy == "omit":
        return None
    try:
        iso = to_iso8601(value)
    except DateError as e:
        row.finding("error", "BAD_DATE", str(e), var.name, hint=_DATE_HINT)
        return None
    return iso[:4] if policy == "year" else iso[:10]


@algorithm("age", "row", origin="Derived", needs_source=True, params=("at",),
           method="{target} is the age the subject's age Observation gives (LOINC 30525-0 Age), else the age in "
           "completed years at {at}, from the full date of birth (FHIR Patient.birthDate).")
def age(row: Row, var) -> float | None:
    """The first value the source gives: a number is the age as collected (an Observation's value), a
    date the birth date, from which it is whole years to the row's params.at date (RFICDTC)."""
    birth = row.first_of(var)
    at = row.values.get(var.params["at"])
    if birth is None:
        return None
    if not isinstance(birth, str):
        return _number(row, var, birth)
    years = age_in_years(birth, at)
    if years is None:
        row.finding("warning", "AGE_UNKNOWN", f"AGE needs a complete birth date and {var.params['at']}",
                    var.name)
        return None
    return float(years)


def _arm_ids(row: Row, which: str) -> str | None:
    data = row.resource.data
    if row.version == "R4":
        return data.get("assignedArm" if which == "assigned" else "actualArm")
    return data.get("assignedComparisonGroup" if which == "assigned" else "actualComparisonGroup")


def study_arms(study: dict, version: str) -> list[dict]:
    """A ResearchStudy's arms, each {name, description, ...}: R4 arm, R5 comparisonGroup."""
    return [a for a in study.get("arm" if version == "R4" else "comparisonGroup") or [] if isinstance(a, dict)]


def _arm_definition(row: Row, ident: str) -> dict | None:
    field = "name" if row.version == "R4" else "linkId"  # how a subject names its arm
    for study in (row.refs.get("site"), row.refs.get("study")):
        for arm in study_arms(study.data, row.version) if study is not None else []:
            if arm.get(field) == ident:
                return arm
    return None


@algorithm("arm", "row", params=("which", "field"))
def arm(row: Row, var) -> str | None:
    """ARMCD/ARM (assigned) and ACTARMCD/ACTARM (actual): the arm's name is the code, its
    description the name (R4 ResearchStudy.arm, R5 comparisonGroup found by linkId)."""
    ident = _arm_ids(row, var.params["which"])
    if not ident:
        return None
    arm_def = _arm_definition(row, ident)
    if arm_def is None and var.params["which"] == "actual":
        # a treatment received that no planned arm describes: ARMNRS UNPLANNED TREATMENT, ACTARMUD says what
        if var.params["field"] == "code":
            row.finding("warning", "ARM_UNPLANNED", f"actual arm {ident!r} is not an arm of the study: ACTARMCD "
                        "null, ARMNRS UNPLANNED TREATMENT, ACTARMUD the arm as sent", var.name, ident,
                        "declare the arm in the ResearchStudy if the protocol planned it")
        return None
    if arm_def is None:
        row.finding("error", "ARM_UNDECLARED", f"arm {ident!r} is not declared in the study", var.name, ident,
                    "declare it in the ResearchStudy's arm (R4) or comparisonGroup (R5), or correct the subject's arm")
        return None
    if var.params["field"] == "code":
        return arm_def.get("name")
    return arm_def.get("description") or arm_def.get("name")


@algorithm("unplanned_arm", "row")
def unplanned_arm(row: Row, var) -> str | None:
    """ACTARMUD: the actual arm as the subject's record names it (R4 actualArm, R5 actualComparisonGroup)
    when the study declares no such arm: a treatment no planned arm describes (ARMNRS UNPLANNED
    TREATMENT). Empty otherwise."""
    ident = _arm_ids(row, "actual")
    return str(ident) if ident and _arm_definition(row, ident) is None else None


_SCREEN_FAILED = {"ineligible", "not-registered"}


@algorithm("arm_null_reason", "row")
def arm_null_reason(row: Row, var) -> str | None:
    """ARMNRS (SDTMIG 3.4): why ARMCD or ACTARMCD is empty. Not assigned and ineligible ->
    SCREEN FAILURE; not assigned otherwise -> NOT ASSIGNED; assigned, no actual arm ->
    ASSIGNED, NOT TREATED; assigned, treated as no arm of the study -> UNPLANNED TREATMENT. With params.value (a masked delivery, dm.yaml `masked:`), every subject
    with an arm (assigned or actual) gets that value (MASKED) instead: its arm is withheld."""
    if var.params.get("value") is not None and (_arm_ids(row, "assigned") or _arm_ids(row, "actual")):
        return var.params["value"]
    if _arm_ids(row, "assigned"):
        if unplanned_arm(row, var):
            return "UNPLANNED TREATMENT"
        return None if _arm_ids(row, "actual") else "ASSIGNED, NOT TREATED"
    data = row.resource.data
    if row.version == "R4":
        states = {data.get("status")}
    else:
        states = {c.get("code") for p in data.get("progress") or [] for c in
                  ((p.get("subjectState") or {}).get("coding") or [])}
    return "SCREEN FAILURE" if states & _SCREEN_FAILED else "NOT ASSIGNED"


@algorithm("country", "row", needs_source=True)
def country(row: Row, var) -> str | None:
    """COUNTRY as ISO 3166-1 alpha-3 from the site study's location/region (alpha-2 converted)."""
    import pycountry

    codes = [c for c in row.values_of(var) if isinstance(c, dict) and c.get("system") == ISO3166_SYSTEM]
    for c in codes:
        code = str(c.get("code", "")).upper()
        hit = pycountry.countries.get(alpha_3=code) if len(code) == 3 else pycountry.countries.get(alpha_2=code)
        if hit is not None:
            return hit.alpha_3
    shown = ", ".join(f"{c.get('system')}|{c.get('code')}" for c in row.values_of(var) if isinstance(c, dict))
    if shown:
        row.finding("warning", "CT_UNMAPPED", f"no ISO 3166 country for {shown}", var.name, shown,
                    f"give the country as an ISO 3166-1 alpha-2 or alpha-3 code of system {ISO3166_SYSTEM}")
    return None


@algorithm("visit", "row", needs_source=True, params=("field",))
def visit(row: Row, var) -> Any:
    """VISITNUM/VISIT (params.field of study.yaml visits) from the Encounter's type: a code of the visit
    system, directly or through the site's ConceptMaps. When study.yaml declares visit windows, an
    Encounter with no such code, or a record with no Encounter (its date: params.by_date), is given its
    visit by date after DM (mapping/visits.py)."""
    ref = row.first_of(var)
    if ref is None:
        if var.params.get("by_date") and _visit_by_date(row):
            row.run.visits.defer(row, None, var)
        return None
    encounter = row.run.index.resolve(ref, "Encounter")
    if encounter is None:
        row.finding("warning", "BROKEN_REFERENCE", f"encounter {ref!r} is not in the input", var.name, ref,
                    "add the Encounter to the input")
        return None
    return _visit_of(row, var, encounter)


@algorithm("visit_on_date", "row", origin="Derived", params=("field", "by_date"),
           method="{target} is that of the subject's visit (SV) on the date of {by_date}; empty when no single visit "
                  "of the subject is on that date.")
def visit_on_date(row: Row, var) -> Any:
    """VISITNUM/VISIT (params.field of study.yaml visits) of a record whose FHIR resource can name no
    Encounter (DS: Consent, ResearchSubject.progress): the visit of the subject's Encounter on the
    record's date (params.by_date), told after DM (mapping/visits.py); none when no single Encounter of
    the subject is on that date, since a date alone makes no visit. Needs visit windows in study.yaml."""
    if row.run.mappings.visit_windows:
        row.run.visits.defer(row, None, var, join_only=True)
    return None


@algorithm("own_visit", "row", params=("field",))
def own_visit(row: Row, var) -> Any:
    """VISITNUM/VISIT/VISITDY (params.field of study.yaml visits) of an SV record: its own Encounter's
    visit, told as the `visit` algorithm tells the Encounter of any other record (its type's code, else
    by date after DM: params.by_date), so that SV and the other domains agree."""
    return _visit_of(row, var, row.resource)


def _visit_of(row: Row, var, encounter) -> Any:
    """The visit an Encounter's type codes, or None when it is left to the dates (visits.py)."""
    mappings = row.run.mappings
    for t in encounter.data.get("type") or []:
        for c in (t.get("coding") or []) if isinstance(t, dict) else []:
            planned = mappings.visit_of(c.get("system"), c.get("code"))
            if planned is not None:
                row.run.used.add(encounter.key)
                if mappings.visit_windows:  # what places the visits given by date
                    row.run.visits.code(row, encounter.key, planned)
                value = planned.get(var.params["field"])  # a visit may have no planned day
                return None if value is None else float(value) if not var.is_char else str(value)
    if _visit_by_date(row):
        row.run.visits.defer(row, encounter.key, var)
        return None
    system = mappings.study.get("visit_system")
    row.finding("warning", "CT_UNMAPPED", f"{encounter.key} has no visit code of {system}", var.name,
                hint=f"give the Encounter a type coding of {system} whose code is one of visits in mappings/study.yaml, "
                     "map its type to one in a ConceptMap of the site folder (--site), or declare visit windows "
                     "in study.yaml")
    return None


def _visit_by_date(row: Row) -> bool:
    """study.yaml declares visit windows, and the record is not one to-fhir made (whose visit is its
    Encounter's code, or the value its sdtm-record extension carries)."""
    return bool(row.run.mappings.visit_windows) and read_record(row.resource.data) is None


def _meddra_level(coding: dict) -> str | None:
    for ext in coding.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == MEDDRA_LEVEL_URL:
            return str(ext.get("valueCode", "")).upper()
    return None


@dataclass
class _MeddraLevels:
    """The MedDRA codings of a row by level, worked out once for every MedDRA variable of the row."""

    told: list[tuple[str, dict]]  # (level, coding): those the extension names first, so that it wins
    untold: list[dict]  # two or more non-SOC codings with no level: none of them is the PT
    reported: bool = False
    noted: bool = False  # their versions recorded


def _meddra_levels(codings: list[Any], socs: frozenset[str]) -> _MeddraLevels:
    """A coding's level is its meddra-level extension; without it, a system organ class code
    (dictionaries.MEDDRA.soc) is the SOC, and the one other coding the PT (unless one says it is)."""
    mdr = [c for c in codings if isinstance(c, dict) and c.get("system") == MEDDRA_SYSTEM]
    told = [(level, c) for c in mdr if (level := _meddra_level(c)) is not None]
    bare = [c for c in mdr if _meddra_level(c) is None]
    told += [("SOC", c) for c in bare if str(c.get("code")) in socs]
    others = [c for c in bare if str(c.get("code")) not in socs]
    if any(level == "PT" for level, _ in told):
        return _MeddraLevels(told, [])
    if len(others) == 1:
        return _MeddraLevels([*told, ("PT", others[0])], [])
    return _MeddraLevels(told, others if len(others) > 1 else [])


@algorithm("meddra", "row", origin="Assigned", needs_source=True, params=("level", "field"))  # coded terms
def meddra(row: Row, var) -> Any:
    """A MedDRA level's term or code, from the codings of system mdr: the level in extension
    meddra-level; without it, a system organ class code is the SOC and a lone other coding the PT."""
    path = var.path(row.version)
    levels = row.once(f"meddra levels of {path.text if path else ''}",
                      lambda: _meddra_levels(row.values_of(var), row.run.mappings.codelists.meddra_socs))
    if not levels.noted:  # once per record: the dictionary versions its codings carry
        levels.noted = True
        versions = row.run.dictionary_versions.setdefault(var.dictionary or "MEDDRA", set())
        versions.update(str(c["version"]) for _, c in levels.told if c.get("version"))
    if var.params["level"] == "PT" and levels.untold and not levels.reported:
        levels.reported = True  # once per record, on its first PT variable (AEDECOD)
        codes = ", ".join(str(c.get("code")) for c in levels.untold)
        row.finding("warning", "MEDDRA_AMBIGUOUS", f"MedDRA codings {codes} say no level: which is the preferred "
                    "term cannot be told, so none is taken", var.name, codes,
                    f"give each MedDRA coding the extension {MEDDRA_LEVEL_URL} (valueCode LLT, PT, HLT, HLGT or "
                    "SOC), or send one MedDRA coding per level")
    for level, c in levels.told:
        if level == var.params["level"]:
            value = c.get(var.params["field"])
            if value is None:
                return None
            return _number(row, var, value) if not var.is_char else str(value)
    if var.core == "Exp" and levels.told:  # a level the record's codings do not send: counted, reported once
        key = (row.domain, var.name)
        row.run.levels_not_sent[key] = row.run.levels_not_sent.get(key, 0) + 1
    return None


@algorithm("seriousness_criterion", "row", needs_source=True, optional=("outcome",))
def seriousness_criterion(row: Row, var) -> str | None:
    """A seriousness criterion flag: Y when a seriousness code or a seriousness-criteria extension
    (criterionCode, criterionPresent true) maps to this criterion (the var's map), or, with params.outcome,
    when that variable says FATAL of a serious event (AESDTH); N when the event is serious without it, or
    when the extension says the criterion absent (criterionPresent false); else empty."""
    serious = row.values.get("AESER") == "Y"
    if serious and var.params.get("outcome") and row.values.get(var.params["outcome"]) == "FATAL":
        return "Y"
    codelists = row.run.mappings.codelists
    said_absent = False
    for item in row.values_of(var):
        codings = [item] if "code" in item else []
        absent = False
        if "extension" in item:  # the AE Clinical Research IG complex extension
            subs = {e.get("url"): e for e in item.get("extension") or [] if isinstance(e, dict)}
            absent = subs.get("criterionPresent", {}).get("valueBoolean", True) is False
            codings = (subs.get("criterionCode", {}).get("valueCodeableConcept") or {}).get("coding") or []
        for c in codings:
            if codelists.lookup(var.codelist, var.map, c.get("system"), c.get("code")) == "Y":
                if not absent:
                    return "Y"
                said_absent = True
    return "N" if serious or said_absent else None


@algorithm("result_text", "row", needs_source=True)
def result_text(row: Row, var) -> str | None:
    """--ORRES: the result as collected, numbers written without a spurious ".0"."""
    value = row.first_of(var)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value) if _number(row, var, value) is not None else None
    return str(value)


@algorithm("not_done", "row", needs_source=True)
def not_done(row: Row, var) -> str | None:
    """--STAT = NOT DONE when the Observation carries a dataAbsentReason."""
    return "NOT DONE" if row.first_of(var) is not None else None


@algorithm("yes_no", "row", needs_source=True)
def yes_no(row: Row, var) -> str | None:
    """A FHIR boolean as Y/N."""
    value = row.first_of(var)
    return {True: "Y", False: "N"}.get(value) if isinstance(value, bool) else None
