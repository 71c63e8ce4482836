"""Reverse algorithms (to-fhir): one SDTM value back into the FHIR element its row algorithm reads.

Shape: fn(target, var, value). They write where the forward path's first alternative reads, so that
to-sdtm of what they write gives the value back; to_fhir.py checks that it does, cell by cell, and
carries in the sdtm-record extension whatever does not come back.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Any

from ..errors import InputError
from ..fhir.ae_research_ig import SERIOUSNESS_CRITERIA, ae_ig_url
from ..fhir.path import Alternative, Path, compile_path, set_value
from ..fhir.shape import has_element
from ..mapping_spec.model import MappingSet
from ..sdtm.dataset import present
from ..sdtm.dates import DateError, age_in_years, to_iso8601
from .registry import reverse
from .row_algorithms import ISO3166_SYSTEM, MEDDRA_LEVEL_URL, MEDDRA_SYSTEM, format_number

SERIOUSNESS_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
NAMESPACE = uuid.UUID("6f1b2a52-6c2e-5b8e-9a43-7c1d4e0f2a11")


def resource_id(*parts: Any) -> str:
    """The FHIR id of what the SDTM keys name: the same in every run, so that loading again updates."""
    return str(uuid.uuid5(NAMESPACE, "/".join(map(str, parts))))


DATA_ABSENT = {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-performed"}


@dataclass
class Target:
    """The FHIR resources of one SDTM record, by role (resource, patient, site, study, consent, ...)."""

    version: str
    resources: dict[str, dict]
    mappings: MappingSet
    record: dict[str, Any]
    encounter_for: Callable[[Any], dict | None] = lambda visitnum: None
    arms: dict[str, dict] = field(default_factory=dict)
    zone: str | None = None  # the IANA time zone of the record's study (Builder.zone), None if undeclared
    dictionaries: dict[str, str] = field(default_factory=dict)  # MEDDRA -> the version the dataset is coded in
    # role -> (FHIR release, type) of a root that is an element, not a resource: DS's %event is an R5
    # ResearchSubject.progress entry in both releases (R4 carries it in the pre-adopted extension)
    shapes: dict[str, tuple[str, str]] = field(default_factory=dict)

    def write(self, var, value: Any, path: Path | None = None) -> None:
        path = path or var.path(self.version)
        place = self.place(path) if path is not None else None
        if place is not None:
            alt, root, version, kind = place
            set_value(root, Path(path.text, ((alt,),)), value, version, kind)  # type: ignore[union-attr]

    def current(self, var) -> Any:
        """What the forward path of `var` reads from the resources written so far (None: nothing)."""
        path = var.path(self.version)
        return path.first(lambda v: self.resources.get(v or "resource")) if path is not None else None

    def place(self, path: Path) -> tuple[Alternative, dict, str, str] | None:
        """Where a value of `path` is written: the first alternative whose resource has that element (a
        spec reading MedicationAdministration and MedicationStatement names both dose elements), else
        the first; with its root resource, FHIR release and type. None: the record has no such root."""
        found = None
        for alt in path.alternatives:
            role = alt.var or "resource"
            root = self.resources.get(role)
            if root is None:
                continue
            version, kind = self.shapes.get(role) or (self.version, root["resourceType"])
            here = (alt, root, version, kind)
            if has_element(version, kind, alt.elements):
                return here
            found = found or (here if alt is path.alternatives[0] else None)
        return found


def _fhir_datetime(dtc: str, tz_name: str | None, where: str = "") -> str:
    """SDTM local date-time -> FHIR dateTime: seconds and the declared zone's offset added to a time.
    FHIR requires an offset on a time and SDTM has none: with no zone declared for the study, a time is
    an error naming the option (never a guessed zone, never a "Z" that would claim UTC)."""
    if "T" not in dtc:
        return dtc
    local = datetime.fromisoformat(dtc if dtc.count(":") == 2 else dtc + ":00")
    if not tz_name:
        raise InputError(f"{where}{dtc!r} has a time and no time zone is declared for its study: give "
                         "--timezone (an IANA name such as Europe/Madrid), or `timezone` in the study's study.yaml")
    from zoneinfo import ZoneInfo

    local = local.replace(tzinfo=ZoneInfo(tz_name))
    delta = local.utcoffset()
    assert delta is not None  # an aware datetime: ZoneInfo gives every instant an offset
    offset = delta.total_seconds()
    if offset % 60:  # a local mean time (Madrid before 1901, Monrovia before 1972): FHIR offsets are hh:mm
        local = local.replace(tzinfo=timezone(timedelta(minutes=round(offset / 60))))
    return local.isoformat(timespec="seconds")


def _number_or_text(value: Any) -> Any:
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return value


@reverse("assign")
@reverse("concat")  # USUBJID: the subject's identifier it is read from first, whatever its form
@reverse("site_id")  # the site study's identifier: to-fhir always writes site studies
@reverse("study_id")  # the study's identifier: the configured one, written as the study's official identifier
def assign(t: Target, var, value: Any) -> None:
    t.write(var, _number_or_text(value) if not var.is_char else str(value))


@reverse("result_text")
def result_text(t: Target, var, value: Any) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is not None and format_number(number) == value:
        t.write(var, _number_or_text(number), compile_path("valueQuantity.value"))
        unit = var.params.get("unit")
        if unit and not t.record.get(unit):  # a number without unit is dimensionless: UCUM "1"
            t.resources["resource"]["valueQuantity"].update({"system": "http://unitsofmeasure.org", "code": "1"})
    else:
        t.write(var, str(value), compile_path("valueString"))


@reverse("assign_ct")
def assign_ct(t: Target, var, value: Any) -> None:
    coding = t.mappings.codelists.fhir_coding(var.codelist, var.map, str(value), t.version)
    if coding is None:
        return
    if var.params.get("system"):  # a primitive code (Patient.gender)
        t.write(var, coding["code"])
    elif var.params.get("quantity"):
        quantity = {"unit": str(value), "system": coding["system"], "code": coding["code"]}
        place = t.place(var.path(t.version))
        assert place is not None  # the spec's path starts at a resource the target holds
        alt, root = place[:2]
        written = Path(alt.var or "", ((alt,),))
        current = written.first(lambda v: root)  # the quantity's value, written before its unit
        t.write(var, {**(current if isinstance(current, dict) else {}), **quantity}, written)
    else:
        t.write(var, coding)


@reverse("study_product")
def study_product(t: Target, var, value: Any) -> None:
    """The product's coding in the medication CodeableConcept the forward path reads."""
    coding = t.mappings.codelists.fhir_coding(var.codelist, var.map, str(value), t.version)
    if coding is not None:
        t.write(var, {"coding": [coding]})


@reverse("iso_datetime")
def iso_datetime(t: Target, var, value: Any) -> None:
    """A date where the forward path reads it. An end that the forward path already gives (EXENDTC
    falling back to effectiveDateTime) is not written; an end that differs turns xDateTime into
    xPeriod.start/end, since FHIR allows one of the two."""
    path = var.path(t.version)
    current = t.current(var)
    try:
        if current is not None and to_iso8601(current) == value:
            return
    except DateError:
        pass
    place = t.place(path)
    if place is None:
        return
    alt, root = place[:2]
    open_end = var.params.get("end")
    if open_end and not present(t.record.get(open_end)):
        # a start with no end: the period's start (taking since), not a point in time
        alt = next((a for a in path.alternatives if a.steps[0].name.endswith("Period")
                    and has_element(place[2], place[3], a.elements)), alt)
    steps = alt.elements
    if len(steps) == 2 and steps[1] == "end" and steps[0].endswith("Period") and root is not None:
        single = steps[0][: -len("Period")] + "DateTime"
        if single in root:
            root.setdefault(steps[0], {})["start"] = root.pop(single)
    where = f"{t.record.get('DOMAIN') or ''} {t.record.get('USUBJID') or ''} {var.name}: ".lstrip()
    t.write(var, _fhir_datetime(str(value), t.zone, where), Path(path.text, ((alt,),)))


@reverse("birth_date")
def birth_date(t: Target, var, value: Any) -> None:
    t.write(var, str(value))


@reverse("age")
def age(t: Target, var, value: Any) -> None:
    """AGE into the subject's age Observation (the source's first alternative, %age.valueQuantity.value)
    unless its derivation gives it back: whole years from the birth date written (BRTHDTC, full) to
    params.at. Another study's SDTM without BRTHDTC, or with its year only, has its age there."""
    birth = t.current(var)
    if isinstance(birth, str) and age_in_years(birth, t.record.get(var.params["at"])) == value:
        return
    t.write(var, _number_or_text(value))


@reverse("hardcode_if")
def hardcode_if(t: Target, var, value: Any) -> None:
    """With a source (AGEU: the age Observation's valueQuantity), the unit goes where its value was
    written (AGE not given back by its derivation); the constant is otherwise made again."""
    if isinstance(t.current(var), dict):
        assign_ct(t, var, value)


@reverse("death_flag")
def death_flag(t: Target, var, value: Any) -> None:
    patient = t.resources.get("patient")
    if value == "Y" and patient is not None and "deceasedDateTime" not in patient:
        patient["deceasedBoolean"] = True


def declare_arm(arms: dict[str, dict], code: str, description: str | None = None) -> dict:
    """The study's arm of this code, declared on first sight (DM's ARMCD or TA's): R5 linkIds are FHIR
    ids, so they are numbered, not made from ARMCD (which may hold "_" or spaces)."""
    arm_def = arms.setdefault(code, {"name": code, "linkId": f"arm-{len(arms) + 1}"})
    if description:
        arm_def.setdefault("description", description)
    return arm_def


def legacy_arm_reason(ms: MappingSet, code: Any) -> str | None:
    """The ARMNRS an arm code stands for in SDTM before 3.3 (the CDISC pilot's ARMCD Scrnfail), or None:
    dm.yaml ARMNRS params.legacy_arms, compared without case."""
    spec = next((s for s in ms.domains.values() if s.domain == "DM"), None)
    var = next((v for v in spec.variables if v.algorithm == "arm_null_reason"), None) if spec else None
    legacy = {str(k).upper(): v for k, v in ((var.params.get("legacy_arms") if var else None) or {}).items()}
    return legacy.get(str(code).upper()) if code else None


@reverse("arm")
def arm(t: Target, var, value: Any) -> None:
    """ARMCD/ACTARMCD name the subject's arm; ARM/ACTARM describe it in the overall study. An arm code that
    says the subject has no arm (SDTM before 3.3: SCRNFAIL) is no arm: the subject's state says it
    (mapping/statuses.py), and the cells ride in sdtm-record."""
    which, fld = var.params["which"], var.params["field"]
    code_var = {"assigned": "ARMCD", "actual": "ACTARMCD"}[which]
    code = t.record.get(code_var)
    if not code or legacy_arm_reason(t.mappings, code) is not None:
        return
    arm_def = declare_arm(t.arms, code, str(value) if fld == "name" else None)
    if fld == "name":
        return
    subject = t.resources["resource"]
    if t.version == "R4":
        subject["assignedArm" if which == "assigned" else "actualArm"] = code
    else:
        subject["assignedComparisonGroup" if which == "assigned" else "actualComparisonGroup"] = arm_def["linkId"]


@reverse("unplanned_arm")
def unplanned_arm(t: Target, var, value: Any) -> None:
    """R4 actualArm names the unplanned arm as received. R5's actualComparisonGroup is an id, not a
    text: there ACTARMUD travels in the sdtm-record extension."""
    if t.version == "R4":
        t.resources["resource"]["actualArm"] = str(value)


@reverse("reference_end")
def reference_end(t: Target, var, value: Any) -> None:
    """RFENDTC is the end of participation as collected: ResearchSubject.period.end."""
    iso_datetime(t, var, value)


@reverse("participation_end")
def participation_end(t: Target, var, value: Any) -> None:
    """RFPENDTC: period.end only when RFENDTC gave none (a screen failure): to-sdtm takes the later of
    it and the subject's records again."""
    if var.path(t.version) is not None and t.current(var) is None:
        iso_datetime(t, var, value)


@reverse("country")
def country(t: Target, var, value: Any) -> None:
    """The alpha-2 code, as FHIR's own jurisdiction and address elements have it."""
    import pycountry

    hit = pycountry.countries.get(alpha_3=str(value))
    t.write(var, {"system": ISO3166_SYSTEM, "code": hit.alpha_2 if hit else str(value)})


@reverse("visit")
def visit(t: Target, var, value: Any) -> None:
    if var.params["field"] != "visitnum":
        return
    encounter = t.encounter_for(value)
    if encounter is not None:
        t.write(var, f"Encounter/{encounter['id']}")


@reverse("meddra")
def meddra(t: Target, var, value: Any) -> None:
    level, fld = var.params["level"], var.params["field"]
    root_path = var.path(t.version)
    text = format_number(value) if isinstance(value, float) else str(value)
    codings = root_path.values(lambda v: t.resources.get(v or "resource"))
    for c in codings:
        if c.get("system") == MEDDRA_SYSTEM and any(e.get("valueCode") == level for e in c.get("extension", [])):
            c[fld] = text
            return
    coding = {"extension": [{"url": MEDDRA_LEVEL_URL, "valueCode": level}], "system": MEDDRA_SYSTEM}
    version = t.dictionaries.get(var.dictionary or "MEDDRA")
    if version:  # the release the terms are of (define.xml, TS): to-sdtm reads it back into define.xml
        coding["version"] = version
    coding[fld] = text
    t.write(var, coding, _without_filter(root_path))


@cache
def _without_filter(path: Path) -> Path:
    """The path's first alternative without its closing where(system=...): the coding written carries its
    system already, in the place it has always had in the coding."""
    alt = path.alternatives[0]
    steps = alt.steps
    while steps and steps[-1].func == "where":
        steps = steps[:-1]
    return Path(path.text, ((Alternative(alt.var, steps),),))


@reverse("seriousness_criterion")
def seriousness_criterion(t: Target, var, value: Any) -> None:
    """Y: the criterion present (R4 also names it in the seriousness code). N: said absent
    (criterionPresent false) where to-sdtm would not give N by itself, i.e. for an event not serious."""
    if value not in ("Y", "N") or (value == "N" and t.record.get("AESER") == "Y"):
        return
    coding = t.mappings.codelists.fhir_coding(var.codelist, var.map, "Y")
    if coding is None:
        return
    if value == "N":
        t.resources["resource"].setdefault("extension", []).append(_criterion(t.version, coding, False))
        return
    if t.version == "R4":  # R4's own way: one seriousness code names the (first) criterion
        r4_code = next((k.rpartition("|")[2] for k in t.mappings.codelists.maps[var.map]
                        if k.startswith(SERIOUSNESS_SYSTEM + "|")), None)
        for c in (t.resources["resource"].get("seriousness") or {}).get("coding", []):
            if c.get("system") == SERIOUSNESS_SYSTEM and c.get("code") == "Serious" and r4_code:
                c["code"] = r4_code
    t.resources["resource"].setdefault("extension", []).append(_criterion(t.version, coding, True))


def _criterion(fhir: str, coding: dict, present: bool) -> dict:
    """The AE Clinical Research IG's seriousness-criteria extension (R4: the backport's): a criterion,
    present or not."""
    return {"url": ae_ig_url(fhir, SERIOUSNESS_CRITERIA), "extension": [
        {"url": "criterionCode", "valueCodeableConcept": {"coding": [coding]}},
        {"url": "criterionPresent", "valueBoolean": present}]}


@reverse("not_done")
def not_done(t: Target, var, value: Any) -> None:
    if value == "NOT DONE":
        reason = t.resources["resource"].setdefault("dataAbsentReason", {})
        reason.setdefault("coding", []).append(dict(DATA_ABSENT))


@reverse("yes_no")
def yes_no(t: Target, var, value: Any) -> None:
    if value in ("Y", "N"):
        t.write(var, value == "Y")
