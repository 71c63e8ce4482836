"""The tcim-interop command: a thin typer layer over the Python API (api.py).

Exit codes: 0 done; 1 conformance errors (--strict) or XPT constraints violated; 2 bad input or
usage. User errors are one line on stderr, never a traceback. Heavy modules (pandas,
fhir.resources, lxml) are imported inside the commands, so that --help answers at once.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import nullcontext
from datetime import datetime
from enum import Enum
from pathlib import Path

import typer

from . import cli_server  # noqa: F401  (pull and push register on app)
from .cli_app import FhirVersion, MuneDomain, _fail, app, running
from .errors import UsageError


def _created(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"--created must be an ISO 8601 date-time, not {value!r}") from None


@app.command("to-sdtm")
def to_sdtm_cmd(
    inputs: list[Path] | None = typer.Argument(
        None, metavar="INPUT...", show_default=False, help="FHIR JSON/XML bundles or resources, NDJSON files, or directories (or use --server)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Directory for the .xpt files and run-report.json."),
    fhir_version: FhirVersion | None = typer.Option(None, "--fhir-version", case_sensitive=False,
                                                    help="Force R4 or R5 (default: detected per resource)."),
    mune_domain: MuneDomain | None = typer.Option(None, "--mune-domain", case_sensitive=False,
                                                  help="Send MUNE to XM (default, mappings/xm.yaml) or NV."),
    mappings: Path | None = typer.Option(None, "--mappings", metavar="DIR", help="Use these specs instead of mappings/."),
    site: Path | None = typer.Option(None, "--site", metavar="DIR", help="The hospital's site folder: ConceptMaps from its codes "
                                                          "to the study's, and site.yaml (docs/integration.md)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 and write no dataset if any error is found."),
    created: str | None = typer.Option(None, "--created", metavar="DATETIME",
                                       help="Creation time for XPT headers (default: latest meta.lastUpdated)."),
    formats: str = typer.Option("xpt", "--format", metavar="FORMATS", help="xpt, json (Dataset-JSON v1.1) or xpt,json."),
    fast: bool = typer.Option(False, "--fast", help="Validate only what the mapping reads, not whole resources."),
    masked: bool = typer.Option(False, "--masked", help="Before unblinding: exposure in EC (ECTRT MASKED), "
                                                         "no EX, no arm in DM (ARMNRS MASKED)."),
    server: str | None = typer.Option(None, "--server", metavar="URL", help="Pull the study from this FHIR server instead."),
    study: str | None = typer.Option(None, "--study", metavar="ID", help="With --server: the study's identifier."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0, metavar="N",
                             help="Processes validating resources with fhir.resources (0: one per core)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on the terminal."),
    report_paths: bool = typer.Option(False, "--report-paths",
                                      help="Name input files by path in run-report.json and manifest.json "
                                           "(default: a label and sha256; file names may be personal data)."),
) -> None:
    """Convert FHIR records to SDTM DM, EX, AE, XM (or NV) and SUPPxx: SAS XPORT v5 (and Dataset-JSON),
    define.xml and define.html, run-report.json, manifest.json.

    Example:  tcim-interop to-sdtm examples/tcim-elaii-100-r4.json --out sdtm/ --format xpt,json
    """
    from .api import to_sdtm
    from .report_text import summary

    with running(quiet) as progress:
        if bool(server) == bool(inputs) or bool(server) != bool(study):
            raise UsageError("give INPUT files, or --server URL with --study IDENTIFIER")
        # a folder for what is pulled, only when pulling: a run killed outright leaves it behind
        with tempfile.TemporaryDirectory(prefix="tcim-pull-") if server else nullcontext("") as tmp:
            pulled = None
            if server:  # credentials from the environment: TCIM_FHIR_TOKEN or SMART backend settings
                from .fhir.exchange import pull_to_directory

                assert study is not None  # checked above: --server comes with --study
                pulled = pull_to_directory(server, study, Path(tmp) / "fhir", progress=progress).record
                inputs = [Path(tmp) / "fhir"]
            assert inputs is not None  # checked above: INPUT files or --server
            result = to_sdtm([str(p) for p in inputs], out, mappings=mappings,
                             fhir_version=fhir_version.value if fhir_version else None,
                             mune_domain=mune_domain.value if mune_domain else None, strict=strict,
                             created=_created(created), formats=formats.split(","), fast=fast,
                             masked=masked, progress=progress, jobs=jobs or None, report_paths=report_paths,
                             pulled=pulled, site=site)
    if not quiet:
        typer.echo(summary(result.report), err=True)


@app.command("survey")
def survey_cmd(
    inputs: list[Path] = typer.Argument(..., metavar="INPUT...", help="FHIR JSON/XML bundles or resources, NDJSON files, or directories."),
    site: Path | None = typer.Option(None, "--site", metavar="DIR", help="The hospital's site folder: ConceptMaps and site.yaml."),
    mappings: Path | None = typer.Option(None, "--mappings", metavar="DIR", help="Use these specs instead of mappings/."),
    fhir_version: FhirVersion | None = typer.Option(None, "--fhir-version", case_sensitive=False,
                                                    help="Force R4 or R5 (default: detected per resource)."),
    out: Path | None = typer.Option(None, "--out", "-o", metavar="DIR", help="Write survey.json and conceptmap-skeleton.json here."),
) -> None:
    """What a hospital's FHIR holds, before converting it: every coded element the specs read, its codes
    with counts and the study term each becomes (or UNMAPPED), and what a conversion would convert, leave
    out of scope or reject. --out adds a ConceptMap skeleton of the unmapped codes for the site to fill in.

    Example:  tcim-interop survey examples/tcim-elaii-100-r4.json
    """
    from .api import load_mapping_set
    from .survey import survey, write_survey

    with running():
        ms = load_mapping_set(mappings, site=site)
        result = survey([str(p) for p in inputs], ms, fhir_version.value if fhir_version else None)
        written = write_survey(result, out) if out is not None else []
    typer.echo(result.text())
    if written:
        typer.echo("written: " + ", ".join(str(p) for p in written), err=True)


class BundleType(str, Enum):
    transaction = "transaction"
    collection = "collection"


@app.command("to-fhir")
def to_fhir_cmd(
    sdtm_dir: Path = typer.Argument(..., metavar="SDTM_DIR", help="Directory of SDTM .xpt datasets (DM required; EX, AE, XM/NV, SUPPxx)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="PATH", help="Bundle file, or a directory with --ndjson."),
    fhir_version: FhirVersion = typer.Option(FhirVersion.R4, "--fhir-version", case_sensitive=False),
    bundle_type: BundleType = typer.Option(BundleType.transaction, "--bundle-type"),
    ndjson: bool = typer.Option(False, "--ndjson", help="Write bulk-data NDJSON, one file per resource type."),
    mappings: Path | None = typer.Option(None, "--mappings", metavar="DIR", help="Use these specs instead of mappings/."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 and write nothing if any error is found."),
    jobs: int = typer.Option(0, "--jobs", "-j", min=0, metavar="N",
                             help="Processes validating resources with fhir.resources (0: one per core)."),
    timezone: str | None = typer.Option(
        None, "--timezone", metavar="ZONE", help="IANA time zone of the SDTM date-times, e.g. America/New_York "
                                                 "(default: study.yaml's, for its own study only)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on the terminal."),
) -> None:
    """Convert SDTM datasets to FHIR, losslessly: to-sdtm of the output gives the datasets back.

    Example:  tcim-interop to-fhir ../shared/external/cdiscpilot01 --out pilot.json --timezone America/New_York
    """
    from .api import to_fhir
    from .report_text import fhir_summary

    with running():
        result = to_fhir(sdtm_dir, out, fhir_version=fhir_version.value, bundle_type=bundle_type.value,
                         ndjson=ndjson, mappings=mappings, strict=strict, jobs=jobs or None, timezone=timezone,
                         keep_resources=False)
    if not quiet:
        typer.echo(fhir_summary(result), err=True)


@app.command("synth")
def synth_cmd(
    subjects: int = typer.Option(100, "--subjects", "-n", min=1, metavar="N", help="Number of subjects (screen failure included)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="PATH", help="Bundle file, or a directory with --ndjson."),
    fhir_version: FhirVersion = typer.Option(FhirVersion.R4, "--fhir-version", case_sensitive=False),
    ndjson: bool = typer.Option(False, "--ndjson", help="Write bulk-data NDJSON, one file per resource type."),
    seed: int = typer.Option(1, "--seed", metavar="N", help="Same seed, same data, byte for byte."),
    hospital_site: Path | None = typer.Option(
        None, "--hospital-site", metavar="DIR", help="Write the trial as a hospital's EHR sends it (standard FHIR, local codes), "
                                      "and its site folder (ConceptMaps, site.yaml) here."),
) -> None:
    """Write a realistic synthetic TCIM-ELAII dataset as FHIR.

    Example:  tcim-interop synth --subjects 1000 --out corpus.json --seed 7
    """
    from .synth import generate, write_bundle, write_ndjson
    from .synth.hospital import hospital_style, write_site_folder

    try:
        resources = generate(subjects, seed=seed, fhir_version=fhir_version.value)
        if hospital_site is not None:
            resources = hospital_style(resources)
            write_site_folder(hospital_site)
        if ndjson:
            write_ndjson(resources, out)
        else:
            write_bundle(resources, out)
    except OSError as e:
        _fail(UsageError(f"{out}: cannot write: {e.strerror or e}"))
    typer.echo(f"{len(resources)} resources for {subjects} subjects written to {out}", err=True)


@app.command("validate")
def validate_cmd(
    sdtm_dir: Path = typer.Argument(..., metavar="SDTM_DIR", help="SDTM package directory (.xpt or Dataset-JSON, define.xml, manifest.json)."),
    out: Path | None = typer.Option(None, "--out", "-o", metavar="DIR",
                                    help="Directory for the reports (default: SDTM_DIR-validation beside it)."),
    mappings: Path | None = typer.Option(None, "--mappings", metavar="DIR", help="Use these specs instead of mappings/."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on the terminal."),
) -> None:
    """Check an SDTM package against SDTMIG 3.4, CDISC CT, the specs and its define.xml (CDISC CORE
    rules) and its manifest.json: writes validation-report.json and .csv beside the package, changing none
    of its files; exit code 1 if any error is found.

    Example:  tcim-interop validate sdtm/       (reports in sdtm-validation/)
    """
    from .validate import validate_package
    from .validate.output import report_directory, summary, write_reports

    with running():
        target = report_directory(sdtm_dir, out)
        report = validate_package(sdtm_dir, mappings)
        written = write_reports(report, target)
    if not quiet:
        typer.echo(summary(report) + "\nwritten: " + ", ".join(str(p) for p in written), err=True)
    if report.errors:
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    sdtm_dir: Path = typer.Argument(..., metavar="PACKAGE_DIR", help="SDTM package directory (.xpt or Dataset-JSON; "
                                                                       "run-report.json when there is one)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="FILE", help="The HTML file to write."),
) -> None:
    """Write the review report of an SDTM package: one self-contained HTML page (subject flow, the MUNE
    readout, safety, data completeness, the run's accounting) that opens offline, from any folder.

    Example:  tcim-interop report sdtm/ --out report.html
    """
    from .review import write_review_report

    with running():
        if not sdtm_dir.is_dir():
            raise UsageError(f"{sdtm_dir}: not a directory")
        try:
            written = write_review_report(sdtm_dir, out)
        except OSError as e:
            raise UsageError(f"{out}: cannot write: {e.strerror or e}") from None
    typer.echo(f"written: {written}", err=True)


@app.command("fhir-package")
def fhir_package_cmd(
    out: Path = typer.Option(..., "--out", "-o", metavar="DIR", help="Directory to write package/ in."),
    mappings: Path | None = typer.Option(None, "--mappings", metavar="DIR", help="Use these specs instead of mappings/."),
    fhir_version: FhirVersion = typer.Option(FhirVersion.R4, "--fhir-version", case_sensitive=False,
                                             help="The FHIR release of the package (one package per release)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary on the terminal."),
) -> None:
    """Write the project's FHIR conformance resources (R4, or R5 with --fhir-version R5) as a FHIR NPM
    package: the extensions, the profiles of what to-fhir writes, the code systems and value sets of the
    specs (docs/fhir-package.md).

    Example:  tcim-interop fhir-package --out fhir-package/     (then: tar czf tcim-interop.fhir.tgz -C fhir-package package)
    """
    from . import load_mapping_set
    from .fhir.conformance import write_package

    with running():
        written = write_package(load_mapping_set(mappings), out, fhir_version.value)
    if not quiet:
        typer.echo(f"{len(written) - 2} resources written in {out / 'package'}", err=True)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
