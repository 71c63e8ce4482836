"""Run the registered checks on datasets in memory, or on an SDTM package directory."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..findings import Finding
from ..manifest import read_manifest
from ..mapping_spec.load import package_mappings
from ..mapping_spec.model import MappingSet
from ..sdtm.dataset import Dataset
from . import registry
from .context import Context

# the modules that register checks, in the order the checks run and are reported: not to be sorted
# isort: off
from . import checks_variables, checks_records, checks_dm, checks_ae  # noqa: F401
from . import checks_supp, checks_trial_design, checks_xpt, checks_define  # noqa: F401
from . import checks_manifest  # noqa: F401
# isort: on

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class ValidationReport:
    """The findings of one validation, with what was validated."""

    directory: str
    datasets: dict[str, int]  # name -> records
    files: dict[str, str]  # name -> file
    masked: bool
    define: str  # "define.xml" when one was read, else ""
    checks: list[str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def by_severity(self) -> dict[str, int]:
        return {s: sum(f.severity == s for f in self.findings) for s in SEVERITY_ORDER}

    def by_rule(self) -> dict[str, dict[str, int]]:
        """{rule: {severity: count}}, rules in order of their first finding."""
        out: dict[str, dict[str, int]] = {}
        for f in self.findings:
            counts = out.setdefault(f.rule, {})
            counts[f.severity] = counts.get(f.severity, 0) + 1
        return out


def validate_datasets(datasets: dict[str, Dataset], mappings: MappingSet, define_xml: bytes | None = None,
                      masked: bool = False, *, files: dict[str, str] | None = None,
                      checks: list[str] | None = None, directory: Path | None = None,
                      manifest: dict | None = None) -> list[Finding]:
    """Every finding of the named checks (default: all) on the datasets, in a stable order: dataset,
    row, then the order the checks ran. `files` names the file each dataset was read from (the XPT
    rules and file-name rule apply to .xpt files only; without it, every dataset is held to them).
    `directory` is the package folder they were read from and `manifest` its manifest.json (None when
    it has none): without a directory the files are not checked against a manifest."""
    ctx = Context(datasets, mappings, define_xml, masked, files, directory, manifest)
    selected = [registry.get(n) for n in checks] if checks is not None else registry.all_checks()
    findings: list[Finding] = []
    for c in selected:
        findings.extend(c.run(ctx))
    order = {n: i for i, n in enumerate(ctx.datasets)}
    return sorted(findings, key=lambda f: (order.get(f.domain, -1), f.row or 0))


def validate_package(path: str | os.PathLike, mappings: MappingSet | str | os.PathLike | None = None,
                     checks: list[str] | None = None) -> ValidationReport:
    """Validate an SDTM directory: its datasets (.xpt or Dataset-JSON), its define.xml when there is
    one, and the options of its manifest.json (a masked delivery)."""
    from ..sdtm.read import read_package

    directory = Path(path)
    if not directory.is_dir():
        raise InputError(f"{directory}: not a directory" if directory.exists() else f"{directory}: no such directory")
    datasets, files = read_package(directory, every_file=True)  # .xpt and .json: the XPT is validated
    manifest = read_manifest(directory)
    options = manifest.get("options") if manifest else None
    masked = isinstance(options, dict) and options.get("masked") is True
    if not isinstance(mappings, MappingSet):
        mappings = package_mappings(datasets, mappings, masked)
    define = directory / "define.xml"
    define_xml = define.read_bytes() if define.is_file() else None
    selected = checks if checks is not None else [c.name for c in registry.all_checks()]
    report = ValidationReport(str(directory), {n: len(d) for n, d in datasets.items()}, files, masked,
                              "define.xml" if define_xml is not None else "", selected)
    report.findings = validate_datasets(datasets, mappings, define_xml, masked, files=files, checks=selected,
                                        directory=directory, manifest=manifest)
    if define_xml is None:
        report.findings.insert(0, Finding("warning", "NO_DEFINE", "the package has no define.xml: its metadata "
                                          "cannot be checked against the datasets", rule="TCIM-DEFINE"))
    return report
