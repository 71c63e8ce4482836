"""to-fhir's times: the offset of a declared zone (--timezone, or study.yaml's for its own study), never
a guess. SDTM date-times are local; FHIR needs an offset on a time."""

import pyreadstat
import pytest

from tcim_interop import InputError, UsageError, read_sdtm, to_fhir
from tcim_interop.mapping.reverse_algorithms import _fhir_datetime


@pytest.mark.parametrize("dtc, zone, want", [
    ("2021-06-14T10:30", "Europe/Madrid", "2021-06-14T10:30:00+02:00"),       # summer time
    ("2021-01-14T10:30:15", "Europe/Madrid", "2021-01-14T10:30:15+01:00"),    # winter time
    ("2014-07-02T11:45", "America/New_York", "2014-07-02T11:45:00-04:00"),
    ("1890-01-01T12:00", "Europe/Madrid", "1890-01-01T12:00:00-00:15"),       # local mean time, to the minute
    ("2021-06-14", None, "2021-06-14"),                                       # a date needs no zone
    ("2021-06", None, "2021-06"),
])
def test_a_time_gets_its_zones_offset_on_that_date(dtc, zone, want):
    assert _fhir_datetime(dtc, zone) == want


def test_a_time_without_a_declared_zone_is_an_error_naming_the_row_and_the_option():
    with pytest.raises(InputError, match=r"^DM 01-701-1015 RFPENDTC: '2014-07-02T11:45' has a time .*--timezone"):
        _fhir_datetime("2014-07-02T11:45", None, "DM 01-701-1015 RFPENDTC: ")


@pytest.fixture(scope="module")
def example_dm(example_package):
    return read_sdtm(example_package)["DM"]


def _dm_only(example_dm, tmp_path, studyid: str):
    """The example's DM reduced to one subject, under STUDYID studyid, consent dated with a time (RFICDTC)."""
    ds = example_dm
    frame = ds.frame.head(1).copy()
    frame["STUDYID"] = studyid
    frame["RFICDTC"] = "2022-06-28T09:15"
    out = tmp_path / studyid
    out.mkdir()
    pyreadstat.write_xport(frame, str(out / "dm.xpt"), table_name="DM", file_format_version=5,
                           column_labels=[v.label for v in ds.variables])
    return out


def test_another_studys_times_need_the_option(example_dm, tmp_path):
    """study.yaml's zone is TCIM-ELAII's site's: it is not applied to a study it does not describe."""
    sdtm = _dm_only(example_dm, tmp_path, "OTHER-STUDY")
    with pytest.raises(InputError, match="--timezone"):
        to_fhir(sdtm, tmp_path / "a.json", verify=False)
    assert not (tmp_path / "a.json").exists()
    made = to_fhir(sdtm, verify=False, timezone="Asia/Tokyo").resources
    assert any("2022-06-28T09:15:00+09:00" in str(r) for r in made)


def test_the_studys_own_zone_applies_to_its_own_records(example_dm, tmp_path):
    sdtm = _dm_only(example_dm, tmp_path, "TCIM-ELAII")
    made = to_fhir(sdtm, verify=False).resources
    assert any("2022-06-28T09:15:00+02:00" in str(r) for r in made)


def test_an_unknown_zone_is_a_usage_error(example_dm, tmp_path):
    with pytest.raises(UsageError, match="IANA time zone.*'Mars/Olympus'"):
        to_fhir(_dm_only(example_dm, tmp_path, "TCIM-ELAII"), verify=False, timezone="Mars/Olympus")
