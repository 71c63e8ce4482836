"""The command line as people meet it: --version, completion, readable help, release names in any
case, no colour escapes under NO_COLOR, and --quiet silencing the progress line."""

import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from tcim_interop.cli import app

runner = CliRunner()
COMMANDS = ["to-sdtm", "to-fhir", "survey", "synth", "validate", "pull", "push"]


def test_version_is_the_installed_distribution_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"tcim-interop {version('tcim-interop')}"


def test_shell_completion_is_offered():
    r = runner.invoke(app, ["--help"])
    assert "--install-completion" in r.output and "--show-completion" in r.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_placeholders_are_words_not_python_types(command):
    r = runner.invoke(app, [command, "--help"], terminal_width=100)
    assert r.exit_code == 0
    assert not re.search(r"<[a-z\[\]| ]+>", r.output), r.output   # no "<list[Path]>", "<str>", "<int range>"
    assert "Path]" not in r.output and "<bool>" not in r.output


def test_to_sdtm_help_names_what_each_option_takes():
    out = runner.invoke(app, ["to-sdtm", "--help"], terminal_width=120).output
    for placeholder in ["INPUT...", "--out DIR", "--created DATETIME", "--format FORMATS", "--server URL",
                        "--jobs N", "--fhir-version [r4|r5]"]:
        assert placeholder in out, placeholder


@pytest.mark.parametrize("spelling", ["r4", "R4", "r5"])
def test_release_names_are_accepted_in_any_case(tmp_path, mini_bundle, spelling):
    out = tmp_path / "o"
    r = runner.invoke(app, ["to-sdtm", str(mini_bundle), "--out", str(out), "--fhir-version", spelling, "-q",
                            "--fast", "-j", "1"])
    # the mini bundle is R4: what forcing R5 does is the reader's business; the parser must take the spelling
    if spelling.lower() == "r4":
        assert r.exit_code == 0, r.output
        assert (out / "dm.xpt").is_file()
    else:
        assert "Invalid value for '--fhir-version'" not in r.output


def test_usage_errors_carry_no_colour_under_no_color(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "TERM": "xterm-256color"}
    p = subprocess.run([sys.executable, "-m", "tcim_interop", "to-sdtm", "--out", str(tmp_path), "--fhir-version", "r6"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 2 and "--fhir-version" in p.stderr
    assert "\x1b[" not in p.stderr and "\x1b[" not in p.stdout
