"""Profiles (constraint StructureDefinitions on the R4 or R5 core resources) of what to-fhir writes for the
study study.yaml describes: what it always sets is required (min 1), the codes of the project's code
systems are bound to their ValueSets (extensible: a test with no MUNE code still has its name in text),
the project's extensions (and mCODE's laterality) have their slices, and the fixed codings of the specs' templates (Consent scope
and category, the visit Encounter's class) are patterns. Other extensions stay allowed (open slicing).

R4 and R5 profiles share their canonical URLs (one package per release, as HL7's own extension packs
hl7.fhir.uv.extensions.r4 and .r5 do); their differentials name each release's elements: R5's Consent
subject, date and policyBasis, AdverseEvent.code, the medication as a CodeableReference; both slice the AE
Clinical Research IG's extensions to-fhir writes where the core AdverseEvent has no element, each release
its IG's (R4 the backport's, fhir/ae_research_ig.py).

profile_url(resource_type, dataset) is the profile a resource to-fhir makes can claim in meta.profile
(either release)."""

from __future__ import annotations

from typing import Any

from ...mapping.row_algorithms import MEDDRA_LEVEL_URL
from ...mapping_spec.model import MappingSet
from ..ae_research_ig import WRITTEN, ae_ig_url
from ..extensions import BASE, MCODE_LATERALITY, SDTM_DATASET, SDTM_RECORD, SDTM_SUPP
from .elements import binding, element, extension_slicing, structure_definition
from .terminology import CODE_SYSTEM, LATERALITY_VALUE_SET, value_set_url

# resource type -> (profile id, title); MedicationAdministration only for the study treatment datasets
PROFILES = {
    "ResearchStudy": ("tcim-research-study", "TCIM-ELAII study or site"),
    "ResearchSubject": ("tcim-research-subject", "TCIM-ELAII subject (a DM record)"),
    "Patient": ("tcim-patient", "TCIM-ELAII patient"),
    "Consent": ("tcim-consent", "TCIM-ELAII informed consent"),
    "MedicationAdministration": ("tcim-study-treatment", "TCIM-ELAII study treatment (an EX or EC record)"),
    "AdverseEvent": ("tcim-adverse-event", "TCIM-ELAII adverse event (an AE record)"),
    "Observation": ("tcim-mune-observation", "TCIM-ELAII MUNE result (an XM or NV record)"),
    "Encounter": ("tcim-visit", "TCIM-ELAII visit"),
}
STUDY_TREATMENT = ("EX", "EC")  # the datasets of the specs whose rows are study_treatment (ex.yaml, ec.yaml)
MUNE = ("XM", "NV")  # the MUNE domain's datasets (xm.yaml, nv.yaml): a vital sign (VS) is not a MUNE result


def profile_url(resource_type: str, dataset: str | None = None) -> str | None:
    """The canonical URL of the profile a resource of this type conforms to, or None. A
    MedicationAdministration is profiled when made from an EX or EC record (dataset), not from CM.
    Only the resources of the study study.yaml describes conform (the bindings and patterns are its)."""
    if resource_type not in PROFILES:
        return None
    if resource_type == "MedicationAdministration" and dataset not in STUDY_TREATMENT:
        return None
    if resource_type == "Observation" and dataset not in MUNE:
        return None
    return BASE + PROFILES[resource_type][0]


def _ext_slice(at: str, name: str, url: str, min_: int = 0, max_: str = "*") -> dict:
    return element(f"{at}.extension:{name}", min=min_, max=max_, type=[{"code": "Extension", "profile": [url]}])


def _slice_name(extension_id: str) -> str:
    """An extension id as a slice name: caused-subject-to-discontinue-study -> causedSubjectToDiscontinueStudy."""
    head, *rest = extension_id.split("-")
    return head + "".join(w.capitalize() for w in rest)


def _extensions(at: str, *slices: dict) -> list[dict]:
    return [extension_slicing(f"{at}.extension"), *slices]


def _record(t: str, supp: bool = True, more: tuple[dict, ...] = ()) -> list[dict]:
    """The record extensions of a resource made from an SDTM record (and `more` slices), and meta.source."""
    # one record or more: a ResearchSubject carries its DM record and its DS events, an Encounter its SV
    # record and what the visit's other records need of it
    slices = [_ext_slice(t, "sdtmRecord", SDTM_RECORD, 1, "*")]
    if supp:
        slices.append(_ext_slice(t, "sdtmSupp", SDTM_SUPP))
    slices += more
    return [element(f"{t}.meta", min=1), element(f"{t}.meta.source", min=1), *_extensions(t, *slices)]


def _pattern(value: dict) -> dict:
    """pattern[x] of a template's CodeableConcept or Coding."""
    return {"patternCodeableConcept": value} if "coding" in value else {"patternCoding": value}


def _template_patterns(t: str, template: dict) -> list[dict]:
    """The codings a spec's template always writes, as patterns; a list's items as slices by pattern
    (each repetition is required, the others stay allowed)."""
    out = []
    for k, v in template.items():
        if isinstance(v, dict) and v:
            out.append(element(f"{t}.{k}", **_pattern(v)))
        elif isinstance(v, list) and v:
            out.append(element(f"{t}.{k}", slicing={"discriminator": [{"type": "pattern", "path": "$this"}],
                                                    "ordered": False, "rules": "open"}))
            out += [element(f"{t}.{k}:template{i + 1}", min=1, max="1", **_pattern(item)) for i, item in enumerate(v)]
    return out


def _laterality(at: str) -> list[dict]:
    """The side on a body site: mCODE's laterality extension (published by HL7, not redefined here), 0..1,
    its value bound to the sides the study uses (codelists.yaml map LATERALITY, a subset of mCODE's)."""
    return [*_extensions(at, _ext_slice(at, "laterality", MCODE_LATERALITY, 0, "1")),
            element(f"{at}.extension:laterality.value[x]", type=[{"code": "CodeableConcept"}],
                    binding=binding("required", LATERALITY_VALUE_SET))]


def _bound(eid: str, system: str, **props: Any) -> dict:
    return element(eid, binding=binding("extensible", value_set_url(system)), **props)


# R4 element -> R5's name for it
R5_NAMES = {"Consent.patient": "Consent.subject", "Consent.dateTime": "Consent.date",
            "Consent.policy": "Consent.policyBasis", "AdverseEvent.event": "AdverseEvent.code"}


def _medication(fhir: str) -> list[dict]:
    """The study product: R4 medication[x] as a CodeableConcept; R5 medication, a CodeableReference, by its
    concept (the binding of a CodeableReference applies to its concept)."""
    at = "MedicationAdministration.medication"
    if fhir == "R4":
        return [_bound(f"{at}[x]", CODE_SYSTEM + "study-product", type=[{"code": "CodeableConcept"}])]
    return [_bound(at, CODE_SYSTEM + "study-product"), element(f"{at}.concept", min=1)]


def _differentials(ms: MappingSet, fhir: str) -> dict[str, list[dict]]:
    dm = ms.domains["dm"].reverse.get("templates", {})
    consent = {k: v for k, v in dm.get("consent", {}).get(fhir, {}).items() if k != "resourceType"}
    encounter = {k: v for k, v in (ms.study.get("visit_encounter") or {}).get(fhir, {}).items() if k != "resourceType"}
    r5 = fhir == "R5"

    def name(path: str) -> str:
        return R5_NAMES.get(path, path) if r5 else path

    # no element for the AE's seriousness criteria and discontinuation (R5: nor severity): the AE IG's extensions
    ae_ig = tuple(_ext_slice("AdverseEvent", _slice_name(sid), ae_ig_url(fhir, sid), 0, max_)
                  for sid, max_ in WRITTEN[fhir].items())
    event, mune = name("AdverseEvent.event"), "Observation"
    return {
        "ResearchStudy": [element("ResearchStudy.identifier", min=1),
                          *_extensions("ResearchStudy", _ext_slice("ResearchStudy", "sdtmRecord", SDTM_RECORD),
                                       _ext_slice("ResearchStudy", "sdtmDataset", SDTM_DATASET))],
        # R5 progress: not constrained (an entry has a milestone or a state, a screen failure's state no type)
        "ResearchSubject": [*_record("ResearchSubject"), element("ResearchSubject.identifier", min=1)],
        "Patient": [element("Patient.gender", min=1)],
        "Consent": [*_template_patterns("Consent", consent),
                    *(element(name(f"Consent.{e}"), min=1) for e in ("patient", "dateTime", "policy"))],
        "MedicationAdministration": [
            *_record("MedicationAdministration"), *_medication(fhir),
            *_laterality("MedicationAdministration.dosage.site")],
        "AdverseEvent": [
            *_record("AdverseEvent", more=ae_ig), element(event, min=1),
            *_extensions(f"{event}.coding", _ext_slice(f"{event}.coding", "meddraLevel", MEDDRA_LEVEL_URL, 0, "1")),
            element("AdverseEvent.study", min=1)],
        "Observation": [
            *_record(mune), _bound(f"{mune}.code", CODE_SYSTEM + "mune-test"), element(f"{mune}.subject", min=1),
            *_laterality(f"{mune}.bodySite"),
            _bound(f"{mune}.method", CODE_SYSTEM + "mune-method")],
        "Encounter": [*_template_patterns("Encounter", encounter),
                      _bound("Encounter.type", ms.study["visit_system"], min=1), element("Encounter.subject", min=1)],
    }


def profiles(ms: MappingSet, version: str, fhir: str = "R4") -> list[dict]:
    out = []
    for rtype, diff in _differentials(ms, fhir).items():
        pid, title = PROFILES[rtype]
        root = element(rtype, short=title)
        out.append(structure_definition(BASE + pid, "".join(p.capitalize() for p in pid.split("-")), title,
                                        f"{title}, as tcim-interop to-fhir writes it ({fhir}).", "resource", rtype,
                                        [root, *diff], version, fhir))
    return out
