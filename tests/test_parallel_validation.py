"""Validation in worker processes (--jobs) gives exactly the one-process result, valid input or not."""

import json
import multiprocessing

import pytest

from tcim_interop import api
from tcim_interop.fhir import validate
from tcim_interop.fhir.validate import Validation
from tcim_interop.synth import generate, write_bundle, write_ndjson

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                                reason="workers are forked: without fork the validation runs in one process")


@pytest.fixture(scope="module")
def trial():
    return generate(6, seed=11)


def _break(resources: list[dict], *which: int) -> list[dict]:
    """Copies of the resources with the quantity of the given Observations (by rank) made invalid."""
    out = json.loads(json.dumps(resources))
    measured = [r for r in out if r["resourceType"] == "Observation" and "valueQuantity" in r]
    for n in which:
        measured[n]["valueQuantity"]["value"] = "many"  # FHIR decimal: a number, not a string
    return out


def test_workers_find_what_one_process_finds(trial):
    resources = _break(trial, 0, 5, -1)
    item = lambda i: (resources[i], "R4")  # noqa: E731
    alone = Validation(len(resources), item, jobs=1).reasons()
    forked = Validation(len(resources), item, jobs=2, min_parallel=1)
    assert forked.in_background
    assert forked.reasons() == alone
    assert len(alone) == 3 and all("valueQuantity.value" in r for r in alone.values())


def _run(tmp_path, resources, name, jobs, monkeypatch):
    monkeypatch.setattr(validate, "MIN_PARALLEL", 1)
    if name == "ndjson":  # its event lines reach the workers as the bytes read from the file
        write_ndjson(resources, tmp_path / name)
        src = tmp_path / name
    else:
        src = write_bundle(resources, tmp_path / f"{name}.json")
    result = api.to_sdtm([src], tmp_path / f"{name}-{jobs}", jobs=jobs)
    files = {p.name: p.read_bytes() for p in sorted((tmp_path / f"{name}-{jobs}").iterdir())}
    return result, files


@pytest.mark.parametrize("form", ["bundle", "ndjson"])
@pytest.mark.parametrize("broken", [(), (2, 7)], ids=["valid", "two-invalid"])
def test_to_sdtm_with_workers_writes_the_same_package(tmp_path, trial, broken, form, monkeypatch):
    """With an invalid resource the datasets built meanwhile are dropped and built again: same bytes."""
    resources = _break(trial, *broken)
    one, one_files = _run(tmp_path, resources, form, 1, monkeypatch)
    two, two_files = _run(tmp_path, resources, form, 2, monkeypatch)
    assert two_files == one_files
    assert two.report.to_dict() == one.report.to_dict()
    invalid = [f for f in two.report.findings if f.code == "INVALID_RESOURCE"]
    assert len(invalid) == len(broken)
    rejected = {d.resource for d in two.report.dispositions if d.outcome == "rejected"}
    assert {f.source for f in invalid} <= rejected


def test_to_fhir_with_workers_gives_the_same_resources(tmp_path, trial, monkeypatch):
    monkeypatch.setattr(validate, "MIN_PARALLEL", 1)
    src = write_bundle(trial, tmp_path / "in.json")
    api.to_sdtm([src], tmp_path / "sdtm", jobs=1)
    one = api.to_fhir(tmp_path / "sdtm", jobs=1)
    two = api.to_fhir(tmp_path / "sdtm", jobs=2)
    assert two.resources == one.resources
    assert two.report.to_dict() == one.report.to_dict()
    assert not [f for f in two.report.findings if f.code == "INVALID_OUTPUT"]


@pytest.mark.parametrize("element, value", [("title", 5), ("arm", 5)])
def test_a_resource_that_breaks_the_build_made_before_validation_is_only_rejected(tmp_path, monkeypatch,
                                                                                  element, value):
    """With workers the datasets are built while the resources are validated, from input not yet
    validated: a reader that breaks on a wrong JSON type there (the trial design reading a number as the
    study's title) must not end the run. The validation rejects the resource, and the run goes on as in
    one process: here, the study rejected, no subject converts."""
    from conftest import DATA

    from tcim_interop import NoSubjectError

    doc = json.loads((DATA / "mini-r4.json").read_text(encoding="utf-8"))
    next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "study")[element] = value
    src = tmp_path / "in.json"
    src.write_text(json.dumps(doc), encoding="utf-8")
    monkeypatch.setattr(validate, "MIN_PARALLEL", 1)
    reports = []
    for jobs in (1, 2):
        with pytest.raises(NoSubjectError) as failed:
            api.to_sdtm([src], jobs=jobs)
        reports.append(failed.value.report)
    one, two = reports
    assert any(d.resource == "ResearchStudy/study" and d.outcome == "rejected" for d in two.dispositions)
    assert [f.line() for f in one.findings] == [f.line() for f in two.findings]
    assert one.counts() == two.counts()
