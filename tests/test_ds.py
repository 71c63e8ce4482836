"""DS (issue 16): protocol milestones and each subject's disposition event, from Consent and
ResearchSubject (R5 progress; R4 status, period and the assigned arm), the Patient's death and the
AdverseEvents that caused a discontinuation. A spec with several row sources adds rows to resources
that keep their own outcome (DM's); to-fhir gives every DS cell back from standard elements."""

from __future__ import annotations

import copy
import json
import shutil

import pandas as pd
import pytest
from conftest import DATA, PILOT_ZONE, ROOT, need_external

from tcim_interop import load_mapping_set, to_fhir, to_sdtm
from tcim_interop.errors import SpecError
from tcim_interop.fhir.extensions import read_records
from tcim_interop.mapping.disposition import PROGRESS_URL
from tcim_interop.synth import bundle, generate

MINI = json.loads((DATA / "mini-r4.json").read_text())
NCI = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
THO = "http://terminology.hl7.org/CodeSystem/"
# R4 reads the AE Clinical Research IG's extension under its R4 backport's URL and under the R5 IG's
DISCONTINUED = ("http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/caused-subject-to-discontinue-study",
                "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/caused-subject-to-discontinue-study")


def _ds(result) -> pd.DataFrame:
    return result.datasets["DS"]


def _events(ds: pd.DataFrame, usubjid: str) -> list[tuple]:
    rows = ds[ds["USUBJID"] == usubjid]
    return list(zip(rows["DSCAT"], rows["DSDECOD"], rows["DSSTDTC"], strict=True))


def _mini(change) -> dict:
    bundle = copy.deepcopy(MINI)
    by_id = {e["resource"]["id"]: e["resource"] for e in bundle["entry"]}
    change(by_id, bundle)
    return bundle


# --- the example ---------------------------------------------------------------------------------
def test_example_records_per_subject(example_conversion, mappings):
    result, _ = example_conversion
    ds, dm = _ds(result), result.datasets["DM"].set_index("USUBJID")
    assert set(ds["USUBJID"]) == set(dm.index)
    for usubjid, rows in ds.groupby("USUBJID"):
        subject = dm.loc[usubjid]
        assert rows["DSSEQ"].tolist() == list(range(1, len(rows) + 1))
        consent = rows[rows["DSDECOD"] == "INFORMED CONSENT OBTAINED"]
        assert consent["DSSTDTC"].tolist() == [subject["RFICDTC"]]
        assert (rows["DSDECOD"] == "RANDOMIZED").sum() == (1 if subject["ARMCD"] else 0)
        final = rows[rows["DSCAT"] == "DISPOSITION EVENT"]
        assert len(final) == 1  # one disposition event for the study
        decod, date = final["DSDECOD"].iloc[0], final["DSSTDTC"].iloc[0]
        assert date == subject["RFPENDTC"]
        if subject["DTHFL"] == "Y":
            assert (decod, date) == ("DEATH", subject["DTHDTC"])
        elif subject["ARMNRS"] == "SCREEN FAILURE":
            assert decod == "SCREEN FAILURE"
        else:
            assert decod == "COMPLETED"
    assert set(ds["DSCAT"]) <= set(mappings.codelists.codelists["DSCAT"].by_value)
    assert set(ds["DSDECOD"]) <= set(mappings.codelists.codelists["DSDECOD"].by_value)
    assert (ds["DSTERM"] == ds["DSDECOD"]).all()  # the example's events are codes only
    died = ds[ds["DSDECOD"] == "DEATH"]
    assert len(died) == (dm["DTHFL"] == "Y").sum() == 1


def test_study_day_of_the_disposition(example_conversion):
    result, _ = example_conversion
    ds, dm = _ds(result), result.datasets["DM"].set_index("USUBJID")
    for _, row in ds[ds["DSSTDTC"].notna()].iterrows():
        start = dm.loc[row["USUBJID"], "RFSTDTC"]
        if not start:
            assert pd.isna(row["DSSTDY"])
            continue
        days = (pd.Timestamp(row["DSSTDTC"][:10]) - pd.Timestamp(start[:10])).days
        assert row["DSSTDY"] == days + (1 if days >= 0 else 0)


def test_visit_of_the_event_is_the_visit_on_its_date(example_conversion):
    """DS VISITNUM/VISIT (an added timing variable, SDTMIG 3.4 4.1.3): the subject's visit (SV) on the
    event's date, else none: a consent at the screening visit is visit 1; an event on no visit's day
    (R4's undated RANDOMIZED, a death at home) has none, with no warning and no unscheduled visit made up."""
    result, _ = example_conversion
    ds, sv = _ds(result), result.datasets["SV"]
    on_day = {(r.USUBJID, r.SVSTDTC[:10]): (r.VISITNUM, r.VISIT) for r in sv.itertuples() if isinstance(r.SVSTDTC, str)}
    for r in ds.itertuples():
        visit = on_day.get((r.USUBJID, r.DSSTDTC[:10])) if isinstance(r.DSSTDTC, str) else None
        assert (None if pd.isna(r.VISITNUM) else (r.VISITNUM, r.VISIT)) == visit, r
    consents = ds[ds["DSDECOD"] == "INFORMED CONSENT OBTAINED"]
    assert set(consents["VISIT"]) == {"SCREENING"} and set(consents["VISITNUM"]) == {1}
    assert ds["VISITNUM"].isna().any() and not (ds["VISITNUM"] % 1).any()  # none unscheduled
    assert not [f for f in result.report.findings if f.domain == "DS" and f.code.startswith("VISIT_")
                and f.severity != "info"]


def test_resources_are_counted_once(example_conversion):
    """DS draws rows from Consents and ResearchSubjects that DM already accounts for: each resource still
    has one disposition, and the ResearchSubjects stay converted by DM."""
    report = example_conversion[0].report
    keys = [d.resource for d in report.dispositions]
    assert len(keys) == len(set(keys))
    counts = report.counts()
    assert counts["input"] == counts["converted"] + counts["rejected"] + counts["out_of_scope"] == len(keys)
    for rtype in ("Consent", "ResearchSubject", "Patient"):
        assert counts["by_resource_type"][rtype] == {"input": 100, "converted": 100, "rejected": 0, "out_of_scope": 0}
    ds = example_conversion[0].metadata["DS"]
    assert {s.split("/")[0] for s in ds.sources} == {"Consent", "ResearchSubject"}
    assert len(set(ds.sources)) == len(ds.sources)  # a ResearchSubject's rows are told apart ("#1", "#2")


# --- the round trip --------------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["R4", "R5"])
def test_round_trip_from_standard_elements(example_conversion, example_round_trip, version):
    before = example_conversion[0].datasets
    fhir, _, back = example_round_trip(version)
    assert not [f for f in fhir.report.findings if f.severity == "error"]
    carried = [(d, cells) for r in fhir.resources for d, _, cells in read_records(r) if d == "DS" and cells]
    assert carried == []  # every DS cell comes back from a standard element, none from sdtm-record
    subjects = [r for r in fhir.resources if r["resourceType"] == "ResearchSubject"]
    if version == "R5":
        states = [c["code"] for r in subjects for p in r.get("progress", []) for c in p.get("subjectState", {}).get("coding", [])]
    else:
        states = [r["status"] for r in subjects]
        assert all(e["url"] == PROGRESS_URL for r in subjects for e in r.get("extension", [])
                   if "sdtm-record" not in e["url"])
    assert sorted(set(states)) == ["ineligible", "off-study"]
    # one state per disposition event, none twice (R5 gave a screen failure its state from DM and from DS)
    assert len(states) == (before["DS"]["DSCAT"] == "DISPOSITION EVENT").sum() == len(subjects)
    back = back.datasets
    pd.testing.assert_frame_equal(back["DS"].reset_index(drop=True), before["DS"].reset_index(drop=True))
    pd.testing.assert_frame_equal(back["DM"].reset_index(drop=True), before["DM"].reset_index(drop=True))


def test_pilot_ds_comes_back_cell_for_cell(tmp_path):
    """The CDISC pilot's DS (OTHER EVENT, DSSPID, VISITNUM, DSDTC: what this trial has not) comes back
    too: what no FHIR element holds rides in the record's sdtm-record extension."""
    src = need_external("cdiscpilot01")
    pilot = tmp_path / "pilot"
    pilot.mkdir()
    for name in ("dm", "ds"):
        shutil.copy(src / f"{name}.xpt", pilot / f"{name}.xpt")
    result = to_fhir(pilot, tmp_path / "pilot.json", fhir_version="R5", timezone=PILOT_ZONE)
    assert not [f for f in result.report.findings if f.code == "ROUND_TRIP_MISMATCH"]
    back = to_sdtm([tmp_path / "pilot.json"]).datasets["DS"]
    original = pd.read_sas(src / "ds.xpt", encoding="ascii")
    assert len(back) == len(original)
    assert back["DSDECOD"].tolist() == original["DSDECOD"].tolist()
    assert back["DSSTDTC"].tolist() == original["DSSTDTC"].tolist()


# --- what a hospital sends -------------------------------------------------------------------------
def test_mini_screen_failure_and_subject_on_study():
    ds = _ds(to_sdtm([MINI]))
    assert _events(ds, "TCIM-ELAII-01-001") == [("PROTOCOL MILESTONE", "INFORMED CONSENT OBTAINED", "2021-05-10"),
                                               ("PROTOCOL MILESTONE", "RANDOMIZED", None)]  # on study: no disposition yet
    # p2 died after the screen failure ended its participation: the death is no reason for it
    assert _events(ds, "TCIM-ELAII-01-002") == [("PROTOCOL MILESTONE", "INFORMED CONSENT OBTAINED", "2021-06-01"),
                                               ("DISPOSITION EVENT", "SCREEN FAILURE", "2021-06-15")]


def test_withdrawn_subject():
    def withdraw(by_id, _):
        by_id["rs1"]["status"] = "withdrawn"

    ds = _ds(to_sdtm([_mini(withdraw)]))
    assert _events(ds, "TCIM-ELAII-01-001")[-1] == ("DISPOSITION EVENT", "WITHDRAWAL BY SUBJECT", "2022-06-20")


@pytest.mark.parametrize(("died", "expected"), [("2022-06-20", "DEATH"), ("2022-06-19", "DEATH"),
                                                 ("2022-07-01", "COMPLETED")])
def test_death_is_the_reason_when_it_ended_participation(died, expected):
    def die(by_id, _):
        by_id["rs1"]["status"] = "off-study"
        by_id["p1"]["deceasedDateTime"] = died

    result = to_sdtm([_mini(die)])
    final = _events(_ds(result), "TCIM-ELAII-01-001")[-1]
    assert final[:2] == ("DISPOSITION EVENT", expected)
    assert final[2] == "2022-06-20"  # the end of participation (period.end)


@pytest.mark.parametrize("url", DISCONTINUED)
def test_adverse_event_that_caused_the_discontinuation(url):
    def discontinue(by_id, _):
        by_id["rs1"]["status"] = "off-study"
        by_id["ae1"]["extension"] = [e for e in by_id["ae1"].get("extension", []) if e["url"] not in DISCONTINUED]
        by_id["ae1"]["extension"].append({"url": url, "valueBoolean": True})

    result = to_sdtm([_mini(discontinue)])
    assert _events(_ds(result), "TCIM-ELAII-01-001")[-1] == ("DISPOSITION EVENT", "ADVERSE EVENT", "2022-06-20")
    assert result.datasets["SUPPAE"]["QNAM"].tolist().count("AEDISCON") >= 1  # AE keeps its own record of it

    def near_miss(by_id, bundle):
        discontinue(by_id, bundle)
        by_id["ae1"]["actuality"] = "potential"  # a near miss: no adverse event, no discontinuation by one

    assert _events(_ds(to_sdtm([_mini(near_miss)])), "TCIM-ELAII-01-001")[-1][1] == "COMPLETED"


def test_refused_consent_gives_no_milestone_but_stays_accounted():
    def refuse(by_id, _):
        by_id["c1"]["status"] = "rejected"

    result = to_sdtm([_mini(refuse)])
    assert [e[1] for e in _events(_ds(result), "TCIM-ELAII-01-001")] == ["RANDOMIZED"]
    outcome = {d.resource: d.outcome for d in result.report.dispositions}
    assert outcome["Consent/c1"] == "converted"  # DM still reads it (RFICDTC)


def _r5_subject(progress: list[dict]) -> tuple[dict, str, str]:
    """A small synthetic R5 trial whose first randomized subject has this `progress`: (bundle, its
    USUBJID's SUBJID, its consent date)."""
    keep = ("ResearchStudy", "Patient", "Consent", "ResearchSubject")
    resources = [r for r in generate(2, fhir_version="R5") if r["resourceType"] in keep]
    subject = next(r for r in resources if r["resourceType"] == "ResearchSubject" and "assignedComparisonGroup" in r)
    subject["progress"] = progress
    consent = next(r for r in resources if f"Consent/{r['id']}" == subject["consent"][0]["reference"])
    return bundle(resources), subject["identifier"][0]["value"], consent["date"]


def _state(code: str, start: str, reason: dict | None = None) -> dict:
    entry = {"type": {"coding": [{"system": THO + "research-subject-state-type", "code": "Enrollment"}]},
             "subjectState": {"coding": [{"system": THO + "research-subject-state", "code": code}]}, "startDate": start}
    if reason:
        entry["reason"] = reason
    return entry


def test_r5_progress_input():
    randomized = {"type": {"coding": [{"system": THO + "research-subject-state-type", "code": "Milestone"}]},
                  "milestone": {"coding": [{"system": THO + "research-subject-milestone", "code": "Randomized"}]},
                  "startDate": "2021-05-20"}
    lost = {"coding": [{"system": NCI, "code": "C48227"}], "text": "No contesta al teléfono"}
    trial, subjid, consented = _r5_subject([_state("on-study", "2021-05-10"), randomized,
                                            _state("withdrawn", "2021-09-01"), _state("off-study", "2021-09-03", lost)])
    result = to_sdtm([trial], fhir_version="R5")
    ds = _ds(result)
    assert _events(ds, f"TCIM-ELAII-01-{subjid}") == [
        ("PROTOCOL MILESTONE", "INFORMED CONSENT OBTAINED", consented),
        ("PROTOCOL MILESTONE", "RANDOMIZED", "2021-05-20"),  # the milestone's own date; on-study is no event
        ("DISPOSITION EVENT", "LOST TO FOLLOW-UP", "2021-09-03")]  # the last end state, its coded reason
    assert ds[ds["USUBJID"] == f"TCIM-ELAII-01-{subjid}"]["DSTERM"].tolist()[-1] == "No contesta al teléfono"  # verbatim
    assert [f.code for f in result.report.findings if f.domain == "DS"] == ["DS_LAST_STATE"]


def test_r5_round_trip_keeps_a_reason_text(tmp_path):
    lost = {"coding": [{"system": NCI, "code": "C48227"}], "text": "Moved abroad"}
    package = tmp_path / "sdtm"
    before = to_sdtm([_r5_subject([_state("off-study", "2021-09-03", lost)])[0]], package, fhir_version="R5").datasets
    assert before["DS"]["DSTERM"].tolist().count("Moved abroad") == 1
    for version in ("R4", "R5"):
        result = to_fhir(package, tmp_path / f"{version}.json", fhir_version=version)
        assert not [f for f in result.report.findings if f.severity == "error"]
        back = to_sdtm([tmp_path / f"{version}.json"], fhir_version=version).datasets
        pd.testing.assert_frame_equal(back["DS"].reset_index(drop=True), before["DS"].reset_index(drop=True))
        subject = next(r for r in result.resources if r["resourceType"] == "ResearchSubject")
        assert not any(cells for d, _, cells in read_records(subject) if d == "DS")


# --- the spec -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("    select: consent_event\n", "    select: study_subject\n"), "adds rows"),
    (lambda t: t.replace("  - resource: ResearchSubject\n", "  - resource: Consent\n"), "listed twice"),
    (lambda t: t.replace("    term: DSDECOD ", "    term: DSTERM "), "with a map"),
])
def test_row_sources_are_checked_when_the_spec_loads(tmp_path, edit, message):
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    (folder / "ds.yaml").write_text(edit((folder / "ds.yaml").read_text()))
    with pytest.raises(SpecError, match=message):
        load_mapping_set(folder)


def test_a_single_source_spec_cannot_use_a_selector_that_adds_rows(tmp_path):
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    ae = (folder / "ae.yaml").read_text().replace("select: study_subject_event", "select: consent_event")
    (folder / "ae.yaml").write_text(ae)
    with pytest.raises(SpecError, match="belongs in a rows: list"):
        load_mapping_set(folder)
