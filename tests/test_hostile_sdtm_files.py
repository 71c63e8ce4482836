"""Hostile Dataset-JSON and XPT files given to `tcim-interop to-fhir` and `tcim-interop validate`: each
is one `error:` line naming the file, exit code 2, no traceback, nothing written (docs/bad-input.md)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcim_interop.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def package(mini_conversion) -> Path:
    return mini_conversion[1]


def _text(old: str, new: str) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        assert old.encode() in data
        return data.replace(old.encode(), new.encode(), 1)

    return edit


def _namestr(field: slice, value: bytes, variable: int = 0) -> Callable[[bytes], bytes]:
    """Overwrite a field of a variable's NAMESTR record (140 bytes each, after the NAMESTR header)."""

    def edit(data: bytes) -> bytes:
        start = data.index(b"HEADER RECORD*******NAMESTR HEADER RECORD") + 80 + 140 * variable
        b = bytearray(data)
        b[start + field.start:start + field.stop] = value
        return bytes(b)

    return edit


def _count(n: int) -> Callable[[bytes], bytes]:
    def edit(data: bytes) -> bytes:
        at = data.index(b"HEADER RECORD*******NAMESTR HEADER RECORD") + 54
        return data[:at] + b"%04d" % n + data[at + 4:]

    return edit


LENGTH, NAME = slice(4, 6), slice(8, 16)
CASES = {
    # Dataset-JSON (dm.json)
    "json-nested-100000-deep": ("dm.json", _text('"label":"Demographics"', '"label":' + "[" * 100_000 + "]" * 100_000),
                                "not JSON"),
    "json-dataType-a-list": ("dm.json", _text('"dataType":"string"', '"dataType":["string"]'), "unknown dataType"),
    "json-duplicate-column": ("dm.json", _text('"name":"DOMAIN"', '"name":"STUDYID"'), "repeats the name 'STUDYID'"),
    "json-NaN": ("dm.json", _text('"records":2', '"records":NaN'), "not JSON"),
    "json-Infinity": ("dm.json", _text('"records":2', '"records":Infinity'), "not JSON"),
    "json-1e999": ("dm.json", _text('"records":2', '"records":1e999'), "not JSON"),
    # XPT (dm.xpt)
    "xpt-length-0": ("dm.xpt", _namestr(LENGTH, (0).to_bytes(2, "big")), "has length 0, not 1 to 200"),
    "xpt-length-300": ("dm.xpt", _namestr(LENGTH, (300).to_bytes(2, "big")), "has length 300, not 1 to 200"),
    "xpt-length-65535": ("dm.xpt", _namestr(LENGTH, (65535).to_bytes(2, "big")), "has length 65535"),
    "xpt-duplicate-variable": ("dm.xpt", _namestr(NAME, b"STUDYID ", variable=1), "repeats a name"),
    "xpt-count-too-high": ("dm.xpt", _count(99), "the header counts 99 variables"),
    "xpt-count-too-low": ("dm.xpt", _count(2), "the header counts 2 variables"),
}


@pytest.mark.parametrize("command", ["to-fhir", "validate"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_hostile_dataset_file_is_one_error_line(package, tmp_path, case, command):
    name, edit, message = CASES[case]
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    for f in ("dm.xpt", "dm.json") if name.endswith(".xpt") else (name,):
        shutil.copy(package / f, sdtm / f)
    (sdtm / name).write_bytes(edit((package / name).read_bytes()))
    if name.endswith(".xpt"):
        (sdtm / "dm.json").unlink()  # the XPT alone, or the reader would take the other
    out = tmp_path / "fhir.json"
    args = ["to-fhir", str(sdtm), "--out", str(out)] if command == "to-fhir" else ["validate", str(sdtm)]
    r = runner.invoke(app, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert str(sdtm / name) in lines[0] and message in lines[0], lines[0]
    assert not out.exists() and sorted(p.name for p in sdtm.iterdir()) == [name]


def test_a_decimal_given_as_text_must_be_a_finite_number():
    from tcim_interop.errors import InputError
    from tcim_interop.sdtm.dataset_json import _value

    for text in ("NaN", "inf", "1e999", "-Infinity"):
        with pytest.raises(InputError):
            _value(text, "decimal", lambda: InputError("bad"))
    assert _value("40.5", "decimal", lambda: InputError("bad")) == 40.5
