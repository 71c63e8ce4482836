"""to-sdtm --masked (issue 4): a delivery before unblinding. Exposure goes to EC with ECTRT = MASKED and
no EX (SDTMIG 3.4 EC assumption 2, EX assumption 1c.v); DM shows no arm (ARMNRS = MASKED for subjects
with one); no byte about subjects (nor the define, the manifest) names an arm or the product, and the
whole package is the same bytes whatever the allocation; define.xml validates; the manifest says masked;
to-fhir reads a masked package back and to-sdtm --masked of its output gives the same EC and DM. The
default (unmasked) package is unchanged: EX, arms, no EC."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import orjson
import pandas as pd
import pytest
from conftest import BACK, DATA, ROOT, run_once
from lxml import etree
from typer.testing import CliRunner

from tcim_interop import SpecError, load_mapping_set, to_fhir, to_sdtm
from tcim_interop.cli import app
from tcim_interop.errors import UsageError
from tcim_interop.sdtm.define import validate_define
from tcim_interop.synth import generate, write_bundle

EXAMPLE = ROOT / "examples" / "tcim-elaii-100-r4.json"
MAPPINGS = ROOT / "mappings"
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}
ARM_VARS = ["ARMCD", "ARM", "ACTARMCD", "ACTARM"]
EC_VARS = ["STUDYID", "DOMAIN", "USUBJID", "ECSEQ", "ECTRT", "ECMOOD", "ECDOSE", "ECDOSU", "ECDOSFRM", "ECROUTE",
           "ECLOC", "ECLAT", "VISITNUM", "VISIT", "EPOCH", "ECSTDTC", "ECENDTC", "ECSTDY", "ECENDY"]
# EX and EC variables that carry the same collected data (EXTRT, EXDOSE, EXDOSU are what masking withholds)
SHARED = ["STUDYID", "USUBJID", "SEQ", "DOSFRM", "ROUTE", "LOC", "LAT", "VISITNUM", "VISIT", "STDTC", "ENDTC",
          "STDY", "ENDY"]


def _col(domain: str, name: str) -> str:
    return name if name in ("STUDYID", "USUBJID", "VISITNUM", "VISIT") else domain + name


def empty(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


@pytest.fixture(scope="module")
def unmasked(example_conversion):
    return example_conversion


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    return run_once(tmp_path_factory, "masked", lambda d: (
        to_sdtm([EXAMPLE], d / "sdtm", formats=("xpt", "json"), masked=True), d / "sdtm"))


# --- EC instead of EX ------------------------------------------------------------------------------
def test_ec_is_written_and_ex_is_not(masked):
    result, out = masked
    assert (out / "ec.xpt").is_file() and (out / "ec.json").is_file()
    assert not list(out.glob("ex.*"))
    assert "EX" not in result.datasets and "EC" in result.datasets
    assert "EX" not in result.report.records_per_domain


def test_ec_has_ectrt_masked_and_no_dose(masked):
    ec = masked[0].datasets["EC"]
    assert list(ec.columns) == EC_VARS
    assert len(ec) > 0
    assert set(ec["ECTRT"]) == {"MASKED"}
    assert set(ec["DOMAIN"]) == {"EC"} and set(ec["ECMOOD"]) == {"PERFORMED"}
    assert all(empty(v) for v in ec["ECDOSE"]) and all(empty(v) for v in ec["ECDOSU"])


def test_ec_holds_the_same_administrations_as_ex(unmasked, masked):
    ex, ec = unmasked[0].datasets["EX"], masked[0].datasets["EC"]
    assert len(ec) == len(ex)
    for name in SHARED:
        got, want = list(ec[_col("EC", name)]), list(ex[_col("EX", name)])
        assert [None if empty(v) else v for v in got] == [None if empty(v) else v for v in want], name
    assert set(ec["ECLAT"]) == {"LEFT", "RIGHT"}  # laterality is kept: both sides of everyone are injected


def test_report_accounts_medication_administrations_converted_into_ec(unmasked, masked):
    rep, base = masked[0].report, unmasked[0].report
    counts = rep.counts()
    assert counts["input"] == counts["converted"] + counts["rejected"] + counts["out_of_scope"]
    assert counts == base.counts()  # the same resources converted, whatever the target
    ma = counts["by_resource_type"]["MedicationAdministration"]
    # study treatment in EC, the other administrations in CM, as unmasked
    assert ma["converted"] == len(masked[0].datasets["EC"]) + len(masked[0].datasets["CM"]) \
        == rep.records_per_domain["EC"] + rep.records_per_domain["CM"]
    assert len(masked[0].datasets["EC"]) == len(unmasked[0].datasets["EX"])
    pd.testing.assert_frame_equal(masked[0].datasets["CM"], unmasked[0].datasets["CM"])
    assert not rep.errors


# --- DM shows no arm --------------------------------------------------------------------------------
def test_dm_has_no_arm_and_armnrs_masked_exactly_for_subjects_with_one(unmasked, masked):
    dm0, dm = unmasked[0].datasets["DM"], masked[0].datasets["DM"]
    assert list(dm["USUBJID"]) == list(dm0["USUBJID"])
    for name in ARM_VARS:
        assert all(empty(v) for v in dm[name]), name
    had_arm = [not empty(a) or not empty(b) for a, b in zip(dm0["ARMCD"], dm0["ACTARMCD"])]
    assert any(had_arm) and not all(had_arm)  # the example has arms and a screen failure
    for has, before, now in zip(had_arm, dm0["ARMNRS"], dm["ARMNRS"]):
        assert now == ("MASKED" if has else before)
    assert "SCREEN FAILURE" in set(dm["ARMNRS"])
    # everything else in DM is unchanged: the reference dates now come from EC, and are the same
    others = [c for c in dm0.columns if c not in ARM_VARS + ["ARMNRS"]]
    pd.testing.assert_frame_equal(dm[others], dm0[others])
    assert dm["RFXSTDTC"].notna().sum() > 0


def test_a_subject_assigned_but_not_treated_is_masked_too(tmp_path):
    bundle = json.loads((DATA / "mini-r4.json").read_text())
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "ResearchSubject" and "actualArm" in e["resource"]:
            del e["resource"]["actualArm"]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    plain = to_sdtm([path]).datasets["DM"]
    hidden = to_sdtm([path], masked=True).datasets["DM"]
    assert list(plain["ARMNRS"]) == ["ASSIGNED, NOT TREATED", "SCREEN FAILURE"]
    assert list(hidden["ARMNRS"]) == ["MASKED", "SCREEN FAILURE"]


# --- nothing reveals the arm -----------------------------------------------------------------------
def _secrets(unmasked) -> set[str]:
    """What a masked package must never contain: arm codes and names, treatment names, the product."""
    dm, ex = unmasked[0].datasets["DM"], unmasked[0].datasets["EX"]
    values = {str(v) for c in ARM_VARS for v in dm[c] if not empty(v)} | {str(v) for v in ex["EXTRT"]}
    return values | {"MNC", "BMNC", "mononuclear"}


# The trial design datasets describe the planned arms and the study treatment (the protocol and the
# registry say as much); they link no subject to an arm, so they stay in a masked package. What must
# never name an arm or the product is everything about subjects, the define, the manifest.
DESIGN = {"ta", "te", "ti", "ts", "tv"}


def _hits(folder: Path, secrets: set[str], skip: set[str] = frozenset()) -> list[str]:
    hits = []
    for f in sorted(p for p in folder.iterdir() if p.is_file() and p.name not in skip and p.stem not in DESIGN):
        data = f.read_bytes().lower()
        hits += [f"{f.name}: {s!r}" for s in sorted(secrets) if s.lower().encode() in data]
    return hits


def test_no_output_byte_about_subjects_names_an_arm_or_the_product(unmasked, masked):
    secrets = _secrets(unmasked)
    assert {"MNC", "PLACEBO", "BONE MARROW MONONUCLEAR CELLS"} <= secrets
    names = {p.name for p in masked[1].iterdir()}
    assert {"dm.xpt", "dm.json", "ec.xpt", "ec.json", "ae.xpt", "xm.xpt", "define.xml", "define.html",
            "run-report.json", "manifest.json"} <= names
    assert _hits(masked[1], secrets, skip={"run-report.json"}) == []
    # the run report: no finding about a subject's records names them (TS's folded title may)
    report = json.loads((masked[1] / "run-report.json").read_text())
    about_subjects = [f for f in report["findings"] if f.get("usubjid") or f.get("domain") in ("DM", "EC", "AE", "XM")]
    assert about_subjects and not [f for f in about_subjects
                                   if any(s.lower() in json.dumps(f).lower() for s in secrets)]
    # the search finds them where they are: the unmasked package names arms and treatments
    found = _hits(unmasked[1], secrets)
    assert any(h.startswith("dm.xpt") for h in found) and any(h.startswith("ex.xpt") for h in found)
    assert any(h.startswith("define.xml") for h in found)


def _reallocated(resources: list[dict]) -> list[dict]:
    """The same trial with every subject's allocation swapped: MNC <-> PLACEBO arms, and every
    administration's product (and its dose: cells <-> none) the other one."""
    swap = {"MNC": "PLACEBO", "PLACEBO": "MNC", "BMNC": "PLACEBO"}
    out = orjson.loads(orjson.dumps(resources))
    for r in out:
        if r["resourceType"] == "ResearchSubject":
            for key in ("assignedArm", "actualArm"):
                if key in r:
                    r[key] = swap[r[key]]
        elif r["resourceType"] == "MedicationAdministration":
            for c in r["medicationCodeableConcept"]["coding"]:
                if c["system"].endswith("/study-product"):
                    c["code"] = "BMNC" if c["code"] == "PLACEBO" else "PLACEBO"
                    c.pop("display", None)
                    r["dosage"]["dose"]["value"] = 25.0 if c["code"] == "BMNC" else 0
    return out


def test_a_masked_package_is_the_same_whatever_the_allocation(tmp_path, monkeypatch):
    """The strongest form of "nothing reveals the arm": swap every subject's arm and product, and the
    masked package (every dataset, the define, the report, the manifest's outputs) is the same bytes,
    while the unmasked one differs."""
    trial = generate(12, seed=3)
    packages = {}
    for name, resources in (("real", trial), ("swapped", _reallocated(trial))):
        folder = tmp_path / name
        write_bundle(resources, folder / "trial.json")
        monkeypatch.chdir(folder)  # the same relative input path: the report names it
        to_sdtm(["trial.json"], "sdtm", masked=True, formats=("xpt", "json"))
        packages[name] = to_sdtm(["trial.json"], fast=True).datasets  # only their arms are read
    real, swapped = tmp_path / "real" / "sdtm", tmp_path / "swapped" / "sdtm"
    assert sorted(p.name for p in real.iterdir()) == sorted(p.name for p in swapped.iterdir())
    for f in sorted(real.iterdir()):
        if f.name in ("manifest.json", "run-report.json"):
            # the inputs differ, so do their checksums (named in both); nothing else does, but the run
            # report's own checksum in the manifest
            a, b = (json.loads(x.read_text()) for x in (f, swapped / f.name))
            assert a["inputs"] != b["inputs"]
            for doc in (a, b):
                del doc["inputs"]
                doc["outputs"] = [o for o in doc["outputs"] if not isinstance(o, dict) or o["path"] != "run-report.json"]
            assert a == b
        else:
            assert f.read_bytes() == (swapped / f.name).read_bytes(), f.name
    # unmasked, the two trials are different trials
    assert list(packages["real"]["DM"]["ARMCD"]) != list(packages["swapped"]["DM"]["ARMCD"])
    assert list(packages["real"]["EX"]["EXTRT"]) != list(packages["swapped"]["EX"]["EXTRT"])


def test_define_validates_with_masked_as_an_extended_armnrs_term(masked):
    define = (masked[1] / "define.xml").read_bytes()
    assert validate_define(define) == []
    doc = etree.fromstring(define)
    groups = {g.get("Name") for g in doc.iterfind(".//odm:ItemGroupDef", NS)}
    assert "EC" in groups and "EX" not in groups
    assert doc.find(".//odm:CodeList[@OID='CL.EXTRT']", NS) is None
    term = doc.find(".//odm:CodeList[@OID='CL.ARMNRS']/odm:EnumeratedItem[@CodedValue='MASKED']", NS)
    assert term is not None and term.get(f"{{{NS['def']}}}ExtendedValue") == "Yes"
    mood = doc.find(".//odm:CodeList[@OID='CL.MOOD']", NS)
    assert mood is not None and mood.find("odm:Alias", NS).get("Name") == "C125923"
    methods = " ".join(doc.xpath(".//odm:MethodDef//odm:TranslatedText/text()", namespaces=NS))
    assert "RFXSTDTC is the earliest ECSTDTC of the subject's EC records." in methods and "EX records" not in methods


def test_manifest_says_masked(unmasked, masked):
    assert json.loads((masked[1] / "manifest.json").read_text())["options"]["masked"] is True
    assert json.loads((unmasked[1] / "manifest.json").read_text())["options"]["masked"] is False


# --- the default is unchanged ----------------------------------------------------------------------
def test_default_package_keeps_ex_and_arms(unmasked):
    result, out = unmasked
    assert (out / "ex.xpt").is_file() and not list(out.glob("ec.*"))
    assert "EC" not in result.datasets
    ex, dm = result.datasets["EX"], result.datasets["DM"]
    assert {"BONE MARROW MONONUCLEAR CELLS", "PLACEBO"} == set(ex["EXTRT"])
    assert {"MNC", "PLACEBO"} <= set(dm["ARMCD"].dropna())
    assert "MASKED" not in set(dm["ARMNRS"].dropna())
    assert all(r.get("RFXSTDTC") for r in dm.to_dict("records") if r["ARMCD"])


# --- to-fhir reads a masked package back -------------------------------------------------------------
@pytest.fixture(scope="module")
def small_masked(tmp_path_factory):
    """A small synthetic trial (arms, a screen failure) through to-sdtm --masked."""
    def convert(d):
        return to_sdtm([write_bundle(generate(12, seed=3), d / "trial.json")], d / "sdtm", masked=True), d

    return run_once(tmp_path_factory, "small-masked", convert)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_to_fhir_and_back_gives_the_same_ec_and_dm(small_masked, tmp_path, version):
    result, d = small_masked
    assert {"MASKED", "SCREEN FAILURE"} <= set(result.datasets["DM"]["ARMNRS"])
    fhir = to_fhir(d / "sdtm", tmp_path / "fhir.json", fhir_version=version)
    assert not fhir.report.errors, fhir.report.errors[:3]
    trip = next(f.message for f in fhir.report.findings if f.code == "ROUND_TRIP")
    given, total = (int(x) for x in trip.split("gives back ")[1].split(" cells")[0].split(" of "))
    assert given == total > 0
    meds = [r for r in fhir.resources if r["resourceType"] == "MedicationAdministration"]
    assert len(meds) == len(result.datasets["EC"]) + len(result.datasets["CM"])  # CM: not study treatment
    ec = [m for m in meds if "/ec.xpt#" in m["meta"]["source"]]
    assert len(ec) == len(result.datasets["EC"])
    for m in ec:
        concept = m["medicationCodeableConcept"] if version == "R4" else m["medication"]["concept"]
        assert concept == {"text": "MASKED"}
    # the study's arms come back from TA (the design); no subject is put in one
    subjects = [r for r in fhir.resources if r["resourceType"] == "ResearchSubject"]
    assert len(subjects) == len(result.datasets["DM"])
    assert not [r for r in subjects if {"assignedArm", "actualArm", "assignedComparisonGroup",
                                        "actualComparisonGroup"} & set(r)]
    back = to_sdtm([tmp_path / "fhir.json"], tmp_path / "back", masked=True, **BACK)
    assert not back.report.errors, back.report.errors[:3]
    assert set(back.datasets) == set(result.datasets)
    for name in ("EC", "DM"):
        pd.testing.assert_frame_equal(back.datasets[name], result.datasets[name], check_dtype=False)


def test_masked_fhir_about_subjects_names_no_arm(small_masked, tmp_path):
    """Subject-level resources name no arm or product; the study (its design: arms, TS) may."""
    result, d = small_masked
    resources = to_fhir(d / "sdtm", verify=False).resources
    about_subjects = [r for r in resources if r["resourceType"] not in ("ResearchStudy", "Group", "PlanDefinition")]
    assert {"Patient", "ResearchSubject", "MedicationAdministration"} <= {r["resourceType"] for r in about_subjects}
    text = json.dumps(about_subjects).lower()
    for secret in ("mnc", "placebo", "mononuclear"):
        assert secret not in text, secret
    assert "placebo" in (d / "trial.json").read_text().lower()  # the input does name them


# --- CLI, API, specs -----------------------------------------------------------------------------
def test_cli_masked_flag(tmp_path, mini_bundle):
    r = CliRunner().invoke(app, ["to-sdtm", str(mini_bundle), "--out", str(tmp_path), "--masked", "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ec.xpt").is_file() and not (tmp_path / "ex.xpt").exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["options"]["masked"] is True
    r = CliRunner().invoke(app, ["to-sdtm", str(mini_bundle), "--out", str(tmp_path / "plain"), "-q"])
    assert r.exit_code == 0 and (tmp_path / "plain" / "ex.xpt").is_file()


def test_masked_mapping_set_serves_ex_with_ec():
    ms = load_mapping_set(masked=True)
    assert ms.masked and {r: s.domain for r, s in ms.domains.items()} == {
        "dm": "DM", "ex": "EC", "ae": "AE", "cm": "CM", "ds": "DS", "vs": "VS", "mune": "XM", "sv": "SV"}
    dm = ms.spec("dm")
    assert dm.by_name["RFXSTDTC"].params == {"domain": "EC", "var": "ECSTDTC"}
    assert dm.by_name["RFXENDTC"].params == {"domain": "EC", "var": "ECENDTC"}
    assert all(dm.by_name[n].algorithm == "hardcode" and dm.by_name[n].params == {"value": None} for n in ARM_VARS)
    plain = load_mapping_set()
    assert not plain.masked and plain.spec("ex").domain == "EX"
    assert plain.spec("dm").by_name["RFXSTDTC"].params == {"domain": "EX", "var": "EXSTDTC"}
    assert plain.spec("dm").by_name["ARMCD"].algorithm == "arm"


def test_masked_needs_a_masked_mapping_set(mappings, mini_bundle):
    with pytest.raises(UsageError, match="masked=True needs a mapping set"):
        to_sdtm([mini_bundle], mappings=mappings, masked=True)


@pytest.fixture
def mdir(tmp_path):
    d = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, d)
    return d


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_masked_dm_still_reading_ex_is_refused(mdir):
    _edit(mdir / "dm.yaml", "masked: {params: {domain: EC, var: ECSTDTC}}", "masked: {params: {domain: EX, var: EXSTDTC}}")
    load_mapping_set(mdir)  # the unmasked set is fine
    with pytest.raises(SpecError, match=r"RFXSTDTC: params.domain 'EX' is not a domain of this mapping set"):
        load_mapping_set(mdir, masked=True)


def test_masked_without_masked_domains_is_refused(mdir):
    _edit(mdir / "study.yaml", "masked_domains:\n  ex: ec.yaml\n", "")
    load_mapping_set(mdir)
    with pytest.raises(SpecError, match="masked delivery needs `masked_domains`"):
        load_mapping_set(mdir, masked=True)


def test_a_masked_value_outside_the_codelist_is_refused(mdir):
    _edit(mdir / "dm.yaml", "masked: {params: {value: MASKED}}", "masked: {params: {value: BLINDED}}")
    for masked in (True, False):  # checked on every load, not only when a masked delivery is made
        with pytest.raises(SpecError, match="value 'BLINDED' is not a term of codelist ARMNRS"):
            load_mapping_set(mdir, masked=masked)
