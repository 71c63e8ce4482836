"""The project's conformance resources as a FHIR NPM package (https://confluence.hl7.org/display/FHIR/NPM+Package+Specification):
DIR/package/package.json, DIR/package/.index.json and one <Type>-<id>.json per resource."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ... import __version__
from ...json_files import dump_json
from ...mapping_spec.model import MappingSet
from .elements import FHIR_VERSION
from .extension_defs import extension_definitions
from .profiles import profiles
from .terminology import code_systems, value_sets

PACKAGE_NAME = "tcim-interop.fhir"
CANONICAL = "http://tcim-interop.org/fhir"
INDEXED = ("url", "version", "kind", "type", "derivation")  # .index.json's optional fields
# the profiles slice mCODE's laterality extension: its package (STU4, FHIR R4), which defines it
MCODE_PACKAGE = {"hl7.fhir.us.mcode": "4.0.0"}


def conformance_resources(ms: MappingSet, version: str = __version__) -> list[dict]:
    """Extensions, profiles, CodeSystems, ValueSets and the ConceptMaps of mappings/conceptmaps/."""
    out = [*extension_definitions(ms, version), *profiles(ms, version), *code_systems(ms, version),
           *value_sets(ms, version)]
    folder = ms.directory / "conceptmaps"
    for f in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        out.append(json.loads(f.read_text(encoding="utf-8")))
    return out


def manifest(version: str = __version__) -> dict:
    return {"name": PACKAGE_NAME, "version": version, "canonical": CANONICAL, "fhirVersions": [FHIR_VERSION],
            "type": "Conformance", "license": "MIT",
            "description": "tcim-interop's FHIR R4 extensions, profiles, code systems and value sets (TCIM-ELAII)",
            "dependencies": {"hl7.fhir.r4.core": FHIR_VERSION, **MCODE_PACKAGE}}


def file_name(resource: dict) -> str:
    return f"{resource['resourceType']}-{resource['id']}.json"


def index(resources: list[dict]) -> dict:
    files = []
    for r in resources:
        entry = {"filename": file_name(r), "resourceType": r["resourceType"], "id": r["id"]}
        entry.update({k: r[k] for k in INDEXED if k in r})
        files.append(entry)
    return {"index-version": 1, "files": files}


def write_package(ms: MappingSet, out: str | os.PathLike) -> list[Path]:
    """Write the package under `out`/package; returns the files written."""
    folder = Path(out) / "package"
    folder.mkdir(parents=True, exist_ok=True)
    resources = conformance_resources(ms)
    written = []
    for name, doc in [("package.json", manifest()), (".index.json", index(resources)),
                      *((file_name(r), r) for r in resources)]:
        path = folder / name
        path.write_text(dump_json(doc), encoding="utf-8")
        written.append(path)
    return written
