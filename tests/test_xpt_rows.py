"""An XPT v5 dataset read a range of rows at a time (sdtm/xpt_rows.py, to-fhir's reading): the same rows
as the whole file's read, and the whole read where ranges cannot be trusted (rows of a subject apart,
text that is not ASCII)."""

import math
from datetime import datetime

import pandas as pd
import pyreadstat
import pytest
from hypothesis import given, settings, strategies as st

from tcim_interop import api
from tcim_interop.errors import InputError
from tcim_interop.sdtm import xpt_rows
from tcim_interop.sdtm.read import _check_variables, read_package, read_xpt
from tcim_interop.sdtm.records import Records

from conftest import need_external


@pytest.fixture(autouse=True)
def by_range_whatever_the_size(monkeypatch):
    """The files here are small: read by range all the same (open_rows reads a file up to WHOLE_BYTES whole)."""
    monkeypatch.setattr(xpt_rows, "WHOLE_BYTES", 0)


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


@pytest.mark.parametrize("chunk", [xpt_rows.CHUNK_BYTES, 4096], ids=["one-chunk", "many-chunks"])
def test_every_range_reads_the_rows_of_the_whole_read(example_package, monkeypatch, chunk):
    # 4096 bytes: a subject's XM rows over several chunks, several subjects' DM rows in one
    monkeypatch.setattr(xpt_rows, "CHUNK_BYTES", chunk)
    whole, _ = read_package(example_package)
    ranged, _ = read_package(example_package, by_range=True)
    assert sorted(whole) == sorted(ranged)
    assert {n for n, d in ranged.items() if d.rows is None} == {"TA", "TE", "TI", "TS", "TV"}  # no USUBJID
    for name, ds in ranged.items():
        want = whole[name]
        assert (len(ds), ds.label, ds.variables, ds.columns) == (len(want), want.label, want.variables, want.columns)
        assert {u: list(rows) for u, rows in ds.subject_rows().items()} == want.subject_rows()
        wanted, got = want.records(0, len(want)), ds.records(0, len(ds))
        records = _plain(wanted)
        assert _plain(got) == records
        assert [type(v) for r in got for v in r.values()] == [type(v) for r in wanted for v in r.values()]
        step = max(37, len(ds) // 8 + 1)  # ranges across the chunks; about eight reads a dataset, not hundreds
        assert _plain([r for start in range(0, len(ds), step) for r in ds.records(start, start + step)]) == records


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


def test_to_fhir_of_a_package_gives_the_bytes_of_its_datasets_read_whole(tmp_path, monkeypatch):
    """The package read a range at a time (the CLI, api.to_fhir of a folder) or whole (read_sdtm): the same
    resources, built, carried and validated the same way. A 6-subject trial with every file read by
    range (WHOLE_BYTES 0) in parts of a few subjects, so that each dataset is read in several ranges; the
    shipped example takes this path for its MUNE file alone (1 MB or more). Without the second to-sdtm
    pass (verify), which reads the output and never changes it (test_to_fhir.test_same_sdtm_gives_the_same_ids_and_bytes)."""
    from tcim_interop import fhir_pipeline
    from tcim_interop.synth import generate

    api.to_sdtm(generate(6, seed=8), tmp_path / "sdtm")
    monkeypatch.setattr(xpt_rows, "WHOLE_BYTES", 0)
    monkeypatch.setattr(fhir_pipeline, "PART_ROWS", 150)
    reads: list[tuple[int, int]] = []
    original = xpt_rows.XptRows.frame

    def counted(self, start, stop):
        reads.append((start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(xpt_rows.XptRows, "frame", counted)
    ranged = api.to_fhir(tmp_path / "sdtm", tmp_path / "ranged.json", keep_resources=False, verify=False)
    assert len(reads) > 20 and any(start > 0 for start, _ in reads), reads  # read a range at a time
    whole = api.to_fhir(api.read_sdtm(tmp_path / "sdtm"), tmp_path / "whole.json", keep_resources=False, verify=False)
    assert (tmp_path / "whole.json").read_bytes() == (tmp_path / "ranged.json").read_bytes()
    assert [f.line() for f in whole.report.findings] == [f.line() for f in ranged.report.findings]


def test_a_file_cut_after_it_was_opened_is_one_error_naming_it(tmp_path):
    _write(tmp_path / "xm.xpt", _frame(["S1-001", "S1-002", "S1-003"]))
    ds = read_xpt(tmp_path / "xm.xpt", by_range=True)
    (tmp_path / "xm.xpt").write_bytes(b"")
    with pytest.raises(InputError, match=r"xm.xpt: cannot read rows 1 to 3"):
        ds.records(0, 3)


def test_a_file_up_to_whole_bytes_is_read_whole_by_range_too(tmp_path, monkeypatch):
    _write(tmp_path / "xm.xpt", _frame([f"S1-{k // 3:03d}" for k in range(30)]))
    size = (tmp_path / "xm.xpt").stat().st_size
    monkeypatch.setattr(xpt_rows, "WHOLE_BYTES", size)
    whole = read_xpt(tmp_path / "xm.xpt", by_range=True)
    assert whole.rows is None
    monkeypatch.setattr(xpt_rows, "WHOLE_BYTES", size - 1)
    ranged = read_xpt(tmp_path / "xm.xpt", by_range=True)
    assert ranged.rows is not None
    assert _plain(whole.records(3, 17)) == _plain(ranged.records(3, 17))


# -- reading here what pyreadstat reads (xpt_rows.read_whole, decode: no pyreadstat call) ------------------

def _read_here_as_pyreadstat(path) -> bool:
    """Whether the file is read here (read_whole); if it is, what it gives is pyreadstat's, cell for cell."""
    whole = xpt_rows.read_whole(path, _check_variables(path))
    if whole is None:
        return False
    frame, meta = xpt_rows.pyreadstat_whole(path)
    pd.testing.assert_frame_equal(whole[0], frame, check_exact=True, check_column_type=True, check_index_type=True)
    assert xpt_rows.variables_of(whole[1]) == xpt_rows.variables_of(meta)
    assert (whole[1].table_name, whole[1].file_label) == (meta.table_name, meta.file_label or "")
    return True


def test_the_example_and_the_pilot_are_read_here_as_pyreadstat_reads_them(example_package):
    files = sorted(example_package.glob("*.xpt"))
    assert all(_read_here_as_pyreadstat(p) for p in files) and len(files) == 17
    pilot = sorted(need_external("cdiscpilot01").glob("*.xpt"))
    assert sum(map(_read_here_as_pyreadstat, pilot)) >= len(pilot) - 1  # one holds text that is not ASCII


_BYTES = st.one_of(st.sampled_from([0x00, 0x09, 0x0A, 0x20, 0x2E, 0x41, 0x5F, 0x7F, 0x80, 0xE9, 0xFF]), st.integers(0, 255))


@settings(max_examples=80, deadline=None)
@given(rows=st.integers(0, 9), kinds=st.lists(st.sampled_from(["text", "number", "short"]), min_size=1, max_size=6),
       changes=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), _BYTES), max_size=12),
       blank_rows=st.integers(0, 3), seed=st.integers(0, 1000))
def test_bytes_read_here_are_what_pyreadstat_reads(tmp_path_factory, rows, kinds, changes, blank_rows, seed):
    """Any bytes in the rows (NUL, non-ASCII, missing-value tags, numbers of 3 to 7 bytes, all-blank rows at
    the end): read here they are what pyreadstat reads; what pyreadstat decodes by the whole file (text
    that is not ASCII) or cuts (a NUL) is left to it."""
    import random

    from tcim_interop.sdtm.xport import xport_bytes

    rng = random.Random(seed)
    variables = [(f"V{k}", f"Label {k}", kind == "text") for k, kind in enumerate(kinds)]
    columns = [[rng.choice(["", "a", "abc def", " x", "tab\t"]) for _ in range(rows)] if kind == "text"
               else [rng.choice([float("nan"), 0.0, 1.5, -3.25, 1e10, rng.random()]) for _ in range(rows)]
               for kind in kinds]
    data = bytearray(xport_bytes("XM", "MUNE", variables, columns, datetime(2024, 1, 2, 3, 4, 5)))
    obs = data.index(b"HEADER RECORD*******OBS") + 80
    width = sum(len(max(c, key=len, default="")) or 1 if kind == "text" else 8 for kind, c in zip(kinds, columns))
    body = bytes(data[obs:obs + rows * width]) + b" " * (width * blank_rows)
    body = bytearray(body + b" " * (-len(body) % 80))
    for at, byte in changes:
        if rows:
            body[int(at * rows * width)] = byte
    path = tmp_path_factory.mktemp("x") / "xm.xpt"
    head = bytearray(data[:obs])
    for k, kind in enumerate(kinds):  # numbers of 3 to 7 bytes: a NAMESTR length pyreadstat reads as written
        if kind == "short":
            namestr = head.index(b"HEADER RECORD*******NAMESTR") + 80 + k * 140
            head[namestr + 4:namestr + 6] = (5).to_bytes(2, "big")
    if "short" in kinds:  # the rows of 5-byte numbers: the first 5 bytes of each 8
        layout = [(5 if kind == "short" else 8) if kind != "text" else (len(max(c, key=len, default="")) or 1)
                  for kind, c in zip(kinds, columns)]
        cut = bytearray()
        for r in range(len(body) // width):
            row, at = body[r * width:(r + 1) * width], 0
            for kind, size in zip(kinds, layout):
                full = 8 if kind != "text" else size
                cut += row[at:at + size]
                at += full
        position = 0
        for k, size in enumerate(layout):
            namestr = head.index(b"HEADER RECORD*******NAMESTR") + 80 + k * 140
            head[namestr + 84:namestr + 88] = position.to_bytes(4, "big")
            position += size
        body = cut + b" " * (-len(cut) % 80)
    path.write_bytes(bytes(head) + bytes(body))
    _read_here_as_pyreadstat(path)
