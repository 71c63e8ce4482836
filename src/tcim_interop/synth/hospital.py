"""The synthetic trial as a hospital's EHR would send it: standard FHIR only, and the site folder that
maps its codes to the study's (docs/integration.md).

Made from the sponsor-coded resources of generate(), so that both carry the same trial: converted (the
hospital's with its site folder) they must give the same SDTM, cell for cell (tests/test_hospital_example.py).

    study products      pharmacy codes; the core workflow-researchStudy extension on every administration
    MUNE tests, methods the EMG lab's codes
    muscles             the EMG lab's anatomical codes (mapped to the NCI Thesaurus terms of LOC)
    laterality          a SNOMED CT qualifier coding in the body site (7771000 left, 24028007 right)
    study               one ResearchStudy, no site studies: SITEID from site.yaml
    visits              the hospital's appointment types as Encounter types (mapped to the visit codes)
    adverse events      MedDRA PT and SOC codings without the project's level extension (the SOC told by
                        its code); no LLT, HLT or HLGT coding, which nothing standard would tell from the PT
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ..gc_pause import paused_gc

PHARMACY = "http://hospital.example.org/fhir/CodeSystem/pharmacy"
EMG_TESTS = "http://hospital.example.org/fhir/CodeSystem/emg-tests"
EMG_METHODS = "http://hospital.example.org/fhir/CodeSystem/emg-methods"
EMG_SITES = "http://hospital.example.org/fhir/CodeSystem/emg-sites"
APPOINTMENTS = "http://hospital.example.org/fhir/CodeSystem/appointment-types"
STUDY_EXT = "http://hl7.org/fhir/StructureDefinition/workflow-researchStudy"
LATERALITY_EXT = "http://tcim-interop.org/fhir/StructureDefinition/laterality"
SNOMED = "http://snomed.info/sct"
NCI = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
_SPONSOR = "http://tcim-interop.org/fhir/CodeSystem/"

# the hospital's code -> the study's, per (hospital system, study system)
MAPS = {
    (PHARMACY, _SPONSOR + "study-product"): {"FAR-30117": "BMNC", "FAR-30118": "PLACEBO"},
    (EMG_TESTS, _SPONSOR + "mune-test"): {"EMG-101": "MUNIX", "EMG-102": "MUSIX", "EMG-103": "CMAPAMP",
                                          "EMG-104": "CMAPAREA", "EMG-105": "D50", "EMG-106": "MUNE"},
    (EMG_METHODS, _SPONSOR + "mune-method"): {"MET-1": "MUNIX", "MET-2": "MSCANFIT", "MET-3": "CMAPSCAN"},
    (EMG_SITES, NCI): {"MUS-TA": "C117874", "MUS-EDB": "C163514"},
    (APPOINTMENTS, _SPONSOR + "visit"): {"NEU-SEL": "SCREENING", "NEU-BAS": "BASELINE", "NEU-INY": "INJECTION",
                                        "NEU-S30": "DAY30", "NEU-S90": "DAY90", "NEU-S180": "DAY180",
                                        "NEU-S360": "DAY360"},
}
MEDDRA_LEVEL_EXT = "http://tcim-interop.org/fhir/StructureDefinition/meddra-level"
SITE_ID = "01"


@paused_gc  # a deep copy of a whole trial (generate.py)
def hospital_style(resources: list[dict]) -> list[dict]:
    out = copy.deepcopy(resources)
    local = {(target, code): (source, local) for (source, target), codes in MAPS.items() for local, code in codes.items()}
    studies = [r for r in out if r["resourceType"] == "ResearchStudy"]
    sites = {r["id"]: r for r in studies if r.get("partOf")}
    overall = next(r for r in studies if not r.get("partOf"))
    for site in sites.values():  # one study: the site's location becomes the study's
        overall.setdefault("location", site.get("location"))
    kept = []
    for r in out:
        if r["resourceType"] == "ResearchStudy" and r["id"] in sites:
            continue
        if r["resourceType"] == "ResearchSubject":
            r["study"] = {"reference": f"ResearchStudy/{overall['id']}"}
        _recode(r, local)
        if r["resourceType"] == "MedicationAdministration" and _is_study(r):
            r.setdefault("extension", []).append({"url": STUDY_EXT,
                                                  "valueReference": {"reference": f"ResearchStudy/{overall['id']}"}})
        for site in _body_sites(r):
            _laterality_as_qualifier(site)
        if r["resourceType"] == "AdverseEvent":
            _meddra_without_levels(r.get("event") or r.get("code") or {})
        kept.append(r)
    return kept


def _meddra_without_levels(concept: dict) -> None:
    """The PT and SOC codings only, without the project's level extension: without it nothing in standard
    FHIR tells an LLT, HLT or HLGT coding from the PT (the SOC is told by its code), so a hospital's
    coding sends the PT and the SOC (their AELLT, AEHLT, AEHLGT stay empty)."""
    kept = []
    for coding in concept.get("coding") or []:
        levels = {e.get("valueCode") for e in coding.get("extension") or [] if e.get("url") == MEDDRA_LEVEL_EXT}
        if levels and not levels & {"PT", "SOC"}:
            continue
        coding["extension"] = [e for e in coding.get("extension") or [] if e.get("url") != MEDDRA_LEVEL_EXT]
        if not coding["extension"]:
            del coding["extension"]
        kept.append(coding)
    if "coding" in concept:
        concept["coding"] = kept


def _is_study(ma: dict) -> bool:
    concept = ma.get("medicationCodeableConcept") or (ma.get("medication") or {}).get("concept") or {}
    return any(c.get("system") == PHARMACY for c in concept.get("coding") or [])


def _recode(node, local: dict) -> None:
    """Every coding of a study system (and every NCI muscle) -> the hospital's code for it."""
    if isinstance(node, list):
        for item in node:
            _recode(item, local)
    elif isinstance(node, dict):
        if isinstance(node.get("code"), str) and (node.get("system"), node["code"]) in local:
            node["system"], node["code"] = local[(node["system"], node["code"])]
            node.pop("display", None)
        for value in node.values():
            _recode(value, local)


def _body_sites(r: dict) -> list[dict]:
    sites = [r.get("bodySite")] + [(r.get("dosage") or {}).get("site")]
    return [s for s in sites if isinstance(s, dict)]


def _laterality_as_qualifier(site: dict) -> None:
    for ext in [e for e in site.get("extension") or [] if e.get("url") == LATERALITY_EXT]:
        site["extension"].remove(ext)
        side = ext["valueCodeableConcept"]["coding"][0]
        site.setdefault("coding", []).append({"system": SNOMED, "code": side["code"], "display": side.get("display")})
    if not site.get("extension"):
        site.pop("extension", None)


def write_site_folder(folder: str | Path) -> list[Path]:
    """The hospital's site folder: one ConceptMap (R4) per map, and site.yaml."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (source, target), codes in MAPS.items():
        name = source.rsplit("/", 1)[-1]
        cm = {"resourceType": "ConceptMap", "id": f"hospital-{name}", "status": "active",
              "group": [{"source": source, "target": target,
                         "element": [{"code": c, "target": [{"code": t, "equivalence": "equivalent"}]}
                                     for c, t in codes.items()]}]}
        path = folder / f"{name}.json"
        path.write_text(json.dumps(cm, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    (folder / "site.yaml").write_text(
        "# The hospital sends one ResearchStudy, with no site studies: its subjects' SITEID.\n"
        f"site_id: '{SITE_ID}'\n", encoding="utf-8")
    return written + [folder / "site.yaml"]
