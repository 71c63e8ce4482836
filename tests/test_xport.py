"""sdtm/xport.py writes the bytes ReadStat's XPORT v5 writer (pyreadstat.write_xport) gives, byte for
byte, and pyreadstat reads back the values written."""

from __future__ import annotations

import math
import re
from datetime import datetime

import numpy as np
import pandas as pd
import pyreadstat
import pytest
from hypothesis import given, settings, strategies as st

from tcim_interop.sdtm.xport import IBM_BEYOND, IBM_MIN, ibm_doubles, sas_datetime, xport_bytes

CREATED = datetime(2026, 3, 4, 5, 6, 7)
_STAMP = re.compile(rb"\d{2}[A-Z]{3}\d{2}:\d{2}:\d{2}:\d{2}")

_NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=False, width=64),
                     st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.1, 1e-78, 5.5e-79, 7.2e75, -7.2e75, 1e-300, 5e-324]))
_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
_LABEL = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=45)


def pyreadstat_bytes(tmp_path, name, label, variables, columns) -> bytes:
    """What pyreadstat writes for the same dataset, its clock's date and time replaced by CREATED's."""
    frame = pd.DataFrame({v: pd.Series(c, dtype=object if text else "float64")
                          for (v, _, text), c in zip(variables, columns, strict=True)})
    path = tmp_path / "theirs.xpt"
    pyreadstat.write_xport(frame, str(path), file_label=label, table_name=name,
                           column_labels=[lab for _, lab, _ in variables], file_format_version=5)
    return _STAMP.sub(sas_datetime(CREATED).encode(), path.read_bytes())


@st.composite
def datasets(draw):
    rows = draw(st.integers(0, 12))
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=8))
    variables = [(f"V{k}", draw(_LABEL), text) for k, text in enumerate(kinds)]
    columns = [draw(st.lists(_TEXT if text else _NUMBERS, min_size=rows, max_size=rows)) for text in kinds]
    return draw(st.from_regex(r"[A-Z][A-Z0-9]{0,7}", fullmatch=True)), draw(_LABEL), variables, columns


@settings(max_examples=60, deadline=None)
@given(dataset=datasets())
def test_the_bytes_are_pyreadstat_s(tmp_path_factory, dataset):
    name, label, variables, columns = dataset
    tmp = tmp_path_factory.mktemp("x")
    mine = xport_bytes(name, label, variables, columns, CREATED)
    numbers = [x for (_, _, text), c in zip(variables, columns, strict=True) if not text for x in c]
    if not any(2.0 ** 249 <= abs(x) < IBM_BEYOND for x in numbers):  # where ReadStat clamps early (ibm_doubles)
        assert mine == pyreadstat_bytes(tmp, name, label, variables, columns)
    (tmp / "mine.xpt").write_bytes(mine)
    frame, meta = pyreadstat.read_xport(str(tmp / "mine.xpt"))
    assert meta.table_name == name and list(frame.columns) == [v for v, _, _ in variables]
    if len(frame) < len(columns[0]):  # pyreadstat drops all-blank rows at the end (the last record's padding)
        assert all(text for _, _, text in variables)
        assert not any(c[k].strip() for c in columns for k in range(len(frame), len(c)))
        return
    for (v, _, text), values in zip(variables, columns, strict=True):
        got = frame[v].tolist()
        if text:  # trailing blanks are the padding
            assert got == [x.rstrip() for x in values]
        else:  # IBM keeps 56 bits of fraction: within 2**-52 relative, 0 below IBM's range (above it,
            # xpt.check refuses the dataset: not written)
            for x, y in zip(values, got, strict=True):
                assert (math.isnan(x) and math.isnan(y)) or abs(x) >= IBM_BEYOND \
                    or math.isclose(x, y, rel_tol=2 ** -52, abs_tol=1e-78)


def test_numbers_up_to_ibm_s_largest_come_back(tmp_path):
    """From 2**249 to IBM's largest, ReadStat's own writer gives the largest IBM number, which it reads as
    infinity; written here, they come back as they were."""
    values = [1e75, -7.2e75, 2.0 ** 249, np.nextafter(IBM_BEYOND, 0)]
    data = xport_bytes("LB", "", [("LBSTRESN", "", False)], [values], CREATED)
    assert data != pyreadstat_bytes(tmp_path, "LB", "", [("LBSTRESN", "", False)], [values])
    (tmp_path / "lb.xpt").write_bytes(data)
    assert pyreadstat.read_xport(str(tmp_path / "lb.xpt"))[0]["LBSTRESN"].tolist() == values


def test_ibm_doubles_of_values_ts140_gives():
    """TS-140's examples and the edges of IBM's range, as bytes."""
    got = ibm_doubles(np.array([1.0, -1.0, 0.5, 100.0, 0.0, -0.0, 1e-300, 1e300]))
    assert [bytes(row).hex() for row in got] == [
        "4110000000000000", "c110000000000000", "4080000000000000", "4264000000000000",
        "0000000000000000", "0000000000000000", "0000000000000000", "7fffffffffffffff"]


def test_missing_numbers_and_blank_text(tmp_path):
    """A missing number is "." and seven zero bytes; None, NaN and "" in text are blanks."""
    data = xport_bytes("DM", "Demographics", [("AGE", "Age", False), ("SEX", "Sex", True)],
                       [[float("nan"), 63.0], [None, "F"]], CREATED)
    obs = data.index(b"HEADER RECORD*******OBS") + 80
    assert data[obs:obs + 18] == b"." + bytes(7) + b" " + bytes.fromhex("423f000000000000") + b"F"
    assert data == pyreadstat_bytes(tmp_path, "DM", "Demographics", [("AGE", "Age", False), ("SEX", "Sex", True)],
                                    [[float("nan"), 63.0], [None, "F"]])
    assert len(data) % 80 == 0 and xport_bytes("DM", "", [("SEX", "", True)], [[float("nan")]], CREATED) \
        == xport_bytes("DM", "", [("SEX", "", True)], [[""]], CREATED)


@pytest.mark.parametrize("when", [datetime(2001, 1, 9, 0, 0, 0), datetime(2026, 12, 31, 23, 59, 59)])
def test_the_header_holds_the_run_s_creation_time(when):
    data = xport_bytes("AE", "Adverse Events", [("AETERM", "Reported Term", True)], [["HEADACHE"]], when)
    head = data[:data.index(b"HEADER RECORD*******NAMESTR")]
    assert _STAMP.findall(head) == [sas_datetime(when).encode()] * 4
    assert sas_datetime(when) == when.strftime("%d%b%y:%H:%M:%S").upper()


def test_xpt_check_refuses_what_ibm_cannot_hold_and_nothing_else():
    """xpt.check's range is the writer's: 2**252 (16**63) and 2**-261 are refused, the floats just inside
    are written as they are."""
    from tcim_interop.findings import Report
    from tcim_interop.sdtm import xpt
    from tcim_interop.sdtm.dataset import Dataset, VariableMeta

    values = [IBM_BEYOND, -IBM_BEYOND, 2.0 ** -261, np.nextafter(IBM_BEYOND, 0), IBM_MIN, 0.0]
    ds = Dataset("LB", "Laboratory", [VariableMeta("LBSTRESN", "Numeric Result", "Num")],
                 pd.DataFrame({"LBSTRESN": values}))
    report = Report()
    assert xpt.check(ds, ds.frame, report) == 3
    assert [f.row for f in report.errors] == [1, 2, 3]
    got = ibm_doubles(np.array(values[3:]))
    assert [bytes(row).hex() for row in got] == ["7ffffffffffffff8", "0010000000000000", "0000000000000000"]
