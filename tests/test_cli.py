"""The command line: exit codes, one-line errors without traceback, no partial output."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tcim_interop.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_to_sdtm_writes_datasets_and_report(tmp_path, mini_bundle):
    r = run("to-sdtm", mini_bundle, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "dm.xpt").is_file() and (tmp_path / "run-report.json").is_file()
    report = json.loads((tmp_path / "run-report.json").read_text())
    assert report["resources"]["input"] == 23
    # every resource of the mini bundle is converted: its one Observation that is no MUNE measure is a weight (VS)
    assert "23 read = 23 converted + 0 rejected + 0 out of scope" in r.output
    assert (tmp_path / "vs.xpt").is_file()


@pytest.mark.parametrize("content, message", [
    (b'{"resourceType": "Bundle", "entry": [', "not valid JSON"),
    (b'[{"resourceType": "Patient"}]', "a JSON array where a FHIR resource or Bundle was expected"),
    (b'"Patient"', "a JSON string where a FHIR resource or Bundle was expected"),
    (b'{"id": "x"}', "no resourceType"),
    (b"", "the file is empty"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, content, message):
    bad = tmp_path / "in.json"
    bad.write_bytes(content)
    out = tmp_path / "out"
    r = run("to-sdtm", bad, "--out", out)
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and message in r.output and str(bad) in r.output
    assert "Traceback" not in r.output
    assert not out.exists() or not any(out.glob("*.xpt"))


def test_missing_input_file(tmp_path):
    r = run("to-sdtm", tmp_path / "nope.json", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "no such file or directory" in r.output


def test_output_path_that_is_a_file(tmp_path, mini_bundle):
    target = tmp_path / "taken"
    target.write_text("x")
    r = run("to-sdtm", mini_bundle, "--out", target)
    assert r.exit_code == 2 and "exists and is not a directory" in r.output


def test_strict_fails_on_error_findings_and_writes_no_dataset(tmp_path, mini_bundle):
    doc = json.loads(mini_bundle.read_text())
    for e in doc["entry"]:
        if e["resource"].get("id") == "rs1":
            e["resource"]["assignedArm"] = "MNX"  # valid FHIR, but no such arm in the study
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc))
    r = run("to-sdtm", src, "--out", tmp_path / "o", "--strict")
    assert r.exit_code == 1, r.output
    assert not list((tmp_path / "o").glob("*.xpt"))
    assert not (tmp_path / "o").exists()  # the failed run's report goes beside the package, never into it
    report = json.loads((tmp_path / "o.failed-run-report.json").read_text())
    assert [f["code"] for f in report["findings"] if f["severity"] == "error"] == ["ARM_UNDECLARED"] * 2
    r = run("to-sdtm", src, "--out", tmp_path / "o2")  # without --strict: written, error reported
    assert r.exit_code == 0 and (tmp_path / "o2" / "dm.xpt").is_file() and "2 error(s)" in r.output


def test_help_shows_an_example():
    r = run("to-sdtm", "--help")
    assert r.exit_code == 0 and "Example:" in r.output and "tcim-interop to-sdtm" in r.output


def test_console_script_runs_as_a_process(tmp_path, mini_bundle):
    p = subprocess.run([sys.executable, "-m", "tcim_interop", "to-sdtm", str(mini_bundle), "--out", str(tmp_path), "-q"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "xm.xpt").is_file()


def test_to_sdtm_needs_inputs_or_a_server(tmp_path):
    r = run("to-sdtm", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--server URL with --study" in r.output
