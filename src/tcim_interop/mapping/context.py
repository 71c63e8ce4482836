"""What a row algorithm sees: the row's resource, the resources around it, the values so far."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..fhir.index import ResourceIndex, contained
from ..fhir.read import InputResource, LineResource
from ..findings import Report
from ..mapping_spec.model import MappingSet
from .visits import VisitLedger

CONTEXT_VARS = ("patient", "subject", "site", "study", "consent", "encounter", "condition", "event", "age")


@dataclass
class Skip:
    """A resource of the row type that gives no row: out of scope, or rejected."""

    outcome: str  # "out_of_scope" | "rejected"
    reason: str
    # out of scope here, but a later domain may take it (an administration that is not study
    # treatment: EX leaves it to CM); stays the outcome when no domain does
    defer: bool = False


@dataclass
class RunContext:
    mappings: MappingSet
    index: ResourceIndex
    report: Report
    subjects_by_patient: dict[str, list[Row]] = field(default_factory=dict)  # filled by DM
    used: set[str] = field(default_factory=set)  # keys of supporting resources that fed a record
    progress: Callable[[], None] | None = None  # called once per resource of a row type
    visits: VisitLedger = field(default_factory=VisitLedger)  # what visits by date need (visits.py)
    deferred: set[str] = field(default_factory=set)  # keys skipped with Skip.defer: a later domain may take them
    memo: dict[str, Any] = field(default_factory=dict)  # what a selector works out once per run (disposition.py)
    # dictionary (MEDDRA) -> the versions its codings carry (Coding.version): define.xml's ExternalCodeList
    dictionary_versions: dict[str, set[str]] = field(default_factory=dict)
    # (domain, variable) -> records whose input did not send that dictionary level of an Expected variable
    levels_not_sent: dict[tuple[str, str], int] = field(default_factory=dict)


def resolve_from(container: dict, index: ResourceIndex, reference: Any) -> tuple[dict | None, InputResource | LineResource | None]:
    """(the resource a Reference in `container` points at, the input resource it is): a contained one
    ("#id", no input resource of its own), else one of the input; (None, None) when neither has it."""
    if not isinstance(reference, dict | str):
        return None, None
    inner = contained(container, reference)
    if inner is not None:
        return inner, None
    found = index.resolve(reference)
    return (found.data, found) if found is not None else (None, None)


@dataclass
class Row:
    resource: InputResource | LineResource  # parsed while the row is built; as the input holds it after
    run: RunContext
    domain: str
    refs: dict[str, InputResource | LineResource | None] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    supp: dict[str, Any] = field(default_factory=dict)
    subject_row: Row | None = None
    part: int = 0  # the resource's n-th row of this domain (a ResearchSubject's DS events): its source names it
    related: dict[str, list[str]] = field(default_factory=dict)  # relrec: role -> keys of the resources referenced
    # path text -> its values: variables sharing a source (--TESTCD and --TEST, VISITNUM and VISIT)
    # walk it once. Sound because a row's resource and refs do not change once it is selected.
    # Also what once() keeps.
    _seen: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def source(self) -> str:
        """What the record is traced to (Dataset.sources): the resource, and its part when it gives several."""
        return self.resource.key if not self.part else f"{self.resource.key}#{self.part}"

    @property
    def version(self) -> str:
        return self.resource.version

    def root(self, var: str | None) -> Any:
        if var is None:
            return self.resource.data
        ref = self.refs.get(var)
        return ref.data if ref is not None else None

    def values_of(self, variable) -> list[Any]:
        """The source's values (the same list for every variable with that source: read, never change it)."""
        path = variable.path(self.version)
        if path is None:
            return []
        vals = self._seen.get(path.text)
        if vals is None:
            vals = self._seen[path.text] = path.values(self.root, self.resolve)
        return vals

    def resolve(self, reference: Any) -> dict | None:
        """resolve() in a path: the resource a Reference points at, if the input has it; it then counts as
        used by this record (a BodyStructure that gives a muscle's side is converted, not out of scope).
        A contained reference ("#id") is found in the row's own resource, the one every path starts from
        when it resolves."""
        inner, found = resolve_from(self.resource.data, self.run.index, reference)
        if found is not None:
            self.run.used.add(found.key)
        return inner

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """make()'s value, made once per row for the variables that share it (MedDRA's levels). The key
        is no path text (it holds a blank), so it never meets one."""
        if key not in self._seen:
            self._seen[key] = make()
        return self._seen[key]

    def forget_sources(self, stored: InputResource | LineResource | None = None) -> None:
        """Drop the walked sources once the row's values are set: rows are kept until the frames are built.
        stored: the resource as the input holds it (an NDJSON line without its dict), kept instead of
        the parsed one the row was built from."""
        self._seen.clear()
        if stored is not None:
            self.resource = stored

    def first_of(self, variable) -> Any:
        vals = self.values_of(variable)
        return vals[0] if vals else None

    def finding(self, severity: str, code: str, message: str, variable: str = "", value: Any = "",
                hint: str = "") -> None:
        usubjid = self.values.get("USUBJID") or (self.subject_row.values.get("USUBJID") if self.subject_row else "")
        self.run.report.add(severity, code, message, domain=self.domain, variable=variable, usubjid=usubjid,
                            source=self.resource.key, file=self.resource.where, value=value, hint=hint)
