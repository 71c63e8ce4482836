"""sdtm/dates.py: FHIR date/time -> SDTM ISO 8601 (local date kept), study days, age."""

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, strategies as st

from tcim_interop.sdtm.dates import DateError, age_in_years, complete_date, study_day, to_iso8601


# --- to_iso8601 --------------------------------------------------------------------------------
@pytest.mark.parametrize("fhir, sdtm", [
    ("2021-06-14", "2021-06-14"),
    ("2021-06", "2021-06"),
    ("2021", "2021"),
    ("2024-02-29", "2024-02-29"),
    (" 2021-06-14 ", "2021-06-14"),
])
def test_dates_and_partial_dates(fhir, sdtm):
    assert to_iso8601(fhir) == sdtm


@pytest.mark.parametrize("fhir, sdtm", [
    # just after local midnight, east of UTC: UTC would be the day before; the local day is kept
    ("2021-06-14T00:30:00+02:00", "2021-06-14T00:30:00"),
    # just before local midnight, west of UTC: UTC would be the next day; the local day is kept
    ("2021-06-13T23:30:00-05:00", "2021-06-13T23:30:00"),
    ("2021-06-14T00:00:00Z", "2021-06-14T00:00:00"),
    ("2021-06-14T23:59:59Z", "2021-06-14T23:59:59"),
    ("2021-12-31T23:45:00-05:00", "2021-12-31T23:45:00"),
    ("2022-01-01T00:15:00+14:00", "2022-01-01T00:15:00"),
])
def test_datetimes_keep_the_local_recorded_date_and_time(fhir, sdtm):
    assert to_iso8601(fhir) == sdtm


@pytest.mark.parametrize("fhir, sdtm", [
    ("2021-06-14T10:30:15Z", "2021-06-14T10:30:15"),
    ("2021-06-14T10:30:15.123Z", "2021-06-14T10:30:15"),
    ("2021-06-14T10:30:15.123456789+02:00", "2021-06-14T10:30:15"),
])
def test_seconds_kept_fractions_dropped(fhir, sdtm):
    assert to_iso8601(fhir) == sdtm


@pytest.mark.parametrize("bad, fragment", [
    ("2021-13", "month out of range"),
    ("2021-13-01", "month out of range"),
    ("2021-00-10", "month out of range"),
    ("2021-02-30", "no such day"),
    ("2021-02-29", "no such day"),  # not a leap year
    ("2021-04-31", "no such day"),
    ("2021-06-00", "no such day"),
    ("2021-1-5", "not an ISO 8601"),
    ("21-01-05", "not an ISO 8601"),
    ("2021/01/05", "not an ISO 8601"),
    ("05-01-2021", "not an ISO 8601"),
    ("2021-06-14T25:00:00Z", "time out of range"),
    ("2021-06-14T24:00:00Z", "time out of range"),
    ("2021-06-14T10:60:00Z", "time out of range"),
    ("2021-06-14T10:30:61Z", "time out of range"),
    ("25:00", "not an ISO 8601"),
    ("2021-06-14T10", "not an ISO 8601"),
    ("2021-06-14 10:30:00", "not an ISO 8601"),
    ("2021-06-14T10:30:00+0200", "not an ISO 8601"),
    # FHIR's dateTime: a time has seconds and an offset (the full validation refuses these too)
    ("2021-06-14T10:30", "not an ISO 8601"),
    ("2021-06-14T10:30+02:00", "not an ISO 8601"),
    ("2021-06-14T10:30:00", "not an ISO 8601"),
    ("", "not an ISO 8601"),
    ("unknown", "not an ISO 8601"),
])
def test_invalid_strings_raise_date_error(bad, fragment):
    with pytest.raises(DateError, match=fragment):
        to_iso8601(bad)


@pytest.mark.parametrize("value", [None, 20210614, 2021.0, True, date(2021, 6, 14), datetime(2021, 6, 14),
                                   ["2021-06-14"], {"value": "2021-06-14"}])
def test_non_strings_raise_date_error(value):
    with pytest.raises(DateError, match="not a date"):
        to_iso8601(value)


def test_date_error_is_a_value_error():
    assert issubclass(DateError, ValueError)


_OFFSETS = st.one_of(st.just("Z"), st.builds(  # FHIR's range: -14:00 .. +14:00
    lambda sign, h, m: f"{sign}{h:02d}:{0 if h == 14 else m:02d}",
    st.sampled_from("+-"), st.integers(0, 14), st.sampled_from([0, 30, 45])))


@given(dt=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 12, 31, 23, 59, 59)),
       offset=_OFFSETS, fraction=st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)))
def test_property_datetime_keeps_its_local_date_and_time(dt, offset, fraction):
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset
    out = to_iso8601(text)
    assert out[:10] == dt.date().isoformat()
    assert out == dt.strftime("%Y-%m-%dT%H:%M:%S")


@given(d=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)))
def test_property_dates_round_trip(d):
    assert to_iso8601(d.isoformat()) == d.isoformat()
    assert to_iso8601(d.isoformat()[:7]) == d.isoformat()[:7]


# --- complete_date / study_day -----------------------------------------------------------------
def test_complete_date():
    assert complete_date("2021-06-14T10:30") == date(2021, 6, 14)
    assert complete_date("2021-06-14") == date(2021, 6, 14)
    assert complete_date("2021-06") is None
    assert complete_date("2021") is None
    assert complete_date(None) is None
    assert complete_date(float("nan")) is None


@pytest.mark.parametrize("dtc, ref, day", [
    ("2021-06-14", "2021-06-14", 1),
    ("2021-06-15", "2021-06-14", 2),
    ("2021-06-13", "2021-06-14", -1),
    ("2021-06-12", "2021-06-14", -2),
    ("2021-07-14", "2021-06-14", 31),
    ("2021-06-14T23:59", "2021-06-14T08:00", 1),   # same day whatever the times
    ("2021-06-13T23:59", "2021-06-14T00:01", -1),
    ("2022-03-01", "2022-02-28", 2),
    ("2024-03-01", "2024-02-28", 3),               # leap year
])
def test_study_day(dtc, ref, day):
    assert study_day(dtc, ref) == day


@pytest.mark.parametrize("dtc, ref", [
    ("2021-06", "2021-06-14"), ("2021", "2021-06-14"), ("2021-06-14", "2021-06"),
    (None, "2021-06-14"), ("2021-06-14", None), ("", "2021-06-14"),
])
def test_study_day_needs_two_complete_dates(dtc, ref):
    assert study_day(dtc, ref) is None


_DATES = st.dates(min_value=date(1990, 1, 1), max_value=date(2050, 12, 31))


@given(d=_DATES, ref=_DATES)
def test_property_study_day_is_never_zero(d, ref):
    day = study_day(d.isoformat(), ref.isoformat())
    assert day != 0
    assert (day > 0) == (d >= ref)


@given(a=_DATES, b=_DATES, ref=_DATES)
def test_property_study_day_is_monotone(a, b, ref):
    a, b = min(a, b), max(a, b)
    da, db = study_day(a.isoformat(), ref.isoformat()), study_day(b.isoformat(), ref.isoformat())
    assert da <= db
    assert (da == db) == (a == b)


@given(d=_DATES)
def test_property_consecutive_days_skip_zero_only(d):
    ref = d + timedelta(days=1)
    assert study_day(d.isoformat(), ref.isoformat()) == -1
    assert study_day(ref.isoformat(), ref.isoformat()) == 1


# --- age_in_years ------------------------------------------------------------------------------
@pytest.mark.parametrize("birth, at, age", [
    ("1960-06-14", "2021-06-13", 60),   # the day before the birthday
    ("1960-06-14", "2021-06-14", 61),   # on the birthday
    ("1960-06-14", "2021-06-15", 61),
    ("1960-06-14", "2021-06-14T10:00", 61),
    ("1960-12-31", "2021-01-01", 60),
    ("2000-02-29", "2021-02-28", 20),   # leap-day birthday: not yet in a common year on 28 Feb
    ("2000-02-29", "2021-03-01", 21),
    ("2000-02-29", "2024-02-29", 24),
    ("2000-02-29", "2024-02-28", 23),
    ("2021-06-14", "2021-06-14", 0),
])
def test_age_in_years(birth, at, age):
    assert age_in_years(birth, at) == age


@pytest.mark.parametrize("birth, at", [
    ("1960", "2021-06-14"), ("1960-06", "2021-06-14"), ("1960-06-14", None), (None, "2021-06-14"),
    ("1960-06-14", "2021-06"), ("2021-06-15", "2021-06-14"),  # born after the reference date
])
def test_age_needs_complete_dates_in_order(birth, at):
    assert age_in_years(birth, at) is None
