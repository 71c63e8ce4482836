"""Problems are data: every problem met during a run becomes a Finding, kept in the Report.

A Finding names where it was met (input file, FHIR resource, SDTM domain/row/variable) so that a
data manager can go straight to it. Severities: "error" (the output is wrong or incomplete without a
fix), "warning" (the output is right but something was changed or left out: ASCII folding, an
unmapped code), "info".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    severity: str
    code: str  # stable machine-readable id, e.g. "CT_UNMAPPED", "XPT_LABEL_TOO_LONG"
    message: str
    domain: str = ""
    variable: str = ""
    usubjid: str = ""
    source: str = ""  # "ResourceType/id" of the FHIR resource, or "dataset.xpt row N"
    file: str = ""
    value: str = ""
    hint: str = ""
    rule: str = ""  # the conformance rule broken: "CORE-000201/CG0029" (validate)
    row: int | None = None  # 1-based record number in the dataset (validate)

    def line(self) -> str:
        where = " ".join(p for p in (self.file, self.source, self._dv()) if p)
        return f"{self.severity}: {where}: {self.message}" if where else f"{self.severity}: {self.message}"

    def _dv(self) -> str:
        if self.domain and self.variable:
            return f"{self.domain}.{self.variable}"
        return self.domain or self.variable


@dataclass
class Disposition:
    """What became of one input resource: converted, rejected or out_of_scope."""

    resource: str  # "ResourceType/id"
    file: str
    outcome: str
    reason: str = ""


OUTCOMES = ("converted", "rejected", "out_of_scope")


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    dispositions: list[Disposition] = field(default_factory=list)
    input_files: list[str] = field(default_factory=list)
    records_per_domain: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    validation: dict[str, int] = field(default_factory=dict)  # the package's conformance findings by severity
    pull: dict[str, Any] = field(default_factory=dict)  # to-sdtm --server: where the input came from (PullRecord)

    def add(self, severity: str, code: str, message: str, **where: Any) -> Finding:
        f = Finding(severity, code, message, **{k: (v if k == "row" else "" if v is None else str(v))
                                                for k, v in where.items()})
        self.findings.append(f)
        return f

    def error(self, code: str, message: str, **where: Any) -> Finding:
        return self.add("error", code, message, **where)

    def warning(self, code: str, message: str, **where: Any) -> Finding:
        return self.add("warning", code, message, **where)

    def dispose(self, resource: str, file: str, outcome: str, reason: str = "") -> None:
        assert outcome in OUTCOMES, outcome
        self.dispositions.append(Disposition(resource, file, outcome, reason))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def counts(self) -> dict[str, Any]:
        """Per resource type: input = converted + rejected + out_of_scope (a test holds us to it)."""
        per_type: dict[str, Counter] = {}
        for d in self.dispositions:
            rtype = d.resource.split("/", 1)[0]
            per_type.setdefault(rtype, Counter())[d.outcome] += 1
        by_type = {
            t: {"input": sum(c.values()), **{o: c.get(o, 0) for o in OUTCOMES}} for t, c in sorted(per_type.items())
        }
        totals = Counter(d.outcome for d in self.dispositions)
        return {
            "input": len(self.dispositions),
            **{o: totals.get(o, 0) for o in OUTCOMES},
            "by_resource_type": by_type,
        }

    def to_dict(self) -> dict[str, Any]:
        sev = Counter(f.severity for f in self.findings)
        return {
            "input_files": self.input_files,
            "resources": self.counts(),
            "records_per_domain": self.records_per_domain,
            "outputs": self.outputs,
            "validation": self.validation,
            "pull": self.pull,
            "findings_by_severity": {s: sev.get(s, 0) for s in SEVERITIES},
            "findings": [asdict(f) for f in self.findings],
            "not_converted": [asdict(d) for d in self.dispositions if d.outcome != "converted"],
        }
