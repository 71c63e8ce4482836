"""The Python API: what the CLI calls, and what a notebook user calls to get DataFrames.

    result = to_sdtm(["bundle.json"])            # datasets in memory
    result = to_sdtm([bundle_dict])              # or FHIR already in memory: a Bundle, a list of resources
    result.datasets["DM"]                        # a pandas DataFrame
    result.report.findings                       # every problem met, as records
    to_sdtm(["export/"], out_dir="sdtm/")        # also writes the package (XPT, define.xml, reports, ...)
    to_fhir("sdtm/", "back.json")                # and back to FHIR
    validate_package("sdtm/")                    # the conformance checks of `tcim-interop validate`

Each function gathers its options into one object (options.py) and runs its pipeline: to-sdtm in
sdtm_pipeline.py, to-fhir in fhir_pipeline.py, validate in validate/engine.py (docs/architecture.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from .findings import Report
from .gc_pause import paused_gc
from .mapping_spec.load import load_mapping_set, package_mappings
from .mapping_spec.model import MappingSet
from .options import FhirOptions, SdtmOptions
from .sdtm.dataset import Dataset


@dataclass
class SdtmResult:
    """What to_sdtm made. datasets: each dataset as a DataFrame, columns in spec order (DM, EX, AE,
    XM, SUPPAE, TS, ...). report: every finding, the accounting of the input (report.counts()) and
    what was written. metadata: the same datasets with their labels and variable metadata (Dataset).
    written: the files written into out_dir (empty without out_dir)."""

    datasets: dict[str, pd.DataFrame]
    report: Report
    metadata: dict[str, Dataset]
    written: list[Path]


@dataclass
class FhirResult:
    """What to_fhir made. resources: every FHIR resource, as JSON-ready dicts, in output order (none
    with keep_resources=False). report: the findings, the round-trip figure (ROUND_TRIP) and what was
    written. written: the bundle or NDJSON files. counts: the number of resources of each type."""

    resources: list[dict]
    report: Report
    written: list[Path]
    counts: dict[str, int] = field(default_factory=dict)


@paused_gc
def to_sdtm(inputs: Iterable[str | os.PathLike | dict | list], out_dir: str | os.PathLike | None = None, *,
            mappings: MappingSet | str | os.PathLike | None = None, fhir_version: str | None = None,
            mune_domain: str | None = None, strict: bool = False, created: datetime | None = None,
            formats: Iterable[str] = ("xpt",), fast: bool = False, masked: bool = False,
            progress: Callable[..., None] | None = None, jobs: int | None = None,
            report_paths: bool = False, pulled=None, site: str | os.PathLike | None = None) -> SdtmResult:
    """Convert FHIR inputs (files, directories, or documents in memory: a Bundle or resource as a dict,
    a list of resources) to SDTM datasets; with out_dir, write the submission package, which replaces
    out_dir whole, or a failed run leaves it as it was and puts its report beside it (output_dir.py).
    The options are SdtmOptions' (options.py); mappings: a loaded MappingSet or a specs folder; site: a
    hospital's site folder (ConceptMaps, site.yaml: mapping_spec/site.py)."""
    from . import sdtm_pipeline

    opts = SdtmOptions(fhir_version=fhir_version, mune_domain=mune_domain, strict=strict, created=created,
                       formats=tuple(formats), fast=fast, masked=masked, jobs=jobs, report_paths=report_paths,
                       pulled=pulled, progress=progress)
    inputs = [inputs] if isinstance(inputs, dict) else list(inputs)  # one Bundle dict is one input
    ms = _sdtm_mappings(mappings, opts, site)
    datasets, report, written = sdtm_pipeline.run(inputs, Path(out_dir) if out_dir is not None else None, ms, opts)
    return SdtmResult({n: d.frame for n, d in datasets.items()}, report, datasets, written)


def _sdtm_mappings(mappings: MappingSet | str | os.PathLike | None, opts: SdtmOptions,
                   site: str | os.PathLike | None = None) -> MappingSet:
    if isinstance(mappings, MappingSet):
        from .errors import UsageError

        if opts.masked and not mappings.masked:  # would write the arms: refuse rather than unmask
            raise UsageError("masked=True needs a mapping set loaded with load_mapping_set(..., masked=True)")
        if site is not None:  # its maps belong in the set's codelists
            raise UsageError("site= with a loaded MappingSet: load it with load_mapping_set(..., site=...)")
        return mappings
    return load_mapping_set(_folder(mappings), mune_domain=opts.mune_domain, masked=opts.masked, site=site)


def _folder(path: str | os.PathLike | None) -> Path | None:
    return Path(path) if path is not None else None


def read_sdtm(path: str | os.PathLike) -> dict[str, Dataset]:
    """The SDTM datasets of a directory (or one file), by dataset name, each checked as it is read."""
    from .sdtm.read import read_package

    return read_package(Path(path))[0]


@paused_gc
def to_fhir(sdtm: str | os.PathLike | dict[str, Dataset], out: str | os.PathLike | None = None, *,
            fhir_version: str = "R4", bundle_type: str = "transaction", ndjson: bool = False,
            mappings: MappingSet | str | os.PathLike | None = None, strict: bool = False,
            verify: bool = True, jobs: int | None = None, timezone: str | None = None,
            keep_resources: bool = True) -> FhirResult:
    """SDTM datasets (a package folder, or datasets in memory) -> FHIR resources (ResearchStudy,
    Patient, ResearchSubject, Consent, Encounter, MedicationAdministration, AdverseEvent, Observation);
    with out, also written as a Bundle or NDJSON. The options are FhirOptions' (options.py).
    keep_resources=False: the resources are written to out, not kept (FhirResult.resources is empty), so
    that memory holds one part's records and resources whatever the size of the study (a package folder's
    XPT datasets are read a part at a time: sdtm/xpt_rows.py)."""
    from . import fhir_pipeline

    opts = FhirOptions(fhir_version=fhir_version, bundle_type=bundle_type, ndjson=ndjson, strict=strict,
                       verify=verify, jobs=jobs, timezone=timezone)
    from .sdtm.read import read_package

    # a package's XPT rows are read a part of the subjects at a time (sdtm/xpt_rows.py), not held whole
    datasets = sdtm if isinstance(sdtm, dict) else read_package(Path(sdtm), by_range=True)[0]
    ms = mappings if isinstance(mappings, MappingSet) else package_mappings(datasets, _folder(mappings))
    resources, report, written, counts = fhir_pipeline.run(datasets, Path(out) if out is not None else None, ms, opts,
                                                           keep=keep_resources)
    return FhirResult(resources, report, written, dict(counts))


def validate_package(package: str | os.PathLike, mappings: MappingSet | str | os.PathLike | None = None):
    """The conformance checks of `tcim-interop validate` on a package folder: a ValidationReport
    (validate/engine.py: .findings, .errors, .by_severity()); nothing is written."""
    from .validate import validate_package as run_checks

    return run_checks(package, mappings)
