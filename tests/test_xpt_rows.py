"""An XPT v5 dataset read a range of rows at a time (sdtm/xpt_rows.py, to-fhir's reading): the same rows
as the whole file's read, and the whole read where ranges cannot be trusted (rows of a subject apart,
text that is not ASCII)."""

import math
import shutil

import pandas as pd
import pyreadstat
import pytest

from tcim_interop import api
from tcim_interop.errors import InputError
from tcim_interop.sdtm import xpt_rows
from tcim_interop.sdtm.read import read_package, read_xpt
from tcim_interop.sdtm.records import Records


def _plain(records: list[dict]) -> list[dict]:
    """NaN made comparable (NaN != NaN)."""
    return [{k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in records]


def _write(path, frame: pd.DataFrame, name: str = "XM") -> None:
    pyreadstat.write_xport(frame, str(path), table_name=name, file_format_version=5)


def _frame(usubjids: list[str], text: str = "TEXT") -> pd.DataFrame:
    return pd.DataFrame({"STUDYID": ["S1"] * len(usubjids), "DOMAIN": ["XM"] * len(usubjids), "USUBJID": usubjids,
                         "XMSEQ": [float(k + 1) for k in range(len(usubjids))],
                         "XMORRES": [f"{text} {k}" if k % 3 else "" for k in range(len(usubjids))],
                         "XMSTRESN": [float("nan") if k % 4 == 0 else k / 7 for k in range(len(usubjids))]})


@pytest.mark.parametrize("chunk", [xpt_rows.CHUNK_BYTES, 700], ids=["one-chunk", "many-chunks"])
def test_every_range_reads_the_rows_of_the_whole_read(example_package, monkeypatch, chunk):
    monkeypatch.setattr(xpt_rows, "CHUNK_BYTES", chunk)  # subjects' rows across the chunks of the index
    whole, _ = read_package(example_package)
    ranged, _ = read_package(example_package, by_range=True)
    assert sorted(whole) == sorted(ranged)
    assert {n for n, d in ranged.items() if d.rows is None} == {"TA", "TE", "TI", "TS", "TV"}  # no USUBJID
    for name, ds in ranged.items():
        want = whole[name]
        assert (len(ds), ds.label, ds.variables, ds.columns) == (len(want), want.label, want.variables, want.columns)
        assert {u: list(rows) for u, rows in ds.subject_rows().items()} == want.subject_rows()
        records = _plain(want.records(0, len(want)))
        assert _plain(ds.records(0, len(ds))) == records
        assert _plain([r for start in range(0, len(ds), 37) for r in ds.records(start, start + 37)]) == records
        assert [type(v) for r in ds.records(0, len(ds)) for v in r.values()] == \
            [type(v) for r in want.records(0, len(want)) for v in r.values()]


def test_a_range_read_dataset_has_no_frame_to_use_by_mistake(example_package):
    xm = read_xpt(example_package / "xm.xpt", by_range=True)
    assert xm.rows is not None
    with pytest.raises(AttributeError, match="read a range at a time"):
        _ = xm.frame.columns
    with pytest.raises(TypeError, match="use len"):
        len(xm.frame)


def test_rows_of_a_subject_apart_read_the_whole_file(tmp_path):
    _write(tmp_path / "xm.xpt", _frame(["S1-001", "S1-002", "S1-001"]))
    ds = read_xpt(tmp_path / "xm.xpt", by_range=True)
    assert ds.rows is None and ds.subject_rows() == {"S1-001": [0, 2], "S1-002": [1]}
    _write(tmp_path / "sorted.xpt", _frame(["S1-001", "S1-001", "S1-002"]))
    assert read_xpt(tmp_path / "sorted.xpt", by_range=True).rows is not None


def test_text_that_is_not_ascii_reads_the_whole_file(tmp_path):
    _write(tmp_path / "xm.xpt", _frame(["S1-001", "S1-002"], text="Müller"))
    ds = read_xpt(tmp_path / "xm.xpt", by_range=True)
    assert ds.rows is None and ds.records(1, 2)[0]["XMORRES"] == "Müller 1"


def test_an_empty_dataset_is_read_by_range(tmp_path):
    _write(tmp_path / "xm.xpt", _frame([]).astype({c: str for c in ("STUDYID", "DOMAIN", "USUBJID", "XMORRES")}))
    ds = read_xpt(tmp_path / "xm.xpt", by_range=True)
    assert ds.rows is not None and len(ds) == 0 and ds.records(0, 10) == [] and ds.subject_rows() == {}


def test_records_hold_a_part_and_make_any_other_when_asked(example_package):
    xm = read_xpt(example_package / "xm.xpt", by_range=True)
    records, rows = Records(xm), xm.subject_rows()
    first, second = list(rows)[:2]
    records.hold(rows[first])
    held = records[rows[first][0]]
    assert held is records[rows[first][0]]  # held: the same dict
    assert _plain([records[rows[second][0]]]) == _plain(xm.records(rows[second][0], rows[second][0] + 1))
    records.hold(rows[second])
    assert records[rows[first][0]] is not held  # the previous part's are dropped
    assert _plain(list(records)) == _plain(xm.records(0, len(xm)))
    with pytest.raises(IndexError):
        records[len(xm)]


def test_to_fhir_of_a_package_gives_the_bytes_of_its_datasets_read_whole(example_package, tmp_path):
    """The package read a range at a time (the CLI, api.to_fhir of a folder) or whole (read_sdtm). Without
    the second to-sdtm pass (verify): the resources are built, carried and validated the same way."""
    sdtm = tmp_path / "sdtm"
    sdtm.mkdir()
    for f in example_package.glob("*.xpt"):
        shutil.copy(f, sdtm / f.name)
    options = {"ndjson": True, "jobs": 1, "keep_resources": False, "verify": False}
    ranged = api.to_fhir(sdtm, tmp_path / "ranged", **options)
    whole = api.to_fhir(api.read_sdtm(sdtm), tmp_path / "whole", **options)
    files = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "ranged").iterdir()) and "Observation.ndjson" in files
    for name in files:
        assert (tmp_path / "ranged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    assert [f.line() for f in ranged.report.findings] == [f.line() for f in whole.report.findings]


def test_a_file_cut_after_it_was_opened_is_one_error_naming_it(tmp_path):
    _write(tmp_path / "xm.xpt", _frame(["S1-001", "S1-002", "S1-003"]))
    ds = read_xpt(tmp_path / "xm.xpt", by_range=True)
    (tmp_path / "xm.xpt").write_bytes(b"")
    with pytest.raises(InputError, match=r"xm.xpt: cannot read rows 1 to 3"):
        ds.records(0, 3)
