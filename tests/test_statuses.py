"""Statuses to-fhir derives from the package (mapping/statuses.py): ResearchStudy (R4 status, R5
progressStatus) and ResearchSubject (R4 status, R5 progress), from DS, DM's ARMNRS (or the arm code SDTM
before 3.3 wrote for a screen failure) and TS SENDTC; to-sdtm still gives back the same SDTM."""

import dataclasses

import pandas as pd
import pytest
from conftest import MINI

from tcim_interop import read_sdtm, to_fhir, to_sdtm
from tcim_interop.fhir.extensions import read_records
from tcim_interop.mapping.disposition import STATE_SYSTEM

STUDY_STATES = "http://hl7.org/fhir/research-study-status"


def _of(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r["resourceType"] == kind]


def _states(subject: dict) -> list[str]:
    """R5: the subject states of its progress entries, in order."""
    return [c["code"] for p in subject.get("progress", []) for c in p.get("subjectState", {}).get("coding", [])
            if c["system"] == STATE_SYSTEM]


def _study_states(study: dict) -> list[tuple[str, dict | None]]:
    """R5: (state, period) of each progressStatus entry."""
    return [(c["code"], p.get("period")) for p in study.get("progressStatus", [])
            for c in p["state"]["coding"] if c["system"] == STUDY_STATES]


def _by_dm_row(result) -> dict[int, dict]:
    """The ResearchSubjects of a to-fhir result by the DM row they were made from (sdtm-record)."""
    return {next(i for d, i, _ in read_records(r) if d == "DM"): r for r in _of(result.resources, "ResearchSubject")}


@pytest.fixture(scope="module")
def mini_sdtm():
    """The mini bundle's datasets: subject 001 on study (no disposition yet), 002 a screen failure."""
    return to_sdtm([MINI]).metadata


def _changed(datasets: dict, name: str, frame: pd.DataFrame) -> dict:
    return {**datasets, name: dataclasses.replace(datasets[name], frame=frame)}


def _round_trip(datasets: dict, version: str):
    """to-fhir of the datasets (its own round trip proven: no error), and to-sdtm of its output."""
    result = to_fhir(datasets, fhir_version=version)
    assert not result.report.errors, result.report.errors[:3]
    back = to_sdtm([result.resources], fhir_version=version, fast=True).datasets
    for name in ("DM", "DS"):
        pd.testing.assert_frame_equal(back[name].reset_index(drop=True),
                                      datasets[name].frame.reset_index(drop=True), check_dtype=False)
    return result


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_study_with_a_subject_on_study_is_active(mini_sdtm, version):
    result = _round_trip(mini_sdtm, version)
    studies, subjects = _of(result.resources, "ResearchStudy"), _by_dm_row(result)
    dm = mini_sdtm["DM"].frame
    on_study, failed = (subjects[i] for i in (dm.index[dm["ARMNRS"].isna()][0], dm.index[dm["ARMNRS"] == "SCREEN FAILURE"][0]))
    if version == "R4":
        assert [s["status"] for s in studies] == ["active", "active"]
        assert (on_study["status"], failed["status"]) == ("on-study", "ineligible")
    else:
        assert all(s["status"] == "active" for s in studies)  # R5: the record's publication status
        assert [state for state, _ in _study_states(studies[0])] == ["active", "overall-study"]
        assert _study_states(studies[0])[1][1] == {"start": "2021-05-10"}  # TS SSTDTC; no SENDTC: no end
        assert _states(on_study) == [] and _states(failed) == ["ineligible"]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_screen_failure_has_one_state(mini_sdtm, version):
    """The R5 output gave a screen failure its state twice: once from DM's ARMNRS, once from DS."""
    result = _round_trip(mini_sdtm, version)
    dm = mini_sdtm["DM"].frame
    failed = _by_dm_row(result)[dm.index[dm["ARMNRS"] == "SCREEN FAILURE"][0]]
    if version == "R5":
        assert _states(failed) == ["ineligible"] and len(failed["progress"]) == 1
    else:
        assert failed["status"] == "ineligible"
        assert len([e for e in failed.get("extension", []) if "progress" in e["url"]]) == 1


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_every_subject_ended_makes_the_study_completed(mini_sdtm, version):
    """A disposition event for the subject on study: every participation has ended."""
    ds = mini_sdtm["DS"].frame
    last = ds[ds["USUBJID"] == "TCIM-ELAII-01-001"].index[-1]
    done = {**ds.loc[last].to_dict(), "DSSEQ": ds.loc[last, "DSSEQ"] + 1, "DSCAT": "DISPOSITION EVENT",
            "DSDECOD": "COMPLETED", "DSTERM": "COMPLETED", "DSSTDTC": "2022-06-20", "DSSTDY": None, "EPOCH": None}
    frame = pd.concat([ds.loc[:last], pd.DataFrame([done], dtype="object"), ds.loc[last + 1:]], ignore_index=True)
    frame = frame.astype(ds.dtypes.to_dict())
    result = _round_trip(_changed(mini_sdtm, "DS", frame), version)
    studies = _of(result.resources, "ResearchStudy")
    if version == "R4":
        assert [s["status"] for s in studies] == ["completed", "completed"]
        assert sorted(s["status"] for s in _of(result.resources, "ResearchSubject")) == ["ineligible", "off-study"]
    else:
        assert [_study_states(s)[0][0] for s in studies] == ["completed", "completed"]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_recorded_study_end_makes_the_study_completed_and_its_subjects_off_study(mini_sdtm, version):
    """TS SENDTC (the last data item of the last subject was collected): the subject DS gives no
    disposition is off-study; DS's own progress entries stay the last ones, so DS comes back as it was."""
    ts = mini_sdtm["TS"].frame.copy()
    at = ts.index[ts["TSPARMCD"] == "SENDTC"][0]
    ts.loc[at, "TSVAL"], ts.loc[at, "TSVALNF"] = "2022-12-31", None
    result = _round_trip(_changed(mini_sdtm, "TS", ts), version)
    study = next(s for s in _of(result.resources, "ResearchStudy") if "partOf" not in s)
    subjects = _by_dm_row(result)
    dm = mini_sdtm["DM"].frame
    on_study = subjects[dm.index[dm["ARMNRS"].isna()][0]]
    if version == "R4":
        assert study["status"] == "completed" and on_study["status"] == "off-study"
    else:
        assert _study_states(study) == [("completed", None), ("overall-study", {"start": "2021-05-10", "end": "2022-12-31"})]
        assert _states(on_study) == ["off-study"] and on_study["progress"][0]["subjectState"]["coding"][0]["code"] == "off-study"


def test_the_example_statuses_follow_its_disposition_events(example_package, example_fhir):
    """R4: every subject's status is its DS disposition event's state, the study completed (TS SENDTC)."""
    package = read_sdtm(example_package)
    dm, ds = package["DM"].frame, package["DS"].frame
    final = ds[ds["DSCAT"] == "DISPOSITION EVENT"].set_index("USUBJID")["DSDECOD"]
    want = {i: "ineligible" if final[u] == "SCREEN FAILURE" else "off-study" for i, u in enumerate(dm["USUBJID"])}
    result = example_fhir[0]
    assert {i: r["status"] for i, r in _by_dm_row(result).items()} == want
    assert [s["status"] for s in _of(result.resources, "ResearchStudy")] == ["completed", "completed"]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_the_pilot_screen_failures_are_ineligible_and_in_no_arm(pilot_fhir, pilot, version):
    """The CDISC pilot (SDTMIG 3.1.2) has no ARMNRS: its screen failures have ARMCD Scrnfail. They are
    ineligible and in no arm; the other subjects, with no DS nor TS to say more, are on study."""
    dm = read_sdtm(pilot)["DM"].frame
    failed = set(dm.index[dm["ARMCD"] == "Scrnfail"])
    assert len(failed) == 52
    result = pilot_fhir(version)[0]
    for i, subject in _by_dm_row(result).items():
        arms = {k: v for k, v in subject.items() if k.endswith(("Arm", "ComparisonGroup"))}
        if version == "R4":
            assert subject["status"] == ("ineligible" if i in failed else "on-study")
        else:
            assert _states(subject) == (["ineligible"] if i in failed else [])
        assert (arms == {}) == (i in failed)
    for study in _of(result.resources, "ResearchStudy"):
        named = [a["name"] for a in study.get("arm", study.get("comparisonGroup", []))]
        assert "Scrnfail" not in named
        assert (study["status"] if version == "R4" else _study_states(study)[0][0]) == "active"
