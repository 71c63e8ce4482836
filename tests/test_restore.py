"""mapping/restore.py: cells recorded by to-fhir come back verbatim, and the mapping reports nothing about
the value it would have written in their place (Report.moot)."""

import copy

from conftest import read_json

from tcim_interop import to_sdtm
from tcim_interop.findings import Report


def _first_ae(bundle: dict) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "AdverseEvent")


def _convert(bundle: dict, mappings, *, record_aesev: bool):
    bundle = copy.deepcopy(bundle)
    ae = _first_ae(bundle)
    ae["severity"]["coding"][0]["code"] = "bogus"  # a code the AESEV map does not know
    if record_aesev:
        record = next(x for x in ae["extension"] if x["url"].endswith("/sdtm-record"))
        record["extension"].append({"url": "cell", "extension": [{"url": "name", "valueString": "AESEV"},
                                                                 {"url": "value", "valueString": "MODERATE"}]})
    result = to_sdtm([bundle], mappings=mappings, fast=True)  # --fast: the same mapping, less validation
    key = f"AdverseEvent/{ae['id']}"
    findings = [f for f in result.report.findings if f.source == key and f.variable == "AESEV"]
    ae_dataset = result.metadata["AE"]
    return findings, ae_dataset.frame.at[ae_dataset.sources.index(key), "AESEV"]


def test_a_recorded_cell_is_given_back_and_its_mapped_value_not_reported(example_fhir, mappings):
    bundle = read_json(example_fhir[1])
    # without the Observations (11,910 MUNE results, vital signs): nothing an AE record reads
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Observation"]
    findings, value = _convert(bundle, mappings, record_aesev=False)
    assert [f.code for f in findings] == ["CT_UNMAPPED"] and value in (None, "")
    findings, value = _convert(bundle, mappings, record_aesev=True)
    assert findings == [] and value == "MODERATE"


def test_moot_cells_are_quiet_only_within():
    report = Report()
    with report.moot({("AdverseEvent/1", "AESEV")}):
        report.warning("X", "quiet", source="AdverseEvent/1", variable="AESEV")
        report.warning("X", "other cell", source="AdverseEvent/1", variable="AETERM")
        report.warning("X", "other resource", source="AdverseEvent/2", variable="AESEV")
    report.warning("X", "after", source="AdverseEvent/1", variable="AESEV")
    assert [f.message for f in report.findings] == ["other cell", "other resource", "after"]
