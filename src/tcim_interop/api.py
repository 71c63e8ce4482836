"""The Python API: what the CLI calls, and what a notebook user calls to get DataFrames.

    result = to_sdtm(["bundle.json"])            # datasets in memory
    result.datasets["DM"]                        # a pandas DataFrame
    result.report.findings                       # every problem met, as records
    to_sdtm(["export/"], out_dir="sdtm/")        # also writes the .xpt files and run-report.json
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Collection, Iterable

import pandas as pd

from .atomic import write_atomic
from .errors import ConformanceError, NoSubjectError, TcimError, UsageError
from .findings import Report
from .gc_pause import paused_gc
from .fhir.read import InputResource, LineResource, NotFhirError, UnreadableRecord, discover, read_file
from .fhir.shape import shape_error
from .fhir.validate import Validation
from .fhir.version import VERSIONS, assign_versions
from .manifest import write_manifest
from .mapping import engine
from .output_dir import PackageDir, failed_report_path
from .sdtm import xpt
from .sdtm.dataset import Dataset
from .mapping_spec.load import MappingSet, load_mapping_set

REPORT_FILE = "run-report.json"


@dataclass
class SdtmResult:
    datasets: dict[str, pd.DataFrame]
    report: Report
    metadata: dict[str, Dataset]
    written: list[Path]


def read_inputs(paths: Iterable[str | os.PathLike], report: Report, fhir_version: str | None = None,
                progress: Callable[..., None] | None = None,
                keep: Collection[str] | None = None) -> tuple[list[InputResource | LineResource], dict]:
    """All resources of the inputs, releases assigned; and those rejected before mapping, by key.
    keep: the types an NDJSON line keeps parsed (fhir.read.read_file); None keeps all."""
    if fhir_version and fhir_version not in VERSIONS:
        raise UsageError(f"--fhir-version must be one of {', '.join(VERSIONS)}, not {fhir_version!r}")
    files, skipped = discover(paths)
    if not files:
        raise UsageError("no FHIR input files (.json, .ndjson, .xml) found in " + ", ".join(map(str, paths)))
    for f in skipped:
        report.skipped_files.append(str(f))
        report.add("info", "NOT_FHIR_FILE", "skipped: not a .json, .ndjson or .xml file", file=f)
    resources: list[InputResource | LineResource] = []
    rejected: dict[str, tuple[str, str]] = {}
    for f, in_directory in files:
        try:
            records = list(read_file(f, keep))
        except NotFhirError as e:
            if not in_directory:
                raise
            report.skipped_files.append(str(f))
            report.add("info", "NOT_FHIR_FILE", f"skipped: {str(e).split(': ', 1)[-1]}", file=f)
            continue
        report.input_files.append(str(f))
        for rec in records:
            if isinstance(rec, UnreadableRecord):
                report.dispose(rec.key, f"{rec.file}:{rec.place}", "rejected", rec.reason)
                report.error("UNREADABLE", rec.reason, file=f"{rec.file}:{rec.place}")
            else:
                resources.append(rec)
        if progress:
            progress("reading", len(report.input_files), len(files))
    assign_versions(resources, forced=fhir_version)
    first_seen: dict[str, InputResource | LineResource] = {}
    for r in resources:
        if r.key in first_seen and r.full_url and first_seen[r.key].full_url not in ("", r.full_url):
            # same id on another server: a different resource (FHIR identity is the full URL); the key
            # keeps its "Type/" prefix, which the engine selects rows by and the report counts by
            r.key = f"{r.key}@{r.full_url}"
        if r.key in first_seen:
            # rare: the two may be NDJSON lines, read again here
            same = "identical" if r.data == first_seen[r.key].data else "different content"
            r.key = f"{r.key}#dup@{r.where}"
            rejected[r.key] = ("rejected", f"duplicate id ({same}) of the resource at {first_seen[r.key.split('#dup@')[0]].where}")
            continue
        first_seen[r.key] = r
    return resources, rejected


@paused_gc
def to_sdtm(inputs: Iterable[str | os.PathLike], out_dir: str | os.PathLike | None = None, *,
            mappings: MappingSet | str | os.PathLike | None = None, fhir_version: str | None = None,
            mune_domain: str | None = None, strict: bool = False, created: datetime | None = None,
            formats: Iterable[str] = ("xpt",), fast: bool = False, masked: bool = False,
            progress: Callable[..., None] | None = None, jobs: int | None = None,
            report_paths: bool = False, pulled=None) -> SdtmResult:
    """Convert FHIR inputs to SDTM datasets; with out_dir, write the submission package: each dataset as
    XPT v5 (and Dataset-JSON v1.1 with formats=("xpt", "json")), define.xml and its HTML view, the run
    report and the manifest. The package replaces out_dir whole, or a failed run leaves it as it was and
    puts its report beside it (output_dir.py).

    fast=True skips the fhir.resources validation of whole resources and validates only what the
    mapping reads: every value a row algorithm takes is checked by it (dates, numbers, codes,
    references), and a resource with an element of the wrong JSON type is rejected with the reason
    (fhir.shape.shape_error).

    masked=True: a delivery before unblinding: exposure in EC with ECTRT = MASKED, no EX, DM without
    arms (ARMNRS = MASKED); see study.yaml masked_domains and the specs' `masked:` entries.

    jobs: processes validating resources (default: one per core); the output does not depend on it.

    report_paths=True: the run report and manifest name the input files by path too, not only by a
    neutral label and sha256 (file names may be personal data).

    pulled: the server.PullRecord of the inputs (to-sdtm --server): kept in the report, warnings as findings."""
    formats = _formats(formats)
    inputs = list(inputs)
    if isinstance(mappings, MappingSet):
        if masked and not mappings.masked:  # would write the arms: refuse rather than unmask
            raise UsageError("masked=True needs a mapping set loaded with load_mapping_set(..., masked=True)")
        ms = mappings
    else:
        ms = load_mapping_set(mappings, mune_domain=mune_domain, masked=masked)
    package = PackageDir(Path(out_dir)) if out_dir is not None else None
    with package or nullcontext():  # locked, checked and staged before any input is read
        report = Report(report_paths=report_paths)
        if pulled is not None:
            report.pull = dataclasses.asdict(pulled)
            for warning in pulled.warnings:
                report.warning("PULL_WARNING", warning)
        resources, rejected = read_inputs(inputs, report, fhir_version, progress, engine.whole_types(ms))
        try:
            datasets, report = _validate_and_build(resources, rejected, ms, report, fast, jobs, progress)
            require_subjects(datasets, report, inputs)
            written: list[Path] = []
            if package is not None:
                written = write_package(datasets, package, ms, report, strict,
                                        creation_time(created, resources, datasets, report), formats, progress)
            elif strict and report.errors:
                raise ConformanceError(f"{len(report.errors)} error finding(s); first: {report.errors[0].line()}")
        except TcimError:
            if package is not None:
                _write_report(failed_report_path(package.out), report)
            raise
    return SdtmResult({n: d.frame for n, d in datasets.items()}, report, datasets, written)


def require_subjects(datasets: dict[str, Dataset], report: Report, inputs: list) -> None:
    """A package without a subject is no delivery, whatever else converted: the run fails (docs/bad-input.md)."""
    if "DM" in datasets and len(datasets["DM"]):
        return
    c = report.counts()
    first = report.errors[0].line() if report.errors else "no resource describes an enrolled subject"
    named = str(inputs[0]) if len(inputs) == 1 else f"{len(inputs)} inputs"
    raise NoSubjectError(f"{named}: no subject converted (no DM record): of {c['input']} input resource(s), {c['converted']} "
                     f"converted, {c['rejected']} rejected, {c['out_of_scope']} out of scope; first: {first}", report)


def _validate_and_build(resources: list, rejected: dict[str, tuple[str, str]], ms: MappingSet, report: Report,
                        fast: bool, jobs: int | None, progress: Callable[..., None] | None
                        ) -> tuple[dict[str, Dataset], Report]:
    """Validate every resource of a mapped type (with fast: only its JSON types), reject the invalid
    ones, then build.

    When the validation runs in worker processes, the datasets are built meanwhile on the guess that
    every resource is valid, as nearly always; should one be invalid, that build and its findings are
    dropped and the datasets built again without it. Either way the result is the one-process result."""
    mapped_types = {s.row_resource for s in ms.domains.values()} | set(engine.SUPPORTING_TYPES)
    todo = [r for r in resources if r.key not in rejected and r.resource_type in mapped_types]
    if fast:  # the JSON types only: what every reader of a resource relies on
        as_read, invalid = None, {i: reason for i, r in enumerate(todo) if (reason := shape_error(r.data, r.version))}
    else:
        with Validation(len(todo), lambda i: (todo[i].payload, todo[i].version), jobs,
                        progress=(lambda n: progress("validating", n, len(todo))) if progress else None,
                        kinds={(r.version, r.resource_type) for r in todo}) as validation:
            as_read = copy.deepcopy(report) if validation.in_background else None
            if as_read is not None:
                _report_duplicates(rejected, report)
                datasets = engine.build(resources, ms, report, rejected, progress)
            invalid = validation.reasons()
    if as_read is None or invalid:
        report = as_read if as_read is not None else report
        for i, reason in invalid.items():
            rejected[todo[i].key] = ("rejected", reason)
            report.error("INVALID_RESOURCE", reason, source=todo[i].key, file=todo[i].where)
        _report_duplicates(rejected, report)
        datasets = engine.build(resources, ms, report, rejected, progress)
    return datasets, report


def _report_duplicates(rejected: dict[str, tuple[str, str]], report: Report) -> None:
    for key, (_, reason) in rejected.items():
        if "duplicate id" in reason:
            report.error("DUPLICATE_ID", reason, source=key.split("#dup@")[0], file=key.split("#dup@")[1])


def creation_time(created: datetime | None, resources: list[InputResource | LineResource],
                  datasets: dict[str, Dataset], report: Report) -> datetime:
    """The creation time stamped into the outputs (XPT headers, define.xml, Dataset-JSON), and where it
    came from (run report `created`). Never the clock: the same input must give the same bytes."""
    if created is not None:
        value, source = created, "--created"
    elif (value := input_timestamp(resources)) is not None:
        source = "the latest meta.lastUpdated of the input"
    elif (found := data_timestamp(datasets)) is not None:
        value, where = found
        source = f"no meta.lastUpdated in the input: the latest date in the data ({where})"
    else:
        value, source = SAS_EPOCH, "no meta.lastUpdated and no date in the input: the SAS epoch"
        report.warning("NO_CREATION_DATE", f"the outputs' creation date is {value.date()}: {source}",
                       hint="give --created, or send meta.lastUpdated")
    report.created = {"value": value.isoformat(), "source": source}
    return value


SAS_EPOCH = datetime(1960, 1, 1)
_ISO_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2})?))?")


def input_timestamp(resources: list[InputResource | LineResource]) -> datetime | None:
    """The latest meta.lastUpdated of the input, in UTC (instants with other offsets are compared as
    instants, not as clock readings); None when no resource has one."""
    stamps = []
    for r in resources:
        value = r.last_updated
        if isinstance(value, str):
            try:
                stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            # a FHIR instant has an offset; one without is taken as UTC
            stamps.append(stamp.astimezone(timezone.utc).replace(tzinfo=None) if stamp.tzinfo else stamp)
    return max(stamps) if stamps else None


def data_timestamp(datasets: dict[str, Dataset]) -> tuple[datetime, str] | None:
    """The latest full date (or date-time, clock reading as written) of any --DTC variable, and which
    variable holds it; partial dates are skipped."""
    best: tuple[datetime, str] | None = None
    for name, ds in sorted(datasets.items()):
        for column in ds.frame.columns:
            if not column.endswith("DTC"):
                continue
            for text in set(ds.frame[column].dropna().astype(str)):
                m = _ISO_DATETIME.match(text)
                try:
                    stamp = datetime.fromisoformat(f"{m[1]}T{m[2]}" if m and m[2] else m[1]) if m else None
                except ValueError:
                    continue
                if stamp is not None and (best is None or stamp > best[0]):
                    best = (stamp, f"{name}.{column}")
    return best


def _formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in ("xpt", "json")]
    if unknown or not chosen:
        raise UsageError(f"--format takes xpt, json or xpt,json, not {','.join(unknown) or 'nothing'}")
    return chosen


def write_package(datasets: dict[str, Dataset], package: PackageDir, ms: MappingSet, report: Report,
                  strict: bool, created: datetime, formats: tuple[str, ...] = ("xpt",),
                  progress: Callable[..., None] | None = None) -> list[Path]:
    """Check everything, write everything into the staging folder, then swap it in as `package.out`."""
    non_ascii = ms.study.get("non_ascii", "fold")
    frames = {n: xpt.xpt_frame(d, non_ascii, report) for n, d in datasets.items() if len(d)}
    violations = sum(xpt.check(datasets[n], f, report) for n, f in frames.items())
    for n, d in datasets.items():
        if not len(d):
            report.add("info", "EMPTY_DATASET", "no records: dataset not written", domain=n)
    if violations or (strict and report.errors):
        what = "XPT v5 constraint violation(s)" if violations else "error finding(s) with --strict"
        raise ConformanceError(f"{package.out}: nothing written: {violations or len(report.errors)} {what}; "
                               f"first: {report.errors[0].line()}; see {failed_report_path(package.out)}")
    staging = package.staging
    staged = []
    for i, (n, frame) in enumerate(frames.items(), start=1):
        if progress:
            progress("writing", i, len(frames) + 1)  # + 1: Dataset-JSON, define and the conformance checks
        if "xpt" in formats:
            path = staging / f"{datasets[n].file_stem}.xpt"
            xpt.write(datasets[n], frame, path, created)
            staged.append(path)
    if progress:
        progress("writing", len(frames) + 1, len(frames) + 1)
    staged += _write_metadata(datasets, frames, staging, ms, report, created, formats, strict)
    report.outputs = [p.name for p in staged]  # relative: the same run elsewhere gives the same report
    _write_report(staging / REPORT_FILE, report)
    options = {"non_ascii": non_ascii, "strict": strict, "created": created.isoformat(),
               "mune_domain": next((sp.domain for r, sp in ms.domains.items() if r == "mune"), ""),
               "masked": ms.masked}
    write_manifest(staging, staged + [staging / REPORT_FILE], report.inputs(), ms.directory, options)
    package.commit()
    return [package.out / p.name for p in staged]


def _write_metadata(datasets: dict[str, Dataset], frames: dict, tmp: Path, ms: MappingSet, report: Report,
                    created: datetime, formats: tuple[str, ...], strict: bool = False) -> list[Path]:
    """Dataset-JSON (UTF-8, unfolded text), define.xml checked against the Define-XML 2.1 XSD, its
    HTML view, and the validation reports. The define describes the datasets as written (lengths of the folded XPT text)."""
    from .sdtm.dataset_json import write_dataset_json
    from .sdtm.define import build_define, dataset_keys, define_oids, validate_define
    from .sdtm.define_html import define_html

    written = {n: d for n, d in datasets.items() if n in frames}
    studyid = next((str(d.frame.at[0, "STUDYID"]) for d in written.values() if "STUDYID" in d.frame and len(d)),
                   ms.study.get("study", {}).get("studyid", "STUDY"))
    study_oid, mdv_oid = define_oids(studyid)
    paths = []
    if "json" in formats:
        for n, d in written.items():
            path = tmp / f"{d.file_stem}.json"
            write_dataset_json(d, path, study_oid=study_oid, created=created, keys=dataset_keys(ms, n),
                               metadata_version_oid=mdv_oid)
            paths.append(path)
    stem = "xpt" if "xpt" in formats else "json"
    define = build_define(ms, written, study_name=studyid, created=created,
                          dataset_files={n: f"{d.file_stem}.{stem}" for n, d in written.items()})
    errors = validate_define(define)
    for e in errors:
        report.error("DEFINE_XSD", f"define.xml does not validate against the Define-XML 2.1 XSD: {e}")
    if errors:
        raise ConformanceError(f"define.xml does not validate: {errors[0]}")
    (tmp / "define.xml").write_bytes(define)
    (tmp / "define.html").write_text(define_html(define), encoding="utf-8")
    return paths + [tmp / "define.xml", tmp / "define.html"] + _validate_package(
        written, frames, define, tmp, ms, report, strict, formats)


def _validate_package(written: dict[str, Dataset], frames: dict, define: bytes, tmp: Path, ms: MappingSet,
                      report: Report, strict: bool, formats: tuple[str, ...]) -> list[Path]:
    """The conformance checks of `tcim-interop validate`, on the datasets as written (the XPT's folded
    text when there is XPT) and the define.xml: validation-report.json and .csv join the package."""
    from dataclasses import replace

    from .validate import ValidationReport, validate_datasets
    from .validate.output import write_reports
    from .validate.registry import all_checks

    stem = "xpt" if "xpt" in formats else "json"
    as_written = {n: replace(d, frame=frames[n]) if stem == "xpt" else d for n, d in written.items()}
    files = {n: f"{d.file_stem}.{stem}" for n, d in written.items()}
    # the XPT v5 rules are the writer's own (xpt.check above): nothing that breaks them is ever written;
    # the manifest is written last (it lists these reports): there is none yet to check the files against
    checks = [c.name for c in all_checks() if c.name not in ("xpt_constraints", "manifest")]
    validation = ValidationReport(".", {n: len(d) for n, d in written.items()}, files, ms.masked, "define.xml", checks)
    validation.findings = validate_datasets(as_written, ms, define, ms.masked, files=files, checks=checks)
    report.validation = validation.by_severity()
    if strict and validation.errors:
        first = validation.errors[0]
        raise ConformanceError(f"nothing written: the package breaks {len(validation.errors)} conformance rule(s) "
                               f"with --strict; first: [{first.rule}] {first.domain} row {first.row}: {first.message}")
    return write_reports(validation, tmp)


def _write_report(path: Path, report: Report) -> None:
    write_atomic(path, json.dumps(report.to_dict(), indent=2, ensure_ascii=False))


@dataclass
class FhirResult:
    resources: list[dict]
    report: Report
    written: list[Path]


def read_sdtm(path: str | os.PathLike) -> dict[str, Dataset]:
    """The SDTM datasets of a directory (or one file), by dataset name."""
    from .sdtm.dataset_json import read_dataset_json
    from .sdtm.read import discover_sdtm, read_xpt

    datasets = {}
    for f in discover_sdtm(Path(path)):
        ds = read_dataset_json(f) if f.suffix.lower() in (".json", ".ndjson") else read_xpt(f)
        datasets.setdefault(ds.name, ds)  # the same dataset as .xpt and .json: the first (XPT, by name order) wins
    return datasets


@paused_gc
def to_fhir(sdtm: str | os.PathLike | dict[str, Dataset], out: str | os.PathLike | None = None, *,
            fhir_version: str = "R4", bundle_type: str = "transaction", ndjson: bool = False,
            mappings: MappingSet | str | os.PathLike | None = None, strict: bool = False,
            verify: bool = True, jobs: int | None = None) -> FhirResult:
    """SDTM datasets -> FHIR resources (ResearchStudy, Patient, ResearchSubject, Consent, Encounter,
    MedicationAdministration, AdverseEvent, Observation); with out, also written as a Bundle or NDJSON.
    jobs: worker processes validating the output (default: one per core)."""
    from .mapping.to_fhir import build_fhir

    if fhir_version not in VERSIONS:
        raise UsageError(f"--fhir-version must be one of {', '.join(VERSIONS)}, not {fhir_version!r}")
    if bundle_type not in ("transaction", "collection", "batch"):
        raise UsageError(f"--bundle-type must be transaction or collection, not {bundle_type!r}")
    datasets = sdtm if isinstance(sdtm, dict) else read_sdtm(sdtm)
    mune = "NV" if "NV" in datasets and "XM" not in datasets else None
    masked = "EC" in datasets and "EX" not in datasets  # a masked delivery (to-sdtm --masked)
    ms = mappings if isinstance(mappings, MappingSet) else load_mapping_set(mappings, mune_domain=mune, masked=masked)
    report = Report()
    resources = build_fhir(datasets, ms, fhir_version, report, verify=verify, jobs=jobs)
    if strict and report.errors:
        raise ConformanceError(f"{len(report.errors)} error finding(s), nothing written; first: {report.errors[0].line()}")
    written: list[Path] = []
    if out is not None:
        from .fhir.write import write_bundle, write_ndjson

        written = write_ndjson(resources, Path(out)) if ndjson else write_bundle(resources, Path(out), bundle_type)
        report.outputs = [str(p) for p in written]
    return FhirResult(resources, report, written)
