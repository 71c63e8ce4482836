"""ISO 8601 dates as SDTM wants them, and study days.

FHIR date/dateTime/instant values are kept as the local date-time that was recorded: the offset is
dropped, never applied, so "2021-06-14T00:30:00+02:00" stays on 14 June (BRIEF: no time zone
juggling that changes the recorded local date). Partial dates stay right-truncated ("2021-05").
"""

from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

# FHIR's dateTime as the full validation has it, so that what --fast reads is refused where the full
# run refuses it: ASCII digits only (re.ASCII: \d would take "٢٠٢١" too); a time has seconds and an
# offset ("If hours and minutes are specified, a time zone SHALL be populated"), within -14:00 .. +14:00.
_FHIR_DATETIME = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2}):(?P<S>\d{2})(?:\.\d+)?"
    r"(?P<tz>Z|[+-](?:(?:0\d|1[0-3]):[0-5]\d|14:00)))?)?)?$", re.ASCII
)


class DateError(ValueError):
    pass


def to_iso8601(value: object) -> str:
    """SDTM --DTC text for a FHIR date, dateTime or instant; DateError if it is none of them."""
    if not isinstance(value, str):
        raise DateError(f"not a date: {value!r}")
    return _iso8601(value)


@lru_cache(maxsize=1 << 16)  # a study's records share few distinct date-times (visits, doses)
def _iso8601(value: str) -> str:
    m = _FHIR_DATETIME.match(value.strip())
    if not m:
        raise DateError(f"not an ISO 8601 date/time: {value!r}")
    y, mo, d, hh, mi, ss = (m.group(k) for k in ("y", "m", "d", "H", "M", "S"))
    if mo and not 1 <= int(mo) <= 12:
        raise DateError(f"month out of range: {value!r}")
    if d:
        try:
            date(int(y), int(mo), int(d))
        except ValueError:
            raise DateError(f"no such day: {value!r}") from None
    if hh and (int(hh) > 23 or int(mi) > 59 or (ss and int(ss) > 59)):
        raise DateError(f"time out of range: {value!r}")
    out = y + (f"-{mo}" if mo else "") + (f"-{d}" if d else "")
    if hh:
        out += f"T{hh}:{mi}" + (f":{ss}" if ss else "")
    return out


def complete_date(dtc: object) -> date | None:
    """The calendar date of an --DTC value, or None if the date part is partial or missing."""
    if not isinstance(dtc, str) or len(dtc) < 10:
        return None
    try:
        return date.fromisoformat(dtc[:10])
    except ValueError:
        return None


def study_day(dtc: object, rfstdtc: object) -> int | None:
    """SDTMIG 4.4.4: date - RFSTDTC + 1 on or after RFSTDTC, date - RFSTDTC before it; no day 0;
    only when both dates are complete."""
    d, ref = complete_date(dtc), complete_date(rfstdtc)
    if d is None or ref is None:
        return None
    delta = (d - ref).days
    return delta + 1 if delta >= 0 else delta


def day_offset(day: int) -> int:
    """Calendar days from study day 1 to study day `day` (no day 0: day -1 is the day before day 1)."""
    return day - 1 if day > 0 else day


def age_in_years(birth: object, at: object) -> int | None:
    b, a = complete_date(birth), complete_date(at)
    if b is None or a is None or a < b:
        return None
    return a.year - b.year - ((a.month, a.day) < (b.month, b.day))
