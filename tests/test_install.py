"""The package as a user installs it: a wheel built from the sources, in a fresh virtual environment,
run from a directory that is not the checkout. An editable install finds mappings/ in the checkout and
hides a wheel that lacks it; this test does not."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "data" / "mini-r4.json"


def _setuptools_packages() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]


def test_every_package_folder_is_listed_in_pyproject():
    on_disk = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src").rglob("__init__.py")}
    assert on_disk - set(_setuptools_packages()) == set()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # built as pip builds it for a user: in an isolated environment with pyproject's build requirements
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"pip wheel failed: {done.stderr[-2000:]}")
    return next(out.glob("tcim_interop-*.whl"))


def test_wheel_carries_the_specs_the_standard_and_py_typed(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = {p.name for p in (ROOT / "mappings").glob("*.yaml")}
    assert specs and {f"tcim_interop/mappings/{s}" for s in specs} <= names
    assert "tcim_interop/py.typed" in names
    assert "tcim_interop/mapping_spec/sdtmig34.yaml" in names  # SDTMIG 3.4's variables, read by validate
    with zipfile.ZipFile(wheel) as z:  # the shipped specs are the repository's, byte for byte
        for s in specs:
            assert z.read(f"tcim_interop/mappings/{s}") == (ROOT / "mappings" / s).read_bytes(), s


def test_installed_wheel_converts_from_another_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    # the dependencies come from this environment (--system-site-packages), pip too (no copy of pip installed
    # in the venv: 3 s); the package from the wheel only
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
                   check=True, capture_output=True)
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": ""}
    where = subprocess.run([str(py), "-c", "import tcim_interop; print(tcim_interop.__file__)"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, check=True).stdout
    assert str(venv) in where, f"imported {where.strip()}, not the wheel"
    cli = str(venv / "bin" / "tcim-interop")
    # the mini bundle holds one AE without a coded term on purpose: validate finds it and exits 1
    for args, code in (([cli, "to-sdtm", str(EXAMPLE), "--out", "sdtm", "--format", "xpt,json", "-q"], 0),
                       ([cli, "validate", "sdtm", "--out", "checks", "-q"], 1),
                       ([cli, "to-fhir", "sdtm", "--out", "back.json", "-q"], 0)):
        done = subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True)
        assert done.returncode == code, f"{args[1]}: {done.stderr[-2000:]}"
    assert (elsewhere / "sdtm" / "dm.xpt").is_file() and (elsewhere / "back.json").is_file()
    assert "CORE-000356" in (elsewhere / "checks" / "validation-report.json").read_text()
