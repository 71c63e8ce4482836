"""Tell R4 from R5, resource by resource.

Hospitals mix releases, so the release is read off each resource from the elements only one release
has (R4 ResearchSubject.individual vs R5 .subject, R4 AdverseEvent.event vs R5 .code, ...). A resource
that has no telling element (a Patient looks the same in both) takes the release most of the other
resources in its file have, else the whole input has, then the default. --fhir-version forces one release for all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

VERSIONS = ("R4", "R5")

# Elements that exist in one release only, per resource type.
_ONLY = {
    "R4": {
        "ResearchSubject": {"individual", "assignedArm", "actualArm"},
        "ResearchStudy": {"arm", "location", "enrollment", "sponsor", "principalInvestigator", "reasonStopped"},
        "AdverseEvent": {"event", "date", "severity", "subjectMedicalHistory"},
        "MedicationAdministration": {"medicationCodeableConcept", "medicationReference", "effectiveDateTime",
                                     "effectivePeriod", "context", "instantiates"},
        "Consent": {"scope", "patient", "dateTime", "organization", "policyRule"},
        "Encounter": {"period", "hospitalization", "classHistory", "statusHistory"},
        "Observation": set(),
    },
    "R5": {
        "ResearchSubject": {"subject", "assignedComparisonGroup", "actualComparisonGroup", "progress"},
        "ResearchStudy": {"comparisonGroup", "region", "name", "label", "associatedParty", "recruitment",
                          "outcomeMeasure", "classifier"},
        "AdverseEvent": {"code", "occurrenceDateTime", "occurrencePeriod", "occurrenceTiming", "status",
                         "mitigatingAction", "participant"},
        "MedicationAdministration": {"medication", "occurenceDateTime", "occurencePeriod", "occurenceTiming",
                                     "encounter", "isSubPotent", "subPotentReason"},
        "Consent": {"date", "decision", "grantor", "grantee", "controller", "regulatoryBasis"},
        "Encounter": {"actualPeriod", "plannedStartDate", "virtualService", "admission", "careTeam"},
        "Observation": {"instantiatesCanonical", "instantiatesReference", "triggeredBy", "bodyStructure"},
    },
}


def telling_version(resource: dict) -> str | None:
    rtype = resource.get("resourceType") or ""  # "": no resource type, as None
    keys = resource.keys()
    r4 = bool(_ONLY["R4"].get(rtype, set()) & keys)
    r5 = bool(_ONLY["R5"].get(rtype, set()) & keys)
    if rtype == "Encounter" and isinstance(resource.get("class"), list):
        r5 = True
    if r4 == r5:  # neither, or a mix (invalid in both; validation will say where)
        return None
    return "R4" if r4 else "R5"


def assign_versions(resources: Iterable, default: str = "R4", forced: str | None = None) -> None:
    """Set .version on each InputResource (in place)."""
    items = list(resources)
    if forced:
        for r in items:
            r.version = forced
        return
    told: dict[str, Counter] = {}
    for r in items:
        v = r.told  # an NDJSON line kept without its dict told it while it was read
        r.version = v or ""
        if v:
            told.setdefault(r.file, Counter())[v] += 1
    overall = sum(told.values(), Counter())
    for r in items:
        if not r.version:
            # NDJSON exports put one type in a file (Patient.ndjson tells nothing): then the whole input
            c = told.get(r.file) or overall
            r.version = c.most_common(1)[0][0] if c else default
