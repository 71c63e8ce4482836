"""fhir/known_shapes.py: a resource of a shape fhir.resources has found valid is checked leaf by leaf,
and gets the verdict (and the reason) fhir.resources gives it whole."""

import copy
import random

import pytest

from tcim_interop.fhir import known_shapes, validate
from tcim_interop.fhir.validate import validation_error, whole_validation_error
from tcim_interop.synth.generate import generate

# text that breaks a code, an id, a uri, a date, a dateTime, an instant, a decimal or a positiveInt;
# values of another JSON type (a new shape, validated whole); and plain values that fit most elements
HOSTILE = ["", " ", "a  b", " lead", "trail ", "x", "Final", "2020-13-01", "2020-02-30", "2020", "2020-02",
           "2020-02-03T25:00:00Z", "2021-01-01T10:00:00", "2021-01-01T10:00:00+01:00", "http://x y",
           "urn:uuid:zz", "a" * 65, "1e5", "\u00e9", "a\u0000b", "\t", 0, -1, 1.5, 10 ** 20, True, None,
           [], {}, ["x"], [None]]


@pytest.fixture(autouse=True)
def no_shapes_known(monkeypatch):
    monkeypatch.setattr(known_shapes, "_shapes", {})


def _leaves(node, path=()):
    """(path, value) of every primitive value and list of primitive values of a resource."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if isinstance(value, dict) or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
            yield from _leaves(value, (*path, key))
        elif key != "resourceType":
            yield (*path, key), value


def _replaced(resource, path, value):
    out = copy.deepcopy(resource)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def _one_of_each_shape(version):
    """A resource of each shape the generator writes for a small study."""
    seen = {}
    for r in generate(3, seed=5, fhir_version=version):
        seen.setdefault(known_shapes.Shape(r, version).key, r)
    return list(seen.values())


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_mutated_resources_get_the_verdict_and_reason_of_the_whole_validation(version):
    rng = random.Random(14)
    resources = _one_of_each_shape(version)
    assert len(resources) > 15
    short_way = rejected = 0
    for resource in resources:
        assert validation_error(resource, version) is None  # learnt
        for path, _ in _leaves(resource):
            for value in rng.sample(HOSTILE, 3):
                mutated = _replaced(resource, path, value)
                expected = whole_validation_error(mutated, version)
                shape = known_shapes.Shape(mutated, version)
                short_way += shape.passes()
                got = validation_error(mutated, version)
                assert got == expected, (resource["resourceType"], path, value)
                rejected += got is not None
    # both ways were taken, and both verdicts given: the comparison above could fail either way
    assert short_way > 200 and rejected > 200


def test_a_known_shape_is_not_validated_whole_again(monkeypatch):
    calls = []
    whole = validate.whole_validation_error
    monkeypatch.setattr(validate, "whole_validation_error", lambda r, v: calls.append(r) or whole(r, v))
    observations = [r for r in generate(3, seed=5) if r["resourceType"] == "Observation"]
    shapes = {known_shapes.Shape(r, "R4").key for r in observations}
    assert [validation_error(r, "R4") for r in observations] == [None] * len(observations)
    assert len(calls) == len(shapes) < len(observations) / 4


def test_a_bad_value_in_a_known_shape_gets_fhir_resources_reason():
    observation = next(r for r in generate(2, seed=5) if r["resourceType"] == "Observation")
    assert validation_error(observation, "R4") is None
    broken = _replaced(observation, ("status",), "final  ")  # a code has no trailing or double space
    assert validation_error(broken, "R4") == whole_validation_error(broken, "R4") is not None
    assert validation_error(_replaced(observation, ("effectiveDateTime",), "2021-02-30"), "R4")


def test_a_resource_inside_a_resource_is_validated_whole_every_time(monkeypatch):
    calls = []
    whole = validate.whole_validation_error
    monkeypatch.setattr(validate, "whole_validation_error", lambda r, v: calls.append(r) or whole(r, v))
    patient = {"resourceType": "Patient", "id": "p1"}
    study = {"resourceType": "ResearchStudy", "id": "s1", "status": "active",
             "contained": [{"resourceType": "Organization", "id": "o1", "name": "Site"}]}
    for _ in range(3):
        assert validation_error(study, "R4") is None and validation_error(patient, "R4") is None
    assert [r["resourceType"] for r in calls] == ["ResearchStudy", "Patient", "ResearchStudy", "ResearchStudy"]
    # the contained resource is of another type: no shape to lean on, the whole validation rejects it
    assert validation_error(_replaced(study, ("contained", 0, "name"), 5), "R4") is not None


def test_no_more_shapes_are_kept_than_the_bound(monkeypatch):
    monkeypatch.setattr(known_shapes, "MAX_SHAPES", 2)
    patients = [{"resourceType": "Patient", "id": "p", "gender": "male"}, {"resourceType": "Patient", "active": True},
                {"resourceType": "Patient", "birthDate": "2000"}, {"resourceType": "Patient", "id": "q"}]
    assert [validation_error(p, "R4") for p in patients] == [None] * 4
    assert len(known_shapes._shapes) == 2


def _resources_written_by_others(version):
    """The HL7 examples of the release (a Bundle's entries too), and for R4 a Synthea patient's bundle."""
    import json

    from conftest import need_external

    files = sorted(need_external("fhir-examples", version.lower()).glob("*-*.json"))
    if version == "R4":
        files.append(sorted(need_external("synthea").glob("*.json"))[0])
    for path in files:
        resource = json.loads(path.read_text(encoding="utf-8"))
        yield resource
        yield from (e["resource"] for e in resource.get("entry", []) if "resource" in e)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_resources_written_by_others_get_the_verdict_of_the_whole_validation(version):
    rng = random.Random(3)
    resources = list(_resources_written_by_others(version))
    assert len(resources) > 15
    compared = 0
    for resource in resources:
        assert validation_error(resource, version) == whole_validation_error(resource, version)
        leaves = list(_leaves(resource))
        for path, _ in rng.sample(leaves, min(3, len(leaves))):
            for value in rng.sample(HOSTILE, 3):
                mutated = _replaced(resource, path, value)
                assert validation_error(mutated, version) == whole_validation_error(mutated, version), path
                compared += 1
    assert compared > 100
