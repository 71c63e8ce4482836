"""Which resources make rows of a domain, and the resources each row draws on.

A selector returns a Row with its context (%patient, %site, ...) resolved, or a Skip that says why
the resource makes no row: out of scope (concomitant medication, a non-MUNE observation, a patient
in no study) or rejected (a reference to a resource that is not in the input).
"""

from __future__ import annotations

from ..fhir.extensions import read_record
from .context import Row, RunContext, Skip
from .registry import algorithm

_NOT_HAPPENED = {"entered-in-error", "not-done", "cancelled", "stopped", "unknown"}


def _subject_context(resource, run: RunContext, domain: str, subject_ref) -> Row | Skip:
    """For event/intervention/finding rows: the Patient, then the study subject enrolled with it."""
    if not subject_ref:
        return Skip("rejected", f"{resource.resource_type}.subject is missing")
    patient = run.index.resolve(subject_ref)
    ref = subject_ref.get("reference") if isinstance(subject_ref, dict) else subject_ref
    if patient is None:
        return Skip("rejected", f"subject references {ref!r}, which is not in the input")
    if patient.resource_type != "Patient":
        return Skip("out_of_scope", f"subject is a {patient.resource_type}, not a Patient")
    subjects = run.subjects_by_patient.get(patient.key)
    if not subjects:
        # no id in the reason: out-of-scope resources are counted by reason, and this one is no study's
        return Skip("out_of_scope", "its Patient is not a subject of a study in the input")
    row = Row(resource, run, domain, refs=dict(subjects[0].refs), subject_row=subjects[0])
    row.refs["subject"] = subjects[0].resource
    return row


@algorithm("study_subject", "select")
def study_subject(resource, run: RunContext, domain: str) -> Row | Skip:
    """DM rows: a ResearchSubject, its Patient, site study, overall study (site.partOf) and Consent."""
    data, index = resource.data, run.index
    pref = data.get("individual") if resource.version == "R4" else data.get("subject")
    patient = index.resolve(pref, "Patient")
    if patient is None:
        return Skip("rejected", f"the subject's Patient ({_ref(pref)}) is not in the input")
    site = index.resolve(data.get("study"), "ResearchStudy")
    if site is None:
        return Skip("rejected", f"study references {_ref(data.get('study'))!r}, which is not in the input")
    overall = index.resolve(site.data.get("partOf", [None])[0] if site.data.get("partOf") else None, "ResearchStudy")
    if overall is None:
        return Skip("rejected", f"{site.key} is not a site study: it has no partOf naming the overall study, "
                                "so SITEID cannot be set")
    consents = data.get("consent")
    consent_ref = consents[0] if isinstance(consents, list) and consents else consents
    consent = index.resolve(consent_ref, "Consent") if consent_ref else None
    return Row(resource, run, domain, refs={"patient": patient, "site": site, "study": overall, "consent": consent})


@algorithm("study_treatment", "select")
def study_treatment(resource, run: RunContext, domain: str) -> Row | Skip:
    """EX rows: administrations of a study product (map STUDY_PRODUCT) that took place."""
    data = resource.data
    concept = data.get("medicationCodeableConcept") if resource.version == "R4" else (data.get("medication") or {}).get("concept")
    products = run.mappings.codelists.maps["STUDY_PRODUCT"]
    codings = (concept or {}).get("coding") or []
    if not _from_sdtm(resource, domain) and not any(f"{c.get('system')}|{c.get('code')}" in products for c in codings if isinstance(c, dict)):
        return Skip("out_of_scope", "not a study product: concomitant medication (CM is not produced)")
    if data.get("status") in _NOT_HAPPENED:
        return Skip("out_of_scope", f"status {data.get('status')!r}: not an administration that took place "
                                    "(EX holds administered doses only)")
    return _subject_context(resource, run, domain, data.get("subject"))


@algorithm("study_subject_event", "select")
def study_subject_event(resource, run: RunContext, domain: str) -> Row | Skip:
    """AE rows: actual adverse events of a study subject (potential events are out of scope)."""
    if resource.data.get("actuality") == "potential":
        return Skip("out_of_scope", "actuality 'potential': a near miss, not an adverse event")
    if resource.data.get("status") == "entered-in-error":
        return Skip("out_of_scope", "status 'entered-in-error'")
    return _subject_context(resource, run, domain, resource.data.get("subject"))


@algorithm("mune_observation", "select")
def mune_observation(resource, run: RunContext, domain: str) -> Row | Skip:
    """MUNE rows: Observations coded in the MUNE test code system (map MUNE_TEST)."""
    tests = run.mappings.codelists.maps["MUNE_TEST"]
    codings = (resource.data.get("code") or {}).get("coding") or []
    if not _from_sdtm(resource, domain) and not any(f"{c.get('system')}|{c.get('code')}" in tests for c in codings if isinstance(c, dict)):
        return Skip("out_of_scope", "not a MUNE measure (code not in the MUNE test code system)")
    if resource.data.get("status") == "entered-in-error":
        return Skip("out_of_scope", "status 'entered-in-error'")
    return _subject_context(resource, run, domain, resource.data.get("subject"))


def _from_sdtm(resource, domain: str) -> bool:
    """Made by to-fhir from this domain's dataset: in scope whatever its codes (another study's
    treatment or tests)."""
    record = read_record(resource.data)
    return record is not None and record[0] == domain


def _ref(ref) -> str:
    return ref.get("reference", "") if isinstance(ref, dict) else str(ref or "")
