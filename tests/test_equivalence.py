"""The same trial as R4, R5, bundle or NDJSON gives the same SDTM, to the byte."""

import pandas as pd
import pytest
from conftest import EXAMPLE_DATASETS

from tcim_interop import NoSubjectError, to_sdtm
from tcim_interop.synth import generate, write_bundle, write_ndjson

N = 8  # every dataset of the example (EXAMPLE_DATASETS) in each of the four shapes


@pytest.fixture(scope="module")
def sdtm_by_shape(tmp_path_factory):
    out = {}
    for version in ("R4", "R5"):
        resources = generate(N, seed=5, fhir_version=version)
        base = tmp_path_factory.mktemp(version)
        write_bundle(resources, base / "bundle.json")
        write_ndjson(resources, base / "ndjson")
        for shape, src in (("bundle", base / "bundle.json"), ("ndjson", base / "ndjson")):
            target = base / f"out-{shape}"
            result = to_sdtm([src], target)
            out[(version, shape)] = (result, target)
    return out


def test_every_shape_gives_identical_datasets(sdtm_by_shape):
    (ref, _), *others = sdtm_by_shape.values()
    assert set(ref.datasets) == EXAMPLE_DATASETS
    assert not ref.report.errors
    for result, _ in others:
        assert set(result.datasets) == set(ref.datasets)
        for name, frame in ref.datasets.items():
            pd.testing.assert_frame_equal(result.datasets[name], frame, check_dtype=True)


def test_every_shape_gives_identical_files(sdtm_by_shape):
    (_, ref_dir), *others = sdtm_by_shape.values()
    for _, d in others:
        for f in sorted(ref_dir.glob("*.xpt")):
            assert (d / f.name).read_bytes() == f.read_bytes(), f.name


def test_forced_version_rejects_resources_of_the_other_release(tmp_path):
    resources = generate(4, seed=2, fhir_version="R4")
    write_bundle(resources, tmp_path / "b.json")
    with pytest.raises(NoSubjectError) as failed:  # every subject rejected: no delivery
        to_sdtm([tmp_path / "b.json"], fhir_version="R5")
    report = failed.value.report
    rejected = [d for d in report.dispositions if d.outcome == "rejected"]
    assert rejected and all("invalid R5" in d.reason for d in rejected)
    c = report.counts()
    assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"]
