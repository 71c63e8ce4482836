"""Visits of a hospital's Encounters (mapping/visits.py, row algorithm `visit`): an Encounter typed in a
hospital's code system, or not at all, takes the visit whose study.yaml window holds its study day; a
ConceptMap of the site folder can name its visit instead; outside every window, or a planned visit the
subject had already, is an unplanned visit (N.01, N.02 ...); the round trip through to-fhir gives every
VISITNUM back. The mini bundle's subject 001 has RFSTDTC 2021-06-01 (study day 1)."""

import copy
import json
import shutil
from datetime import date, timedelta

import pytest
from conftest import MINI, ROOT
from test_site import concept_map, site_folder
from test_to_fhir import compare_datasets

from tcim_interop import to_fhir, to_sdtm
from tcim_interop.errors import SpecError
from tcim_interop.fhir.extensions import read_record
from tcim_interop.mapping_spec.load import load_mapping_set

HOSPITAL = "http://hospital.example.org/fhir/CodeSystem/encounter-type"
VISIT_SYSTEM = "http://tcim-interop.org/fhir/CodeSystem/visit"
DAY1 = date(2021, 6, 1)


def on_day(day: int) -> str:
    """The date of a study day of subject 001 (no day 0)."""
    return (DAY1 + timedelta(day - 1 if day > 0 else day)).isoformat()


def resources(doc: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == kind]


def by_id(doc: dict, rid: str) -> dict:
    return next(e["resource"] for e in doc["entry"] if e["resource"].get("id") == rid)


def hospital_bundle(code: str | None = "CONSULTA") -> dict:
    """The mini bundle with its Encounters typed by the hospital (code None: no type at all)."""
    doc = json.loads(MINI.read_text())
    for enc in resources(doc, "Encounter"):
        if code is None:
            enc.pop("type")
        else:
            enc["type"] = [{"coding": [{"system": HOSPITAL, "code": code}], "text": "Consulta externa"}]
    return doc


def add_encounter(doc: dict, eid: str, day: int, observations: int = 1, code: str = "CONSULTA") -> list[str]:
    """A hospital Encounter of subject 001 on a study day, and MUNE Observations made at it."""
    doc["entry"].append({"resource": {
        "resourceType": "Encounter", "id": eid, "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"coding": [{"system": HOSPITAL, "code": code}]}], "subject": {"reference": "Patient/p1"},
        "period": {"start": f"{on_day(day)}T09:00:00+02:00"}}})
    ids = []
    for k in range(observations):
        obs = copy.deepcopy(by_id(doc, "o1"))
        obs.update(id=f"{eid}-o{k}", encounter={"reference": f"Encounter/{eid}"}, effectiveDateTime=on_day(day))
        obs["code"]["coding"][0]["code"] = ("MUNIX", "MUSIX")[k % 2]
        doc["entry"].append({"resource": obs})
        ids.append(f"Observation/{obs['id']}")
    return ids


def visits(result, domain: str = "XM") -> dict[str, tuple]:
    """(VISITNUM, VISIT) of each record, by its source resource."""
    ds = result.metadata[domain]
    return {key: (None if vn != vn else vn, v) for key, vn, v in
            zip(ds.sources, ds.frame["VISITNUM"], ds.frame["VISIT"], strict=True)}


def codes(result) -> list[str]:
    return [f.code for f in result.report.findings if f.code.startswith("VISIT")]


@pytest.fixture(scope="module")
def sponsor():
    """The mini bundle as the sponsor codes it: every Encounter typed in the visit code system."""
    return to_sdtm([MINI], fast=True)


@pytest.mark.parametrize("code", ["CONSULTA", None], ids=["hospital type", "no type"])
def test_encounters_without_a_visit_code_take_the_visit_of_their_window(sponsor, code):
    result = to_sdtm([hospital_bundle(code)], fast=True)
    for name in ("DM", "EX", "VS", "XM"):
        assert result.datasets[name].equals(sponsor.datasets[name]), name
    assert visits(result)["Observation/o3"] == (4.0, "DAY 30")
    assert visits(result, "EX")["MedicationAdministration/ma1"] == (3.0, "INJECTION")
    assert codes(result) == ["VISIT_BY_DATE"] * 3  # one per Encounter, not one per record
    assert "CT_UNMAPPED" not in {f.code for f in result.report.findings}
    outcome = {d.resource: d.outcome for d in result.report.dispositions}
    assert outcome["Encounter/e1-DAY30"] == "converted"


@pytest.mark.parametrize("day, visit", [
    (22, (3.01, "UNSCHEDULED 3.01")), (23, (4.0, "DAY 30")), (37, (4.0, "DAY 30")), (38, (3.01, "UNSCHEDULED 3.01")),
    (-3, (2.01, "UNSCHEDULED 2.01")), (-15, (1.0, "SCREENING")), (-43, (0.01, "UNSCHEDULED 0.01")),
])
def test_a_window_counts_calendar_days_around_the_planned_day(day, visit):
    """DAY 30, window [-7, 7]: study days 23 to 37. Day -3 is in BASELINE's window, which the Encounter
    on day -8 already is. Before every planned visit: 0.01."""
    doc = hospital_bundle()
    by_id(doc, "e1-DAY30")["period"]["start"] = on_day(day)
    assert visits(to_sdtm([doc], fast=True))["Observation/o3"] == visit


def test_unplanned_visits_are_numbered_in_date_order_after_the_last_planned_one():
    doc = hospital_bundle()
    late = add_encounter(doc, "a-late", 12)  # ids sort against the dates: the numbers follow the dates
    early = add_encounter(doc, "z-early", 5, observations=2)
    after_day30 = add_encounter(doc, "m-after", 50)
    got = visits(to_sdtm([doc], fast=True))
    assert [got[k] for k in early] == [(3.01, "UNSCHEDULED 3.01")] * 2  # one Encounter, one VISITNUM
    assert got[late[0]] == (3.02, "UNSCHEDULED 3.02")
    assert got[after_day30[0]] == (4.01, "UNSCHEDULED 4.01")


def test_two_encounters_in_one_window_are_two_visits():
    """Two baselines on different dates: the first is BASELINE, the second an unplanned visit after it."""
    doc = hospital_bundle()
    second = add_encounter(doc, "e1-BASELINE-again", -4)
    result = to_sdtm([doc], fast=True)
    got = visits(result)
    assert got["Observation/o2"] == (2.0, "BASELINE")
    assert got[second[0]] == (2.01, "UNSCHEDULED 2.01")
    xm = result.datasets["XM"]
    assert not xm.duplicated(["USUBJID", "XMTESTCD", "XMLOC", "XMLAT", "VISITNUM", "XMDTC"]).any()
    message = next(f.message for f in result.report.findings if f.code == "VISIT_BY_DATE"
                   and f.source == second[0])
    assert "in the window of BASELINE, which Encounter/e1-BASELINE is already" in message


def test_a_visit_code_keeps_its_visit_and_takes_it_from_the_window():
    """A coded Encounter is its visit wherever its date falls; an uncoded one in the same window is unplanned."""
    doc = json.loads(MINI.read_text())
    by_id(doc, "e1-DAY30")["period"]["start"] = on_day(45)  # outside every window, coded DAY30
    second = add_encounter(doc, "e-other", 31)  # DAY 30's window, no code
    got = visits(to_sdtm([doc], fast=True))
    assert got["Observation/o3"] == (4.0, "DAY 30")
    assert got[second[0]] == (3.01, "UNSCHEDULED 3.01")


def test_the_same_encounter_gives_the_same_visit_in_every_domain():
    doc = hospital_bundle()
    xm = add_encounter(doc, "e-extra", 10)
    ma = copy.deepcopy(by_id(doc, "ma1"))
    ma.update(id="ma-extra", context={"reference": "Encounter/e-extra"}, effectiveDateTime=f"{on_day(10)}T10:00:00+02:00")
    doc["entry"].append({"resource": ma})
    result = to_sdtm([doc], fast=True)
    assert visits(result)[xm[0]] == visits(result, "EX")["MedicationAdministration/ma-extra"] == (3.01, "UNSCHEDULED 3.01")
    assert visits(result, "EX")["MedicationAdministration/ma1"] == (3.0, "INJECTION")


def test_records_with_no_encounter_take_the_visit_of_their_own_date():
    doc = hospital_bundle()
    for ma in resources(doc, "MedicationAdministration"):
        ma.pop("context", None)
    by_id(doc, "o4").pop("encounter")  # on the day of Encounter e1-BASELINE: that visit
    obs = by_id(doc, "o3")
    obs.pop("encounter")
    obs["effectiveDateTime"] = on_day(60)  # no Encounter on that day: an unplanned visit of its own
    result = to_sdtm([doc], fast=True)
    assert set(visits(result, "EX").values()) == {(3.0, "INJECTION")}  # day 1
    assert visits(result)["Observation/o4"] == (2.0, "BASELINE")
    assert visits(result)["Observation/o3"] == (3.01, "UNSCHEDULED 3.01")
    assert result.datasets["XM"]["VISITNUM"].notna().all()


def test_a_subject_never_treated_has_no_visit_by_date():
    """No RFSTDTC, no study day: Encounters without a visit code keep no visit, with a warning; a coded
    Encounter is its visit, and so are the records with no Encounter on its day."""
    doc = hospital_bundle()
    doc["entry"] = [e for e in doc["entry"] if e["resource"]["resourceType"] != "MedicationAdministration"]
    by_id(doc, "e1-DAY30")["type"] = [{"coding": [{"system": VISIT_SYSTEM, "code": "DAY30"}]}]
    extra = copy.deepcopy(by_id(doc, "o3"))
    extra.update(id="o3-same-day")
    extra.pop("encounter")
    extra["code"]["coding"][0]["code"] = "MUSIX"
    doc["entry"].append({"resource": extra})
    result = to_sdtm([doc], fast=True)
    got = visits(result)
    assert got["Observation/o3"] == got["Observation/o3-same-day"] == (4.0, "DAY 30")
    assert {got[f"Observation/{o}"] for o in ("o1", "o2", "o4")} == {(None, None)}
    found = [f for f in result.report.findings if f.code == "VISIT_NO_REFERENCE_DATE"]
    # one warning per Encounter, on the first record that meets it: the weight (VS comes before XM)
    assert got["Observation/o1"] == visits(result, "VS")["Observation/wt"] == (None, None)
    assert len(found) == 1 and found[0].severity == "warning" and found[0].source == "Observation/wt"
    assert "RFSTDTC" in found[0].hint and "ConceptMap" in found[0].hint
    assert found[0].usubjid == "TCIM-ELAII-01-001"


def test_an_encounter_with_no_date_takes_its_records_date_or_none():
    doc = hospital_bundle()
    del by_id(doc, "e1-DAY30")["period"]
    assert visits(to_sdtm([doc], fast=True))["Observation/o3"] == (4.0, "DAY 30")  # o3 on day 30
    del by_id(doc, "o3")["effectiveDateTime"]
    result = to_sdtm([doc], fast=True)
    assert visits(result)["Observation/o3"] == (None, None)
    assert "VISIT_NO_DATE" in codes(result)


@pytest.mark.parametrize("r5", [False, True], ids=["R4 equivalence", "R5 relationship"])
def test_a_concept_map_names_the_visit_of_a_hospital_encounter_type(tmp_path, r5):
    """Mapped to DAY30, the Encounter is that visit even outside its window: the code wins over the date."""
    doc = hospital_bundle()
    by_id(doc, "e1-DAY30")["type"][0]["coding"][0]["code"] = "REV-1M"
    by_id(doc, "e1-DAY30")["period"]["start"] = on_day(45)
    site = site_folder(tmp_path, [concept_map(HOSPITAL, VISIT_SYSTEM, [("REV-1M", "DAY30", "equivalent")], r5)])
    result = to_sdtm([doc], fast=True, site=site)
    assert visits(result)["Observation/o3"] == (4.0, "DAY 30")
    assert codes(result) == ["VISIT_BY_DATE"] * 2  # the two other Encounters, by date
    without = to_sdtm([doc], fast=True)
    assert visits(without)["Observation/o3"] == (3.01, "UNSCHEDULED 3.01")


def test_a_concept_map_to_a_narrower_visit_is_not_used(tmp_path):
    doc = hospital_bundle()
    by_id(doc, "e1-DAY30")["type"][0]["coding"][0]["code"] = "REV"
    by_id(doc, "e1-DAY30")["period"]["start"] = on_day(45)
    site = site_folder(tmp_path, [concept_map(HOSPITAL, VISIT_SYSTEM, [("REV", "DAY30", "narrower")])])
    assert visits(to_sdtm([doc], fast=True, site=site))["Observation/o3"] == (3.01, "UNSCHEDULED 3.01")


def test_without_windows_an_encounter_without_a_visit_code_has_no_visit(tmp_path):
    mdir = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mdir)
    study = mdir / "study.yaml"
    study.write_text("\n".join(line.split(", window:")[0] + "}" if line.startswith("  - {code:") else line
                               for line in study.read_text().splitlines()) + "\n")
    assert load_mapping_set(mdir).visit_windows == []
    result = to_sdtm([hospital_bundle()], fast=True, mappings=mdir)
    assert result.datasets["XM"]["VISITNUM"].isna().all()
    assert codes(result) == [] and "CT_UNMAPPED" in {f.code for f in result.report.findings}


# --- study.yaml windows, checked when the specs load ---------------------------------------------------
@pytest.fixture
def study_yaml(tmp_path):
    mdir = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mdir)
    return mdir / "study.yaml"


def replace(path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} is not in study.yaml: the test edits nothing"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("old, new, message", [
    ("day: 30, window: [-7, 7]", "day: 30, window: [-7, 50]",
     r"study\.yaml: visits: the windows of DAY30 and DAY90 overlap"),
    ("day: -7, window: [-7, 6]", "day: -7, window: [-7, 7]",  # day -7 + 7 is day 1: INJECTION's
     r"study\.yaml: visits: the windows of BASELINE and INJECTION overlap"),
    ("window: [-7, 7]", "window: [7, -7]", r"study\.yaml: visits: DAY30: window must be \[before, after\]"),
    ("window: [-7, 7]", "window: 7", r"study\.yaml: visits: DAY30: window must be"),
    ("day: 30, window", "window", r"study\.yaml: visits: DAY30: a window needs the planned study day"),
    ("visitnum: 4,", "visitnum: 3.5,", r"study\.yaml: visits: with windows, every visitnum must be a distinct whole"),
    ("visitnum: 4,", "visitnum: 3,", r"study\.yaml: visits: with windows, every visitnum must be a distinct whole"),
    ("window: [-7, 7]", "windows: [-7, 7]", r"study\.yaml: visits\[3\]: unknown key 'windows'"),
])
def test_bad_windows_are_refused_when_the_specs_load(study_yaml, old, new, message):
    replace(study_yaml, old, new)
    with pytest.raises(SpecError, match=message):
        load_mapping_set(study_yaml.parent)


def test_the_windows_of_study_yaml_tell_these_days(mappings):
    told = {day: (mappings.visit_on(day) or {}).get("code") for day in (-43, -42, -15, -14, -1, 1, 2, 22, 23, 390, 391)}
    assert told == {-43: None, -42: "SCREENING", -15: "SCREENING", -14: "BASELINE", -1: "BASELINE", 1: "INJECTION",
                    2: None, 22: None, 23: "DAY30", 390: "DAY360", 391: None}


# --- the round trip ------------------------------------------------------------------------------------
def test_visits_by_date_come_back_exactly_through_fhir():
    """SDTM with planned and unplanned visits -> FHIR -> SDTM: every cell back. A planned visit is an
    Encounter with its visit code; an unplanned visit's is SV's Encounter, named in words only, and its
    VISITNUM travels in the record's sdtm-record extension; the records to-fhir made are not given visits by date again."""
    doc = hospital_bundle()
    add_encounter(doc, "e1-BASELINE-again", -4, observations=2)
    add_encounter(doc, "e-late", 50)
    first = to_sdtm([doc], fast=True)
    assert {2.01, 4.01} <= set(first.datasets["XM"]["VISITNUM"])
    fhir = to_fhir(first.metadata)
    assert not fhir.report.errors, fhir.report.errors[:3]
    encounters = [r for r in fhir.resources if r["resourceType"] == "Encounter"]
    coded = {c["code"] for r in encounters for t in r.get("type", []) for c in t.get("coding", [])}
    assert coded == {"BASELINE", "INJECTION", "DAY30"}
    assert len(encounters) == len(first.datasets["SV"]) == len(coded) + 2  # and SV's two unplanned visits, uncoded
    unplanned = {f"Encounter/{r['id']}" for r in encounters if r.get("type") == [{"text": "UNSCHEDULED 2.01"}]}
    carried = [r for r in fhir.resources if r["resourceType"] == "Observation" and "2.01" in json.dumps(r)]
    assert len(carried) == 2 and {r["encounter"]["reference"] for r in carried} == unplanned and len(unplanned) == 1
    back = to_sdtm([fhir.resources], fast=True)
    compared, equal, diffs = compare_datasets(first.metadata, back.metadata)
    assert diffs == [] and compared == equal
    assert codes(back) == []


def test_records_that_to_fhir_made_are_not_given_a_visit_by_date(sponsor):
    """An EX record with no visit has no Encounter in FHIR; read back, it keeps no visit without the
    sdtm-record extension having to say so: the dates of what to-fhir made tell no visits."""
    datasets = copy.deepcopy(sponsor.metadata)
    ex = datasets["EX"].frame
    ex.loc[0, "VISITNUM"], ex.loc[0, "VISIT"] = float("nan"), None
    fhir = to_fhir(datasets)
    assert not fhir.report.errors, fhir.report.errors[:3]
    made = next(r for r in fhir.resources if r.get("meta", {}).get("source") == "tcim-interop:sdtm/ex.xpt#row=1")
    assert "context" not in made and read_record(made)[2] == {}
    back = to_sdtm([fhir.resources], fast=True)
    assert compare_datasets(datasets, back.metadata)[2] == []


def test_records_joining_a_coded_encounter_by_day_are_one_finding_per_domain():
    """A coded Encounter gives the visit; records with no Encounter on its day only join it, so the run
    says so once per domain, with their count, not once per record (nor once per Encounter)."""
    doc = json.loads(MINI.read_text())
    for rid in ("o2", "o4", "o3"):  # two on BASELINE's day, one on DAY 30's
        by_id(doc, rid).pop("encounter")
    result = to_sdtm([doc], fast=True)
    got = visits(result)
    assert got["Observation/o2"] == got["Observation/o4"] == (2.0, "BASELINE")
    assert got["Observation/o3"][1] == "DAY 30"
    told = [f for f in result.report.findings if f.code == "VISIT_BY_DATE"]
    assert [(f.domain, f.severity) for f in told] == [("XM", "info")]
    assert told[0].message.startswith("3 XM record(s) with no Encounter took the visit of their subject's coded")
