"""SE, Subject Elements (trial_design/subject_elements.py), and EPOCH (derivation `epoch`).

The mini bundle: subject 001 consented 2021-05-10, was injected (arm MNC) on 2021-06-01 from 10:05 to
10:20 and left the study on 2022-06-20; subject 002 consented 2021-06-01 and failed screening, leaving
on 2021-06-15; his death on 2022-03-04 is his last record (RFPENDTC). SE follows study.yaml's elements and their transition events; EPOCH is the epoch of the
element a record's date falls in, never imputed."""

import json
import shutil

import pytest
import yaml
from conftest import MINI, ROOT
from test_to_fhir import compare_datasets

from tcim_interop import read_sdtm, to_fhir, to_sdtm
from tcim_interop.errors import SpecError
from tcim_interop.mapping.derivations import epoch_at
from tcim_interop.mapping_spec.load import load_mapping_set

S1, S2 = "TCIM-ELAII-01-001", "TCIM-ELAII-01-002"


def rows(result, name: str, *columns: str) -> list[tuple]:
    frame = result.metadata[name].frame
    return [tuple(None if v != v else v for v in r) for r in frame[list(columns)].itertuples(index=False)]


def test_subject_elements_of_the_mini_bundle(mini_conversion):
    result, _ = mini_conversion
    assert rows(result, "SE", "USUBJID", "SESEQ", "ETCD", "TAETORD", "EPOCH", "SESTDTC", "SEENDTC",
                "SESTDY", "SEENDY") == [
        (S1, 1, "SCRN", 1, "SCREENING", "2021-05-10", "2021-06-01T10:05:00", -22, 1),
        (S1, 2, "MNC", 2, "TREATMENT", "2021-06-01T10:05:00", "2021-06-02", 1, 2),
        (S1, 3, "FU", 3, "FOLLOW-UP", "2021-06-02", "2022-06-20", 2, 385),
        # a screen failure: screening only, to his SCREEN FAILURE disposition (DS), not to the end of
        # participation (RFPENDTC: the last date of any record, his death); no arm, so no TAETORD
        (S2, 1, "SCRN", None, "SCREENING", "2021-06-01", "2021-06-15", None, None)]
    assert rows(result, "DS", "USUBJID", "DSDECOD", "DSSTDTC")[-1] == (S2, "SCREEN FAILURE", "2021-06-15")
    assert rows(result, "DM", "USUBJID", "RFPENDTC")[-1] == (S2, "2022-03-04")
    assert set(rows(result, "SE", "ELEMENT")) == {("Screening",), ("BMNC one side and placebo contralateral",),
                                                   ("Follow-up",)}


def test_epoch_of_every_domain(mini_conversion):
    result, _ = mini_conversion
    assert rows(result, "EX", "EXSTDTC", "EPOCH") == [(f"2021-06-01T10:{m}:00", "TREATMENT") for m in ("05", "10", "15", "20")]
    # AE on 2021-06-02: the first day of follow-up (it starts that day); AE on 2021-05-30: screening
    assert sorted(rows(result, "AE", "AESTDTC", "EPOCH")) == [("2021-05-30", "SCREENING"), ("2021-06-02", "FOLLOW-UP")]
    assert rows(result, "CM", "CMSTDTC", "EPOCH") == [("2021-06-02", "FOLLOW-UP")]
    assert sorted(set(rows(result, "XM", "XMDTC", "EPOCH"))) == [
        ("2021-05-20", "SCREENING"), ("2021-05-24", "SCREENING"), ("2021-06-30", "FOLLOW-UP")]


ELEMENTS = [("2021-05-10", "2021-06-01T10:05", "SCREENING"), ("2021-06-01T10:05", "2021-06-02", "TREATMENT"),
            ("2021-06-02", "2022-06-20", "FOLLOW-UP")]


@pytest.mark.parametrize(("dtc", "epoch"), [
    ("2021-05-09", None),               # before informed consent: not in the study yet
    ("2021-05-10", "SCREENING"),
    ("2021-06-01T09:00", "SCREENING"),  # before the injection, by time
    ("2021-06-01T10:05", "TREATMENT"),
    ("2021-06-01", None),               # the injection day without a time: either element, not imputed
    ("2021-06", None),                  # a partial date
    ("2021-06-02T00:30", "FOLLOW-UP"),
    ("2022-06-20T18:00", "FOLLOW-UP"),  # the last day of the last element
    ("2022-06-21", None),               # after the end of participation
    (None, None),
])
def test_epoch_at(dtc, epoch):
    assert epoch_at(dtc, ELEMENTS) == epoch


def test_masked_delivery_has_no_se_but_the_same_epochs(mini_conversion, tmp_path):
    result, _ = mini_conversion
    masked = to_sdtm([MINI], masked=True)
    assert "SE" not in masked.metadata  # its treatment element (MNC or PBO) would unmask the arm
    assert rows(masked, "EC", "EPOCH") == rows(result, "EX", "EPOCH")
    assert rows(masked, "AE", "EPOCH") == rows(result, "AE", "EPOCH")


def test_se_and_epoch_round_trip_through_fhir(mini_conversion, tmp_path):
    _, package = mini_conversion
    for version in ("R4", "R5"):
        fhir = to_fhir(package, tmp_path / f"{version}.json", fhir_version=version)
        assert not fhir.report.errors, fhir.report.errors[:3]
        back = to_sdtm([tmp_path / f"{version}.json"], tmp_path / f"back-{version}", fhir_version=version)
        assert not back.report.errors
        names = ("SE", "AE", "EX", "CM", "XM")
        compared, equal, diffs = compare_datasets({n: read_sdtm(package)[n] for n in names},
                                                  read_sdtm(tmp_path / f"back-{version}"))
        assert diffs == [] and compared == equal > 0
        assert "EPOCH" in {v.name for v in read_sdtm(package)["AE"].variables}


def test_se_rides_on_each_subject_not_on_the_study(mini_conversion, tmp_path):
    """Each subject's SE records are on his ResearchSubject, so that no resource grows with the study; the
    study describes SE once. FHIR that carries them on the study (earlier releases) gives SE back too."""
    from tcim_interop.fhir.extensions import read_datasets, read_records

    _, package = mini_conversion
    bundle = to_fhir(package, tmp_path / "R4.json").resources
    study = next(r for r in bundle if r["resourceType"] == "ResearchStudy" and "partOf" not in r)
    assert "SE" in read_datasets(study) and not [r for r in read_records(study) if r[0] == "SE"]
    carried = {}
    for r in bundle:
        for name, row, cells in read_records(r):
            if name == "SE":
                assert r["resourceType"] == "ResearchSubject"
                carried[row] = (r["id"], cells["USUBJID"])
    se = read_sdtm(package)["SE"].frame
    assert sorted(carried) == list(range(len(se)))
    by_subject = {}
    for subject_id, usubjid in carried.values():
        by_subject.setdefault(usubjid, set()).add(subject_id)
    assert set(by_subject) == {S1, S2} and all(len(ids) == 1 for ids in by_subject.values())

    def is_se(ext: dict) -> bool:
        return [r[0] for r in read_records({"extension": [ext]})] == ["SE"]

    for r in bundle:  # as earlier releases wrote them: every SE record on the overall study
        if r is not study and any(is_se(e) for e in r.get("extension", [])):
            study["extension"] += [e for e in r["extension"] if is_se(e)]
            r["extension"] = [e for e in r["extension"] if not is_se(e)]
    assert [n for n, _, _ in read_records(study)].count("SE") == len(se)
    (tmp_path / "old.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                                   "entry": [{"resource": r} for r in bundle]}))
    back = to_sdtm([tmp_path / "old.json"])
    assert not back.report.errors
    compared, equal, diffs = compare_datasets({"SE": read_sdtm(package)["SE"]}, {"SE": back.metadata["SE"]})
    assert diffs == [] and compared == equal > 0


def test_an_se_record_of_no_dm_subject_is_an_error(mini_conversion, tmp_path):
    from tcim_interop.errors import InputError

    _, package = mini_conversion
    datasets = read_sdtm(package)
    datasets["SE"].frame.loc[0, "USUBJID"] = "TCIM-ELAII-01-999"
    with pytest.raises(InputError, match="SE row 1: USUBJID TCIM-ELAII-01-999 is not in DM"):
        to_fhir(datasets, tmp_path / "out.json")


def _mappings_copy(tmp_path):
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    return tmp_path / "mappings"


@pytest.mark.parametrize("end", [{"domain": "XX", "date": "DSSTDTC"}, {"domain": "DS", "date": "DSDTC"},
                                 {"domain": "DS", "date": "DSSTDTC", "where": {"DSCATX": "DISPOSITION EVENT"}}])
def test_the_last_elements_end_names_a_date_of_a_domain(tmp_path, end):
    folder = _mappings_copy(tmp_path)
    study = yaml.safe_load((folder / "study.yaml").read_text())
    study["trial_design"]["end"] = end
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    with pytest.raises(SpecError, match="trial_design.end must be"):
        load_mapping_set(folder)


def test_an_element_start_names_a_date_of_dm(tmp_path):
    folder = _mappings_copy(tmp_path)
    study = yaml.safe_load((folder / "study.yaml").read_text())
    study["trial_design"]["elements"][0]["start"] = {"date": "RFICDT"}
    (folder / "study.yaml").write_text(yaml.safe_dump(study))
    with pytest.raises(SpecError, match="SCRN: start must be"):
        load_mapping_set(folder)


def test_epoch_is_one_declarative_line_in_any_spec(tmp_path):
    """What a new domain's spec writes (docs/decisions.md): the line, naming the date it falls by."""
    folder = _mappings_copy(tmp_path)
    spec = yaml.safe_load((folder / "ae.yaml").read_text())
    spec["variables"] = [v for v in spec["variables"] if v["name"] != "EPOCH"]
    spec["variables"].append({"name": "EPOCH", "label": "Epoch", "type": "Char", "core": "Perm",
                              "codelist": "EPOCH", "algorithm": "epoch", "params": {"date": "AEENDTC"}})
    (folder / "ae.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = to_sdtm([MINI], mappings=folder)
    assert rows(result, "AE", "AESTDTC", "AEENDTC", "EPOCH") == [("2021-05-30", None, None),  # no end: no epoch
                                                                 ("2021-06-02", "2021-06-05", "FOLLOW-UP")]
    spec["variables"][-1]["params"] = {"date": "AEXXDTC"}
    (folder / "ae.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SpecError, match="params.date names 'AEXXDTC'"):
        load_mapping_set(folder)


def test_the_example_gives_every_subject_its_elements(example_conversion):
    result, _ = example_conversion
    dm = result.metadata["DM"].frame
    se = result.metadata["SE"].frame
    treated = dm["RFXSTDTC"].notna().sum()
    assert len(se) == 3 * treated + (len(dm) - treated)  # screening, treatment, follow-up; screening only
    assert set(se.groupby("USUBJID")["SESEQ"].max()) <= {1.0, 3.0}
    # no gap between elements (SE assumption 8)
    for _, subject in se.groupby("USUBJID"):
        assert list(subject["SEENDTC"])[:-1] == list(subject["SESTDTC"])[1:]
    assert json.dumps(sorted(set(se["EPOCH"]))) == '["FOLLOW-UP", "SCREENING", "TREATMENT"]'
