"""Dataset-JSON v1.1: the example's datasets against CDISC's JSON schema, UTF-8 text, exact round
trips, malformed files refused, and CDISC's own SDTM examples read back (equal to their XPT)."""

import json
import math
from datetime import datetime
from pathlib import Path

import jsonschema
import pandas as pd
import pyreadstat
import pytest
from conftest import EXAMPLE_DATASETS, need_external
from pandas.testing import assert_frame_equal

from tcim_interop import InputError, OutputError
from tcim_interop.sdtm.dataset import Dataset, VariableMeta
from tcim_interop.sdtm.dataset_json import read_dataset_json, write_dataset_json

CREATED = datetime(2022, 7, 1, 10, 0, 0)
STUDY = "STDY.TCIM-ELAII"


@pytest.fixture(scope="module")
def example(example_conversion) -> dict[str, Dataset]:
    return example_conversion[0].metadata


def write(ds: Dataset, folder: Path, **kw) -> Path:
    path = folder / f"{ds.file_stem}.json"
    write_dataset_json(ds, path, study_oid=STUDY, created=CREATED, **kw)
    return path


def as_read(ds: Dataset) -> pd.DataFrame:
    """The frame as reading gives it: Char as object with None for null, Num as float64."""
    out = {}
    for v in ds.variables:
        col = ds.frame[v.name]
        out[v.name] = (col.astype("float64") if v.type == "Num"
                       else pd.Series([None if pd.isna(x) else x for x in col], dtype="object"))
    return pd.DataFrame(out)


def test_every_dataset_of_the_example_validates_against_the_schema(example, tmp_path):
    schema = json.loads(need_external("dataset-json", "schema", "dataset.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)  # the draft the schema declares (2019-09)
    validator.check_schema(schema)
    assert set(example) == EXAMPLE_DATASETS
    for name, ds in example.items():
        doc = json.loads(write(ds, tmp_path).read_text(encoding="utf-8"))
        validator(schema).validate(doc)
        assert doc["datasetJSONVersion"] == "1.1.0" and doc["itemGroupOID"] == f"IG.{name}"
        assert doc["records"] == len(doc["rows"]) == len(ds)
        assert [c["itemOID"] for c in doc["columns"]] == [f"IT.{name}.{v.name}" for v in ds.variables]


def test_utf8_text_is_kept_not_folded(example, tmp_path):
    # the verbatim term as the site sent it: SUPPAE AETERMO (AETERM holds its English)
    raw = write(example["SUPPAE"], tmp_path).read_bytes()
    assert "Dolor en el lugar de inyección".encode() in raw
    assert b"\\u00f3" not in raw and b"inyeccion" not in raw
    back = read_dataset_json(tmp_path / "suppae.json")
    assert "Dolor en el lugar de inyección" in set(back.frame["QVAL"])


def test_write_read_round_trip_is_exact(example, tmp_path):
    for ds in example.values():
        back = read_dataset_json(write(ds, tmp_path))
        assert (back.name, back.label) == (ds.name, ds.label)
        assert [(v.name, v.label, v.type) for v in back.variables] == [(v.name, v.label, v.type) for v in ds.variables]
        assert_frame_equal(back.frame, as_read(ds), check_exact=True)


def test_integral_numbers_are_integers_and_floats_come_back_bit_for_bit(example, tmp_path):
    kinds = {c["name"]: c["dataType"] for ds in example.values()
             for c in json.loads(write(ds, tmp_path).read_text(encoding="utf-8"))["columns"]}
    for name in ("AESEQ", "EXSEQ", "XMSEQ", "AGE", "VISITNUM", "AESTDY", "XMDY", "AEPTCD"):
        assert kinds[name] == "integer", name
    assert kinds["XMSTRESN"] == kinds["EXDOSE"] == "double"
    assert kinds["XMDTC"] == "datetime" and kinds["AESTDTC"] == "date" and kinds["USUBJID"] == "string"
    rows = json.loads((tmp_path / "ae.json").read_text(encoding="utf-8"))["rows"]
    assert all(isinstance(r[3], int) for r in rows)  # AESEQ written as 1, not 1.0

    tricky = [0.1 + 0.2, 1e-300, 123456789.12345679, -2.5, 1e20, math.nan, 2.0**53 + 2]
    ds = Dataset("ZZ", "Numbers", [VariableMeta("ZZN", "A number", "Num"), VariableMeta("ZZC", "Text", "Char")],
                 pd.DataFrame({"ZZN": tricky, "ZZC": ["a", "", None, "é", "b", "c", "d"]}))
    back = read_dataset_json(write(ds, tmp_path))
    assert_frame_equal(back.frame, as_read(ds), check_exact=True)
    assert back.frame["ZZC"].tolist()[1:3] == ["", None]  # "" stays "", null stays null


def test_same_input_same_bytes_and_keys_lengths(example, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    keys = ["STUDYID", "USUBJID", "XMTESTCD"]
    assert write(example["XM"], a, keys=keys).read_bytes() == write(example["XM"], b, keys=keys).read_bytes()
    cols = {c["name"]: c for c in json.loads(write(example["DM"], a, keys=["STUDYID", "USUBJID"],
                                                   lengths={"USUBJID": 40}).read_text(encoding="utf-8"))["columns"]}
    assert cols["USUBJID"]["length"] == 40 and cols["USUBJID"]["keySequence"] == 2
    assert cols["SEX"]["length"] == 1 and "keySequence" not in cols["SEX"]
    assert not list(a.glob(".*"))  # no temporary file left behind


def test_a_value_json_cannot_hold_is_refused_and_nothing_is_left(tmp_path):
    ds = Dataset("ZZ", "Bad", [VariableMeta("ZZN", "N", "Num")], pd.DataFrame({"ZZN": [1.5, math.inf]}))
    with pytest.raises(OutputError, match="ZZ"):
        write(ds, tmp_path)
    assert list(tmp_path.iterdir()) == []


GOOD = {"datasetJSONCreationDateTime": "2022-07-01T10:00:00", "datasetJSONVersion": "1.1.0", "itemGroupOID": "IG.ZZ",
        "records": 1, "name": "ZZ", "label": "Z",
        "columns": [{"itemOID": "IT.ZZ.A", "name": "A", "label": "A", "dataType": "string"},
                    {"itemOID": "IT.ZZ.N", "name": "N", "label": "N", "dataType": "integer"}],
        "rows": [["x", 1]]}


@pytest.mark.parametrize("content", [
    b"{not json",
    b"\xff\xfe\x00garbage",
    b"[]",
    json.dumps({k: v for k, v in GOOD.items() if k != "columns"}).encode(),
    json.dumps({k: v for k, v in GOOD.items() if k != "rows"}).encode(),
    json.dumps({**GOOD, "rows": [["x"]]}).encode(),
    json.dumps({**GOOD, "rows": [["x", "one"]]}).encode(),
    json.dumps({**GOOD, "rows": [[1, 1]]}).encode(),
    json.dumps({**GOOD, "records": 5}).encode(),
    json.dumps({**GOOD, "columns": [GOOD["columns"][0], {"name": "N", "dataType": "money"}]}).encode(),
], ids=["not-json", "not-utf8", "not-object", "no-columns", "no-rows", "short-row", "text-in-number",
        "number-in-text", "truncated", "unknown-type"])
def test_malformed_files_are_input_errors_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match="bad.json"):
        read_dataset_json(path)


@pytest.mark.parametrize("rows, named", [
    ([["x", 1], ["y", "two"]], "row 2, N: 'two' is not integer"),
    ([["x", True]], "row 1, N: True is not integer"),
    ([["x", "one"], [2, 3]], "row 1, N: 'one' is not integer"),  # the first bad cell in row order
])
def test_a_bad_cell_is_named_by_row_and_variable(tmp_path, rows, named):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**GOOD, "records": len(rows), "rows": rows}))
    with pytest.raises(InputError, match=f"bad.json: not Dataset-JSON: {named}$"):
        read_dataset_json(path)


def test_nulls_and_numbers_read_as_a_frame_holds_them(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps({**GOOD, "records": 3, "rows": [["x", 1], [None, None], ["", 2.5]]}))
    frame = read_dataset_json(path).frame
    assert frame["A"].tolist() == ["x", None, ""] and frame["A"].dtype == object
    assert frame["N"].tolist()[::2] == [1.0, 2.5] and math.isnan(frame["N"][1]) and frame["N"].dtype == "float64"


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="nope.json"):
        read_dataset_json(tmp_path / "nope.json")


def test_cdisc_examples_read_back_equal_to_their_xpt():
    folder = need_external("dataset-json", "sdtm")
    files = sorted(folder.glob("*.json"))
    assert len(files) >= 12
    for f in files:
        ds = read_dataset_json(f)
        raw = json.loads(f.read_text(encoding="utf-8"))
        assert (ds.name, len(ds)) == (raw["name"], raw["records"])
        assert [v.name for v in ds.variables] == [c["name"] for c in raw["columns"]]
        xpt, _ = pyreadstat.read_xport(str(f.with_suffix(".xpt")))
        for v in ds.variables:
            got, want = ds.frame[v.name].tolist(), xpt[v.name].tolist()
            if v.type == "Num":
                assert all((math.isnan(g) and math.isnan(w)) or g == w for g, w in zip(got, want)), (f.name, v.name)
            else:
                assert [g or "" for g in got] == want, (f.name, v.name)
    for f in sorted(folder.glob("*.ndjson")):  # the NDJSON form holds the same data
        assert_frame_equal(read_dataset_json(f).frame, read_dataset_json(f.with_suffix(".json")).frame)
