"""What every check reads: the datasets, their metadata (SDTMIG 3.4 and, where there is one, the spec of
mappings/), the package's define.xml and options, and how a finding is made."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from ..findings import Finding
from ..mapping_spec import sdtmig34
from ..mapping_spec.model import DomainSpec, MappingSet
from ..mapping_spec.sdtmig34 import StdVariable
from ..sdtm.dataset import (
    Dataset,
    cell_text as text,  # the checks' name for it (validate/checks_*.py)
    present,
)

GENERAL_CLASSES = ("INTERVENTIONS", "EVENTS", "FINDINGS")


class Context:
    def __init__(self, datasets: dict[str, Dataset], mappings: MappingSet, define_xml: bytes | None = None,
                 masked: bool = False, files: dict[str, str] | None = None, directory: Path | None = None,
                 manifest: dict | None = None):
        self.datasets = {n.upper(): d for n, d in datasets.items()}
        self.mappings = mappings
        self.define_xml = define_xml
        self.masked = masked
        self.files = files or {}  # dataset -> file name, when read from a directory
        self.directory = directory  # the package folder, when read from one
        self.manifest = manifest  # its manifest.json, when it has one
        self.specs: dict[str, DomainSpec] = {s.domain: s for s in mappings.domains.values()}

    # -- datasets and records ---------------------------------------------------------------
    def has(self, name: str, *variables: str) -> bool:
        ds = self.datasets.get(name)
        return ds is not None and all(v in ds.frame.columns for v in variables)

    def records(self, name: str) -> list[dict[str, Any]]:
        if name not in self._records:
            # what to_dict("records") gives (native Python values), from one tolist() per column: 5x faster
            frame = self.datasets[name].frame
            columns = list(frame.columns)
            self._records[name] = [dict(zip(columns, cells, strict=True)) for cells in
                                   zip(*(frame[c].tolist() for c in columns), strict=True)] if columns else [{}] * len(frame)
        return self._records[name]

    def rows(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """(1-based record number, record) of a dataset."""
        return enumerate(self.records(name), start=1)

    @cached_property
    def _records(self) -> dict[str, list[dict[str, Any]]]:
        return {}

    def failing(self, name: str, variable: str, ok: Callable[[str], bool]) -> Iterator[tuple[int, dict[str, Any], str]]:
        """(row, record, value as text) of the non-null values of a column that fail `ok`: each distinct
        value is tested once and records are made only for a dataset with a failure (most have none)."""
        column = self.datasets[name].frame[variable]
        verdict = {}
        for value in column.unique():
            shown = text(value)
            verdict[shown] = not shown or ok(shown)
        if all(verdict.values()):
            return
        for row, rec in self.rows(name):
            shown = text(rec.get(variable))
            if not verdict[shown]:
                yield row, rec, shown

    @cached_property
    def dm(self) -> dict[str, dict[str, Any]]:
        """DM's records by USUBJID (the first one of a USUBJID given twice)."""
        if not self.has("DM", "USUBJID"):
            return {}
        out: dict[str, dict[str, Any]] = {}
        for _, rec in self.rows("DM"):
            out.setdefault(text(rec.get("USUBJID")), rec)
        return out

    @staticmethod
    def is_supp(name: str) -> bool:
        return name.startswith("SUPP") and len(name) > 4

    def prefix(self, name: str) -> str:
        """The --variable prefix of a dataset: its domain code (a SUPPxx or RELREC has none)."""
        return "" if self.is_supp(name) or name == "RELREC" else name

    def domain_class(self, name: str) -> str:
        spec = self.specs.get(name)
        if spec is not None and spec.klass:
            return spec.klass.upper()
        known = sdtmig34.domain_class(name)
        if known:
            return known
        cols = set(self.datasets[name].frame.columns) if name in self.datasets else set()
        for suffix, klass in (("TESTCD", "FINDINGS"), ("TRT", "INTERVENTIONS"), ("TERM", "EVENTS")):
            if f"{name}{suffix}" in cols:  # a custom domain: its topic variable tells the class
                return klass
        return ""

    def subject_datasets(self) -> list[str]:
        """Datasets with one record (or more) per subject: every one with USUBJID."""
        return [n for n, d in self.datasets.items() if "USUBJID" in d.frame.columns]

    # -- metadata -----------------------------------------------------------------------------
    def variable_metadata(self, name: str) -> list[StdVariable]:
        """The variables a dataset should have, with their core: the spec's (mappings/) in its order, then
        those of SDTMIG 3.4 the spec lacks. Where both know a variable SDTMIG's Req or Exp wins over a
        weaker spec core; SDTMIG 3.4 relaxed ARMCD/ARM/ACTARMCD/ACTARM to Exp (null, with ARMNRS, for a
        subject without an arm), so where the spec says Req and SDTMIG does not, Exp. A sponsor-defined
        domain (XM) is held to what SDTMIG requires of every domain of its class; () when nothing is known."""
        spec = self.specs.get(name)
        standard = {v.name: v for v in sdtmig34.variables(name)}
        if not standard and name[:1] in ("X", "Y", "Z") and not self.is_supp(name):
            standard = {v.name: v for v in sdtmig34.class_variables(self.domain_class(name), name)}
        own: list[StdVariable] = []
        if spec is not None:
            own = [StdVariable(v.name, v.type, v.core) for v in spec.variables]
        elif self.is_supp(name):
            own = [StdVariable(v.name, v.type, v.core) for v in self.mappings.suppqual.variables]
        out = [v._replace(core=_core(v.core, standard[v.name].core)) if v.name in standard else v for v in own]
        known = {v.name for v in own}
        return out + [v for v in standard.values() if v.name not in known]

    def codelist_of(self, name: str, variable: str):
        """The spec's codelist (codelists.yaml) of a variable, or None."""
        spec = self.specs.get(name)
        var = spec.by_name.get(variable) if spec is not None else None
        if var is None or not var.codelist:
            return None
        return self.mappings.codelists.codelists.get(var.codelist)

    @cached_property
    def own_study(self) -> bool:
        """Whether the package is this trial's (STUDYID of study.yaml): sponsor codelists apply to it only."""
        ours = str((self.mappings.study.get("study") or {}).get("studyid") or "")
        ids = {text(v) for d in self.datasets.values() if "STUDYID" in d.frame.columns
               for v in d.frame["STUDYID"].unique() if present(v)}
        return not ours or not ids or ids == {ours}

    # -- findings -------------------------------------------------------------------------------
    def finding(self, severity: str, rule: str, code: str, message: str, dataset: str = "", *,
                row: int | None = None, variable: str = "", value: Any = None, record: dict | None = None,
                usubjid: str | None = None, file: str | None = None) -> Finding:
        if usubjid is None:
            usubjid = text(record.get("USUBJID")) if record is not None else ""
        return Finding(severity, code, message, domain=dataset, variable=variable, usubjid=usubjid,
                       source=f"row {row}" if row else "", file=self.files.get(dataset, "") if file is None else file,
                       value="" if value is None else text(value), rule=rule, row=row)


def _core(spec: str, standard: str) -> str:
    """A variable's core when the spec and SDTMIG 3.4 both give one."""
    if standard in ("Req", "Exp"):
        return standard
    return "Exp" if spec == "Req" else spec


def one_to_one(ctx: Context, name: str, key: str, value: str, rule: str, code: str):
    """Findings where `key` has another `value` than in its first record."""
    first: dict[str, tuple[str, int]] = {}
    for row, rec in ctx.rows(name):
        k, v = text(rec.get(key)), text(rec.get(value))
        if not k:
            continue
        seen = first.setdefault(k, (v, row))
        if seen[0] != v:
            yield ctx.finding("error", rule, code, f"{key} {k} has {value} {v!r} here and {seen[0]!r} in row {seen[1]}",
                              name, row=row, variable=value, value=v, record=rec)


def unique(ctx: Context, name: str, keys: tuple[str, ...], rule: str, code: str):
    """Findings where the combination of `keys` repeats an earlier record's."""
    seen: dict[tuple, int] = {}
    for row, rec in ctx.rows(name):
        key = tuple(text(rec.get(k)) for k in keys)
        if key in seen:
            yield ctx.finding("error", rule, code, f"{', '.join(keys)} {' / '.join(key)} is also row {seen[key]}",
                              name, row=row, variable=keys[-1], value=key[-1], record=rec)
        seen.setdefault(key, row)


