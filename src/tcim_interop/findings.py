"""Problems are data: every problem met during a run becomes a Finding, kept in the Report.

A Finding names where it was met (input file, FHIR resource, SDTM domain/row/variable) so that a
data manager can go straight to it. Severities: "error" (the output is wrong or incomplete without a
fix), "warning" (the output is right but something was changed or left out: ASCII folding, an
unmapped code), "info".

What a report file says of the inputs is kept to what a delivery needs (Report.to_dict): input files
by a neutral label and their sha256 (a file name like Synthea's `Given_Family_uuid.json` is personal
data; `--report-paths` adds the paths), and resources out of scope counted per type and reason, never
listed by id (a hospital's bulk export holds every patient of the hospital, not only the study's).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
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
    row: int | None = None  # 1-based record number in the dataset (validate, the XPT v5 checks)

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
    input_files: list[str] = field(default_factory=list)  # the files read, as given (paths)
    skipped_files: list[str] = field(default_factory=list)  # files met in input directories and not read
    memory_inputs: list[dict[str, Any]] = field(default_factory=list)  # documents given in memory (the API)
    report_paths: bool = False  # name the input files by path in to_dict(), not only by label
    _digests: dict[str, str] = field(default_factory=dict, repr=False)
    _moot: set[tuple[str, str]] = field(default_factory=set, repr=False)  # sha256 by path: inputs() hashes once
    records_per_domain: dict[str, int] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    validation: dict[str, int] = field(default_factory=dict)  # the package's conformance findings by severity
    created: dict[str, str] = field(default_factory=dict)  # the outputs' creation time and where it came from
    pull: dict[str, Any] = field(default_factory=dict)  # to-sdtm --server: where the input came from (PullRecord)

    def add(self, severity: str, code: str, message: str, **where: Any) -> Finding:
        fields: dict[str, Any] = {k: (v if k == "row" else "" if v is None else str(v)) for k, v in where.items()}
        f = Finding(severity, code, message, **fields)
        if not self._moot or (f.source, f.variable) not in self._moot:
            self.findings.append(f)
        return f

    @contextmanager
    def moot(self, cells: set[tuple[str, str]]) -> Iterator[None]:
        """Within: findings about these (source, variable) cells are not reported. The mapping's cells
        whose value the input records verbatim (mapping/restore.py): the mapped value is never written."""
        self._moot = cells
        try:
            yield
        finally:
            self._moot = set()

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

    def inputs(self) -> list[dict[str, Any]]:
        """The input files as a delivery names them: label, sha256 and size (and the path when asked)."""
        from .manifest import sha256

        for p in self.input_files:
            if p not in self._digests:
                self._digests[p] = sha256(Path(p))
        return [{"label": label, "sha256": self._digests[p], "bytes": Path(p).stat().st_size,
                 **({"path": p} if self.report_paths else {})}
                for p, label in zip(self.input_files, _labels("input", self.input_files), strict=True)] + self.memory_inputs

    def add_memory_input(self, doc: object) -> str:
        """Record a document given in memory (its label, and the sha256 of its JSON with sorted keys,
        so that the same content gives the same digest); returns the label that names it."""
        import orjson

        text = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        label = f"memory-{len(self.memory_inputs) + 1}"
        self.memory_inputs.append({"label": label, "sha256": hashlib.sha256(text).hexdigest(), "bytes": len(text)})
        return label

    def to_dict(self) -> dict[str, Any]:
        sev = Counter(f.severity for f in self.findings)
        out_of_scope = Counter((d.resource.split("/", 1)[0], d.reason) for d in self.dispositions
                               if d.outcome == "out_of_scope")
        doc = {
            "inputs": self.inputs(),
            "resources": self.counts(),
            "records_per_domain": self.records_per_domain,
            "outputs": self.outputs,
            "created": self.created,
            "validation": self.validation,
            "pull": self.pull,
            "findings_by_severity": {s: sev.get(s, 0) for s in SEVERITIES},
            "findings": [asdict(f) for f in self.findings],
            "not_converted": [asdict(d) for d in self.dispositions if d.outcome == "rejected"],
            "out_of_scope": [{"resource_type": t, "reason": r, "count": n} for (t, r), n in sorted(out_of_scope.items())],
            "unmapped_codes": self.unmapped_codes(),
        }
        return doc if self.report_paths else self._labelled(doc)

    def unmapped_codes(self) -> list[dict[str, Any]]:
        """The codes no map or ConceptMap turned into a term (CT_UNMAPPED), per domain and variable, with
        how many records sent them: what a site's ConceptMaps should cover, most frequent first."""
        counts = Counter((f.domain, f.variable, f.value) for f in self.findings if f.code == "CT_UNMAPPED")
        return [{"domain": d, "variable": v, "codes": c, "count": n}
                for (d, v, c), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]

    def _labelled(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Every input file's path, or its bare name, replaced by its label wherever the report names it."""
        labels: dict[str, str] = {}
        for kind, files in (("input", self.input_files), ("skipped", self.skipped_files)):
            for p, label in zip(files, _labels(kind, files), strict=True):
                labels[p] = label
                labels.setdefault(Path(p).name, label)
        if not labels:
            return doc
        names = re.compile("|".join(map(re.escape, sorted(labels, key=len, reverse=True))))
        for section in ("findings", "not_converted"):
            doc[section] = [{k: names.sub(lambda m: labels[m[0]], v) if isinstance(v, str) and v else v
                             for k, v in rec.items()} for rec in doc[section]]
        return doc


def _labels(kind: str, files: list[str]) -> list[str]:
    return [f"{kind}-{i}" for i in range(1, len(files) + 1)]
