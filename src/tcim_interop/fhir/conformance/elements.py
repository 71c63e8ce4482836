"""ElementDefinitions of a differential, and the StructureDefinition around them (FHIR R4 4.0.1 or R5 5.0.0)."""

from __future__ import annotations

from typing import Any

CORE = "http://hl7.org/fhir/StructureDefinition/"
FHIR_VERSIONS = {"R4": "4.0.1", "R5": "5.0.0"}  # the release -> StructureDefinition.fhirVersion
PUBLISHER = "tcim-interop"


def element(eid: str, **props: Any) -> dict:
    """An element of a differential by its id ("Observation.bodySite.extension:laterality"); its path is
    the id without the slice names."""
    path = ".".join(part.split(":")[0] for part in eid.split("."))
    out: dict[str, Any] = {"id": eid, "path": path}
    if ":" in eid.rsplit(".", 1)[-1]:
        out["sliceName"] = eid.rsplit(":", 1)[-1]
    out.update({k: v for k, v in props.items() if v is not None})
    return out


def extension_slicing(eid: str) -> dict:
    """The usual open slicing of an extension element by url."""
    return element(eid, slicing={"discriminator": [{"type": "value", "path": "url"}], "ordered": False,
                                 "rules": "open"})


def binding(strength: str, value_set: str) -> dict:
    return {"strength": strength, "valueSet": value_set}


def structure_definition(url: str, name: str, title: str, description: str, kind: str, type_: str,
                         elements: list[dict], version: str, fhir: str, **extra: Any) -> dict:
    sid = url.rsplit("/", 1)[-1]
    return {"resourceType": "StructureDefinition", "id": sid, "url": url, "version": version, "name": name,
            "title": title, "status": "active", "publisher": PUBLISHER, "description": description,
            "fhirVersion": FHIR_VERSIONS[fhir], "kind": kind, "abstract": False, **extra, "type": type_,
            "baseDefinition": CORE + type_, "derivation": "constraint", "differential": {"element": elements}}
