"""VS (mappings/vs.yaml): vital-sign Observations (LOINC, the VS_TEST map) to SDTM VS and back; an
Observation is a VS record, a MUNE record or out of scope, never two records. VSTESTCD, VSTEST and the
units are CDISC CT (C66741, C67153, C66770); VSPOS and VSLOC only where the Observation sends them;
VSLOBXFL on the last weight before first exposure."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from conftest import EXAMPLE, MINI, read_json

from tcim_interop import to_fhir, to_sdtm
from tcim_interop.mapping_spec.load import load_mapping_set

LOINC, UCUM, SNOMED = "http://loinc.org", "http://unitsofmeasure.org", "http://snomed.info/sct"
BODY_POSITION = "http://hl7.org/fhir/StructureDefinition/observation-bodyPosition"
ODM = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}


def test_the_example_body_weights_are_148_vs_records(example_conversion):
    result = example_conversion[0]
    vs = result.datasets["VS"]
    given = {f"Observation/{e['resource']['id']}" for e in read_json(EXAMPLE)["entry"]
             if e["resource"]["resourceType"] == "Observation"
             and any(c.get("code") == "29463-7" for c in e["resource"]["code"]["coding"])}
    assert len(given) == 148 and set(result.metadata["VS"].sources) == given
    assert not given & set(result.metadata["XM"].sources)
    assert set(vs["VSTESTCD"]) == {"WEIGHT"} and set(vs["VSTEST"]) == {"Weight"}
    assert set(vs["VSORRESU"]) == {"kg"} == set(vs["VSSTRESU"])
    assert vs["VISITNUM"].notna().all() and vs["VISIT"].notna().all() and vs["VSDTC"].notna().all()
    # study day from DM.RFSTDTC: no day 0 (SDTMIG 4.4.4); none for the subject never treated
    ref = vs["USUBJID"].map(result.datasets["DM"].set_index("USUBJID")["RFSTDTC"])
    days = (pd.to_datetime(vs["VSDTC"].str[:10]) - pd.to_datetime(ref.str[:10])).dt.days
    expected = days.where(days < 0, days + 1)
    assert ref.notna().sum() > 140 and vs["VSDY"].equals(expected.astype(float))
    assert (vs["VSSTRESN"] == vs["VSSTRESC"].astype(float)).all()
    # the example sends neither a body position nor a body site: nothing is assumed
    assert vs["VSPOS"].isna().all() and vs["VSLOC"].isna().all()
    assert not vs.duplicated(["USUBJID", "VSSEQ"]).any()


def test_vslobxfl_is_the_last_weight_before_first_exposure(example_conversion):
    datasets = example_conversion[0].datasets
    vs = datasets["VS"].merge(datasets["DM"][["USUBJID", "RFXSTDTC"]], on="USUBJID")
    # both have times in the example: before is earlier in time (derivations._before_exposure)
    assert vs["VSDTC"].str.contains("T").all() and vs["RFXSTDTC"].dropna().str.contains("T").all()
    before = vs[vs["RFXSTDTC"].notna() & (vs["VSDTC"] < vs["RFXSTDTC"].fillna(""))]
    expected = set(before.sort_values("VSDTC").groupby("USUBJID").tail(1).index)
    assert expected and set(vs.index[vs["VSLOBXFL"] == "Y"]) == expected
    assert set(vs["VSLOBXFL"].dropna()) == {"Y"}


def test_define_xml_declares_vs_with_cdisc_ct(example_conversion):
    root = ET.parse(example_conversion[1] / "define.xml").getroot()
    groups = {g.get("Name") for g in root.iter(f"{{{ODM['odm']}}}ItemGroupDef")}
    assert "VS" in groups
    codelists = {c.get("OID"): c for c in root.iter(f"{{{ODM['odm']}}}CodeList")}
    for oid, nci in (("CL.VSTESTCD", "C66741"), ("CL.VSTEST", "C67153"), ("CL.VSRESU", "C66770")):
        aliases = {a.get("Name") for a in codelists[oid].findall("odm:Alias", ODM)}
        assert nci in aliases, oid
    weight = [t for t in codelists["CL.VSTESTCD"] if t.get("CodedValue") == "WEIGHT"]
    assert [a.get("Name") for a in weight[0].findall("odm:Alias", ODM)] == ["C25208"]


def _mini(*extra: dict) -> dict:
    bundle = json.loads(MINI.read_text())
    bundle["entry"] += [{"resource": r} for r in extra]
    return bundle


def _obs(id_: str, code: str, value: float, unit: str, **more) -> dict:
    return {"resourceType": "Observation", "id": id_, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code}]}, "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2021-05-24T10:00:00+02:00",
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}, **more}


def test_vital_signs_by_their_loinc_code_and_ucum_unit():
    result = to_sdtm(_mini(_obs("sys", "8480-6", 128, "mm[Hg]"), _obs("dia", "8462-4", 81, "mm[Hg]"),
                           _obs("hr", "8867-4", 72, "{beats}/min"), _obs("t", "8310-5", 36.6, "Cel"),
                           _obs("h", "8302-2", 171, "cm"), _obs("bmi", "39156-5", 23.9, "kg/m2")))
    vs = result.datasets["VS"].set_index("VSTESTCD")
    assert {t: (vs.at[t, "VSTEST"], vs.at[t, "VSORRES"], vs.at[t, "VSORRESU"]) for t in vs.index} == {
        "SYSBP": ("Systolic Blood Pressure", "128", "mmHg"), "DIABP": ("Diastolic Blood Pressure", "81", "mmHg"),
        "PULSE": ("Pulse Rate", "72", "beats/min"), "TEMP": ("Temperature", "36.6", "C"),
        "HEIGHT": ("Height", "171", "cm"), "BMI": ("Body Mass Index", "23.9", "kg/m2"),
        "WEIGHT": ("Weight", "70", "kg")}  # the mini bundle's own weight


def test_a_unit_without_ucum_code_is_not_told():
    weight = _obs("w2", "29463-7", 71, "kg")
    weight["valueQuantity"] = {"value": 71, "unit": "kg"}
    result = to_sdtm(_mini(weight))
    vs = result.datasets["VS"]
    [row] = vs[vs["VSORRES"] == "71"].to_dict("records")
    assert row["VSORRESU"] is None and row["VSSTRESU"] is None
    assert [f.code for f in result.report.findings if f.domain == "VS" and f.severity == "warning"] == ["CT_UNMAPPED"]


def test_vspos_and_vsloc_only_where_the_observation_sends_them(tmp_path):
    sitting = _obs("bp", "8480-6", 128, "mm[Hg]", bodySite={"coding": [{"system": SNOMED, "code": "40983000"}]},
                   extension=[{"url": BODY_POSITION,
                               "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "33586001"}]}}])
    plain = _obs("hr", "8867-4", 72, "{beats}/min")
    result = to_sdtm(_mini(sitting, plain), tmp_path / "sdtm")
    vs = result.datasets["VS"].set_index("VSTESTCD")
    assert (vs.at["SYSBP", "VSPOS"], vs.at["SYSBP", "VSLOC"]) == ("SITTING", "ARM")
    assert vs.loc[["PULSE", "WEIGHT"], ["VSPOS", "VSLOC"]].isna().all().all()
    for version in ("R4", "R5"):
        bundle = tmp_path / f"{version}.json"
        to_fhir(tmp_path / "sdtm", bundle, fhir_version=version)
        [bp] = [e["resource"] for e in read_json(bundle)["entry"]
                if e["resource"]["resourceType"] == "Observation" and e["resource"]["code"]["coding"][0]["code"] == "8480-6"]
        assert bp["bodySite"]["coding"][0] == {"system": SNOMED, "code": "40983000"}
        assert [e["valueCodeableConcept"]["coding"][0]["code"] for e in bp["extension"] if e["url"] == BODY_POSITION] == ["33586001"]
        back = to_sdtm([bundle], tmp_path / f"back-{version}")
        pd.testing.assert_frame_equal(back.datasets["VS"], result.datasets["VS"])


def test_a_blood_pressure_panel_of_components_is_not_read_yet():
    panel = {"resourceType": "Observation", "id": "bp", "status": "final",
             "code": {"coding": [{"system": LOINC, "code": "85354-9"}]}, "subject": {"reference": "Patient/p1"},
             "effectiveDateTime": "2021-05-24T10:00:00+02:00",
             "component": [{"code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
                            "valueQuantity": {"value": 128, "system": UCUM, "code": "mm[Hg]"}}]}
    result = to_sdtm(_mini(panel))
    assert "SYSBP" not in set(result.datasets["VS"]["VSTESTCD"])
    [d] = [d for d in result.report.dispositions if d.resource == "Observation/bp"]
    assert d.outcome == "out_of_scope"


def test_other_observations_are_out_of_scope_with_every_domains_reason():
    result = to_sdtm(_mini(_obs("glu", "2345-7", 5.4, "mmol/L")))
    [d] = [d for d in result.report.dispositions if d.resource == "Observation/glu"]
    assert (d.outcome, d.reason) == ("out_of_scope", "not a vital sign (code not in the VS_TEST map, directly or "
                                     "through a ConceptMap); not a MUNE measure (code not in the MUNE_TEST map, "
                                     "directly or through a ConceptMap)")
    c = result.report.counts()
    assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"]
    records = sum(len(result.datasets[d]) for d in ("XM", "VS"))
    assert records == sum(1 for d in result.report.dispositions
                          if d.resource.startswith("Observation/") and d.outcome == "converted")


def test_an_observation_both_maps_know_is_a_record_of_the_first_domain_only():
    ms = load_mapping_set()
    assert list(ms.domains).index("vs") < list(ms.domains).index("mune")
    ms.codelists.maps["VS_TEST"] = {**ms.codelists.maps["VS_TEST"],
                                    "http://tcim-interop.org/fhir/CodeSystem/mune-test|MUSIX": "WEIGHT"}
    plain = to_sdtm([MINI])
    result = to_sdtm([MINI], mappings=ms)
    musix = {s for s, t in zip(plain.metadata["XM"].sources, plain.datasets["XM"]["XMTESTCD"], strict=True) if t == "MUSIX"}
    assert musix
    assert set(result.metadata["VS"].sources) == set(plain.metadata["VS"].sources) | musix
    assert set(result.metadata["XM"].sources) == set(plain.metadata["XM"].sources) - musix
    c = result.report.counts()
    assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"] == plain.report.counts()["input"]


def test_without_vs_in_study_yaml_the_weights_stay_out_of_scope(tmp_path):
    folder = tmp_path / "mappings"
    shutil.copytree(load_mapping_set().directory, folder)
    study = folder / "study.yaml"
    lines = study.read_text().splitlines(keepends=True)
    assert sum(line.startswith("  vs: vs.yaml") for line in lines) == 1
    study.write_text("".join(line for line in lines if not line.startswith("  vs: vs.yaml")))
    result = to_sdtm([MINI], mappings=folder)
    assert "VS" not in result.datasets
    [d] = [d for d in result.report.dispositions if d.resource == "Observation/wt"]
    assert (d.outcome, d.reason) == ("out_of_scope", "not a MUNE measure (code not in the MUNE_TEST map, "
                                                     "directly or through a ConceptMap)")


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_vs_sdtm_fhir_sdtm_round_trip(example_conversion, example_round_trip, version):
    _, bundle, back = example_round_trip(version)
    resources = [e["resource"] for e in read_json(bundle)["entry"]]
    weights = [r for r in resources if r["resourceType"] == "Observation"
               and any(c.get("code") == "29463-7" for c in r["code"].get("coding", []))]
    assert len(weights) == 148
    for r in weights:  # the FHIR vital signs profile: category, LOINC code, UCUM quantity, subject, time
        assert r["category"][0]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                                  "code": "vital-signs"}
        assert r["code"]["coding"][0]["system"] == LOINC
        assert (r["valueQuantity"]["system"], r["valueQuantity"]["code"]) == (UCUM, "kg")
        assert r["subject"]["reference"] and r["effectiveDateTime"]
        # nothing rides in the sdtm-record extension: every cell comes back from standard elements
        [record] = [e for e in r["extension"] if e["url"].endswith("/sdtm-record")]
        assert {e["url"] for e in record["extension"]} == {"dataset", "row"}
    before = example_conversion[0].datasets["VS"]
    pd.testing.assert_frame_equal(back.datasets["VS"].reset_index(drop=True), before.reset_index(drop=True))
