"""VS (mappings/vs.yaml): vital-sign Observations (LOINC, the VS_TEST map) to SDTM VS and back; an
Observation is a MUNE record, a VS record or out of scope, never two records. study.yaml does not list
vs.yaml among its domains yet: these tests run a copy of mappings/ that does (`vs: vs.yaml`)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from conftest import EXAMPLE, MINI

from tcim_interop import read_sdtm, to_fhir, to_sdtm
from tcim_interop.mapping_spec.load import load_mapping_set

LOINC, UCUM = "http://loinc.org", "http://unitsofmeasure.org"


@pytest.fixture(scope="module")
def vs_mappings(tmp_path_factory):
    """mappings/ with VS among the domains."""
    folder = tmp_path_factory.mktemp("vs") / "mappings"
    shutil.copytree(load_mapping_set().directory, folder)
    study = folder / "study.yaml"
    text = study.read_text()
    assert "  mune: xm.yaml\n" in text
    study.write_text(text.replace("  mune: xm.yaml\n", "  mune: xm.yaml\n  vs: vs.yaml\n"))
    return folder


@pytest.fixture(scope="module")
def example_with_vs(vs_mappings, tmp_path_factory):
    out = tmp_path_factory.mktemp("vs-example") / "sdtm"
    return to_sdtm([EXAMPLE], out, mappings=vs_mappings), out


@pytest.fixture(scope="module")
def example(example_with_vs):
    return example_with_vs[0]


def test_the_example_body_weights_are_148_vs_records(example):
    vs = example.datasets["VS"]
    assert len(vs) == 148
    assert set(vs["VSTESTCD"]) == {"WEIGHT"} and set(vs["VSTEST"]) == {"Weight"}
    assert set(vs["VSORRESU"]) == {"kg"} == set(vs["VSSTRESU"])
    assert vs["VISITNUM"].notna().all() and vs["VSDTC"].notna().all()
    assert (vs["VSSTRESN"] == vs["VSSTRESC"].astype(float)).all()
    # one record per resource, each with its own sequence number per subject
    assert not vs.duplicated(["USUBJID", "VSSEQ"]).any()
    # at most one last observation before exposure per subject and test
    flagged = vs[vs["VSLOBXFL"] == "Y"]
    assert not flagged.duplicated(["USUBJID", "VSTESTCD"]).any() and len(flagged) > 0
    weights = {d.resource for d in example.report.dispositions
               if d.resource.startswith("Observation/") and "weight" in d.resource}
    assert len(weights) == 148
    assert all(d.outcome == "converted" for d in example.report.dispositions if d.resource in weights)


def _mini(*extra: dict) -> list[dict]:
    bundle = json.loads(MINI.read_text())
    bundle["entry"] += [{"resource": r} for r in extra]
    return bundle


def _obs(id_: str, code: str, value: float, unit: str, **more) -> dict:
    return {"resourceType": "Observation", "id": id_, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]}, "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2021-05-24T10:00:00+02:00",
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}, **more}


def test_vital_signs_by_their_loinc_code_and_ucum_unit(vs_mappings):
    result = to_sdtm(_mini(_obs("sys", "8480-6", 128, "mm[Hg]"), _obs("dia", "8462-4", 81, "mm[Hg]"),
                           _obs("hr", "8867-4", 72, "{beats}/min"), _obs("t", "8310-5", 36.6, "Cel"),
                           _obs("h", "8302-2", 171, "cm"), _obs("bmi", "39156-5", 23.9, "kg/m2")),
                    mappings=vs_mappings)
    vs = result.datasets["VS"].set_index("VSTESTCD")
    assert {t: (vs.at[t, "VSTEST"], vs.at[t, "VSORRES"], vs.at[t, "VSORRESU"]) for t in vs.index} == {
        "SYSBP": ("Systolic Blood Pressure", "128", "mmHg"), "DIABP": ("Diastolic Blood Pressure", "81", "mmHg"),
        "PULSE": ("Pulse Rate", "72", "beats/min"), "TEMP": ("Temperature", "36.6", "C"),
        "HEIGHT": ("Height", "171", "cm"), "BMI": ("Body Mass Index", "23.9", "kg/m2"),
        "WEIGHT": ("Weight", "70", None)}  # the mini bundle's weight says "kg" with no UCUM system: not told


def test_a_blood_pressure_panel_of_components_is_not_read_yet(vs_mappings):
    panel = {"resourceType": "Observation", "id": "bp", "status": "final",
             "code": {"coding": [{"system": LOINC, "code": "85354-9"}]}, "subject": {"reference": "Patient/p1"},
             "effectiveDateTime": "2021-05-24T10:00:00+02:00",
             "component": [{"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                            "valueQuantity": {"value": 128, "system": UCUM, "code": "mm[Hg]"}}]}
    result = to_sdtm(_mini(panel), mappings=vs_mappings)
    assert "SYSBP" not in set(result.datasets["VS"]["VSTESTCD"])
    [d] = [d for d in result.report.dispositions if d.resource == "Observation/bp"]
    assert d.outcome == "out_of_scope"


def test_other_observations_stay_out_of_scope_and_the_accounting_adds_up(vs_mappings):
    result = to_sdtm(_mini(_obs("glu", "2345-7", 5.4, "mmol/L")), mappings=vs_mappings)
    [d] = [d for d in result.report.dispositions if d.resource == "Observation/glu"]
    assert (d.outcome, d.reason) == ("out_of_scope", "not a MUNE measure (code not in the MUNE_TEST map, "
                                                     "directly or through a ConceptMap)")
    c = result.report.counts()
    assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"]
    assert len(result.datasets["VS"]) == 1  # the mini bundle's own weight
    records = sum(len(result.datasets[d]) for d in ("XM", "VS"))
    assert records == sum(1 for d in result.report.dispositions
                          if d.resource.startswith("Observation/") and d.outcome == "converted")


def test_an_observation_two_specs_select_is_a_record_of_the_first_only(vs_mappings):
    ms = load_mapping_set(vs_mappings)
    ms.codelists.maps["VS_TEST"] = {**ms.codelists.maps["VS_TEST"],
                                    "http://tcim-interop.org/fhir/CodeSystem/mune-test|MUNIX": "WEIGHT"}
    plain = to_sdtm([MINI], mappings=vs_mappings)
    result = to_sdtm([MINI], mappings=ms)
    assert len(result.datasets["XM"]) == len(plain.datasets["XM"])
    assert len(result.datasets["VS"]) == len(plain.datasets["VS"]) == 1
    twice = [f for f in result.report.findings if f.code == "SELECTED_TWICE"]
    assert twice and all(f.severity == "error" and f.domain == "VS" for f in twice)
    c = result.report.counts()
    assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"] == plain.report.counts()["input"]


def test_without_vs_in_study_yaml_the_weights_stay_out_of_scope(mini_conversion):
    result = mini_conversion[0]
    assert "VS" not in result.datasets
    [d] = [d for d in result.report.dispositions if d.resource == "Observation/wt"]
    assert d.outcome == "out_of_scope"


def test_vs_sdtm_fhir_sdtm_round_trip(example_with_vs, vs_mappings, tmp_path):
    example_package = example_with_vs[1]
    for version in ("R4", "R5"):
        bundle = tmp_path / f"{version}.json"
        to_fhir(example_package, bundle, fhir_version=version, verify=False, mappings=vs_mappings)
        resources = [e["resource"] for e in json.loads(bundle.read_text())["entry"]]
        weights = [r for r in resources if r["resourceType"] == "Observation"
                   and any(c.get("code") == "29463-7" for c in r["code"].get("coding", []))]
        assert len(weights) == 148
        assert all(r["valueQuantity"]["code"] == "kg" and r["category"][0]["coding"][0]["code"] == "vital-signs"
                   for r in weights)
        to_sdtm([bundle], tmp_path / f"back-{version}", mappings=vs_mappings)
        before = read_sdtm(example_package)["VS"].frame
        after = read_sdtm(tmp_path / f"back-{version}")["VS"].frame
        pd.testing.assert_frame_equal(after, before)
