"""to-fhir builds, checks, validates and writes a few subjects at a time (fhir_pipeline.PART_ROWS): the
output is the one of the whole study built at once, byte for byte, and memory does not hold the
resources of the subjects already written."""

import sys

import pytest

from tcim_interop import api, fhir_pipeline
from tcim_interop.mapping.to_fhir import Builder
from tcim_interop.synth import generate

SUBJECTS = 8  # several parts, one subject each: enough for the bytes and for memory to tell


@pytest.fixture(scope="module")
def package():
    return api.to_sdtm(generate(SUBJECTS, seed=4)).metadata


def _to_fhir(package, tmp_path, monkeypatch, part_rows: int, name: str, **options):
    monkeypatch.setattr(fhir_pipeline, "PART_ROWS", part_rows)
    out = tmp_path / name
    result = api.to_fhir(package, out, jobs=1, keep_resources=False, **options)
    files = sorted(out.iterdir()) if out.is_dir() else [out]
    return result, {p.name if out.is_dir() else "bundle": p.read_bytes() for p in files}


@pytest.mark.parametrize("options", [{}, {"fhir_version": "R5"}, {"ndjson": True}], ids=["R4", "R5", "ndjson"])
def test_subject_by_subject_writes_the_bytes_of_the_study_at_once(package, tmp_path, monkeypatch, options):
    """Built one subject a part, the builder runs once per subject in DM order; all in one part, once."""
    calls: list[list[str]] = []
    original = Builder.subjects_part

    def recorded(self, usubjids):
        calls.append(list(usubjids))
        return original(self, usubjids)

    monkeypatch.setattr(Builder, "subjects_part", recorded)
    usubjids = [str(u) for u in package["DM"].frame["USUBJID"]]
    whole, whole_files = _to_fhir(package, tmp_path, monkeypatch, 10**9, "whole", **options)
    assert calls == [usubjids]
    calls.clear()
    each, each_files = _to_fhir(package, tmp_path, monkeypatch, 1, "each", **options)
    assert calls == [[u] for u in usubjids]
    assert each_files == whole_files
    figure = [f.message for f in whole.report.findings if f.code == "ROUND_TRIP"]
    assert figure and figure == [f.message for f in each.report.findings if f.code == "ROUND_TRIP"]
    assert each.counts == whole.counts and not each.resources and not each.report.errors


def _growth(package, tmp_path, monkeypatch, keep: bool) -> int:
    """The objects Python's allocator holds (sys.getallocatedblocks: a resource is dicts, lists and strings,
    each a block) when the last subject is built, over those when the second one is: the first build
    makes the imports and caches. A count, not a trace: tracemalloc would slow the run fourfold."""
    held: list[int] = []
    original = Builder.subjects_part

    def measured(self, usubjids):
        held.append(sys.getallocatedblocks())
        return original(self, usubjids)

    monkeypatch.setattr(Builder, "subjects_part", measured)
    monkeypatch.setattr(fhir_pipeline, "PART_ROWS", 1)
    api.to_fhir(package, tmp_path / f"keep-{keep}.json", jobs=1, keep_resources=keep)
    assert len(held) == SUBJECTS
    return held[-1] - held[1]


def test_memory_does_not_hold_the_subjects_already_written(package, tmp_path, monkeypatch):
    """Kept (the API's default), six subjects' resources are held by the time the last subject is built
    (about 9,000 objects a subject); written subject by subject, they are not: what still grows is what the
    run caches on the way."""
    kept = _growth(package, tmp_path, monkeypatch, keep=True)
    streamed = _growth(package, tmp_path, monkeypatch, keep=False)
    assert kept > 6 * 5_000  # six subjects' resources: the measure can tell
    assert streamed < kept / 3, (streamed, kept)  # held, they would be about as many
