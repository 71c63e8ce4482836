"""The project's conformance resources as a FHIR NPM package (https://confluence.hl7.org/display/FHIR/NPM+Package+Specification):
DIR/package/package.json, DIR/package/.index.json and one <Type>-<id>.json per resource. One package per
FHIR release (R4: tcim-interop.fhir, R5: tcim-interop.fhir.r5), with the same canonical URLs."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ... import __version__
from ...json_files import dump_json
from ...mapping_spec.model import MappingSet
from ..ae_research_ig import ae_ig_dependency
from .elements import FHIR_VERSIONS
from .extension_defs import extension_definitions
from .profiles import profiles
from .terminology import code_systems, value_sets

PACKAGE_NAMES = {"R4": "tcim-interop.fhir", "R5": "tcim-interop.fhir.r5"}
CANONICAL = "http://tcim-interop.org/fhir"
INDEXED = ("url", "version", "kind", "type", "derivation")  # .index.json's optional fields
# the packages defining the extensions the profiles slice and do not define: mCODE's laterality (STU4, an
# R4 package: there is no R5 mCODE; its extension's context, bodySite and dosage.site, is the same in R5),
# and the AE Clinical Research IG's (STU1: in R4 its backport, in R5 the IG on FHIR 5.0.0)
DEPENDENCIES = {"R4": {"hl7.fhir.r4.core": FHIR_VERSIONS["R4"], "hl7.fhir.us.mcode": "4.0.0", **ae_ig_dependency("R4")},
                "R5": {"hl7.fhir.r5.core": FHIR_VERSIONS["R5"], "hl7.fhir.us.mcode": "4.0.0", **ae_ig_dependency("R5")}}
# R4 ConceptMap.group.element.target.equivalence -> R5 relationship (R5 ConceptMap, "4.10.4 R4 to R5")
R5_RELATIONSHIP = {"relatedto": "related-to", "equivalent": "equivalent", "equal": "equivalent",
                   "wider": "source-is-narrower-than-target", "subsumes": "source-is-narrower-than-target",
                   "narrower": "source-is-broader-than-target", "specializes": "source-is-broader-than-target",
                   "inexact": "related-to", "unmatched": "not-related-to", "disjoint": "not-related-to"}


def r5_concept_map(cm: dict) -> dict:
    """An R4 ConceptMap (mappings/conceptmaps/ holds R4) as R5: scopes for source[x]/target[x], each
    target's relationship for its equivalence."""
    out = {}
    for k, v in cm.items():  # sourceUri -> sourceScopeUri, targetCanonical -> targetScopeCanonical
        side = next((s for s in ("source", "target") if k.startswith(s)), None)
        out[f"{side}Scope{k[len(side):]}" if side else k] = v
    for group in out.get("group", []):
        for el in group.get("element", []):
            targets = []
            for t in el.get("target", []):
                eq = t.pop("equivalence", None)
                if eq in ("unmatched", "disjoint") and "code" not in t:
                    continue  # R4's "no match" target is R5's noMap
                if eq:
                    t["relationship"] = R5_RELATIONSHIP[eq]
                if t.get("relationship") in ("not-related-to", "source-is-broader-than-target"):
                    t.setdefault("comment", f"R4 equivalence: {eq}")  # R5 cmd-1 wants a comment on these
                targets.append(t)
            if el.get("target") and not targets:
                el["noMap"] = True
            if "target" in el:
                el["target"] = targets
                if not targets:
                    del el["target"]
    return out


def conformance_resources(ms: MappingSet, version: str = __version__, fhir: str = "R4") -> list[dict]:
    """Extensions, profiles, CodeSystems, ValueSets (the same in R4 and R5) and the ConceptMaps of
    mappings/conceptmaps/, for FHIR release `fhir`."""
    out = [*extension_definitions(ms, version, fhir), *profiles(ms, version, fhir), *code_systems(ms, version),
           *value_sets(ms, version)]
    folder = ms.directory / "conceptmaps"
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        cm = json.loads(f.read_text(encoding="utf-8"))
        out.append(r5_concept_map(cm) if fhir == "R5" else cm)
    return out


def manifest(version: str = __version__, fhir: str = "R4") -> dict:
    return {"name": PACKAGE_NAMES[fhir], "version": version, "canonical": CANONICAL,
            "fhirVersions": [FHIR_VERSIONS[fhir]], "type": "Conformance", "license": "MIT",
            "description": f"tcim-interop's FHIR {fhir} extensions, profiles, code systems and value sets (TCIM-ELAII)",
            "dependencies": DEPENDENCIES[fhir]}


def file_name(resource: dict) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def index(resources: list[dict]) -> dict:
    files = []
    for r in resources:
        entry = {"filename": file_name(r), "resourceType": r["resourceType"], "id": r["id"]}
        entry.update({k: r[k] for k in INDEXED if k in r})
        files.append(entry)
    return {"index-version": 1, "files": files}


def write_package(ms: MappingSet, out: str | os.PathLike, fhir: str = "R4") -> list[Path]:
    """Write the package of FHIR release `fhir` under `out`/package; returns the files written."""
    folder = Path(out) / "package"
    folder.mkdir(parents=True, exist_ok=True)
    resources = conformance_resources(ms, fhir=fhir)
    written = []
    for name, doc in [("package.json", manifest(fhir=fhir)), (".index.json", index(resources)),
                      *((file_name(r), r) for r in resources)]:
        path = folder / name
        path.write_text(dump_json(doc), encoding="utf-8")
        written.append(path)
    return written
