"""Write the submission package: every dataset as XPT v5 (and Dataset-JSON), define.xml and its HTML
view, the conformance reports, the run report, the review report (report.html) and the manifest, into
the staging folder of an output_dir.PackageDir, which then swaps it in whole.

The steps, in order (each finding they make lands in the run report in that order): fold the text
to what XPT holds -> check the XPT v5 rules on every dataset (nothing is written if one is broken) ->
write the XPT files -> Dataset-JSON -> build define.xml and check it against its XSD -> run the
conformance checks of `validate` on the package as written -> the reports, the review report, the
manifest -> swap in.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from .atomic import write_atomic
from .errors import ConformanceError
from .findings import Report
from .lazy import LazyMap
from .manifest import write_manifest
from .mapping_spec.model import MappingSet
from .output_dir import PackageDir, failed_report_path
from .review import write_review_report
from .sdtm import xpt
from .sdtm.dataset import Dataset

REPORT_FILE = "run-report.json"
REVIEW_FILE = "report.html"


def write_package(datasets: dict[str, Dataset], package: PackageDir, ms: MappingSet, report: Report,
                  strict: bool, created: datetime, formats: tuple[str, ...] = ("xpt",),
                  progress: Callable[..., None] | None = None) -> list[Path]:
    """Check everything, write everything into the staging folder, then swap it in as `package.out`."""
    frames, violations = check_xpt(datasets, ms, report)
    if violations or (strict and report.errors):
        what = "XPT v5 constraint violation(s)" if violations else "error finding(s) with --strict"
        raise ConformanceError(f"{package.out}: nothing written: {violations or len(report.errors)} {what}; "
                               f"first: {report.errors[0].line()}; see {failed_report_path(package.out)}")
    written = {n: d for n, d in datasets.items() if n in frames}
    staging = package.staging
    assert staging is not None, "write_package runs inside `with package`"
    staged = write_datasets(written, frames, staging, ms, created, formats, progress)
    define = build_and_check_define(written, ms, report, created, formats)
    (staging / "define.xml").write_bytes(define)
    (staging / "define.html").write_text(_define_html(define), encoding="utf-8")
    staged += [staging / "define.xml", staging / "define.html"]
    staged += check_conformance(written, frames, define, staging, ms, report, strict, formats)
    report.outputs = [p.name for p in staged] + [REVIEW_FILE]  # relative: the same run elsewhere, the same report
    write_report(staging / REPORT_FILE, report)
    # the review report of the package as written (run report included), as `tcim-interop report` would
    # read it; the datasets as reading them back would give them, without reading them
    staged.append(write_review_report(staging, staging / REVIEW_FILE, as_read_back(written, frames, formats)))
    options = {"non_ascii": ms.study.get("non_ascii", "fold"), "strict": strict, "created": created.isoformat(),
               "mune_domain": next((sp.domain for r, sp in ms.domains.items() if r == "mune"), ""),
               "masked": ms.masked}
    write_manifest(staging, staged + [staging / REPORT_FILE], report.inputs(), ms.directory, options)
    package.commit()
    return [package.out / p.name for p in staged]


def check_xpt(datasets: dict[str, Dataset], ms: MappingSet, report: Report) -> tuple[dict[str, object], int]:
    """Each dataset with records as XPT v5 will hold it (text folded to the ASCII policy, each change a
    finding), and the number of XPT v5 rules broken, checked on all of them (one, and nothing is written)."""
    frames = {n: xpt.xpt_frame(d, ms.study.get("non_ascii", "fold"), report) for n, d in datasets.items() if len(d)}
    violations = sum(xpt.check(datasets[n], f, report) for n, f in frames.items())
    for n, d in datasets.items():
        if not len(d):
            report.add("info", "EMPTY_DATASET", "no records: dataset not written", domain=n)
    return frames, violations


def write_datasets(written: dict[str, Dataset], frames: dict, staging: Path, ms: MappingSet, created: datetime,
                   formats: tuple[str, ...], progress: Callable[..., None] | None) -> list[Path]:
    """Each dataset as XPT v5 (its folded frame) and as Dataset-JSON v1.1 (UTF-8, text unfolded)."""
    from .sdtm.dataset_json import write_dataset_json
    from .sdtm.define import dataset_keys, define_oids

    paths = []
    for i, (n, frame) in enumerate(frames.items(), start=1):
        if progress:
            progress("writing", i, len(frames) + 1)  # + 1: Dataset-JSON, define and the conformance checks
        if "xpt" in formats:
            paths.append(staging / f"{written[n].file_stem}.xpt")
            xpt.write(written[n], frame, paths[-1], created)
    if progress:
        progress("writing", len(frames) + 1, len(frames) + 1)
    if "json" in formats:
        study_oid, mdv_oid = define_oids(_studyid(written, ms))
        for n, d in written.items():
            path = staging / f"{d.file_stem}.json"
            write_dataset_json(d, path, study_oid=study_oid, created=created, keys=dataset_keys(ms, n),
                               metadata_version_oid=mdv_oid)
            paths.append(path)
    return paths


def as_read_back(written: dict[str, Dataset], frames: dict, formats: tuple[str, ...]) -> Mapping[str, Dataset]:
    """The datasets as read_package gives them back from the package (the XPT where there is one, else the
    Dataset-JSON; in the order of their files), from what was written: the same values, no file read.
    Each is made when first read: the review report reads a few."""
    from .sdtm.dataset_json import read_back

    stem = "xpt" if "xpt" in formats else "json"
    back = functools.partial(_xpt_read_back, written, frames) if stem == "xpt" else lambda n: read_back(written[n])
    order = sorted(written, key=lambda n: f"{written[n].file_stem}.{stem}")
    return LazyMap({n: functools.partial(back, n) for n in order})


def _xpt_read_back(written: dict[str, Dataset], frames: dict, name: str) -> Dataset:
    from dataclasses import replace

    from .sdtm.xpt_rows import typed

    d = written[name]
    return replace(d, frame=typed(frames[name][[v.name for v in d.variables]].reset_index(drop=True), d.variables))


def build_and_check_define(written: dict[str, Dataset], ms: MappingSet, report: Report, created: datetime,
                           formats: tuple[str, ...]) -> bytes:
    """define.xml for the datasets as written (lengths of the folded XPT text), checked against the
    Define-XML 2.1 XSD: one that does not validate stops the run."""
    from .sdtm.define import build_define, validate_define

    stem = "xpt" if "xpt" in formats else "json"
    define = build_define(ms, written, study_name=_studyid(written, ms), created=created,
                          dataset_files={n: f"{d.file_stem}.{stem}" for n, d in written.items()})
    errors = validate_define(define)
    for e in errors:
        report.error("DEFINE_XSD", f"define.xml does not validate against the Define-XML 2.1 XSD: {e}")
    if errors:
        raise ConformanceError(f"define.xml does not validate: {errors[0]}")
    return define


def _define_html(define: bytes) -> str:
    from .sdtm.define_html import define_html

    return define_html(define)


def _studyid(written: dict[str, Dataset], ms: MappingSet) -> str:
    return next((str(d.frame.at[0, "STUDYID"]) for d in written.values() if "STUDYID" in d.frame and len(d)),
                ms.study.get("study", {}).get("studyid", "STUDY"))


def check_conformance(written: dict[str, Dataset], frames: dict, define: bytes, tmp: Path, ms: MappingSet,
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


def write_report(path: Path, report: Report) -> None:
    write_atomic(path, json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
