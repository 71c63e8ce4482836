"""The short human summary of a run printed on the terminal (the JSON report has everything)."""

from __future__ import annotations

from collections import Counter

from .findings import Report


def summary(report: Report, most: int = 5) -> str:
    c = report.counts()
    lines = [f"resources: {c['input']} read = {c['converted']} converted + {c['rejected']} rejected "
             f"+ {c['out_of_scope']} out of scope"]
    for rtype, n in c["by_resource_type"].items():
        lines.append(f"  {rtype:<26} {n['input']:>7} = {n['converted']:>6} + {n['rejected']:>5} + {n['out_of_scope']:>6}")
    if report.records_per_domain:
        lines.append("records: " + ", ".join(f"{d} {n}" for d, n in report.records_per_domain.items()))
    sev = Counter(f.severity for f in report.findings)
    lines.append(f"findings: {sev.get('error', 0)} error(s), {sev.get('warning', 0)} warning(s), {sev.get('info', 0)} info")
    by_code = Counter((f.severity, f.code) for f in report.findings if f.severity != "info")
    for (s, code), n in by_code.most_common(most):
        example = next(f for f in report.findings if f.code == code)
        lines.append(f"  {n:>5} x {s} {code}: e.g. {example.line()}")
    unmapped = report.unmapped_codes()
    if unmapped:
        lines.append(f"unmapped codes: {len(unmapped)} distinct (run-report.json unmapped_codes; a site maps them "
                     "with ConceptMaps, --site)")
        for u in unmapped[:most]:
            lines.append(f"  {u['count']:>5} x {u['domain']}.{u['variable']}: {u['codes']}")
    if report.validation:
        v = report.validation
        lines.append(f"validation: {v.get('error', 0)} error(s), {v.get('warning', 0)} warning(s) "
                     "(validation-report.json; `tcim-interop validate DIR` checks a package again)")
    if report.outputs:
        lines.append("written: " + ", ".join(p.rsplit("/", 1)[-1] for p in report.outputs))
    return "\n".join(lines)


def fhir_summary(result, most: int = 5) -> str:
    by_type = Counter(result.counts or Counter(r["resourceType"] for r in result.resources))
    lines = [f"resources: {sum(by_type.values())} (" + ", ".join(f"{t} {n}" for t, n in sorted(by_type.items())) + ")"]
    sev = Counter(f.severity for f in result.report.findings)
    lines.append(f"findings: {sev.get('error', 0)} error(s), {sev.get('warning', 0)} warning(s)")
    for f in [f for f in result.report.findings if f.code in ("ROUND_TRIP", "ROUND_TRIP_XPT_FOLDS")] + result.report.errors[:most]:
        lines.append(f"  {f.line()}")
    if result.written:
        lines.append("written: " + ", ".join(str(p) for p in result.written[:8]) + (" ..." if len(result.written) > 8 else ""))
    return "\n".join(lines)
