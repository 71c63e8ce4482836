"""to-sdtm writes the whole package: datasets as XPT and Dataset-JSON, define.xml (XSD-valid) and its
HTML view, the run report and the manifest; to-fhir reads Dataset-JSON back with its UTF-8 text."""

import json

import pytest
from typer.testing import CliRunner

from tcim_interop import read_sdtm, to_fhir, to_sdtm
from tcim_interop.cli import app
from tcim_interop.sdtm.define import validate_define


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    from conftest import DATA

    out = tmp_path_factory.mktemp("package")
    to_sdtm([DATA / "mini-r4.json"], out, formats=("xpt", "json"))
    return out


def test_every_part_is_written_and_in_the_manifest(package):
    names = {p.name for p in package.iterdir()}
    for stem in ("dm", "ex", "ae", "suppae", "xm"):
        assert {f"{stem}.xpt", f"{stem}.json"} <= names
    assert {"define.xml", "define.html", "run-report.json", "manifest.json"} <= names
    listed = {o["path"] for o in json.loads((package / "manifest.json").read_text())["outputs"]}
    assert listed == names - {"manifest.json"}


def test_define_validates_and_names_the_xpt_files(package):
    define = (package / "define.xml").read_bytes()
    assert validate_define(define) == []
    assert b'def:title>dm.xpt<' in define or b"dm.xpt" in define


def test_dataset_json_keeps_utf8_and_to_fhir_reads_it(package, tmp_path):
    ae = json.loads((package / "ae.json").read_text(encoding="utf-8"))
    assert any("Neumonía por aspiración" in row for row in ae["rows"])
    json_only = tmp_path / "json"
    json_only.mkdir()
    for p in package.glob("*.json"):
        if p.stem not in ("manifest", "run-report"):
            (json_only / p.name).write_bytes(p.read_bytes())
    datasets = read_sdtm(json_only)
    assert datasets["AE"].frame["AETERM"].tolist()[0] == "Neumonía por aspiración"
    result = to_fhir(json_only)
    terms = [r["event"]["text"] for r in result.resources if r["resourceType"] == "AdverseEvent"]
    assert "Neumonía por aspiración" in terms and not result.report.errors


def test_format_option_is_checked(tmp_path, mini_bundle):
    r = CliRunner().invoke(app, ["to-sdtm", str(mini_bundle), "--out", str(tmp_path), "--format", "xpt,csv"])
    assert r.exit_code == 2 and "--format" in r.output
    r = CliRunner().invoke(app, ["to-sdtm", str(mini_bundle), "--out", str(tmp_path), "--format", "json", "-q"])
    assert r.exit_code == 0 and (tmp_path / "dm.json").is_file() and not (tmp_path / "dm.xpt").exists()
