"""to-fhir, step by step: the datasets (read by api.read_sdtm) -> build the resources, prove the round
trip and validate each resource (mapping/to_fhir.build_fhir, the validation in worker processes while
the round trip is checked) -> with --strict, stop on an error -> write the Bundle or NDJSON."""

from __future__ import annotations

from pathlib import Path

from .errors import ConformanceError
from .findings import Report
from .mapping_spec.model import MappingSet
from .options import FhirOptions
from .sdtm.dataset import Dataset


def run(datasets: dict[str, Dataset], out: Path | None, ms: MappingSet, opts: FhirOptions
        ) -> tuple[list[dict], Report, list[Path]]:
    from .fhir.conformance import profile_url
    from .mapping.to_fhir import build_fhir
    from .sdtm_pipeline import map_resources

    report = Report()
    resources = build_fhir(datasets, ms, opts.fhir_version, report, map_resources, verify=opts.verify, jobs=opts.jobs,
                           timezone=opts.timezone, profile_of=profile_url)
    if opts.strict and report.errors:
        raise ConformanceError(f"{len(report.errors)} error finding(s), nothing written; "
                               f"first: {report.errors[0].line()}")
    written: list[Path] = []
    if out is not None:
        from .fhir.write import write_bundle, write_ndjson

        written = write_ndjson(resources, out) if opts.ndjson else write_bundle(resources, out, opts.bundle_type)
        report.outputs = [str(p) for p in written]
    return resources, report, written
