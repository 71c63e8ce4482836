"""to-sdtm writes the whole package: datasets as XPT and Dataset-JSON, define.xml (XSD-valid) and its
HTML view, the run report and the manifest; to-fhir reads Dataset-JSON back with its UTF-8 text."""

import json

import pytest
from conftest import EXAMPLE_DATASETS
from typer.testing import CliRunner

from tcim_interop import read_sdtm, to_fhir, to_sdtm
from tcim_interop.cli import app
from tcim_interop.sdtm.define import validate_define


@pytest.fixture(scope="module")
def package(mini_conversion):
    return mini_conversion[1]


def test_every_part_is_written_and_in_the_manifest(package):
    names = {p.name for p in package.iterdir()}
    for stem in ("dm", "ex", "ae", "suppae", "xm", "ts", "ta", "te", "tv"):
        assert {f"{stem}.xpt", f"{stem}.json"} <= names
    assert {"define.xml", "define.html", "run-report.json", "manifest.json", "validation-report.json",
            "validation-report.csv"} <= names
    listed = {o["path"] for o in json.loads((package / "manifest.json").read_text())["outputs"]}
    assert listed == names - {"manifest.json"}


def test_define_validates_and_names_the_xpt_files(package):
    define = (package / "define.xml").read_bytes()
    assert validate_define(define) == []
    assert b'def:title>dm.xpt<' in define or b"dm.xpt" in define


def test_dataset_json_keeps_utf8_and_to_fhir_reads_it(package, tmp_path):
    supp = json.loads((package / "suppae.json").read_text(encoding="utf-8"))  # the verbatim as sent, unfolded
    assert any("Neumonía por aspiración" in row for row in supp["rows"])
    json_only = tmp_path / "json"
    json_only.mkdir()
    for p in package.glob("*.json"):
        if p.stem not in ("manifest", "run-report"):
            (json_only / p.name).write_bytes(p.read_bytes())
    datasets = read_sdtm(json_only)
    assert datasets["AE"].frame["AETERM"].tolist()[0] == "Aspiration pneumonia"  # its English
    result = to_fhir(json_only)  # gives FHIR the term as the site sent it
    terms = [r["event"]["text"] for r in result.resources if r["resourceType"] == "AdverseEvent"]
    assert "Neumonía por aspiración" in terms and not result.report.errors


def test_format_option_is_checked(tmp_path, mini_bundle):
    r = CliRunner().invoke(app, ["to-sdtm", str(mini_bundle), "--out", str(tmp_path), "--format", "xpt,csv"])
    assert r.exit_code == 2 and "--format" in r.output
    r = CliRunner().invoke(app, ["to-sdtm", str(mini_bundle), "--out", str(tmp_path), "--format", "json", "-q"])
    assert r.exit_code == 0 and (tmp_path / "dm.json").is_file() and not (tmp_path / "dm.xpt").exists()


def test_the_package_carries_its_own_validation_report(package):
    """The checks of `validate` ran on the package as written; the mini bundle's first AE has no MedDRA
    coding, so AEDECOD (Req) is null: the one error, in the report and in the run report's counts."""
    report = json.loads((package / "validation-report.json").read_text(encoding="utf-8"))
    errors = [(f["rule"], f["dataset"], f["row"], f["variable"]) for f in report["findings"] if f["severity"] == "error"]
    assert errors == [("CORE-000356/CG0014", "AE", 1, "AEDECOD")]
    run = json.loads((package / "run-report.json").read_text(encoding="utf-8"))
    assert run["validation"] == report["findings_by_severity"]
    csv_lines = (package / "validation-report.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_lines) == 1 + len(report["findings"])


def test_strict_stops_on_a_conformance_error_and_writes_no_dataset(tmp_path, mini_bundle):
    from tcim_interop import ConformanceError

    with pytest.raises(ConformanceError, match=r"CORE-000356/CG0014\] AE row 1"):
        to_sdtm([mini_bundle], tmp_path / "out", strict=True)
    assert not list((tmp_path / "out").glob("*.xpt"))


def test_the_shipped_example_package_has_no_conformance_error(example_package):
    report = json.loads((example_package / "validation-report.json").read_text(encoding="utf-8"))
    assert report["findings_by_severity"]["error"] == 0, report["findings"][:3]
    assert set(report["datasets"]) == EXAMPLE_DATASETS
