"""The README's main command runs as written (the part after the install) and writes what it promises."""

import json
import re
import shlex

from typer.testing import CliRunner

from conftest import ROOT
from tcim_interop.cli import app


def test_the_readme_main_command_writes_the_whole_package(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = re.search(r"python3 -m pip install -e \. && (tcim-interop to-sdtm .+)", readme).group(1)
    args = shlex.split(command)[1:]
    args = [str(ROOT / a) if a.startswith("examples/") else a for a in args]
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = tmp_path / "sdtm"
    names = {p.name for p in out.iterdir()}
    for stem in ("dm", "ex", "ae", "suppae", "xm", "ts", "ta", "te", "ti", "tv"):
        assert {f"{stem}.xpt", f"{stem}.json"} <= names, stem
    assert {"define.xml", "define.html", "validation-report.json", "validation-report.csv", "run-report.json",
            "manifest.json"} <= names
    validation = json.loads((out / "validation-report.json").read_text(encoding="utf-8"))
    assert validation["findings_by_severity"]["error"] == 0
