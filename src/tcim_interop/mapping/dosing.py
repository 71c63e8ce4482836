"""--DOSFRQ: how often a medication is taken, from a FHIR Dosage, and back (to-fhir).

The spec's source yields a Dosage's as-needed elements and its Timing (cm.yaml CMDOSFRQ); its map
(codelists.yaml DOSING_FREQUENCY) names the CDISC CT FREQ term of each by one of three kinds of key:

    as-needed|true    taken as needed (a true boolean, or the reason it is taken for): PRN, whatever the
                      timing, which for an as-needed dose is its most frequent, not its frequency
    <system>|<code>   a coding of Timing.code (HL7 v3 GTSAbbreviation: BID, TID, QD ...)
    repeat|F/Pu       a Timing.repeat without such a code: F times per P units (2/1d, twice a day); a
                      frequencyMax or periodMax makes it F-Fmax/P-Pmax u, a range no term names
"""

from __future__ import annotations

import re
from typing import Any

from ..fhir.path import Path
from ..fhir.shape import element, has_element
from .context import Row
from .registry import algorithm, reverse
from .reverse_algorithms import Target
from .row_algorithms import format_number, report_unmapped

AS_NEEDED, REPEAT = "as-needed", "repeat"
TIMING_KEYS = ("event", "repeat", "code")  # what a Timing has and a CodeableConcept (asNeededFor) has not
_REPEAT = re.compile(r"^(\d+)(?:-(\d+))?/(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?([a-z]+)$")


def _is_timing(value: Any) -> bool:
    return isinstance(value, dict) and any(k in value for k in TIMING_KEYS)


def _number(x: Any) -> str | None:
    return format_number(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def repeat_key(repeat: Any) -> str | None:
    """A Timing.repeat as the map's key (F/Pu, F-Fmax/P-Pmax u), or None without a period and its unit.
    No frequency is once per period (FHIR Timing.repeat.frequency)."""
    if not isinstance(repeat, dict):
        return None
    period, unit = _number(repeat.get("period")), repeat.get("periodUnit")
    if period is None or not isinstance(unit, str):
        return None
    freq = _number(repeat.get("frequency", 1)) or "1"
    freq_max, period_max = _number(repeat.get("frequencyMax")), _number(repeat.get("periodMax"))
    return f"{freq}{'-' + freq_max if freq_max else ''}/{period}{'-' + period_max if period_max else ''}{unit}"


def _repeat_of(key: str) -> dict | None:
    """The Timing.repeat a map key names (repeat_key's inverse)."""
    m = _REPEAT.match(key)
    if m is None:
        return None
    freq, freq_max, period, period_max, unit = m.groups()
    out: dict[str, Any] = {"frequency": int(freq)}
    if freq_max:
        out["frequencyMax"] = int(freq_max)
    out["period"] = float(period) if "." in period else int(period)
    if period_max:
        out["periodMax"] = float(period_max) if "." in period_max else int(period_max)
    out["periodUnit"] = unit
    return out


def frequency_keys(values: list[Any]) -> list[tuple[str | None, str | None, str]]:
    """(system, code, shown-as) of a Dosage's timing, in the order they decide: as needed first, then the
    codings of each Timing's code, then each Timing's repeat."""
    as_needed, codes, repeats = [], [], []
    for v in values:
        if v is True or (isinstance(v, dict) and not _is_timing(v) and ("coding" in v or "text" in v)):
            as_needed = [(AS_NEEDED, "true", "as needed")]
        elif _is_timing(v):
            code = v.get("code") if isinstance(v.get("code"), dict) else {}
            codes += [(c.get("system"), c.get("code"), f"{c.get('system')}|{c.get('code')}")
                      for c in code.get("coding") or [] if isinstance(c, dict)]
            if (key := repeat_key(v.get("repeat"))) is not None:
                repeats.append((REPEAT, key, f"timing repeat {key}"))
    return as_needed + codes + repeats


@algorithm("dosing_frequency", "row", needs_source=True)
def dosing_frequency(row: Row, var) -> str | None:
    """The FREQ term the map gives a Dosage: PRN when taken as needed, else its Timing's code, else its
    repeat (frequency per period). A timing no key of the map names is reported, and left empty."""
    keys = frequency_keys(row.values_of(var))
    codelists = row.run.mappings.codelists
    for system, code, _ in keys:
        hit = codelists.lookup(var.codelist, var.map, system, code)
        if hit is not None:
            return hit
    report_unmapped(row, var, [k[2] for k in keys])
    return None


@reverse("dosing_frequency")
def dosing_frequency_back(t: Target, var, value: Any) -> None:
    """The term as every key the map lists for it: as needed, the Timing's code and its repeat (a QD is
    written as code QD and repeat 1/1d), each at the source's alternative of its FHIR type that the
    record's resource has (a MedicationAdministration's Dosage has none: the cell is carried)."""
    timing: dict[str, Any] = {}
    for key, term in t.mappings.codelists.maps[var.map].items():
        if term != value:
            continue
        system, _, code = key.rpartition("|")
        if system == AS_NEEDED:
            _write_at(t, var, None, True)
        elif system == REPEAT:
            timing.setdefault("repeat", _repeat_of(code))
        else:
            timing.setdefault("code", {"coding": [{"system": system, "code": code}]})
    if timing.get("repeat") is None:
        timing.pop("repeat", None)
    if timing:
        _write_at(t, var, "Timing", timing)


def _write_at(t: Target, var, fhir_type: str | None, value: Any) -> None:
    """Write at the first alternative of the source whose element the record's resource has and is of
    `fhir_type` (None: a primitive, the as-needed boolean)."""
    resource = t.resources["resource"]
    path = var.path(t.version)
    for alt in path.alternatives if path is not None else ():
        if alt.var is None and has_element(t.version, resource["resourceType"], alt.elements) \
                and element(t.version, resource["resourceType"], alt.elements)[1] == fhir_type:
            t.write(var, value, Path(path.text, ((alt,),)))
            return
