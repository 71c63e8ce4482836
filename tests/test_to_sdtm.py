"""End to end on a small hand-built R4 bundle (tests/data/mini-r4.json): each domain against a
hand-built expected table, the run report's accounting, and the XPT files as pyreadstat reads them."""

import json
import math

import pandas as pd
import pyreadstat
import pytest

from tcim_interop import to_sdtm

U1, U2 = "TCIM-ELAII-01-001", "TCIM-ELAII-01-002"
NaN = math.nan


def table(columns: str, *rows) -> pd.DataFrame:
    return pd.DataFrame([list(r) for r in rows], columns=columns.split())


def same(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Exact comparison of the expected columns (None/"" and NaN are the SDTM nulls)."""
    got = actual[list(expected.columns)].reset_index(drop=True)
    for col in expected.columns:
        for i, (g, e) in enumerate(zip(got[col], expected[col])):
            if isinstance(e, float) and math.isnan(e):
                assert g is None or (isinstance(g, float) and math.isnan(g)), f"{col}[{i}]: {g!r} != NaN"
            elif e is None:
                assert g in (None, "") or (isinstance(g, float) and math.isnan(g)), f"{col}[{i}]: {g!r} != null"
            else:
                assert g == e, f"{col}[{i}]: {g!r} != {e!r}"
    assert len(got) == len(expected)


@pytest.fixture(scope="module")
def result(mini_conversion):
    return mini_conversion[0]


def test_dm(result):
    same(result.datasets["DM"], table(
        "STUDYID DOMAIN USUBJID SUBJID RFSTDTC RFENDTC RFXSTDTC RFICDTC RFPENDTC DTHDTC DTHFL SITEID "
        "BRTHDTC AGE AGEU SEX ARMCD ARM ACTARMCD ARMNRS COUNTRY",
        # RFENDTC: the end of participation (period.end), not the last injection; the screen failure has
        # none, and his RFPENDTC is his death, the last date known of him (DM assumption 10d)
        ["TCIM-ELAII", "DM", U1, "001", "2021-06-01T10:05:00", "2022-06-20", "2021-06-01T10:05:00",
         "2021-05-10", "2022-06-20", None, None, "01", "1961", 59.0, "YEARS", "M", "MNC",
         "Bone marrow mononuclear cells one side", "MNC", None, "ESP"],
        ["TCIM-ELAII", "DM", U2, "002", None, None, None, "2021-06-01", "2022-03-04", "2022-03-04", "Y", "01",
         "1970", 51.0, "YEARS", "F", None, None, None, "SCREEN FAILURE", "ESP"]))


def test_ex(result):
    same(result.datasets["EX"], table(
        "USUBJID EXSEQ EXTRT EXDOSE EXDOSU EXDOSFRM EXROUTE EXLOC EXLAT VISITNUM VISIT EXSTDTC EXENDTC EXSTDY EXENDY",
        [U1, 1.0, "BONE MARROW MONONUCLEAR CELLS", 40.0, "10^6 Therapeutic Cells", "INJECTION, SUSPENSION",
         "INTRAMUSCULAR", "TIBIALIS ANTERIOR MUSCLE", "LEFT", 3.0, "INJECTION", "2021-06-01T10:05:00",
         "2021-06-01T10:05:00", 1.0, 1.0],
        [U1, 2.0, "PLACEBO", 0.0, "10^6 Therapeutic Cells", "INJECTION, SUSPENSION", "INTRAMUSCULAR",
         "TIBIALIS ANTERIOR MUSCLE", "RIGHT", 3.0, "INJECTION", "2021-06-01T10:10:00", "2021-06-01T10:10:00", 1.0, 1.0],
        [U1, 3.0, "BONE MARROW MONONUCLEAR CELLS", 40.0, "10^6 Therapeutic Cells", "INJECTION, SUSPENSION",
         "INTRAMUSCULAR", "EXTENSOR DIGITORUM BREVIS MUSCLE", "LEFT", 3.0, "INJECTION", "2021-06-01T10:15:00",
         "2021-06-01T10:15:00", 1.0, 1.0],
        [U1, 4.0, "PLACEBO", 0.0, "10^6 Therapeutic Cells", "INJECTION, SUSPENSION", "INTRAMUSCULAR",
         "EXTENSOR DIGITORUM BREVIS MUSCLE", "RIGHT", 3.0, "INJECTION", "2021-06-01T10:20:00",
         "2021-06-01T10:20:00", 1.0, 1.0]))


def test_ae(result):
    same(result.datasets["AE"], table(
        "USUBJID AESEQ AESPID AETERM AEDECOD AEPTCD AEBODSYS AEBDSYCD AESEV AESER AEREL AEOUT AESHOSP AESDTH "
        "AESTDTC AEENDTC AESTDY AEENDY",
        [U1, 1.0, None, "Aspiration pneumonia", None, NaN, None, NaN, None, "Y", None,
         "NOT RECOVERED/NOT RESOLVED", "Y", "N", "2021-05-30", None, -2.0, NaN],
        [U1, 2.0, "AE-001-01", "Pain at the injection site", "Injection site pain", 10022086.0,
         "General disorders and administration site conditions", 10018065.0, "MILD", "N", "PROBABLE",
         "RECOVERED/RESOLVED", None, None, "2021-06-02", "2021-06-05", 2.0, 5.0]))
    same(result.datasets["SUPPAE"], table(
        "STUDYID RDOMAIN USUBJID IDVAR IDVARVAL QNAM QLABEL QVAL QORIG",
        ["TCIM-ELAII", "AE", U1, "AESEQ", "1", "AEDISCON", "Caused Study Discontinuation", "N", "Collected"],
        # the verbatim terms as the site sent them (mappings/translations.yaml gave AETERM its English)
        ["TCIM-ELAII", "AE", U1, "AESEQ", "1", "AETERMO", "Reported Term in the Original Language",
         "Neumonía por aspiración", "Collected"],
        ["TCIM-ELAII", "AE", U1, "AESEQ", "2", "AETERMO", "Reported Term in the Original Language",
         "Dolor en el lugar de inyección", "Collected"]))


def test_xm(result):
    """XMGRPID: one per recording (visit, date, muscle, side, method), numbered in that order: the
    left MUNIX of 2021-05-24 (2) and the right MUSIX of that day (3) are two recordings."""
    same(result.datasets["XM"], table(
        "USUBJID XMSEQ XMGRPID XMTESTCD XMTEST XMORRES XMORRESU XMSTRESC XMSTRESN XMSTAT XMREASND XMLOC XMLAT XMMETHOD "
        "XMLOBXFL VISITNUM VISIT XMDTC XMDY",
        [U1, 1.0, "1", "MUNIX", "Motor Unit Number Index", "88", None, "88", 88.0, None, None, "TIBIALIS ANTERIOR MUSCLE",
         "LEFT", "MUNIX", None, 2.0, "BASELINE", "2021-05-20", -12.0],
        [U1, 2.0, "2", "MUNIX", "Motor Unit Number Index", "92.5", None, "92.5", 92.5, None, None,
         "TIBIALIS ANTERIOR MUSCLE", "LEFT", "MUNIX", "Y", 2.0, "BASELINE", "2021-05-24", -8.0],
        [U1, 3.0, "4", "MUNIX", "Motor Unit Number Index", None, None, None, NaN, "NOT DONE", "Patient did not cooperate",
         "TIBIALIS ANTERIOR MUSCLE", "LEFT", "MUNIX", None, 4.0, "DAY 30", "2021-06-30", 30.0],
        [U1, 4.0, "3", "MUSIX", "Motor Unit Size Index", "41.2", "uV", "41.2", 41.2, None, None,
         "TIBIALIS ANTERIOR MUSCLE", "RIGHT", "MUNIX", "Y", 2.0, "BASELINE", "2021-05-24", -8.0]))


def test_cm(result):
    """The administration that is not study treatment: CM, its verbatim name and the RxNorm display
    (no ATC coding), no dose, no route."""
    same(result.datasets["CM"], table(
        "USUBJID CMSEQ CMTRT CMDECOD CMDOSE CMDOSU CMROUTE CMSTDTC CMENDTC CMSTDY CMENDY",
        [U1, 1.0, "riluzole", "riluzole", NaN, None, None, "2021-06-02", "2021-06-02", 2.0, 2.0]))


def test_nv_is_the_same_data_under_another_domain(result):
    nv = to_sdtm([pytest.importorskip("conftest").DATA / "mini-r4.json"], mune_domain="NV").datasets
    assert "XM" not in nv and list(nv["NV"]["DOMAIN"].unique()) == ["NV"]
    assert list(nv["NV"].columns) == [c.replace("XM", "NV", 1) if c.startswith("XM") else c
                                      for c in result.datasets["XM"].columns]
    xm = result.datasets["XM"].drop(columns="DOMAIN")
    xm.columns = list(nv["NV"].drop(columns="DOMAIN").columns)
    pd.testing.assert_frame_equal(xm, nv["NV"].drop(columns="DOMAIN"))


def test_accounting_adds_up(result):
    c = result.report.counts()
    assert c["input"] == 23 == c["converted"] + c["rejected"] + c["out_of_scope"]
    out = {d.resource: d.reason for d in result.report.dispositions if d.outcome == "out_of_scope"}
    # the riluzole administration (cm1) is not study treatment: a CM record, converted
    # and the body weight (wt) is a VS record: nothing of the mini bundle is out of scope
    assert out == {}
    assert next(d for d in result.report.dispositions if d.resource == "Observation/wt").outcome == "converted"
    assert next(d for d in result.report.dispositions if d.resource == "MedicationAdministration/cm1").outcome == "converted"
    for t, n in c["by_resource_type"].items():
        assert n["input"] == n["converted"] + n["rejected"] + n["out_of_scope"], t


def test_written_xpt_files_read_back_with_spec_metadata(tmp_path, mappings):
    from conftest import DATA

    res = to_sdtm([DATA / "mini-r4.json"], tmp_path)
    # and the trial design; no ti.xpt: the mini study has no eligibility criteria; relrec.xpt: its adverse
    # event ae1 is suspected of the administration ma1; suppxm.xpt: the reason not done as the site wrote
    # it (XMREASOR)
    assert sorted(p.name for p in tmp_path.glob("*.xpt")) == ["ae.xpt", "cm.xpt", "dm.xpt", "ds.xpt", "ex.xpt",
                                                              "relrec.xpt", "se.xpt", "suppae.xpt", "suppxm.xpt", "sv.xpt",
                                                              "ta.xpt", "te.xpt", "ts.xpt", "tv.xpt", "vs.xpt", "xm.xpt"]
    for role, spec in mappings.domains.items():
        df, meta = pyreadstat.read_xport(str(tmp_path / f"{spec.dataset}.xpt"))
        assert meta.table_name == spec.domain and meta.file_label == spec.label
        # a when_collected variable (AEDTC) is in its dataset only when a record has it: the site sends none
        written = [v for v in spec.variables if not v.when_collected]
        assert list(df.columns) == [v.name for v in written]
        assert meta.column_labels == [v.label for v in written]
        for v in written:
            if v.is_char:
                longest = max((len(str(x)) for x in res.datasets[spec.domain][v.name] if x), default=1)
                assert meta.variable_storage_width[v.name] == longest, v.name
    ae, _ = pyreadstat.read_xport(str(tmp_path / "ae.xpt"))
    assert list(ae["AETERM"]) == ["Aspiration pneumonia", "Pain at the injection site"]
    # the Spanish originals are folded where they now are: SUPPAE's and SUPPXM's QVAL
    supp, _ = pyreadstat.read_xport(str(tmp_path / "suppae.xpt"))
    assert list(supp.loc[supp["QNAM"] == "AETERMO", "QVAL"]) == ["Neumonia por aspiracion", "Dolor en el lugar de inyeccion"]
    folded = [f for f in res.report.findings if f.code == "ASCII_FOLDED"]
    assert {(f.domain, f.variable, f.value) for f in folded} == {("SUPPAE", "QVAL", "Neumonía por aspiración"),
                                                                  ("SUPPAE", "QVAL", "Dolor en el lugar de inyección"),
                                                                  ("SUPPXM", "QVAL", "Paciente no colaboró")}


def test_no_personal_identifier_in_any_output_file(tmp_path):
    from conftest import DATA

    to_sdtm([DATA / "mini-r4.json"], tmp_path)
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    for secret in (b"Garc", b"Jos", b"968 000 111", b"MRN-778899", b"Calle Mayor", b"1961-09-15"):
        assert secret not in blob, secret


def test_a_finding_with_a_known_fix_carries_its_hint_into_the_run_report(tmp_path, mini_bundle):
    doc = json.loads(mini_bundle.read_text(encoding="utf-8"))
    patient = next(e["resource"] for e in doc["entry"] if e["resource"].get("gender") == "male")
    patient["gender"] = "other"  # no SEX term
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    to_sdtm([src], tmp_path / "out")
    report = json.loads((tmp_path / "out" / "run-report.json").read_text(encoding="utf-8"))
    unmapped = [f for f in report["findings"] if f["code"] == "CT_UNMAPPED" and f["variable"] == "SEX"]
    assert len(unmapped) == 1 and "mappings/codelists.yaml" in unmapped[0]["hint"]


def _text_as_objects(datasets: dict) -> None:
    for name, ds in datasets.items():
        for v in ds.variables:
            assert ds.frame[v.name].dtype == ("object" if v.type == "Char" else "float64"), (name, v.name)


def test_every_dataset_holds_text_as_objects(result):
    """The datasets a run gives (SUPPxx and RELREC, built from records, included): text in object
    columns, numbers float64, never pandas' string dtype."""
    assert {"SUPPAE", "RELREC"} <= set(result.metadata)
    _text_as_objects(result.metadata)


def test_the_records_to_fhir_carried_hold_text_as_objects_too(pilot_round_trip):
    """The CDISC pilot's way back: its SUPPAE and SUPPDM records come from the records to-fhir carried."""
    back = pilot_round_trip("R4")[0].metadata
    assert {"SUPPAE", "SUPPDM"} <= set(back)
    _text_as_objects(back)


def test_the_frames_written_hold_text_as_objects(result):
    """xpt_frame's text columns are str in object columns, as every frame of the converter: not pandas'
    string dtype, which it would infer from them (its missing value is NaN, not None)."""
    from tcim_interop.findings import Report
    from tcim_interop.sdtm.xpt import xpt_frame

    for name, ds in result.metadata.items():
        frame = xpt_frame(ds, "fold", Report())
        for v in ds.variables:
            assert frame[v.name].dtype == ("object" if v.type == "Char" else "float64"), (name, v.name)
