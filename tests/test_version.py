"""fhir/version.py: R4 or R5, read off each resource, else its file's majority, else the default."""

import importlib

import pytest

from tcim_interop.fhir.read import InputResource
from tcim_interop.fhir.version import _ONLY, assign_versions, telling_version


@pytest.mark.parametrize("resource, version", [
    ({"resourceType": "ResearchSubject", "individual": {"reference": "Patient/p"}}, "R4"),
    ({"resourceType": "ResearchSubject", "assignedArm": "BMNC"}, "R4"),
    ({"resourceType": "ResearchSubject", "subject": {"reference": "Patient/p"}}, "R5"),
    ({"resourceType": "ResearchSubject", "progress": [{}]}, "R5"),
    ({"resourceType": "ResearchStudy", "arm": [{"name": "BMNC"}]}, "R4"),
    ({"resourceType": "ResearchStudy", "comparisonGroup": [{"linkId": "g"}]}, "R5"),
    ({"resourceType": "AdverseEvent", "event": {}, "date": "2021-06-14"}, "R4"),
    ({"resourceType": "AdverseEvent", "code": {}, "occurrenceDateTime": "2021-06-14"}, "R5"),
    ({"resourceType": "MedicationAdministration", "medicationCodeableConcept": {}}, "R4"),
    ({"resourceType": "MedicationAdministration", "medication": {"concept": {}}}, "R5"),
    ({"resourceType": "Consent", "dateTime": "2021-03-02", "scope": {}}, "R4"),
    ({"resourceType": "Consent", "date": "2021-03-02", "decision": "permit"}, "R5"),
    ({"resourceType": "Encounter", "class": {"code": "AMB"}, "period": {}}, "R4"),
    ({"resourceType": "Encounter", "class": [{"coding": [{"code": "AMB"}]}]}, "R5"),
    ({"resourceType": "Encounter", "actualPeriod": {}}, "R5"),
    ({"resourceType": "Observation", "triggeredBy": [{}]}, "R5"),
])
def test_telling_version(resource, version):
    assert telling_version(resource) == version


@pytest.mark.parametrize("resource", [
    {"resourceType": "Patient", "gender": "female", "birthDate": "1960-05-17"},
    {"resourceType": "Observation", "status": "final", "valueQuantity": {"value": 1}},
    {"resourceType": "Encounter", "class": {"code": "AMB"}},
    {"resourceType": "Organization", "name": "Hospital"},
    {"resourceType": "ResearchSubject", "individual": {}, "subject": {}},  # a mix: valid in neither
    {"resourceType": "Encounter", "class": [{}], "period": {}},
    {},
])
def test_no_telling_element(resource):
    assert telling_version(resource) is None


@pytest.mark.parametrize("resource, version", [
    # elements that exist in both releases tell nothing, and do not make a clean resource look mixed
    ({"resourceType": "AdverseEvent", "code": {}, "status": "completed", "recordedDate": "2021-06-15",
      "detected": "2021-06-14"}, "R5"),
    ({"resourceType": "AdverseEvent", "event": {}, "recordedDate": "2021-06-15"}, "R4"),
    ({"resourceType": "ResearchStudy", "arm": [{"name": "BMNC"}], "site": [{"reference": "Location/l"}]}, "R4"),
    ({"resourceType": "ResearchStudy", "comparisonGroup": [{}], "site": [{"reference": "Location/l"}]}, "R5"),
    ({"resourceType": "Consent", "date": "2021-03-02", "decision": "permit", "provision": [{}]}, "R5"),
    ({"resourceType": "Consent", "dateTime": "2021-03-02", "provision": {}}, "R4"),
])
def test_shared_elements_do_not_tell(resource, version):
    assert telling_version(resource) == version


@pytest.mark.parametrize("release", ["R4", "R5"])
def test_telling_elements_exist_in_one_release_only(release):
    """Every element listed as telling is an element of that release and not of the other
    (the R4 side checked against fhir.resources R4B, which has the same elements here)."""
    def elements(package, rtype):
        module = importlib.import_module(f"{package}.{rtype.lower()}")
        return {f.alias or name for name, f in getattr(module, rtype).model_fields.items()}

    own, other = ("fhir.resources.R4B", "fhir.resources") if release == "R4" else ("fhir.resources", "fhir.resources.R4B")
    for rtype, names in _ONLY[release].items():
        assert names <= elements(own, rtype), rtype
        assert not names & elements(other, rtype), rtype


def res(data, file="a.json", n=0):
    return InputResource(data, file, f"entry[{n}]")


R4_SUBJ = {"resourceType": "ResearchSubject", "individual": {}}
R5_SUBJ = {"resourceType": "ResearchSubject", "subject": {}}
R5_AE = {"resourceType": "AdverseEvent", "code": {}}
PATIENT = {"resourceType": "Patient"}


def test_assign_versions_telling_and_file_majority():
    items = [res(R5_SUBJ, "a.json", 0), res(R5_AE, "a.json", 1), res(R4_SUBJ, "a.json", 2), res(PATIENT, "a.json", 3),
             res(R4_SUBJ, "b.json", 0), res(PATIENT, "b.json", 1),
             res(PATIENT, "c.json", 0)]
    assign_versions(items)
    assert [r.version for r in items] == ["R5", "R5", "R4", "R5",  # the Patient follows a.json's majority
                                          "R4", "R4",
                                          "R5"]  # nothing telling in c.json: the whole input's majority (3 R5 : 2 R4)


def test_assign_versions_default_when_nothing_tells():
    items = [res(PATIENT, "a.json", 0), res(PATIENT, "b.json", 0)]
    assign_versions(items)
    assert [r.version for r in items] == ["R4", "R4"]
    assign_versions(items, default="R5")
    assert [r.version for r in items] == ["R5", "R5"]


def test_assign_versions_default():
    items = [res(PATIENT, "c.json", 0), res({"resourceType": "Observation"}, "c.json", 1)]
    assign_versions(items, default="R5")
    assert [r.version for r in items] == ["R5", "R5"]


def test_assign_versions_majority_is_per_file_not_global():
    items = [res(R5_SUBJ, "a.json", i) for i in range(5)] + [res(R4_SUBJ, "b.json", 0), res(PATIENT, "b.json", 1)]
    assign_versions(items, default="R5")
    assert items[-1].version == "R4"


def test_assign_versions_forced():
    items = [res(R5_SUBJ), res(R4_SUBJ, n=1), res(PATIENT, n=2)]
    assign_versions(items, forced="R4")
    assert [r.version for r in items] == ["R4", "R4", "R4"]
    assign_versions(items, forced="R5")
    assert [r.version for r in items] == ["R5", "R5", "R5"]


def test_assign_versions_accepts_a_generator():
    items = [res(R5_SUBJ), res(PATIENT, n=1)]
    assign_versions(r for r in items)
    assert [r.version for r in items] == ["R5", "R5"]
