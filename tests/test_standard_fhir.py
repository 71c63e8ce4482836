"""to-fhir writes what a hospital reads without the project's extensions: the side in mCODE's laterality
extension (the project's own one is still read, for files written before), every identifier with its
system, every MedDRA coding with the MedDRA version the package is coded in (define.xml, else TS)."""

import json

import pandas as pd
import pytest
from conftest import EXAMPLE, MINI, need_external, read_json

from tcim_interop import read_sdtm, to_fhir, to_sdtm
from tcim_interop.fhir.extensions import LATERALITY, MCODE_LATERALITY
from tcim_interop.mapping.row_algorithms import MEDDRA_SYSTEM
from tcim_interop.sdtm.read import dictionary_versions

SIDES = {"7771000": "LEFT", "24028007": "RIGHT", "51440002": "BILATERAL"}


@pytest.fixture(scope="module")
def mini_fhir(mini_conversion, tmp_path_factory):
    """to-fhir of the mini package, R4 and R5: {version: (result, bundle file)}."""
    out = tmp_path_factory.mktemp("mini-fhir")
    return {v: (to_fhir(mini_conversion[1], out / f"{v}.json", fhir_version=v), out / f"{v}.json") for v in ("R4", "R5")}


def _sites(resource: dict) -> list[dict]:
    site = (resource.get("dosage") or {}).get("site") or resource.get("bodySite")
    return [site] if isinstance(site, dict) else []


def _side(site: dict, url: str) -> str | None:
    ext = next((e for e in site.get("extension") or [] if e.get("url") == url), None)
    return SIDES[ext["valueCodeableConcept"]["coding"][0]["code"]] if ext else None


def _identifiers(value, found: list) -> list:
    """Every Identifier of a resource, at any depth (R4 AdverseEvent.identifier is one, not a list)."""
    if isinstance(value, list):
        for v in value:
            _identifiers(v, found)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "identifier":
                found += v if isinstance(v, list) else [v]
            _identifiers(v, found)
    return found


def test_the_side_is_mcode_laterality_and_never_the_private_extension(example_fhir, example_package):
    """Every injection and MUNE result of the example says its side in mCODE's extension, the side SDTM
    has; the project's own laterality URL is in no resource."""
    text = example_fhir[1].read_text()
    assert LATERALITY not in text
    sides = {}
    for r in example_fhir[0].resources:
        for site in _sites(r):
            sides[r["resourceType"]] = sides.get(r["resourceType"], []) + [_side(site, MCODE_LATERALITY)]
    sdtm = read_sdtm(example_package)
    assert sorted(s for s in sides["MedicationAdministration"] if s) == sorted(sdtm["EX"].frame["EXLAT"])
    xm = sorted(sdtm["XM"].frame["XMLAT"])  # every result has a side: no Observation of VS has a body site
    assert len(xm) > 10_000 and xm.count("") == 0 and sorted(sides["Observation"]) == xm


@pytest.mark.parametrize("url", [LATERALITY, MCODE_LATERALITY])
def test_the_side_is_read_from_mcode_and_from_the_retired_extension(mini_conversion, url):
    """A file written before (the project's own extension) and one of today (mCODE's) give the same EXLAT
    and XMLAT as the shipped mini example."""
    doc = json.loads(MINI.read_text())
    for e in doc["entry"]:
        for site in _sites(e["resource"]):
            for ext in site.get("extension") or []:
                if ext.get("url") in (LATERALITY, MCODE_LATERALITY):
                    ext["url"] = url
    datasets = to_sdtm([doc], fast=True).datasets
    for name, col in (("EX", "EXLAT"), ("XM", "XMLAT")):
        assert datasets[name][col].tolist() == mini_conversion[0].datasets[name][col].tolist()
        assert set(datasets[name][col]) <= {"LEFT", "RIGHT"} and datasets[name][col].ne("").all()


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_mini_output_has_mcode_sides_identifier_systems_and_meddra_versions(mini_fhir, mini_conversion, version):
    result, bundle = mini_fhir[version]
    assert not result.report.errors
    text = bundle.read_text()
    assert LATERALITY not in text and MCODE_LATERALITY in text
    identifiers = [i for r in result.resources for i in _identifiers(r, [])]
    assert identifiers and [i for i in identifiers if not i.get("system")] == []
    # the mini example's codings name no MedDRA version, so neither does its define.xml, nor the output
    assert "AE" not in dictionary_versions(mini_conversion[1] / "define.xml")
    assert _meddra_versions(result.resources) == {None}


def _meddra_versions(resources: list[dict]) -> set:
    codings = [c for r in resources if r["resourceType"] == "AdverseEvent"
               for c in (r.get("event") or r.get("code") or {}).get("coding", []) if c.get("system") == MEDDRA_SYSTEM]
    assert codings
    return {c.get("version") for c in codings}


def test_every_meddra_coding_has_the_version_of_define(example_fhir, example_package):
    """The example's AE is coded in MedDRA 26.0 (its define.xml): each of its 625 codings says so."""
    want = dictionary_versions(example_package / "define.xml")["AE"]["MEDDRA"]
    assert want == "26.0" and _meddra_versions(example_fhir[0].resources) == {want}


def test_identifiers_keep_the_systems_the_site_sent(example_fhir):
    """Study, site, subject and AE identifiers come out in the namespaces the site's records use, the
    registries' ids in theirs: every identifier of the example's output has a system."""
    sent = {(r["resourceType"], i.get("system")) for e in read_json(EXAMPLE)["entry"]
            for r in [e["resource"]] if r["resourceType"] != "Patient" for i in _identifiers(r, [])}
    identifiers = [(r["resourceType"], i) for r in example_fhir[0].resources for i in _identifiers(r, [])]
    assert len(identifiers) > 100 + 125 and [i for _, i in identifiers if not i.get("system")] == []
    written_systems = {(t, i["system"]) for t, i in identifiers}
    # the Patient's hospital number is not in SDTM; to-fhir adds USUBJID itself (docs/decisions.md), which
    # another study's keys need (the pilot's "01-701-1015" is no STUDYID-SITEID-SUBJID join)
    usubjid = ("ResearchSubject", "http://tcim-interop.org/fhir/sid/usubjid")
    assert len(sent) == 6 and usubjid not in sent and written_systems == sent | {usubjid}


def test_pilot_identifiers_have_a_system(pilot_fhir):
    for version in ("R4", "R5"):
        identifiers = [i for r in pilot_fhir(version)[0].resources for i in _identifiers(r, [])]
        assert len(identifiers) > 300 and [i for i in identifiers if not i.get("system")] == []


def test_without_define_the_meddra_version_is_ts_and_comes_back_into_define(mini_conversion, tmp_path):
    """Datasets without define.xml: the version of TS's TSVCDREF MedDRA (without either, none); to-sdtm of
    the output reads it on the codings, and its define.xml says it."""
    datasets = read_sdtm(mini_conversion[1])
    datasets["AE"].dictionaries = {}
    assert _meddra_versions(to_fhir(datasets, None, fhir_version="R4", verify=False).resources) == {None}
    ts = datasets["TS"].frame
    row = {c: "" if ts[c].dtype == object else float("nan") for c in ts.columns}
    row.update(STUDYID=ts["STUDYID"].iloc[0], DOMAIN="TS", TSSEQ=1.0, TSPARMCD="INDIC", TSVAL="ALS",
               TSPARM="Trial Disease/Condition Indication", TSVALCD="10002026", TSVCDREF="MedDRA", TSVCDVER="27.1")
    datasets["TS"].frame = pd.concat([ts, pd.DataFrame([row])], ignore_index=True)
    result = to_fhir(datasets, tmp_path / "ts.json", fhir_version="R4")
    assert not result.report.errors and _meddra_versions(result.resources) == {"27.1"}
    to_sdtm([tmp_path / "ts.json"], tmp_path / "back", fast=True)
    assert dictionary_versions(tmp_path / "back" / "define.xml")["AE"] == {"MEDDRA": "27.1"}


def test_define_xml_1_0_gives_its_dictionaries_too():
    """The CDISC pilot's define.xml (Define-XML 1.0, ODM 1.2): AE coded in MedDRA 8.0."""
    versions = dictionary_versions(need_external("cdiscpilot01") / "define.xml")
    assert versions["AE"] == {"MEDDRA": "8.0"} and versions["CM"] == {"WHODRUG": "200604"}
