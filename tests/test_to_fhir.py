"""to-fhir: SDTM -> FHIR -> SDTM gives back the same datasets (the CDISC pilot and the shipped example),
FHIR -> SDTM -> FHIR gives back every mapped element, outputs validate, ids are stable, bad SDTM input
gets a clear error."""

import json
import math

import pytest
from conftest import EXAMPLE, PILOT_ZONE, need_external, read_json

from tcim_interop import InputError, load_mapping_set, read_sdtm, to_fhir, to_sdtm
from tcim_interop.fhir.extensions import (
    extension_only_cells,
    is_qualifier,
    read_records,
    record_extension,
    supp_extension,
)
from tcim_interop.fhir.validate import validation_error
from tcim_interop.gc_pause import paused_gc


def cell(value, kind):
    if kind == "Char":
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def compare_datasets(original: dict, back: dict) -> tuple[int, int, list[str]]:
    """Cell by cell; names every difference (dataset, row, variable)."""
    compared = equal = 0
    diffs = []
    for name, ds in original.items():
        got = back.get(name)
        assert got is not None, f"{name} not given back"
        assert [v.name for v in got.variables] == [v.name for v in ds.variables], f"{name}: variables differ"
        assert [v.label for v in got.variables] == [v.label for v in ds.variables], f"{name}: labels differ"
        assert [v.type for v in got.variables] == [v.type for v in ds.variables], f"{name}: types differ"
        assert len(got.frame) == len(ds.frame), f"{name}: {len(got.frame)} rows, expected {len(ds.frame)}"
        want_rows, got_rows = ds.frame.to_dict("records"), got.frame.to_dict("records")
        for v in ds.variables:
            for i, (w, g) in enumerate(zip(want_rows, got_rows)):
                compared += 1
                if cell(w[v.name], v.type) == cell(g[v.name], v.type):
                    equal += 1
                else:
                    diffs.append(f"{name} row {i + 1} {v.name}: {g[v.name]!r} != {w[v.name]!r}")
    return compared, equal, diffs


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_pilot_sdtm_fhir_sdtm_gives_back_every_cell(pilot, pilot_fhir, pilot_round_trip, version):
    result, _ = pilot_fhir(version)
    assert not result.report.errors, result.report.errors[:3]
    back, back_dir = pilot_round_trip(version)
    assert not back.report.errors
    compared, equal, diffs = compare_datasets(read_sdtm(pilot), read_sdtm(back_dir))
    assert diffs == [] and compared == equal and compared > 80_000
    print(f"pilot {version}: {equal}/{compared} cells equal")


def test_pilot_outputs_validate_and_point_back_to_their_row(pilot, pilot_fhir):
    rows = {name: len(ds.frame) for name, ds in read_sdtm(pilot).items()}
    for version in ("R4", "R5"):
        resources = pilot_fhir(version)[0].resources
        assert [validation_error(r, version) for r in resources] == [None] * len(resources)
        sources = [r["meta"]["source"] for r in resources if "source" in r.get("meta", {})]
        # a resource per DM, AE and EX record, and an Observation per SUPPAE and SUPPDM record
        assert len(sources) == len(set(sources)) == sum(rows.values())
        assert {"tcim-interop:sdtm/ae.xpt#row=1", "tcim-interop:sdtm/suppdm.xpt#row=1"} <= set(sources)


def test_extension_only_cells_counts_carried_cells_and_whole_supp_records():
    fields = load_mapping_set().suppqual.carried
    supp = {"RDOMAIN": "AE", "USUBJID": "S1", "IDVAR": "AESEQ", "IDVARVAL": "1", "QNAM": "AETRTEM", "QVAL": "Y"}
    resource = {"resourceType": "AdverseEvent", "extension": [
        record_extension("AE", 0, {"AESCAN": "N", "AESOD": None}), supp_extension(0, supp, fields)]}
    assert extension_only_cells({"SUPPAE": 10}, [resource], fields) == {"AE": 2, "SUPPAE": 10}
    assert extension_only_cells({"SUPPAE": 10}, [{"resourceType": "AdverseEvent"}], fields) == {}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_most_of_the_pilot_travels_in_fhir_elements(pilot, pilot_fhir, version):
    """Another study's SDTM: about a tenth of its cells only in the project's own extensions (51.7% when
    SUPPxx rode in sdtm-supp and USUBJID, route, seriousness criteria and AEDTC in sdtm-record); its
    SUPPAE and SUPPDM records are Observations about their parent records. Issue 17 aims under 10%: 8.63%
    (7,186 of 83,262 cells) since AGE, AGEU, DMDTC and DMDY are an age Observation (10.04% before), with the
    pilot's 52 screen failures in no arm (ineligible), their ARMCD/ARM/ACTARMCD/ACTARM "SCRNFAIL" cells in
    sdtm-record; what is left is listed in docs/fhir-extensions.md."""
    datasets = read_sdtm(pilot)
    resources = pilot_fhir(version)[0].resources
    widths = {n: ds.frame.shape[1] for n, ds in datasets.items() if n.startswith("SUPP")}
    carried = extension_only_cells(widths, resources, load_mapping_set().suppqual.carried)
    total = sum(ds.frame.size for ds in datasets.values())
    assert sum(carried.values()) < 0.087 * total, carried
    assert carried["SUPPAE"] == carried["SUPPDM"] == 0
    assert sum(map(is_qualifier, resources)) == len(datasets["SUPPAE"].frame) + len(datasets["SUPPDM"].frame)
    assert not {"USUBJID", "EXROUTE", "AESCONG", "AESHOSP", "AEACN", "AEDTC", "AGE", "AGEU", "DMDTC", "DMDY"} & {
        name for r in resources for _, _, cells in read_records(r) for name in cells}
    ages = [r for r in resources if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "30525-0"]
    assert len(ages) == len(datasets["DM"].frame)  # no birth date: every subject's age is an Observation


def test_pilot_r4_output_validates_against_the_hl7_json_schema(pilot_fhir):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(need_external("fhir-examples", "r4", "fhir.schema.json").read_text())
    validator = jsonschema.Draft6Validator(schema)
    resources = pilot_fhir("R4")[0].resources
    sample = {r["resourceType"]: r for r in resources}  # one of each type, then every AE of one subject
    sample = list(sample.values()) + [r for r in resources if r["resourceType"] == "AdverseEvent"][:25]
    for r in sample:
        errors = sorted(validator.iter_errors(r), key=str)
        assert not errors, f"{r['resourceType']}/{r['id']}: {errors[0].message}"


def test_same_sdtm_gives_the_same_ids_and_bytes(pilot, pilot_fhir, tmp_path):
    a = pilot_fhir("R4")[1]  # R4 and a transaction bundle are to-fhir's defaults
    b = tmp_path / "b.json"
    to_fhir(pilot, b, verify=False, timezone=PILOT_ZONE)  # the self-check reads the output, never changes it
    assert a.read_bytes() == b.read_bytes()


def test_transaction_bundle_uses_urn_uuid_full_urls_and_references(pilot_fhir):
    bundle = json.loads(pilot_fhir("R4")[1].read_text())
    urls = {e["fullUrl"] for e in bundle["entry"]}
    assert all(u.startswith("urn:uuid:") for u in urls)
    assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                refs.append(node["reference"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(bundle)
    assert refs and all(r in urls for r in refs)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_example_sdtm_fhir_sdtm_round_trip(example_package, example_round_trip, version):
    """to-fhir of the example proves its round trip with no error (every resource valid), and to-sdtm of
    its output gives back every cell of the package."""
    result, _, back = example_round_trip(version)
    package = read_sdtm(example_package)
    cells = sum(ds.frame.size for ds in package.values())
    assert not result.report.errors, result.report.errors[:3]
    assert [f.message for f in result.report.findings if f.code == "ROUND_TRIP"] == \
        [f"to-sdtm of the output gives back {cells} of {cells} cells"]
    compared, equal, diffs = compare_datasets(package, back.metadata)
    assert diffs == [] and compared == equal == cells > 300_000


@paused_gc  # as the engine runs: hundreds of thousands of values, no cycle to collect
def _mapped_elements(resources: list[dict], mappings) -> dict[tuple, list]:
    """Every value the specs read, per (domain, record keys, variable): what 'mapped element' means.
    A coding counts by its system and code; a reference by what it points at (its type codes)."""
    from tcim_interop.fhir.read import InputResource
    from tcim_interop.findings import Report
    from tcim_interop.mapping import engine

    by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    inputs = [InputResource(r, "x", str(i), version="R4") for i, r in enumerate(resources)]
    rows = engine.rows_with_context(inputs, mappings, Report())

    def meaning(v):
        if isinstance(v, dict) and "code" in v:
            return (v.get("system"), v.get("code"))
        if isinstance(v, str) and v in by_key:
            return [(c.get("system"), c.get("code")) for t in by_key[v].get("type", []) for c in t.get("coding", [])]
        return v

    out = {}
    for spec, row in rows:
        key = (spec.domain, tuple(sorted((k, str(v)) for k, v in row.values.items() if k in spec.keys)))
        for var in spec.variables:
            out[key + (var.name,)] = [meaning(v) for v in row.values_of(var) if not isinstance(v, dict) or "code" in v]
    return out


# Not held by SDTM on purpose: the full birth date (BRTHDTC is the year, the privacy policy of study.yaml).
NOT_IN_SDTM = {("DM", "BRTHDTC"), ("DM", "AGE")}


def _lost(before: dict, after: dict, merged: set[str] = frozenset()) -> list:
    """merged: the subjects whose visit came as two Encounters, one SV record (SV assumption 2: one per
    VISITNUM), which gives back one Encounter from the first start to the last end."""
    assert set(before) == set(after)
    return [(k, before[k], after[k]) for k in before
            if before[k] and before[k] != after[k] and (k[0], k[-1]) not in NOT_IN_SDTM
            and not (k[0] == "SV" and dict(k[1])["USUBJID"] in merged and k[-1] in ("SVSTDTC", "SVENDTC"))]


def _merged(result) -> set[str]:
    merged = {f.usubjid for f in result.report.findings if f.code == "RECORDS_MERGED"}
    assert merged, "the example sends repeated baselines"
    return merged


@pytest.fixture(scope="module")
def example_elements(mappings) -> dict[tuple, list]:
    """_mapped_elements of the shipped example (3 s): its two tests are one xdist group, so one worker
    makes it."""
    return _mapped_elements([e["resource"] for e in read_json(EXAMPLE)["entry"]], mappings)


@pytest.mark.xdist_group("example-elements")
def test_example_fhir_sdtm_fhir_gives_back_every_mapped_element(example_conversion, example_elements, mappings):
    result, _ = example_conversion
    # the SDTM in memory (UTF-8 text); verify=False: what comes back is this test's own measure
    regenerated = to_fhir(result.metadata, fhir_version="R4", verify=False).resources
    before = example_elements
    assert _lost(before, _mapped_elements(regenerated, mappings), _merged(result)) == []
    assert sum(1 for v in before.values() if v) > 100_000


@pytest.mark.xdist_group("example-elements")
def test_through_xpt_only_the_ascii_folding_is_lost(example_conversion, example_fhir, example_elements, mappings):
    from tcim_interop.sdtm.text import fold_ascii

    lost = _lost(example_elements, _mapped_elements(example_fhir[0].resources, mappings), _merged(example_conversion[0]))
    assert lost, "the example has accented verbatim terms"
    assert all(after == [fold_ascii(x) for x in b] for _, b, after in lost)


@pytest.mark.parametrize("content, message", [
    (b"", "not a SAS XPORT v5 file"),
    (b"HEADER RECORD*******LIBV8   HEADER RECORD!!!!!!!" + b" " * 100, "SAS XPORT v8, not v5"),
    (bytes.fromhex("000000000000000000000000c2ea8160b31411cfbd92080009c7318c181f1011") + b"\0" * 200,
     "SAS7BDAT"),
])
def test_sdtm_input_that_is_not_xpt_v5(tmp_path, content, message):
    (tmp_path / "dm.xpt").write_bytes(content)
    with pytest.raises(InputError, match=message):
        to_fhir(tmp_path, tmp_path / "out.json")
    assert not (tmp_path / "out.json").exists()


def test_truncated_xpt_and_missing_variables(tmp_path, example_package):
    d = example_package
    raw = (d / "dm.xpt").read_bytes()
    (tmp_path / "dm.xpt").write_bytes(raw[: len(raw) // 2 + 7])
    with pytest.raises(InputError, match="dm.xpt"):
        to_fhir(tmp_path, tmp_path / "o.json")
    import pyreadstat

    frame, meta = pyreadstat.read_xport(str(d / "dm.xpt"))
    pyreadstat.write_xport(frame.drop(columns="USUBJID"), str(tmp_path / "dm.xpt"), table_name="DM",
                           file_format_version=5)
    with pytest.raises(InputError, match="has no USUBJID"):
        to_fhir(tmp_path, tmp_path / "o.json")
    assert not (tmp_path / "o.json").exists()
