"""Property tests (hypothesis) for what tests/test_dates.py and tests/test_text.py do not cover:

  * controlled terminology: FHIR coding -> submission value -> canonical FHIR coding -> the same value,
    for every map and codelist of mappings/codelists.yaml, in R4 and R5;
  * ISO 8601 dates through to-fhir's iso_datetime and back: forward(reverse(x)) == x at every precision;
  * whole trials: to_fhir(to_sdtm(synthetic trial).metadata), then to_sdtm again, gives identical
    DataFrames (a few small trials: the file stays under a minute).

Settings are stated on each test; docs/bad-input.md lists them.
"""

from __future__ import annotations

import json
import re
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tcim_interop import load_mapping_set, to_fhir, to_sdtm
from tcim_interop.mapping.reverse_algorithms import _fhir_datetime
from tcim_interop.sdtm.dates import to_iso8601
from tcim_interop.synth import generate, write_bundle

MS = load_mapping_set()
CL = MS.codelists
VERSIONS = ("R4", "R5")


# --- controlled terminology ----------------------------------------------------------------------
def _pairs() -> set[tuple[str | None, str | None]]:
    """(codelist, map) as the specs use them together (a variable or a SUPP qualifier), plus every
    map alone and every codelist alone. External dictionaries (ISO3166, MedDRA) are no codelists."""
    pairs = set()
    for spec in MS.domains.values():
        for v in [*spec.variables, *spec.supplemental]:
            codelist = v.codelist if v.codelist in CL.codelists else None
            if codelist or v.map:
                pairs.add((codelist, v.map))
    pairs |= {(None, m) for m in CL.maps} | {(c, None) for c in CL.codelists}
    return pairs


PAIRS = sorted(_pairs(), key=lambda p: (p[0] or "", p[1] or ""))
# every (codelist, map, value) a submission value can be: the map's values and the codelist's terms
TERMS = sorted({(c, m, value) for c, m in PAIRS
                for value in ({*CL.maps[m].values()} if m else set()) | ({t.value for t in CL.codelists[c].terms} if c else set())},
               key=lambda t: tuple(x or "" for x in t))


def test_every_map_and_codelist_is_covered():
    assert {m for _, m in PAIRS if m} == set(CL.maps)
    assert {c for c, _ in PAIRS if c} == set(CL.codelists)
    assert len(TERMS) > 100


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("codelist, map_name, value", TERMS, ids=lambda x: str(x))
def test_ct_value_to_coding_and_back(codelist, map_name, value, version):
    """lookup(fhir_coding(value)) == value, for every term reachable through a map or an NCI code."""
    coding = CL.fhir_coding(codelist, map_name, value, version)
    term = CL.codelists[codelist].by_value.get(value) if codelist else None
    if coding is None:
        # only a sponsor term with no NCI code, outside the map, has no FHIR coding
        assert term is not None and not term.nci_code, value
        assert value not in (CL.maps[map_name].values() if map_name else ())
        return
    assert set(coding) <= {"system", "code", "display"} and coding["system"] and coding["code"]
    assert CL.lookup(codelist, map_name, coding["system"], coding["code"]) == value


def test_every_map_value_is_a_term_of_the_codelist_the_specs_pair_it_with():
    for codelist, map_name in PAIRS:
        if codelist and map_name:
            outside = set(CL.maps[map_name].values()) - {t.value for t in CL.codelists[codelist].terms}
            assert not outside, f"{map_name} gives {outside}, not in codelist {codelist}"


def test_the_r5_choice_of_a_map_is_an_r5_code():
    """SERIOUSNESS: R4 writes Serious/Non-serious, R5 serious/non-serious, both read back."""
    for map_name, by_release in CL.reverse_choice.items():
        assert set(by_release) <= set(VERSIONS)
        for version, choice in by_release.items():
            for value, key in choice.items():
                assert CL.maps[map_name][key] == value, (map_name, version, key)


_KNOWN = sorted({tuple(k.rsplit("|", 1)) for m in CL.maps.values() for k in m}
                | {(CL.nci_system, t.nci_code) for c in CL.codelists.values() for t in c.terms if t.nci_code})
_SYSTEMS = sorted({s for s, _ in _KNOWN})
# codes as FHIR validation lets them through (a code is no empty string: [^\s]+( [^\s]+)*)
_CODE = st.from_regex(r"\A[^\s]{1,8}( [^\s]{1,8}){0,2}\Z")
_CODINGS = st.one_of(
    st.sampled_from(_KNOWN),
    st.tuples(st.sampled_from(_SYSTEMS), _CODE),  # a known system, any code
    st.tuples(st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), _CODE)),
)


@settings(max_examples=400, deadline=None)
@given(pair=st.sampled_from(PAIRS), coding=_CODINGS, version=st.sampled_from(VERSIONS))
def test_property_lookup_is_stable_through_the_canonical_coding(pair, coding, version):
    """Any coding: lookup gives a term of the codelist or None (never a guess, never an exception);
    a value it gives comes back from its canonical coding."""
    codelist, map_name = pair
    system, code = coding
    value = CL.lookup(codelist, map_name, system, code)
    if value is None:
        return
    if codelist and not map_name:
        assert value in CL.codelists[codelist]
    canonical = CL.fhir_coding(codelist, map_name, value, version)
    assert canonical is not None
    assert CL.lookup(codelist, map_name, canonical["system"], canonical["code"]) == value


def test_an_empty_nci_code_maps_to_nothing():
    # unreachable through to-sdtm (FHIR validation refuses an empty code), but lookup itself guesses
    assert CL.lookup("EXTRT", None, CL.nci_system, "") is None


# --- ISO 8601 dates through iso_datetime (to-fhir) and to_iso8601 (to-sdtm) ------------------------
_PRECISIONS = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d", "second": "%Y-%m-%dT%H:%M:%S"}
_ZONES = st.sampled_from(["Europe/Madrid", "UTC", "America/New_York", "Pacific/Kiritimati",
                          "Pacific/Pago_Pago", "Asia/Kolkata", "Australia/Lord_Howe", "Africa/Monrovia"])
_FHIR_DATETIME = re.compile(  # the FHIR dateTime regex (R4 and R5): a time needs seconds and an offset
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?)?)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)?)?)?")


@settings(max_examples=500, deadline=None)
@given(dt=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)),
       precision=st.sampled_from(sorted(_PRECISIONS)), zone=_ZONES)
def test_property_iso_datetime_reverse_then_forward_is_identity(dt, precision, zone):
    """SDTM --DTC of any precision -> FHIR dateTime (the site's offset added to a time) -> the same --DTC:
    the offset is never applied, so the recorded local date and time survive, DST gaps and folds too."""
    dtc = dt.strftime(_PRECISIONS[precision])
    fhir = _fhir_datetime(dtc, zone)
    assert _FHIR_DATETIME.fullmatch(fhir), fhir
    if precision == "second":
        assert re.search(r"[+-]\d{2}:\d{2}$", fhir), fhir  # the declared zone's offset, never a bare Z
    else:
        assert fhir == dtc  # dates and partial dates pass through unchanged
    assert to_iso8601(fhir) == dtc


@settings(max_examples=200, deadline=None)
@given(dt=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2099, 12, 31, 23, 59)), zone=_ZONES)
def test_property_minute_precision_gains_zero_seconds_only(dt, zone):
    """FHIR requires seconds in a time: --DTC 'YYYY-MM-DDThh:mm' comes back as '...:00' from the element
    alone (to-fhir's verify pass carries the original in the sdtm-record extension)."""
    dtc = dt.strftime("%Y-%m-%dT%H:%M")
    assert to_iso8601(_fhir_datetime(dtc, zone)) == dtc + ":00"


# --- whole trials: SDTM -> FHIR -> SDTM ----------------------------------------------------------
def _same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True, obj=name)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 6), seed=st.integers(0, 2**32 - 1), version=st.sampled_from(VERSIONS))
def test_property_sdtm_fhir_sdtm_gives_identical_dataframes(n, seed, version):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        source = write_bundle(generate(n, seed=seed, fhir_version=version), tmp / "trial.json")
        first = to_sdtm([source], mappings=MS)
        assert not first.report.errors, first.report.errors[:3]
        back = to_fhir(first.metadata, mappings=MS, fhir_version=version)
        assert not back.report.errors, back.report.errors[:3]
        again_file = tmp / "back.json"
        again_file.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                          "entry": [{"resource": r} for r in back.resources]}), encoding="utf-8")
        again = to_sdtm([again_file], mappings=MS)
        assert not again.report.errors, again.report.errors[:3]
        c = again.report.counts()
        assert c["rejected"] == 0 and c["input"] == len(back.resources)
        _same(first.datasets, again.datasets)
