"""No personal identifier reaches any output file: Synthea patients (real-looking EHR records with
names, addresses, phones, SSNs, MRNs) enrolled in the trial and converted; every output byte searched.

Synthea names its files after the patient (`Given_Family_uuid.json`): the reports name input files by a
neutral label and sha256. Two of the five patients are not enrolled, as in a hospital's bulk export:
nothing of theirs, not even a resource id, reaches a report."""

import json
import shutil

import pytest
from conftest import need_external

from tcim_interop import NoSubjectError, to_fhir, to_sdtm


def identifying_strings(patient: dict) -> set[str]:
    found = set()
    for n in patient.get("name", []):
        found.update(n.get("given", []))
        found.add(n.get("family", ""))
    for t in patient.get("telecom", []):
        found.add(t.get("value", ""))
    for a in patient.get("address", []):
        found.update(a.get("line", []))
        found.update({a.get("city", ""), a.get("postalCode", "")})
    for i in patient.get("identifier", []):
        found.add(i.get("value", ""))
    found.add(patient.get("birthDate", ""))
    return {s for s in found if len(s) >= 4}


@pytest.fixture(scope="module")
def enrolled_synthea(tmp_path_factory):
    src = need_external("synthea")
    d = tmp_path_factory.mktemp("synthea")
    secrets, patients, outsiders = set(), [], set()
    for n, f in enumerate(sorted(src.glob("*.json"))):
        bundle = json.loads(f.read_text())
        for e in bundle["entry"]:
            if e["resource"]["resourceType"] == "Patient":
                patients.append(e["resource"])
                secrets |= identifying_strings(e["resource"])
        if n >= 3:  # not enrolled: every resource id of theirs is a secret too
            outsiders |= {e["resource"]["id"] for e in bundle["entry"]}
        secrets.add(f.stem)
        shutil.copy(f, d / f.name)
    secrets |= outsiders
    study = [{"resourceType": "ResearchStudy", "id": "s", "status": "active",
              "identifier": [{"use": "official", "value": "TCIM-ELAII"}]},
             {"resourceType": "ResearchStudy", "id": "site", "status": "active", "partOf": [{"reference": "ResearchStudy/s"}],
              "identifier": [{"use": "official", "value": "01"}],
              "location": [{"coding": [{"system": "urn:iso:std:iso:3166", "code": "US"}]}]}]
    for k, p in enumerate(patients[:3]):
        study.append({"resourceType": "ResearchSubject", "id": f"rs{k}", "status": "on-study",
                      "study": {"reference": "ResearchStudy/site"}, "individual": {"reference": f"Patient/{p['id']}"},
                      "identifier": [{"use": "official", "value": f"{k + 1:03d}"}]})
    (d / "enrolment.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                                  "entry": [{"resource": r} for r in study]}))
    assert len(patients) == 5 and len(secrets) > 20 and len(outsiders) > 100
    return d, secrets


def test_synthea_patients_become_dm_records_without_identifiers(enrolled_synthea, tmp_path):
    d, secrets = enrolled_synthea
    out = tmp_path / "sdtm"
    result = to_sdtm([d], out)
    assert len(result.datasets["DM"]) == 3
    c = result.report.counts()
    assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"] > 300
    fhir_out = tmp_path / "back.json"
    to_fhir(out, fhir_out)
    files = list(out.iterdir()) + [fhir_out]
    assert {"run-report.json", "manifest.json"} <= {f.name for f in files}
    blob = b"".join(f.read_bytes() for f in files)
    leaks = sorted(s for s in secrets if s.encode() in blob)
    assert leaks == [], leaks
    assert {p.name for p in out.iterdir()} >= {"dm.xpt", "run-report.json"}


def test_hl7_examples_convert_or_are_reported(tmp_path):
    for version in ("r4", "r5"):
        src = need_external("fhir-examples", version)
        files = sorted(p for p in src.glob("*.json") if "-" in p.name)
        # no example is a subject of a study: no delivery, every resource accounted for in the error's report
        with pytest.raises(NoSubjectError) as failed:
            to_sdtm(files, tmp_path / version)
        c = failed.value.report.counts()
        assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"] > 25
        assert not (tmp_path / version).exists()
        for d in failed.value.report.dispositions:
            assert d.outcome == "converted" or d.reason, d
