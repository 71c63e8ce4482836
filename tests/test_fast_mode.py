"""--fast: no whole-resource validation, the same datasets from valid input, and a malformed resource
rejected (never a crash) when its wrong shape is in what the mapping reads."""

import json

import pandas as pd

from tcim_interop import to_sdtm


def test_fast_gives_the_same_datasets_on_valid_input(mini_bundle):
    full, fast = to_sdtm([mini_bundle]), to_sdtm([mini_bundle], fast=True)
    assert set(full.datasets) == set(fast.datasets)
    for name in full.datasets:
        pd.testing.assert_frame_equal(full.datasets[name], fast.datasets[name])


def test_fast_rejects_a_resource_the_mapping_cannot_read(tmp_path, mini_bundle):
    doc = json.loads(mini_bundle.read_text())
    for e in doc["entry"]:
        if e["resource"].get("id") == "ma1":
            e["resource"]["medicationCodeableConcept"] = "BMNC"  # a string where FHIR has an object
        if e["resource"].get("id") == "ae1":
            e["resource"]["date"] = "2021-02-30"  # read by the mapping: checked by iso_datetime
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc))
    result = to_sdtm([src], fast=True)
    rejected = {d.resource: d.reason for d in result.report.dispositions if d.outcome == "rejected"}
    assert "wrong shape" in rejected["MedicationAdministration/ma1"]
    assert len(result.datasets["EX"]) == 3
    assert any(f.code == "BAD_DATE" and f.source == "AdverseEvent/ae1" for f in result.report.findings)
    c = result.report.counts()
    assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"]
