"""to-fhir, step by step: the datasets (read by api.read_sdtm) -> the study's own resources (studies,
sites, arms, trial design: mapping/to_fhir.Builder.study_level) -> a few subjects at a time (parts):
build their resources, carry what to-sdtm would not give back and prove that it does (mapping/round_trip.py),
validate them (in worker processes, fhir/validate.StreamedValidation) and spool them to disk
(fhir/write.Spool) -> the study's own resources once every subject is in -> with --strict, stop on an
error -> write the Bundle or NDJSON in the order of a study built dataset by dataset.

Memory holds one part's records (sdtm/records.py; a package's XPT rows are read a part at a time,
sdtm/xpt_rows.py) and resources (a few subjects'), not the study's: a subject's
resources refer to its own and to the study's only, and what to-sdtm gives back for them depends on
nothing else."""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import orjson

from .errors import ConformanceError
from .findings import Report
from .mapping_spec.model import MappingSet
from .options import FhirOptions
from .sdtm.dataset import Dataset

# Subjects are built, checked and written a part at a time: as many subjects as hold about this many
# records (at least one). A to-sdtm run costs a fixed share besides its records (its frames, its
# derivations): one per subject would double to-fhir's time; a part of a few thousand records does not
# show in the time, and memory still holds a part, whatever the size of the study.
PART_ROWS = 5000


def parts(usubjids: list[str], rows_of: dict[str, Mapping[str, Sequence[int]]]) -> Iterator[list[str]]:
    """The subjects in DM order, in parts of about PART_ROWS records (rows_of: dataset -> USUBJID -> rows)."""
    part: list[str] = []
    size = 0
    for u in usubjids:
        part.append(u)
        size += sum(len(by_subject.get(u, ())) for by_subject in rows_of.values())
        if size >= PART_ROWS:
            yield part
            part, size = [], 0
    if part:
        yield part


def run(datasets: dict[str, Dataset], out: Path | None, ms: MappingSet, opts: FhirOptions, keep: bool = True
        ) -> tuple[list[dict], Report, list[Path], Counter]:
    """(the resources in output order, or none unless keep; the findings; the files written; the number
    of resources of each type)."""
    from .fhir.conformance import profile_url
    from .fhir.validate import MIN_PARALLEL, StreamedValidation
    from .fhir.write import Spool
    from .mapping.round_trip import RoundTrip
    from .mapping.to_fhir import Builder, declare_profiles, profiles_apply
    from .sdtm_pipeline import map_resources
    from .trial_design import CARRIED, ON_SUBJECTS

    report, version = Report(), opts.fhir_version
    builder = Builder(datasets, ms, version, report, opts.timezone)
    builder.prepare()
    study = builder.study_level()
    profiles = profiles_apply(datasets, ms)
    if profiles:
        declare_profiles(study.resources, profile_url)
    mapped = {n: d for n, d in datasets.items() if n in builder.specs or n in (*CARRIED, *ON_SUBJECTS, "RELREC")
              or (n.startswith("SUPP") and n[4:] in builder.specs)}
    trip = RoundTrip(mapped, builder.records, builder.rows_of, ms, version, map_resources)
    trip.settle_study(study, {name for name, ds, _ in builder.plan if len(ds)})
    study_ids = {f"{r['resourceType']}/{r['id']}" for r in study.resources}
    spool = Spool(out, opts.ndjson, opts.bundle_type) if out is not None else None
    kept: list[tuple[int, dict]] = []
    counts: Counter = Counter()
    rows = sum(len(d) for d in mapped.values())  # about as many resources
    firsts: list[dict] = []  # the first subject of each study: to-sdtm makes its trial design with it
    studies_seen: set[str] = set()
    try:
        with StreamedValidation(version, opts.jobs, parallel=rows >= MIN_PARALLEL,
                                kinds={(version, r["resourceType"]) for r in study.resources}
                                | {(version, s.row_resource) for s in builder.specs.values() if s.row_resource}) as validation:

            def emit(part, ids: set[str]) -> None:
                for place, resource in zip(part.places, part.resources, strict=True):
                    raw = orjson.dumps(resource)
                    validation.add((place, f"{resource['resourceType']}/{resource['id']}"), raw)
                    if spool is not None:
                        spool.add(place, resource, raw, ids)
                    if keep:
                        kept.append((place, resource))
                    counts[resource["resourceType"]] += 1

            for usubjids in parts(builder.subject_ids, builder.rows_of):
                part = builder.subjects_part(usubjids)
                if profiles:
                    declare_profiles(part.resources, profile_url)
                trip.carry(part, usubjids)
                if opts.verify:
                    trip.compare(part, usubjids)
                emit(part, study_ids | {f"{r['resourceType']}/{r['id']}" for r in part.resources})
                studyids = {str(builder.records["DM"][builder.rows_of["DM"][u][0]]["STUDYID"]) for u in usubjids}
                if studyids - studies_seen:
                    studies_seen.update(studyids)
                    firsts += part.resources
                # to-sdtm's structures over the part's resources hold reference cycles, which the collector
                # paused for the run (gc_pause.py) would leave, with the resources, until the end: a young
                # generation's collection frees them, and scans only what was made since the last one
                gc.collect(0)
            builder.write_study_statuses()  # every subject's state is known now
            figures = trip.finish(firsts, opts.verify)
            emit(study, study_ids)
            invalid = validation.reasons()
    except BaseException:
        if spool is not None:
            spool.close()
        raise
    if opts.verify:
        report.add("info", "ROUND_TRIP", f"to-sdtm of the output gives back {figures.equal} of {figures.compared} cells"
                   + (f" as XPT, {figures.equal + figures.folded} as Dataset-JSON" if figures.folded else ""))
        if figures.folded:
            report.add("warning", "ROUND_TRIP_XPT_FOLDS",
                       f"{figures.folded} cell(s) hold text XPT v5 cannot (not printable ASCII): given back whole as "
                       f"Dataset-JSON, folded as XPT (study.yaml non_ascii), e.g. {', '.join(t for _, t in figures.examples)}")
        for d in figures.differences():
            report.error("ROUND_TRIP_MISMATCH", d)
    for (_, source), reason in invalid.items():
        report.error("INVALID_OUTPUT", reason, source=source)
    if opts.strict and report.errors:
        if spool is not None:
            spool.close()
        raise ConformanceError(f"{len(report.errors)} error finding(s), nothing written; "
                               f"first: {report.errors[0].line()}")
    written = spool.write() if spool is not None else []
    report.outputs = [str(p) for p in written]
    return [r for _, r in sorted(kept, key=lambda pr: pr[0])], report, written, counts
