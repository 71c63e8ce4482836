"""to-sdtm, step by step. Each step is a function with one job; `run` calls them in order:

    read_inputs         the input files -> resources (releases told, duplicates set aside)
    validate_and_map    fhir.resources validation (or --fast's JSON types), then the spec-driven mapping
                        and derivations: the domains (mapping/engine.py)
    add_trial_design    TS, TA, TE, TI, TV from the ResearchStudy and study.yaml (trial_design/)
    account             every input resource converted, rejected or out of scope
    require_subjects    no DM record, no delivery
    creation_time       the outputs' creation time, and where it came from
    write_package       check and write the package, swap it in (package_writer.py)
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .errors import ConformanceError, NoSubjectError, TcimError, UsageError
from .fhir.read import InputResource, LineResource, NotFhirError, UnreadableRecord, discover, read_document, read_file
from .fhir.shape import shape_error
from .fhir.validate import Validation
from .fhir.version import assign_versions
from .findings import Report
from .mapping import engine
from .mapping_spec.model import MappingSet
from .options import SdtmOptions
from .output_dir import PackageDir, failed_report_path
from .package_writer import write_package, write_report
from .sdtm.dataset import Dataset
from .trial_design.build import trial_design_of


@dataclass
class Inputs:
    """The resources read, with those set aside before mapping: rejected (by key: outcome, reason),
    and among them the duplicates (key, the first resource's place, the reason), reported once mapped."""

    resources: list[InputResource | LineResource]
    rejected: dict[str, tuple[str, str]] = field(default_factory=dict)
    duplicates: list[tuple[str, str, str]] = field(default_factory=list)


def run(inputs: list, out_dir: Path | None, ms: MappingSet, opts: SdtmOptions
        ) -> tuple[dict[str, Dataset], Report, list[Path]]:
    """The datasets, the report, and the files written (with out_dir: the package replaces it whole)."""
    package = PackageDir(out_dir) if out_dir is not None else None
    with package or nullcontext():  # locked, checked and staged before any input is read
        report = Report(report_paths=opts.report_paths)
        if opts.pulled is not None:
            report.pull = dataclasses.asdict(opts.pulled)
            for warning in opts.pulled.warnings:
                report.warning("PULL_WARNING", warning)
        read = read_inputs(inputs, report, opts.fhir_version, opts.progress, engine.whole_types(ms))
        try:
            datasets, report = validate_and_map(read, ms, report, opts)
            require_subjects(datasets, report, inputs)
            written: list[Path] = []
            if package is not None:
                written = write_package(datasets, package, ms, report, opts.strict,
                                        creation_time(opts.created, read.resources, datasets, report),
                                        opts.formats, opts.progress)
            elif opts.strict and report.errors:
                raise ConformanceError(f"{len(report.errors)} error finding(s); first: {report.errors[0].line()}")
        except TcimError:
            if package is not None:
                write_report(failed_report_path(package.out), report)
            raise
    return datasets, report, written


def read_inputs(inputs: Iterable[str | os.PathLike | dict | list], report: Report, fhir_version: str | None = None,
                progress: Callable[..., None] | None = None, keep: Collection[str] | None = None) -> Inputs:
    """All resources of the inputs (paths, or in memory: a Bundle or resource as a dict, a list of
    resources), releases assigned, duplicates set aside. keep: the types an NDJSON line keeps parsed
    (fhir.read.read_file); None keeps all."""
    inputs = list(inputs)
    paths = [p for p in inputs if not isinstance(p, (dict, list))]
    in_memory = [d for d in inputs if isinstance(d, (dict, list))]
    files, skipped = discover(paths) if paths else ([], [])
    if paths and not files:
        raise UsageError("no FHIR input files (.json, .ndjson, .xml) found in " + ", ".join(map(str, paths)))
    for f in skipped:
        report.skipped_files.append(str(f))
        report.add("info", "NOT_FHIR_FILE", "skipped: not a .json, .ndjson or .xml file", file=f)
    resources: list[InputResource | LineResource] = []
    read = Inputs(resources)
    for doc in in_memory:
        _take(read_document(doc, report.add_memory_input(doc)), resources, report)
    for f, in_directory in files:
        try:
            records = list(read_file(f, keep))
        except NotFhirError as e:
            if not in_directory:
                raise
            report.skipped_files.append(str(f))
            report.add("info", "NOT_FHIR_FILE", f"skipped: {e.what}", file=f)
            continue
        report.input_files.append(str(f))
        _take(records, resources, report)
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
            first, r.key = first_seen[r.key], f"{r.key}#dup@{r.where}"
            reason = f"duplicate id ({same}) of the resource at {first.where}"
            read.rejected[r.key] = ("rejected", reason)
            read.duplicates.append((first.key, r.where, reason))
            continue
        first_seen[r.key] = r
    return read


def _take(records, resources: list, report: Report) -> None:
    """The resources of one input; its unreadable records rejected, each an error naming its place."""
    for rec in records:
        if isinstance(rec, UnreadableRecord):
            report.dispose(rec.key, f"{rec.file}:{rec.place}", "rejected", rec.reason)
            report.error("UNREADABLE", rec.reason, file=f"{rec.file}:{rec.place}")
        else:
            resources.append(rec)


def validate_and_map(read: Inputs, ms: MappingSet, report: Report, opts: SdtmOptions
                     ) -> tuple[dict[str, Dataset], Report]:
    """Validate every resource of a mapped type (with fast: only its JSON types), reject the invalid
    ones, then build.

    When the validation runs in worker processes, the datasets are built meanwhile on the guess that
    every resource is valid, as nearly always; should one be invalid, that build and its findings are
    dropped and the datasets built again without it. Either way the result is the one-process result."""
    resources, rejected, progress = read.resources, read.rejected, opts.progress
    mapped_types = {t for s in ms.domains.values() for t in s.resource_types} | set(engine.SUPPORTING_TYPES)
    todo = [r for r in resources if r.key not in rejected and r.resource_type in mapped_types]
    guessed: dict[str, Dataset] | None = None
    if opts.fast:  # the JSON types only: what every reader of a resource relies on
        as_read, invalid = None, {i: reason for i, r in enumerate(todo) if (reason := shape_error(r.data, r.version))}
    else:
        with Validation(len(todo), lambda i: (todo[i].payload, todo[i].version), opts.jobs,
                        progress=(lambda n: progress("validating", n, len(todo))) if progress else None,
                        kinds={(r.version, r.resource_type) for r in todo}) as validation:
            as_read = copy.deepcopy(report) if validation.in_background else None
            if as_read is not None:
                _report_duplicates(read.duplicates, report)
                try:
                    guessed = map_resources(resources, ms, report, rejected, progress)
                except Exception:  # noqa: BLE001 - see below
                    # built from input not yet validated: a reader may meet anything. The validation
                    # names the resource at fault, and the build after it runs on valid input only
                    # (a fault of the code itself would be raised there again, never hidden)
                    guessed = None
            invalid = validation.reasons()
    if guessed is not None and not invalid:
        datasets = guessed
    else:
        report = as_read if as_read is not None else report
        for i, reason in invalid.items():
            rejected[todo[i].key] = ("rejected", reason)
            report.error("INVALID_RESOURCE", reason, source=todo[i].key, file=todo[i].where)
        _report_duplicates(read.duplicates, report)
        datasets = map_resources(resources, ms, report, rejected, progress)
    return datasets, report


def map_resources(resources: Sequence[InputResource | LineResource], ms: MappingSet, report: Report,
                  outcome: dict[str, tuple[str, str]] | None = None,
                  progress: Callable[..., None] | None = None) -> dict[str, Dataset]:
    """FHIR resources -> every dataset: the domains (mapping/engine.py), the trial design beside them
    (trial_design/), then every resource's disposition. to-fhir proves its round trip with it."""
    mapped = engine.map_domains(resources, ms, report, outcome, progress)
    mapped.datasets.update(trial_design_of(mapped, ms))
    engine.account(mapped, resources, report)
    return mapped.datasets


def _report_duplicates(duplicates: list[tuple[str, str, str]], report: Report) -> None:
    for source, where, reason in duplicates:
        report.error("DUPLICATE_ID", reason, source=source, file=where)


def require_subjects(datasets: dict[str, Dataset], report: Report, inputs: list) -> None:
    """A package without a subject is no delivery, whatever else converted: the run fails (docs/bad-input.md)."""
    if "DM" in datasets and len(datasets["DM"]):
        return
    c = report.counts()
    first = report.errors[0].line() if report.errors else "no resource describes an enrolled subject"
    named = (f"{len(inputs)} inputs" if len(inputs) != 1 else
             "the input given in memory" if isinstance(inputs[0], (dict, list)) else str(inputs[0]))
    raise NoSubjectError(f"{named}: no subject converted (no DM record): of {c['input']} input resource(s), "
                         f"{c['converted']} converted, {c['rejected']} rejected, {c['out_of_scope']} out of scope; "
                         f"first: {first}", report)


def creation_time(created: datetime | None, resources: list[InputResource | LineResource],
                  datasets: dict[str, Dataset], report: Report) -> datetime:
    """The creation time stamped into the outputs (XPT headers, define.xml, Dataset-JSON), and where it
    came from (run report `created`). Never the clock: the same input must give the same bytes."""
    value: datetime | None = created
    if value is not None:
        source = "--created"
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
            stamps.append(stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp)
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
