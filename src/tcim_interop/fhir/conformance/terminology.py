"""The project's CodeSystems and ValueSets, built from the specs: the concepts of a code system are the
codes its maps in mappings/codelists.yaml translate (display: the study term), study.yaml's visits and
products; nothing is listed here by hand but the five levels of MedDRA's hierarchy."""

from __future__ import annotations

from typing import Any

from ...mapping.row_algorithms import MEDDRA_LEVEL_URL
from ...mapping_spec.model import MappingSet
from ...trial_design.build import IE_SYSTEM
from ..extensions import SDTM_QUALIFIER
from .elements import PUBLISHER

BASE = "http://tcim-interop.org/fhir/"
CODE_SYSTEM = BASE + "CodeSystem/"
VALUE_SET = BASE + "ValueSet/"
SNOMED = "http://snomed.info/sct"

# MedDRA's hierarchy (the meddra-level extension's codes; ae.yaml's `level` params name some of them)
MEDDRA_LEVELS = {"LLT": "Lowest Level Term", "PT": "Preferred Term", "HLT": "High Level Term",
                 "HLGT": "High Level Group Term", "SOC": "System Organ Class"}
MEDDRA_LEVEL_SYSTEM = CODE_SYSTEM + MEDDRA_LEVEL_URL.rsplit("/", 1)[-1]
# a code system whose concepts several maps translate: the map that gives the display (the others'
# terms become designations: MUNE_TEST gives the test code XMTESTCD, MUNE_TEST_NAME the test's name)
DISPLAY_MAP = {CODE_SYSTEM + "mune-test": "MUNE_TEST_NAME"}
TITLES = {"study-product": "TCIM-ELAII study products", "mune-test": "MUNE tests",
          "mune-method": "MUNE methods", "visit": "TCIM-ELAII visits",
          "ie-criterion": "TCIM-ELAII eligibility criteria", "meddra-level": "MedDRA hierarchy levels",
          "sdtm-qualifier": "SDTM supplemental qualifier names (QNAM)"}
LATERALITY_VALUE_SET = VALUE_SET + "laterality"


def value_set_url(system: str) -> str:
    """The ValueSet of all the codes of one of the project's code systems."""
    return VALUE_SET + system.rsplit("/", 1)[-1]


def _code_system(url: str, concepts: list[dict] | None, version: str, description: str,
                 properties: list[dict] | None = None) -> dict:
    name = url.rsplit("/", 1)[-1]
    cs: dict[str, Any] = {"resourceType": "CodeSystem", "id": name, "url": url, "version": version,
                          "name": "".join(p.capitalize() for p in name.split("-")), "title": TITLES.get(name, name),
                          "status": "active", "publisher": PUBLISHER, "description": description,
                          "caseSensitive": True, "valueSet": value_set_url(url)}
    if concepts is None:
        cs["content"] = "not-present"
    else:
        cs.update(content="complete", count=len(concepts))
        if properties:
            cs["property"] = properties
        cs["concept"] = concepts
    return cs


def _mapped_concepts(ms: MappingSet, system: str) -> list[dict]:
    """The codes of `system` that the maps of codelists.yaml translate, in their order."""
    terms: dict[str, dict[str, str]] = {}  # code -> map -> study term
    for map_name, entries in ms.codelists.maps.items():
        for key, term in entries.items():
            sys_, _, code = key.rpartition("|")
            if sys_ == system:
                terms.setdefault(code, {})[map_name] = term
    display_map = DISPLAY_MAP.get(system)
    concepts = []
    for code, by_map in terms.items():
        display = by_map.get(display_map) if display_map else None
        display = display or next(iter(by_map.values()))
        others = sorted({t for t in by_map.values() if t != display})
        concept: dict[str, Any] = {"code": code, "display": display}
        if others:
            concept["designation"] = [{"value": t} for t in others]
        concepts.append(concept)
    return concepts


def _with_product_names(ms: MappingSet, concepts: list[dict]) -> list[dict]:
    """study.yaml products: the names a hospital may send for a product, as designations of its concept."""
    for product in ms.study.get("products") or []:
        for c in concepts:
            if c["display"] == product["extrt"]:
                known = {d["value"] for d in c.get("designation", [])}
                c.setdefault("designation", []).extend({"value": n} for n in product.get("names", []) if n not in known)
    return concepts


def _visit_concepts(ms: MappingSet) -> list[dict]:
    out = []
    for v in ms.study.get("visits", []):
        props = [{"code": "visitnum", "valueDecimal": v["visitnum"]}, {"code": "day", "valueInteger": v["day"]}]
        if "window" in v:
            props += [{"code": "window-before", "valueInteger": v["window"][0]},
                      {"code": "window-after", "valueInteger": v["window"][1]}]
        out.append({"code": v["code"], "display": v["visit"], "property": props})
    return out


VISIT_PROPERTIES = [
    {"code": "visitnum", "type": "decimal", "description": "VISITNUM of the visit in SDTM"},
    {"code": "day", "type": "integer", "description": "planned study day (day 1 is the first study treatment)"},
    {"code": "window-before", "type": "integer", "description": "calendar days before the planned day that still count"},
    {"code": "window-after", "type": "integer", "description": "calendar days after the planned day that still count"},
]


def project_systems(ms: MappingSet) -> list[str]:
    """Every code system of the project that the specs or the code name (the maps' systems, the visit
    system, the eligibility criteria's, the MedDRA levels')."""
    found = [k.rpartition("|")[0] for m in ms.codelists.maps.values() for k in m]
    found += [ms.study.get("visit_system", ""), IE_SYSTEM, MEDDRA_LEVEL_SYSTEM, SDTM_QUALIFIER]
    return list(dict.fromkeys(s for s in found if s.startswith(CODE_SYSTEM)))


def code_systems(ms: MappingSet, version: str) -> list[dict]:
    out = []
    for system in project_systems(ms):
        if system == ms.study.get("visit_system"):
            out.append(_code_system(system, _visit_concepts(ms), version,
                                    "The visits of the schedule in mappings/study.yaml (to-fhir: Encounter.type).",
                                    VISIT_PROPERTIES))
        elif system == IE_SYSTEM:
            out.append(_code_system(system, None, version,
                                    "IETESTCD of the study's inclusion and exclusion criteria (to-fhir: the "
                                    "eligibility Group's characteristic.code): the protocol's, not listed here."))
        elif system == SDTM_QUALIFIER:
            out.append(_code_system(system, None, version,
                                    "QNAM of a SUPPxx record written as an Observation about its parent record "
                                    "(to-fhir: Observation.code, display QLABEL): any study's, not listed here."))
        elif system == MEDDRA_LEVEL_SYSTEM:
            concepts = [{"code": c, "display": d} for c, d in MEDDRA_LEVELS.items()]
            out.append(_code_system(system, concepts, version,
                                    f"The level of a MedDRA coding, the valueCode of {MEDDRA_LEVEL_URL}."))
        else:
            concepts = _mapped_concepts(ms, system)
            if system.endswith("/study-product"):
                concepts = _with_product_names(ms, concepts)
            out.append(_code_system(system, concepts, version,
                                    "Codes the maps of mappings/codelists.yaml translate; display: the study term."))
    return out


def _value_set(url: str, include: list[dict], version: str, description: str) -> dict:
    name = url.rsplit("/", 1)[-1]
    return {"resourceType": "ValueSet", "id": name, "url": url, "version": version,
            "name": "".join(p.capitalize() for p in name.split("-")), "title": TITLES.get(name, name),
            "status": "active", "publisher": PUBLISHER, "description": description, "compose": {"include": include}}


def value_sets(ms: MappingSet, version: str) -> list[dict]:
    out = [_value_set(value_set_url(s), [{"system": s}], version, f"All the codes of {s}.")
           for s in project_systems(ms)]
    laterality = [{"code": k.rpartition("|")[2], "display": v}
                  for k, v in ms.codelists.maps.get("LATERALITY", {}).items() if k.startswith(SNOMED + "|")]
    out.append(_value_set(LATERALITY_VALUE_SET, [{"system": SNOMED, "concept": laterality}], version,
                          "The sides a body site's laterality extension takes (codelists.yaml map LATERALITY): mCODE's, "
                          "and the retired one of the project."))
    return out
