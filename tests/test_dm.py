"""DM's reference end dates (RFENDTC, RFPENDTC), the unplanned actual arm (ACTARMUD) and race and
ethnicity where the site records none, on tests/data/mini-r4.json (rs1 in arm MNC, period end
2022-06-20; rs2 a screen failure, period end 2021-06-15)."""

import json

import pytest
from conftest import MINI
from lxml import etree

from tcim_interop import to_fhir, to_sdtm

US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition/"
OMB = "urn:oid:2.16.840.1.113883.6.238"
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}


def _doc() -> dict:
    return json.loads(MINI.read_text(encoding="utf-8"))


def _res(doc: dict, rid: str) -> dict:
    return next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == rid)


def _dm(doc: dict, tmp_path=None):
    result = to_sdtm([doc], tmp_path)
    return result.datasets["DM"].set_index("SUBJID"), result


def test_rfendtc_is_the_end_of_participation_not_the_last_dose():
    dm, _ = _dm(_doc())
    assert dm.loc["001", "RFENDTC"] == "2022-06-20"  # period.end, a year after the injection
    assert dm.loc["001", "RFXENDTC"] < "2022"
    assert dm.loc["002", "RFENDTC"] is None  # screen failure: no reference period (SDTMIG 3.4)


def test_rfpendtc_is_period_end_unless_a_record_is_later():
    dm, _ = _dm(_doc())
    assert dm.loc["001", "RFPENDTC"] == "2022-06-20"
    # the screen failure's period ended 2021-06-15; his death (DTHDTC) is the last date known of him
    assert dm.loc["002", "DTHDTC"] == "2022-03-04" and dm.loc["002", "RFPENDTC"] == "2022-03-04"
    doc = _doc()
    _res(doc, "ae2")["date"] = "2022-07-03"  # an event reported after the last visit
    dm, _ = _dm(doc)
    assert dm.loc["001", "RFENDTC"] == "2022-06-20"
    assert dm.loc["001", "RFPENDTC"] == "2022-07-03"


def test_a_record_the_same_day_as_period_end_does_not_move_rfpendtc():
    doc = _doc()
    _res(doc, "ae2")["date"] = "2022-06-20T16:30:00+02:00"
    dm, _ = _dm(doc)
    assert dm.loc["001", "RFPENDTC"] == "2022-06-20"


def test_without_period_end_rfendtc_is_the_latest_record():
    doc = _doc()
    del _res(doc, "rs1")["period"]["end"]
    _res(doc, "ae2")["date"] = "2022-08-09"
    dm, _ = _dm(doc)
    assert dm.loc["001", "RFENDTC"] == "2022-08-09"
    assert dm.loc["001", "RFPENDTC"] == "2022-08-09"


def test_an_actual_arm_the_study_does_not_plan_is_unplanned_treatment(tmp_path):
    doc = _doc()
    _res(doc, "rs1")["actualArm"] = "MNC BOTH SIDES"
    dm, result = _dm(doc, tmp_path / "sdtm")
    row = dm.loc["001"]
    assert (row["ARMCD"], row["ACTARMCD"], row["ACTARM"]) == ("MNC", None, None)
    assert row["ARMNRS"] == "UNPLANNED TREATMENT"
    assert row["ACTARMUD"] == "MNC BOTH SIDES"
    assert dm.loc["002", "ACTARMUD"] is None
    assert [f.code for f in result.report.findings if f.variable == "ACTARMCD"] == ["ARM_UNPLANNED"]
    assert not result.report.errors
    for version in ("R4", "R5"):
        back = to_fhir(tmp_path / "sdtm", fhir_version=version)  # proves the round trip, cell for cell
        assert not back.report.errors, version
        subject = next(r for r in back.resources if r["resourceType"] == "ResearchSubject"  # SUBJID: official
                       and any(i.get("use") == "official" and i["value"] == "001" for i in r["identifier"]))
        if version == "R4":
            assert subject["actualArm"] == "MNC BOTH SIDES"


def test_actarmud_empty_when_the_actual_arm_is_planned():
    dm, _ = _dm(_doc())
    assert dm["ACTARMUD"].isna().all() and dm.loc["001", "ARMNRS"] is None


def _origin_and_comment(define_path, name: str) -> tuple[str, str]:
    tree = etree.parse(str(define_path))
    item = tree.find(f".//odm:ItemDef[@OID='IT.DM.{name}']", NS)
    origin = item.find("def:Origin", NS).get("Type")
    oid = item.get(f"{{{NS['def']}}}CommentOID")
    text = tree.findtext(f".//def:CommentDef[@OID='{oid}']//odm:TranslatedText", namespaces=NS) if oid else ""
    return origin, text


@pytest.mark.parametrize("name", ["RACE", "ETHNIC"])
def test_race_and_ethnicity_not_collected_are_said_so_in_define(tmp_path, name):
    dm, _ = _dm(_doc(), tmp_path)
    assert dm[name].isna().all()
    origin, comment = _origin_and_comment(tmp_path / "define.xml", name)
    assert origin == "Not Available" and comment.startswith("Not collected: ")


def test_race_and_ethnicity_read_where_sent(tmp_path):
    doc = _doc()
    _res(doc, "p1")["extension"] = [
        {"url": US_CORE + "us-core-race", "extension": [
            {"url": "ombCategory", "valueCoding": {"system": OMB, "code": "2106-3", "display": "White"}}]},
        {"url": US_CORE + "us-core-ethnicity", "extension": [
            {"url": "ombCategory", "valueCoding": {"system": OMB, "code": "2186-5"}}]}]
    dm, _ = _dm(doc, tmp_path)
    assert (dm.loc["001", "RACE"], dm.loc["001", "ETHNIC"]) == ("WHITE", "NOT HISPANIC OR LATINO")
    for name in ("RACE", "ETHNIC"):
        origin, comment = _origin_and_comment(tmp_path / "define.xml", name)
        assert origin == "Collected" and not comment.startswith("Not collected")


def _age(oid: str, patient: str, value, unit: str, when: str | None = None, code: str = "30525-0") -> dict:
    return {"fullUrl": f"urn:uuid:age-{oid}", "resource": {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": "Age"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit},
        **({"effectiveDateTime": when} if when else {})}}


def test_a_hospitals_age_observation_gives_age_ageu_and_dmdtc(tmp_path):
    """The earliest age Observation of the subject wins over the birth date; DMDY derives from DMDTC; the
    one read is converted (it feeds DM), a later one is out of scope, and the counts add up."""
    doc = _doc()
    baseline = _dm(doc)[0]
    doc["entry"] += [_age("age-later", "p1", 62, "a", "2022-05-01"), _age("age1", "p1", 700, "mo", "2021-05-03")]
    dm, result = _dm(doc, tmp_path / "sdtm")
    assert (dm.loc["001", "AGE"], dm.loc["001", "AGEU"], dm.loc["001", "DMDTC"]) == (700.0, "MONTHS", "2021-05-03")
    rfstdtc = dm.loc["001", "RFSTDTC"]
    assert rfstdtc > "2021-05-03" and dm.loc["001", "DMDY"] < 0  # before day 1: no day 0
    assert (dm.loc["002", "AGE"], dm.loc["002", "AGEU"]) == (baseline.loc["002", "AGE"], "YEARS")  # birth date
    assert dm.loc["002", "DMDTC"] is None
    outcome = {d.resource: d.outcome for d in result.report.dispositions}
    assert (outcome["Observation/age1"], outcome["Observation/age-later"]) == ("converted", "out_of_scope")
    counts = result.report.counts()
    assert counts["input"] == len(doc["entry"]) == counts["converted"] + counts["rejected"] + counts["out_of_scope"]
    assert not result.report.errors
    for version in ("R4", "R5"):  # and back: AGE, AGEU, DMDTC in an age Observation, cell for cell
        back = to_fhir(tmp_path / "sdtm", fhir_version=version)
        assert not back.report.errors, version
        ages = [r for r in back.resources if r["resourceType"] == "Observation"
                and r["code"]["coding"][0]["code"] == "30525-0"]
        assert [(a["valueQuantity"]["value"], a["valueQuantity"]["code"], a.get("effectiveDateTime")) for a in ages] \
            == [(700, "mo", "2021-05-03"), (baseline.loc["002", "AGE"], "a", None)]  # BRTHDTC: the year only


def test_without_age_observation_dm_has_no_dmdtc():
    dm, _ = _dm(_doc())
    assert "DMDTC" not in dm.columns and "DMDY" not in dm.columns


def test_an_age_observation_in_ndjson_with_a_local_code_through_a_concept_map(tmp_path):
    """NDJSON (lines read again, only those holding a code that can select one) and a hospital's own code
    that a ConceptMap of the site folder maps to LOINC 30525-0; one entered in error is not read."""
    doc = _doc()
    local = _age("age1", "p1", 57, "a", "2021-05-03", code="EDAD")
    local["resource"]["code"]["coding"][0]["system"] = "http://hospital.example.org/obs"
    wrong = _age("age0", "p1", 99, "a", "2020-01-01")
    wrong["resource"]["status"] = "entered-in-error"
    lines = [e["resource"] for e in doc["entry"]] + [wrong["resource"], local["resource"]]
    (tmp_path / "in.ndjson").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    site = tmp_path / "site"
    site.mkdir()
    (site / "ages.json").write_text(json.dumps({
        "resourceType": "ConceptMap", "id": "ages", "status": "active", "group": [{
            "source": "http://hospital.example.org/obs", "target": "http://loinc.org",
            "element": [{"code": "EDAD", "target": [{"code": "30525-0", "equivalence": "equivalent"}]}]}]}))
    result = to_sdtm([tmp_path / "in.ndjson"], site=site)
    dm = result.datasets["DM"].set_index("SUBJID")
    assert (dm.loc["001", "AGE"], dm.loc["001", "AGEU"], dm.loc["001", "DMDTC"]) == (57.0, "YEARS", "2021-05-03")
    outcome = {d.resource: d.outcome for d in result.report.dispositions}
    assert (outcome["Observation/age1"], outcome["Observation/age0"]) == ("converted", "out_of_scope")
    without = to_sdtm([tmp_path / "in.ndjson"]).datasets["DM"].set_index("SUBJID")  # no map: not an age
    assert "DMDTC" not in without.columns and without.loc["001", "AGE"] == 59.0  # the birth date
