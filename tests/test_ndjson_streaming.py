"""NDJSON lines of the event types are kept as where to read them again (fhir.read.LineResource),
not as parsed JSON: the conversion must be exactly that of the same resources held in memory."""

import copy
from dataclasses import fields

import orjson
import pandas as pd
import pytest

from tcim_interop import to_sdtm
from tcim_interop.api import to_fhir
from tcim_interop.fhir.read import InputResource, LineResource, read_file
from tcim_interop.findings import Report
from tcim_interop.mapping import engine
from tcim_interop.sdtm_pipeline import input_timestamp, read_inputs
from tcim_interop.synth import generate, write_bundle

EVENT_TYPES = {"Observation", "AdverseEvent", "MedicationAdministration"}


def write_lines(resources, path, line_break=b"\n"):
    path.write_bytes(b"".join(orjson.dumps(r) + line_break for r in resources))
    return path


def comparable(report: Report) -> dict:
    """The report without where each resource was read (entry[i] in a bundle, line N in NDJSON)."""
    return {"findings": [(f.severity, f.code, f.message, f.domain, f.variable, f.usubjid, f.source, f.value)
                         for f in report.findings],
            "dispositions": [(d.resource, d.outcome, d.reason) for d in report.dispositions],
            "counts": report.counts(), "records": report.records_per_domain}


def assert_same_conversion(a, b):
    assert set(a.datasets) == set(b.datasets)
    for name, frame in a.datasets.items():
        pd.testing.assert_frame_equal(b.datasets[name], frame, check_dtype=True)
    assert comparable(b.report) == comparable(a.report)


def line_resources(path, mappings):
    return [r for r in read_file(path, engine.whole_types(mappings)) if isinstance(r, LineResource)]


@pytest.mark.parametrize("version", ["R4", "R5"])
@pytest.mark.parametrize("fast", [False, True])
def test_streamed_ndjson_converts_as_the_same_resources_in_a_bundle(tmp_path, mappings, version, fast):
    resources = generate(6, seed=4, fhir_version=version)
    ndjson = write_lines(resources, tmp_path / "export.ndjson")
    streamed = line_resources(ndjson, mappings)
    assert {r.resource_type for r in streamed} == EVENT_TYPES
    result = to_sdtm([ndjson], mappings=mappings, fast=fast)
    assert_same_conversion(to_sdtm([write_bundle(resources, tmp_path / "b.json")], mappings=mappings, fast=fast),
                           result)
    assert result.report.counts()["input"] == len(resources) and len(result.datasets["XM"])


def test_sdtm_records_of_streamed_lines_are_given_back(tmp_path, mappings):
    """FHIR made by to-fhir carries the cells FHIR has no element for on the event resources: restore
    reads those lines again."""
    sdtm = to_sdtm([write_bundle(generate(5, seed=3), tmp_path / "b.json")], mappings=mappings).metadata
    made = to_fhir(sdtm, mappings=mappings, verify=False).resources
    ndjson = write_lines(made, tmp_path / "made.ndjson")
    assert sum(r.may_carry_sdtm for r in line_resources(ndjson, mappings)) > 10
    streamed = to_sdtm([ndjson], mappings=mappings)
    assert_same_conversion(to_sdtm([write_bundle(made, tmp_path / "made.json")], mappings=mappings), streamed)
    for name, ds in sdtm.items():
        pd.testing.assert_frame_equal(streamed.datasets[name], ds.frame, check_dtype=False)


def test_a_line_resource_holds_no_parsed_json(tmp_path, mappings, monkeypatch):
    resources = generate(3, seed=2)
    ndjson = write_lines(resources, tmp_path / "export.ndjson", b"\r\n")
    lines = line_resources(ndjson, mappings)
    assert "data" not in {f.name for f in fields(LineResource)} and not hasattr(lines[0], "__dict__")
    by_id = {r["id"]: r for r in resources}
    assert all(r.data == by_id[r.key.split("/")[1]] for r in lines)
    assert lines[0].data is not lines[0].data  # read again each time: nothing cached

    kept = {}
    read_recorded = engine.read_recorded

    def spy(index, *args):  # the index the run builds its rows from
        kept["index"] = index
        return read_recorded(index, *args)

    monkeypatch.setattr(engine, "read_recorded", spy)
    result = to_sdtm([ndjson], mappings=mappings)
    events = [r for r in kept["index"].by_key.values() if r.resource_type in EVENT_TYPES]
    assert events and all(isinstance(r, LineResource) for r in events)
    assert not any(isinstance(getattr(r, f.name), dict) for r in events for f in fields(LineResource))
    assert result.report.counts()["converted"] > len(events) / 2
    # a row gives its parsed resource back once built: rows are kept until the frames are made
    rows = engine.rows_with_context(list(kept["index"].by_key.values()), mappings, Report())
    # (DM's and DS's rows come from the whole types, ResearchSubject and Consent, held parsed; SV's Encounters too)
    events = [row.resource for spec, row in rows if spec.domain not in ("DM", "DS") and spec.row_resource in EVENT_TYPES]
    assert events and all(isinstance(r, LineResource) for r in events)


@pytest.mark.parametrize("fast", [False, True])
def test_each_line_is_parsed_again_once_per_use(tmp_path, mappings, monkeypatch, fast):
    """Validation (full, or --fast's check of the JSON types) and the row's build read a line;
    accounting, indexing, releases and restore (no sdtm-* extension here) do not."""
    ndjson = write_lines(generate(4, seed=6), tmp_path / "export.ndjson")
    reads = {}
    read = LineResource.payload.fget  # .data parses the payload; validation takes the payload unparsed

    def counted(self):
        reads[self.key] = reads.get(self.key, 0) + 1
        return read(self)

    monkeypatch.setattr(LineResource, "payload", property(counted))
    result = to_sdtm([ndjson], mappings=mappings, fast=fast)
    events = [d.resource for d in result.report.dispositions if d.resource.split("/")[0] in EVENT_TYPES]
    assert events and set(reads) == set(events)
    # what one domain passes on to the next is read once more: an administration that is not study
    # treatment (EX's selector, then CM's), a MUNE Observation (VS's selector, then XM's), an adverse
    # event (AE's selector, then DS's: did it cause a discontinuation?); and every Observation once by DM,
    # which looks in its bytes for a code of the subject's age (parsed only if one is there: none here)
    cm, xm, vs = (set(result.metadata[d].sources) for d in ("CM", "XM", "VS"))
    aes = {k for k in reads if k.startswith("AdverseEvent/")}
    assert cm and xm and vs and aes and {reads[k] for k in cm | vs | aes} == {3} and {reads[k] for k in xm} == {4}
    assert {n for k, n in reads.items() if k not in cm | xm | vs | aes} == {2}


def test_duplicate_lines_are_still_told_identical_or_different(tmp_path, mappings):
    resources = generate(3, seed=2)
    obs = next(r for r in resources if r["resourceType"] == "Observation")
    ae = copy.deepcopy(next(r for r in resources if r["resourceType"] == "AdverseEvent"))
    ae.setdefault("note", []).append({"text": "changed"})
    ndjson = write_lines(resources + [obs, ae], tmp_path / "export.ndjson")
    report = to_sdtm([ndjson], mappings=mappings).report
    n = len(resources)
    dups = {f.source: (f.message, f.file) for f in report.findings if f.code == "DUPLICATE_ID"}
    assert set(dups) == {f"Observation/{obs['id']}", f"AdverseEvent/{ae['id']}"}
    assert "(identical)" in dups[f"Observation/{obs['id']}"][0]
    assert "(different content)" in dups[f"AdverseEvent/{ae['id']}"][0]
    assert dups[f"AdverseEvent/{ae['id']}"][1] == f"{ndjson}:line {n + 2}"
    c = report.counts()
    assert c["input"] == n + 2 == c["converted"] + c["rejected"] + c["out_of_scope"] and c["rejected"] == 2


def test_a_line_that_tells_no_release_takes_its_files_majority(tmp_path, mappings):
    r5 = write_lines(generate(3, seed=2, fhir_version="R5"), tmp_path / "r5.ndjson")
    r4 = write_lines(generate(3, seed=2, fhir_version="R4"), tmp_path / "r4.ndjson")
    resources = read_inputs([r5, r4], Report(), keep=engine.whole_types(mappings)).resources
    silent = [r for r in resources if isinstance(r, LineResource) and r.told is None]
    assert {r.resource_type for r in silent} == {"Observation"}
    assert {r.file: r.version for r in silent} == {str(r5): "R5", str(r4): "R4"}


def test_the_input_timestamp_comes_from_an_event_line(tmp_path, mappings):
    resources = generate(2, seed=2)
    for r in resources:
        r["meta"] = {"lastUpdated": "2023-01-01T00:00:00Z"}
    obs = next(r for r in resources if r["resourceType"] == "Observation")
    obs["meta"]["lastUpdated"] = "2024-03-04T05:06:07.250+01:00"  # the latest clock reading: 04:06:07.25 UTC
    ae = next(r for r in resources if r["resourceType"] == "AdverseEvent")
    ae["meta"]["lastUpdated"] = "2024-03-04T04:30:00Z"  # the latest instant
    ndjson = write_lines(resources, tmp_path / "export.ndjson")
    resources = read_inputs([ndjson], Report(), keep=engine.whole_types(mappings)).resources
    assert isinstance(next(r for r in resources if r.key == f"Observation/{obs['id']}"), LineResource)
    assert input_timestamp(resources).isoformat() == "2024-03-04T04:30:00"
    to_sdtm([ndjson], tmp_path / "out", mappings=mappings)
    assert orjson.loads((tmp_path / "out" / "manifest.json").read_bytes())["options"]["created"] == \
        "2024-03-04T04:30:00"


def test_invalid_event_lines_are_rejected_and_the_others_convert(tmp_path, mappings):
    resources = generate(3, seed=2)
    bad = [r for r in resources if r["resourceType"] in ("Observation", "AdverseEvent")][:2]
    for r in bad:
        r["status"] = 5
    ndjson = write_lines(resources, tmp_path / "export.ndjson")
    report = to_sdtm([ndjson], mappings=mappings).report
    invalid = {f.source: f.file for f in report.findings if f.code == "INVALID_RESOURCE"}
    lines = {f"{r['resourceType']}/{r['id']}": f"{ndjson}:line {resources.index(r) + 1}" for r in bad}
    assert invalid == lines
    outcomes = {d.resource: d.outcome for d in report.dispositions}
    assert all(outcomes[k] == "rejected" for k in lines)
    others = [k for k, o in outcomes.items() if k.split("/")[0] in EVENT_TYPES and k not in lines]
    assert others and all(outcomes[k] != "rejected" for k in others)
    c = report.counts()
    assert c["input"] == len(resources) == c["converted"] + c["rejected"] + c["out_of_scope"]


def test_line_offsets_survive_any_line_break_and_blank_lines(tmp_path, mappings):
    obs = [r for r in generate(2, seed=2) if r["resourceType"] == "Observation"][:3]
    f = tmp_path / "x.ndjson"
    f.write_bytes(b"\n  " + orjson.dumps(obs[0]) + b"  \r\n\r\n" + orjson.dumps(obs[1]) + b"\r"
                  + orjson.dumps(obs[2]))
    lines = line_resources(f, mappings)
    assert [(r.place, r.data) for r in lines] == [("line 2", obs[0]), ("line 4", obs[1]), ("line 5", obs[2])]


def test_only_ndjson_lines_of_other_types_are_kept_as_lines(tmp_path, mappings):
    resources = generate(2, seed=2)
    bundle = orjson.loads(write_bundle(resources, tmp_path / "b.json").read_bytes())
    f = write_lines([bundle] + resources, tmp_path / "x.ndjson")
    got = list(read_file(f, engine.whole_types(mappings)))
    assert {type(r) for r in got[:len(resources)]} == {InputResource}  # a Bundle line is parsed whole
    assert {r.resource_type for r in got[len(resources):] if isinstance(r, LineResource)} == EVENT_TYPES
    assert {r.resource_type for r in got[len(resources):] if isinstance(r, InputResource)} == \
        {"Patient", "ResearchStudy", "ResearchSubject", "Consent", "Encounter", "Group", "Organization"}
    assert all(isinstance(r, InputResource) for r in read_file(f))  # without keep: every line parsed
