"""The public API: what __all__ names is what the package docstring documents, importable and
documented; documents in memory convert as the same JSON in a file does."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from conftest import DATA

import tcim_interop
from tcim_interop import to_sdtm, validate_package


def test_all_is_the_documented_public_api():
    doc = tcim_interop.__doc__
    documented = set(re.findall(r"^ {4}(\w+)", doc, re.M)) | {
        name for line in re.findall(r"^ {4}([\w, ]+?) {2,}", doc, re.M) for name in re.findall(r"\w+", line)}
    exported = set(tcim_interop.__all__) - {"__version__"}
    # every exception is documented through "TcimError and subclasses" (errors.py lists them)
    from tcim_interop import errors

    exceptions = {n for n in exported if isinstance(getattr(tcim_interop, n), type)
                  and issubclass(getattr(tcim_interop, n), errors.TcimError)}
    assert exported - exceptions <= documented, exported - exceptions - documented
    for name in exported - exceptions:  # the exceptions are documented in errors.py's tree
        assert getattr(tcim_interop, name).__doc__, f"{name} has no docstring"


@pytest.fixture(scope="module")
def from_file():
    return to_sdtm([DATA / "mini-r4.json"])


@pytest.mark.parametrize("shape", ["bundle", "resources"])
def test_documents_in_memory_convert_as_the_file_does(from_file, shape):
    bundle = json.loads((DATA / "mini-r4.json").read_text(encoding="utf-8"))
    given = bundle if shape == "bundle" else [e["resource"] for e in bundle["entry"]]
    result = to_sdtm([given] if shape == "resources" else given)
    assert set(result.datasets) == set(from_file.datasets)
    for name, frame in from_file.datasets.items():
        pd.testing.assert_frame_equal(result.datasets[name], frame, check_dtype=False, obj=name)
    assert result.report.counts() == from_file.report.counts()
    (described,) = result.report.inputs()
    assert described["label"] == "memory-1" and len(described["sha256"]) == 64


def test_validate_package_is_public_and_writes_nothing(tmp_path):
    to_sdtm([DATA / "mini-r4.json"], tmp_path / "sdtm")
    before = sorted(p.name for p in (tmp_path / "sdtm").iterdir())
    report = validate_package(tmp_path / "sdtm")
    assert report.by_severity()["error"] == len(report.errors) >= 1  # the mini bundle's AE has no AEDECOD
    assert sorted(p.name for p in (tmp_path / "sdtm").iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdtm"]
