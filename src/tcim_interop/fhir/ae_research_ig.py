"""The HL7 AE Clinical Research IG's extensions, per FHIR release: what the core AdverseEvent has no
element for (seriousness criteria, discontinuation; in R5 also severity).

    R5  the IG itself, package hl7.fhir.uv.ae-research-ig 1.0.1 (STU1 on FHIR 5.0.0),
        http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/<id>
    R4  its R4 backport, package hl7.fhir.uv.ae-research-backport-ig 1.0.1,
        http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/<id>: the same extensions under
        the backport's URLs, but ae-severity (R4's AdverseEvent has `severity`; the backport defines none)

What to-fhir writes, the R4 or R5 conformance package slices and depends on, and the synthetic generator
sends all come from here. Reading (mappings/ae.yaml, ds.yaml) accepts both URL families in R4.
"""

from __future__ import annotations

SEVERITY = "ae-severity"
SERIOUSNESS_CRITERIA = "seriousness-criteria"  # complex: criterionCode (CodeableConcept), criterionPresent (boolean)
DISCONTINUED = "caused-subject-to-discontinue-study"  # boolean

# release -> (package id, version, canonical)
PACKAGES = {"R4": ("hl7.fhir.uv.ae-research-backport-ig", "1.0.1", "http://hl7.org/fhir/uv/ae-research-backport-ig"),
            "R5": ("hl7.fhir.uv.ae-research-ig", "1.0.1", "http://hl7.org/fhir/uv/ae-research-ig")}
# release -> the IG's extensions the project writes, and their maximum cardinality in the IG's profile
# (the backport's: input/fsh/adverseEventResearchProfile.fsh of HL7/fhir-ae-research-backport-ig)
WRITTEN = {"R4": {SERIOUSNESS_CRITERIA: "*", DISCONTINUED: "1"},
           "R5": {SEVERITY: "1", SERIOUSNESS_CRITERIA: "*", DISCONTINUED: "1"}}


def ae_ig_url(fhir: str, extension_id: str) -> str:
    """The URL of the AE Clinical Research IG's extension `extension_id` in FHIR release `fhir` (R4: the
    backport's). ValueError for one the project does not write in that release (R4's ae-severity, which
    the backport has not)."""
    if extension_id not in WRITTEN[fhir]:
        raise ValueError(f"the {fhir} AE Clinical Research IG ({PACKAGES[fhir][0]}) has no extension {extension_id!r}")
    return f"{PACKAGES[fhir][2]}/StructureDefinition/{extension_id}"


def ae_ig_dependency(fhir: str) -> dict[str, str]:
    """The IG's package as an NPM dependency of the release's conformance package."""
    name, version, _canonical = PACKAGES[fhir]
    return {name: version}
