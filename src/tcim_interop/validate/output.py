"""validation-report.json, validation-report.csv and the summary printed on the terminal."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..atomic import write_atomic
from ..csv_safety import safe_cell
from ..errors import OutputError, UsageError
from ..json_files import dump_json
from ..manifest import MANIFEST, read_manifest
from .engine import ValidationReport

JSON_FILE, CSV_FILE = "validation-report.json", "validation-report.csv"
COLUMNS = ("severity", "rule", "code", "dataset", "row", "usubjid", "variable", "value", "message", "file")


def _row(f) -> dict:
    return {"severity": f.severity, "rule": f.rule, "code": f.code, "dataset": f.domain, "row": f.row,
            "usubjid": f.usubjid, "variable": f.variable, "value": f.value, "message": f.message, "file": f.file}


def to_dict(report: ValidationReport) -> dict:
    return {"directory": report.directory, "masked": report.masked, "define": report.define,
            "datasets": report.datasets, "files": report.files, "checks": report.checks,
            "findings_by_severity": report.by_severity(), "findings_by_rule": report.by_rule(),
            "findings": [_row(f) for f in report.findings]}


def report_directory(package: Path, out: Path | None) -> Path:
    """Where `validate` writes its reports: `out`, by default `<package>-validation/` beside the package.
    Never over a file the package's manifest lists: the reports would break the checksums they verify."""
    if out is None:
        package = Path(os.path.abspath(package))  # "sdtm/" or "." have a name once absolute
        return package.parent / f"{package.name}-validation"
    if out.is_dir() and package.is_dir() and out.samefile(package):
        manifest = read_manifest(package)
        listed = sorted({o["path"] for o in manifest["outputs"]} & {JSON_FILE, CSV_FILE}) if manifest else []
        if listed:
            default = report_directory(package, None)
            raise UsageError(f"--out {out} is the package: the reports would overwrite {', '.join(listed)}, which "
                             f"its {MANIFEST} lists; choose another, or give none (reports in {default})")
    return out


def write_reports(report: ValidationReport, out: Path) -> list[Path]:
    """Both reports in `out`, each written to a temporary name then renamed (never half a file)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot create the output directory: {e.strerror or e}") from None
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: safe_cell(v) for k, v in _row(f).items()} for f in report.findings)
    texts = {JSON_FILE: dump_json(to_dict(report)), CSV_FILE: buffer.getvalue()}
    return [write_atomic(out / name, content) for name, content in texts.items()]


def summary(report: ValidationReport, most: int = 5) -> str:
    sev = report.by_severity()
    datasets = ", ".join(f"{n} {c}" for n, c in report.datasets.items())
    lines = [f"validated {report.directory}: {datasets}" + (" (masked)" if report.masked else ""),
             f"findings: {sev['error']} error(s), {sev['warning']} warning(s), {sev['info']} info"]
    for rule, counts in sorted(report.by_rule().items(), key=lambda kv: -sum(kv[1].values())):
        lines.append(f"  {rule:<22} " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for f in sorted(report.findings, key=lambda f: f.severity != "error")[:most]:
        where = " ".join(p for p in (f.domain, f"row {f.row}" if f.row else "", f.usubjid, f.variable) if p)
        lines.append(f"  {f.severity}: [{f.rule}] {where}: {f.message}")
    return "\n".join(lines)
