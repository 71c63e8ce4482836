"""The shortcuts of the hot paths give what the plain per-cell code gives, edge cases included."""

from __future__ import annotations

import gc
import importlib
import os
import stat

import orjson
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from tcim_interop.atomic import write_atomic
from tcim_interop.errors import OutputError
from tcim_interop.fhir.index import ResourceIndex
from tcim_interop.fhir.path import compile_path
from tcim_interop.fhir.read import InputResource
from tcim_interop.fhir.write import bundle, bundle_chunks, write_bundle, write_ndjson
from tcim_interop.findings import Report
from tcim_interop.gc_pause import paused_gc
from tcim_interop.mapping.round_trip import _norm, _unequal
from tcim_interop.sdtm import xpt
from tcim_interop.sdtm.dataset import Dataset, VariableMeta
from tcim_interop.sdtm.define import _num_profile

NAN = float("nan")


@pytest.mark.parametrize("kind, wants, haves", [
    ("Char", ["a", "b", ""], ["a", "b", None]),             # "" and None are both SDTM's null
    ("Char", ["a", "b"], ["a", "c"]),
    ("Char", ["1", NAN], [1, ""]),                           # not plain text: told cell by cell
    ("Num", [1.0, NAN, None, 3], [1.0, None, NAN, 3.0]),     # NaN and None are both null
    ("Num", [1.0, 2.0], [1.0, 2.5]),
    ("Num", ["", 2.0], [None, "2"]),
])
def test_unequal_is_the_cell_by_cell_comparison(kind, wants, haves):
    by_cell = [k for k, (a, b) in enumerate(zip(wants, haves)) if _norm(a, kind) != _norm(b, kind)]
    assert _unequal(wants, haves, kind) == by_cell


def test_num_profile_keeps_negative_zero_apart():
    # distinct numbers are formatted once; -0.0 equals 0.0 but is written "-0", one character wider
    assert _num_profile([0.0, -0.0, 0.0]) == ("integer", 2, None)
    assert _num_profile([0.0, 0.0]) == ("integer", 1, None)
    assert _num_profile([1.25, 1.25, NAN, -10.5]) == ("float", 5, 2)


def test_resolve_remembers_the_target_not_the_expected_type():
    patient = InputResource({"resourceType": "Patient", "id": "p1"}, "f.json", "entry[0]")
    index = ResourceIndex([patient])
    assert index.resolve({"reference": "Patient/p1"}, "Encounter") is None
    assert index.resolve({"reference": "Patient/p1"}, "Patient") is patient
    assert index.resolve("https://host/fhir/Patient/p1") is patient
    assert index.resolve("Patient/p2") is None


def test_path_walk_flattens_lists_drops_nulls_and_filters():
    data = {"coding": [None, {"system": "a", "code": "1"}, {"system": "b", "code": "2", "v": "x"}],
            "extension": [{"url": "u", "valueCode": "c"}, {"url": "w", "valueCode": "d"}]}
    root = {None: data}.get
    assert compile_path("coding.code").values(root) == ["1", "2"]
    assert compile_path("coding.where(system='b' and v='x').code").values(root) == ["2"]
    assert compile_path("coding.where(system='b' and v='y').code").values(root) == []
    assert compile_path("extension('w').valueCode").values(root) == ["d"]
    assert compile_path("missing ?? coding.first().code").values(root) == ["1"]


def _dataset(frame: pd.DataFrame, types: dict[str, str]) -> Dataset:
    return Dataset("XX", "Test", [VariableMeta(n, n, t) for n, t in types.items()], frame)


def test_xpt_checks_still_see_every_bad_cell():
    frame = pd.DataFrame({"USUBJID": ["S1", "S2", "S3"], "TXT": ["ok", "caf\u00e9", "x" * 201],
                          "NUM": [1.0, 1e80, NAN]})
    ds = _dataset(frame, {"USUBJID": "Char", "TXT": "Char", "NUM": "Num"})
    report = Report()
    out = xpt.xpt_frame(ds, "error", report)
    assert xpt.check(ds, out, report) == 3
    assert sorted(f.code for f in report.errors) == ["XPT_NOT_ASCII", "XPT_NUM_RANGE", "XPT_TOO_LONG"]
    # the record's number is data of the finding, also when its source names a FHIR resource, not a row
    ds.sources = ["Observation/a", "Observation/b", "Observation/c"]
    report = Report()
    xpt.check(ds, out, report)
    assert sorted((f.code, f.row, f.source) for f in report.errors) == [
        ("XPT_NOT_ASCII", 2, "Observation/b"), ("XPT_NUM_RANGE", 2, "Observation/b"), ("XPT_TOO_LONG", 3, "Observation/c")]


def test_xpt_frame_folds_and_reports_only_non_ascii_cells():
    frame = pd.DataFrame({"USUBJID": ["S1", "S2"], "TXT": ["plain", "inyecci\u00f3n"], "OTHER": [None, "y"]})
    ds = _dataset(frame, {"USUBJID": "Char", "TXT": "Char", "OTHER": "Char"})
    report = Report()
    out = xpt.xpt_frame(ds, "fold", report)
    assert out["TXT"].tolist() == ["plain", "inyeccion"] and out["OTHER"].tolist() == ["", "y"]
    assert [(f.code, f.usubjid) for f in report.findings] == [("ASCII_FOLDED", "S2")]
    assert xpt.check(ds, out, report) == 0


def test_ndjson_read_line_by_line_numbers_lines_as_the_whole_file_would(tmp_path):
    from tcim_interop.errors import InputError
    from tcim_interop.fhir.read import read_file

    f = tmp_path / "x.ndjson"
    f.write_bytes(b'{"resourceType":"Patient","id":"a"}\r\n\n  \n{bad\r{"resourceType":"Patient","id":"b"}\n[1]')
    got = [(r.place, getattr(r, "key", "")) for r in read_file(f)]
    assert got == [("line 1", "Patient/a"), ("line 4", "?/#x.ndjson:line 4"), ("line 5", "Patient/b"),
                   ("line 6", "?/#x.ndjson:line 6")]
    blank = tmp_path / "blank.ndjson"
    blank.write_bytes(b" \n\x0b\n")
    with pytest.raises(InputError, match="the file is empty"):
        list(read_file(blank))


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                     max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(bodies=st.lists(_json, max_size=4), bundle_type=st.sampled_from(["transaction", "collection"]))
def test_bundle_written_entry_by_entry_is_the_whole_bundle_dumped_at_once(bodies, bundle_type):
    resources = [{"resourceType": "Observation", "id": f"o{k}", "subject": {"reference": "Observation/o0"},
                  "note": [{"text": "line\nbreak \u00e9"}], "x": body} for k, body in enumerate(bodies)]
    whole = orjson.dumps(bundle(resources, bundle_type), option=orjson.OPT_INDENT_2)
    assert b"".join(bundle_chunks(resources, bundle_type)) == whole


def test_ndjson_written_type_by_type_holds_each_type_in_input_order(tmp_path):
    resources = [{"resourceType": t, "id": str(k), "note": [{"text": "\u00e9\n"}]}
                 for k, t in enumerate(["Patient", "Observation", "Patient", "AdverseEvent", "Observation"])]
    paths = write_ndjson(resources, tmp_path / "out")
    assert [p.name for p in paths] == ["AdverseEvent.ndjson", "Observation.ndjson", "Patient.ndjson"]
    for p in paths:
        mine = [r for r in resources if r["resourceType"] == p.stem]
        assert p.read_bytes() == b"\n".join(map(orjson.dumps, mine)) + b"\n"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary file left behind


def test_output_files_take_the_users_umask_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        bundle_path = write_bundle([{"resourceType": "Patient", "id": "p"}], tmp_path / "b.json", "collection")[0]
        ndjson_path = write_ndjson([{"resourceType": "Patient", "id": "p"}], tmp_path / "nd")[0]
        text_path = write_atomic(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    for path in (bundle_path, ndjson_path, text_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = write_atomic(tmp_path / "out.ndjson", b"old\n")

    def chunks():
        yield b"new, half written"
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"out\.ndjson: cannot write: No space left on device"):
        write_atomic(path, chunks())
    assert path.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.ndjson"]


def test_paused_gc_pauses_the_collector_and_restores_it_as_found():
    seen = []

    @paused_gc
    def run(fail: bool):
        seen.append(gc.isenabled())
        if fail:
            raise ValueError("bad input")

    was = gc.isenabled()
    try:
        gc.enable()
        run(False)
        with pytest.raises(ValueError):
            run(True)
        assert seen == [False, False] and gc.isenabled()  # paused inside, running again after, failed or not
        gc.disable()
        run(False)
        assert not gc.isenabled()  # a caller that had paused it finds it paused
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("entry", ["tcim_interop.api:to_sdtm", "tcim_interop.api:to_fhir",
                                   "tcim_interop.survey:survey", "tcim_interop.fhir.exchange:pull_to_directory",
                                   "tcim_interop.fhir.exchange:push_bundle", "tcim_interop.synth.generate:generate",
                                   "tcim_interop.synth.hospital:hospital_style"])
def test_what_makes_a_whole_trial_of_objects_runs_with_the_collector_paused(entry):
    """paused_gc wraps each (gc_pause.py says why): the function run is its wrapper, not the body itself."""
    module, name = entry.split(":")
    fn = getattr(importlib.import_module(module), name)
    assert fn.__code__ is paused_gc(lambda: None).__code__, f"{entry} runs with the collector on"
