"""What the README and the commands' --help show runs as written: the README's main command (the part
after the install) writes what it promises, its Python API snippet runs, and the `Example:` line of every
command's help runs (in a folder of its own, given the files it names; pull and push reach a FHIR server
in memory; what lives in ../shared skips without it)."""

import json
import re
import shlex
import shutil

import pytest
from conftest import ROOT, need_external
from typer.main import get_command
from typer.testing import CliRunner

from tcim_interop import to_fhir
from tcim_interop.cli import app

README = (ROOT / "README.md").read_text(encoding="utf-8")
runner = CliRunner()


def help_examples() -> dict[str, str]:
    """command -> the `Example:` command line of its --help (without the comment after it)."""
    examples = {}
    for name in sorted(get_command(app).commands):
        shown = runner.invoke(app, [name, "--help"], terminal_width=200).output
        m = re.search(r"^\s*Example:\s+(tcim-interop .+?)(?:\s{2,}\(.*)?$", shown, re.M)
        if m:
            examples[name] = m.group(1).strip()
    return examples


EXAMPLES = help_examples()


MAIN_COMMAND = re.search(r"python3 -m pip install -e \. && (tcim-interop to-sdtm .+)", README).group(1)


@pytest.fixture(scope="module")
def main_command_run(tmp_path_factory):
    """The README's main command run once, in a folder of its own: (its result, the folder). The to-sdtm
    help example is the same line, so its test reads this run too (both in one xdist group)."""
    folder = tmp_path_factory.mktemp("main-command")
    args = [str(ROOT / a) if a.startswith("examples/") else a for a in shlex.split(MAIN_COMMAND)[1:]]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        return runner.invoke(app, args), folder


@pytest.mark.xdist_group("main-command")
def test_the_readme_main_command_writes_the_whole_package(main_command_run):
    result, folder = main_command_run
    assert result.exit_code == 0, result.output
    out = folder / "sdtm"
    names = {p.name for p in out.iterdir()}
    for stem in ("dm", "ex", "ae", "suppae", "xm", "ts", "ta", "te", "ti", "tv"):
        assert {f"{stem}.xpt", f"{stem}.json"} <= names, stem
    assert {"define.xml", "define.html", "validation-report.json", "validation-report.csv", "run-report.json",
            "manifest.json"} <= names
    validation = json.loads((out / "validation-report.json").read_text(encoding="utf-8"))
    assert validation["findings_by_severity"]["error"] == 0


def test_the_readme_python_snippet_runs(monkeypatch, example_conversion):
    snippet = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    monkeypatch.chdir(ROOT)  # the snippet names the example relative to the checkout
    namespace = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert list(result.datasets["DM"].columns)[:3] == ["STUDYID", "DOMAIN", "USUBJID"]
    assert result.report.counts() == example_conversion[0].report.counts()
    assert result.datasets["DM"].equals(example_conversion[0].datasets["DM"])


def test_every_command_shows_an_example():
    assert sorted(EXAMPLES) == sorted(get_command(app).commands)
    assert all(line.split()[1] == name for name, line in EXAMPLES.items())


SYNTH_SUBJECTS = "20"  # the example's 1000 subjects take a minute; test_synth.py covers the generator's sizes


@pytest.mark.xdist_group("main-command")
def test_the_to_sdtm_help_example_is_the_readme_main_command(main_command_run, example_package):
    """One line for the newcomer, in the README and in `to-sdtm --help`; run once, it writes the package the
    API writes."""
    assert EXAMPLES["to-sdtm"] == MAIN_COMMAND
    result, folder = main_command_run
    assert result.exit_code == 0, result.output
    for xpt in example_package.glob("*.xpt"):
        assert (folder / "sdtm" / xpt.name).read_bytes() == xpt.read_bytes(), xpt.name


@pytest.mark.parametrize("command", sorted(set(EXAMPLES) - {"to-sdtm"}))
def test_the_help_example_runs(command, tmp_path, monkeypatch, request):
    args = shlex.split(EXAMPLES[command])[1:]
    for i, arg in enumerate(args):
        if arg.startswith("examples/"):
            args[i] = str(ROOT / arg)
        elif arg.startswith("../shared/external/"):
            args[i] = str(need_external(*arg.split("/")[3:]))
        elif args[i - 1] == "--subjects":
            args[i] = SYNTH_SUBJECTS
    if "--server" in args:
        fake = request.getfixturevalue("fake")  # answers at the example's URL
    if command in ("validate", "report"):  # the package the to-sdtm example writes
        shutil.copytree(request.getfixturevalue("example_package"), tmp_path / args[1])
    if command == "push":  # a to-fhir transaction bundle (of the mini package: the example's takes a minute)
        to_fhir(request.getfixturevalue("mini_conversion")[1], tmp_path / args[1])
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    if command == "to-fhir":
        assert "gives back" in result.output and (tmp_path / "pilot.json").is_file()
    elif command == "synth":
        assert f"for {SYNTH_SUBJECTS} subjects written to corpus.json" in result.output
    elif command == "validate":
        assert (tmp_path / "sdtm-validation" / "validation-report.json").is_file()
    elif command == "report":
        assert (tmp_path / "report.html").read_bytes() == (tmp_path / "sdtm" / "report.html").read_bytes()
    elif command == "pull":
        assert len(list((tmp_path / "export").glob("*.ndjson"))) == 8
    elif command == "survey":
        assert "unmapped: " in result.output and "EX.EXTRT" in result.output
    elif command == "push":
        bundle = json.loads((tmp_path / "study.json").read_text())
        assert {f"{e['request']['url']}" for e in bundle["entry"]} <= set(fake.store)
