"""SV, Subject Visits (mappings/sv.yaml): one record per subject per visit, from the Encounters that are
study visits (a visit code, or a record pointing at them); VISITNUM/VISIT/VISITDY told as for every
other domain; a visit sent twice is one record (first start to last end); unplanned visits with
SVUPDES; other Encounters out of scope; to-fhir gives one Encounter per SV record and back."""

import copy
import json
import shutil
from collections import Counter, defaultdict

import pytest
import yaml
from conftest import BACK, EXAMPLE, MINI, ROOT, need_external, read_json
from test_to_fhir import compare_datasets
from test_visits import add_encounter, by_id, on_day

from tcim_interop import read_sdtm, to_fhir, to_sdtm
from tcim_interop.errors import SpecError
from tcim_interop.fhir.extensions import read_records
from tcim_interop.mapping_spec.load import load_mapping_set
from tcim_interop.sdtm.dates import study_day, to_iso8601

VISIT_SYSTEM = "http://tcim-interop.org/fhir/CodeSystem/visit"


def records(result, name: str) -> list[dict]:
    return result.metadata[name].frame.to_dict("records")


def test_example_sv_is_one_record_per_subject_and_visit_code(example_conversion, mappings):
    result, _ = example_conversion
    doc = read_json(EXAMPLE)
    encounters = [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Encounter"]
    # what the input says: per patient and visit code, the earliest start and the latest end
    spans: dict[tuple, list] = defaultdict(list)
    for enc in encounters:
        code = enc["type"][0]["coding"][0]["code"]
        spans[(enc["subject"]["reference"], code)].append(enc["period"])
    sv = records(result, "SV")
    assert len(sv) == len(spans) < len(encounters)  # the repeated baselines are one visit each
    assert Counter((r["USUBJID"], r["VISITNUM"]) for r in sv).most_common(1)[0][1] == 1  # SV assumption 2
    days = {float(v["visitnum"]): v["day"] for v in mappings.study["visits"]}
    starts = Counter(min(to_iso8601(p["start"]) for p in ps) for ps in spans.values())
    ends = Counter(max(to_iso8601(p["end"]) for p in ps) for ps in spans.values())
    assert Counter(r["SVSTDTC"] for r in sv) == starts and Counter(r["SVENDTC"] for r in sv) == ends
    rfst = dict(zip(result.metadata["DM"].frame["USUBJID"], result.metadata["DM"].frame["RFSTDTC"], strict=True))
    for r in sv:
        assert r["VISITDY"] == days[r["VISITNUM"]] and r["SVUPDES"] is None
        assert r["SVPRESP"] == r["SVOCCUR"] == "Y"  # planned visits that took place
        want = study_day(r["SVSTDTC"], rfst[r["USUBJID"]])
        assert (r["SVSTDY"] if r["SVSTDY"] == r["SVSTDY"] else None) == want
    # every Encounter is converted now, and the accounting adds up
    counts = result.report.counts()["by_resource_type"]["Encounter"]
    assert counts == {"input": len(encounters), "converted": len(encounters), "rejected": 0, "out_of_scope": 0}
    merged = [f for f in result.report.findings if f.code == "RECORDS_MERGED"]
    assert len(merged) == len(encounters) - len(spans)


def test_sv_and_xm_agree_on_every_visit(example_conversion):
    result, _ = example_conversion
    sv = {(r["USUBJID"], r["VISITNUM"]) for r in records(result, "SV")}
    xm = {(r["USUBJID"], r["VISITNUM"]) for r in records(result, "XM") if r["VISITNUM"] == r["VISITNUM"]}
    assert xm and xm <= sv


def _with_unplanned(doc: dict) -> dict:
    """The mini bundle with a hospital Encounter on day 50 (outside every window: unplanned), giving a
    reason and a MUNE measure; another the study never points at; and a cancelled study visit."""
    add_encounter(doc, "h-50", 50)
    by_id(doc, "h-50")["reasonCode"] = [{"text": "Control de evolucion tras caida"}]
    doc["entry"].append({"resource": {
        "resourceType": "Encounter", "id": "gp-1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"}, "period": {"start": f"{on_day(60)}T09:00:00+02:00"}}})
    cancelled = copy.deepcopy(by_id(doc, "e1-DAY30"))
    cancelled.update(id="e1-DAY90", status="cancelled",
                     type=[{"coding": [{"system": VISIT_SYSTEM, "code": "DAY90"}]}])
    doc["entry"].append({"resource": cancelled})
    return doc


@pytest.fixture(scope="module")
def unplanned(tmp_path_factory):
    doc = _with_unplanned(json.loads(MINI.read_text()))
    out = tmp_path_factory.mktemp("sv") / "sdtm"
    return to_sdtm([doc], out), out


def test_an_unplanned_visit_has_its_number_its_reason_and_no_planned_day(unplanned):
    result, _ = unplanned
    sv = {r["VISITNUM"]: r for r in records(result, "SV") if r["USUBJID"].endswith("001")}
    assert sorted(sv) == [2.0, 3.0, 4.0, 4.01]
    visit = sv[4.01]
    assert visit["VISIT"] == "UNSCHEDULED 4.01" and visit["VISITDY"] != visit["VISITDY"]  # NaN: no planned day
    assert visit["SVPRESP"] is None and visit["SVOCCUR"] is None and sv[4.0]["SVPRESP"] == sv[4.0]["SVOCCUR"] == "Y"
    assert visit["SVUPDES"] == "Control de evolucion tras caida"
    assert visit["SVSTDTC"] == f"{on_day(50)}T09:00:00" and visit["SVSTDY"] == 50
    xm = [r for r in records(result, "XM") if r["VISITNUM"] == 4.01]
    assert len(xm) == 1  # the measure made at it has the same visit
    outcome = result.report.to_dict()
    assert {"resource_type": "Encounter", "reason": "not a study visit: no visit code, and no record of the "
            "study points at it", "count": 1} in outcome["out_of_scope"]
    assert any(o["resource_type"] == "Encounter" and o["reason"].startswith("status 'cancelled'")
               for o in outcome["out_of_scope"])


def test_sv_goes_to_fhir_as_one_encounter_per_visit_and_comes_back(unplanned, tmp_path):
    _, package = unplanned
    for version in ("R4", "R5"):
        fhir = to_fhir(package, tmp_path / f"{version}.json", fhir_version=version)
        assert not fhir.report.errors, fhir.report.errors[:3]
        encounters = [r for r in fhir.resources if r["resourceType"] == "Encounter"]
        sv = read_sdtm(package)["SV"].frame
        assert len(encounters) == len(sv)
        planned = [e for e in encounters if any(t.get("coding") for t in e.get("type", []))]
        assert len(planned) == int(sv["VISITDY"].notna().sum())
        # the MUNE Observations point at their visit's Encounter, the same resource SV gave
        ids = {f"Encounter/{e['id']}" for e in encounters}
        pointed = {o["encounter"]["reference"] for o in fhir.resources
                   if o["resourceType"] == "Observation" and "encounter" in o}
        assert pointed and pointed <= ids
        period = "period" if version == "R4" else "actualPeriod"  # R5 renamed it
        starts = sorted(e[period]["start"][:19] for e in encounters)
        assert starts == sorted(sv["SVSTDTC"])
        assert not to_sdtm([tmp_path / f"{version}.json"], tmp_path / f"back-{version}", fhir_version=version).report.errors
        compared, equal, diffs = compare_datasets({"SV": read_sdtm(package)["SV"]},
                                                  read_sdtm(tmp_path / f"back-{version}"))
        assert diffs == [] and compared == equal > 0


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_record_at_an_unplanned_visit_points_at_that_visit_encounter(unplanned, version):
    """One Encounter per visit occurrence: the MUNE measure made at UNSCHEDULED 4.01 references the
    Encounter SV's record of 4.01 became, dated by SVSTDTC, its visit named in words (no visit code)."""
    _, package = unplanned
    datasets = read_sdtm(package)
    sv, xm = datasets["SV"].frame, datasets["XM"].frame
    fhir = to_fhir(datasets, fhir_version=version)
    assert not fhir.report.errors, fhir.report.errors[:3]
    by_record = {(d, i): r for r in fhir.resources for d, i, _ in read_records(r)}
    measure = by_record[("XM", int(xm.index[xm["VISITNUM"] == 4.01][0]))]
    visit_row = int(sv.index[sv["VISITNUM"] == 4.01][0])
    encounter = by_record[("SV", visit_row)]
    assert measure["encounter"] == {"reference": f"Encounter/{encounter['id']}"}
    assert encounter["type"] == [{"text": "UNSCHEDULED 4.01"}]
    period = encounter["period" if version == "R4" else "actualPeriod"]
    assert to_iso8601(period["start"]) == sv.loc[visit_row, "SVSTDTC"]


def test_the_pilot_sv_comes_back_cell_for_cell(tmp_path):
    src = need_external("cdiscpilot01")
    for name in ("dm", "sv"):
        (tmp_path / "pilot").mkdir(exist_ok=True)
        (tmp_path / "pilot" / f"{name}.xpt").write_bytes((src / f"{name}.xpt").read_bytes())
    fhir = to_fhir(tmp_path / "pilot", tmp_path / "pilot.json")
    assert not fhir.report.errors, fhir.report.errors[:3]
    original = read_sdtm(tmp_path / "pilot")
    assert sum(r["resourceType"] == "Encounter" for r in fhir.resources) == len(original["SV"])
    to_sdtm([tmp_path / "pilot.json"], tmp_path / "back", **BACK)
    compared, equal, diffs = compare_datasets({"SV": original["SV"]}, read_sdtm(tmp_path / "back"))
    assert diffs == [] and compared == equal > 20_000


def test_merge_names_variables_of_the_spec(tmp_path):
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    spec = yaml.safe_load((folder / "sv.yaml").read_text())
    spec["merge"]["latest"] = ["SVEND"]
    (folder / "sv.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match="merge: 'SVEND' is not a variable of SV"):
        load_mapping_set(folder)
