"""What a loaded spec looks like: one DomainSpec per dataset, one Variable per column."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path as FsPath
from typing import Any

from ..fhir.path import Path
from ..sdtm.dataset import VariableMeta
from ..sdtm.dates import day_offset
from ..sdtm.text import fold_ascii
from .codelists import Codelists

# Parameters whose value names another variable of the same spec (a name or a list of names): each is
# checked to exist when the spec loads, and a variable is filled after those it reads.
VARIABLE_PARAMS = ("of", "at", "if", "date", "result", "by", "unit", "outcome", "by_date", "reason", "end", "without")
# "unit" and "end" are read by to-fhir only (the result's unit; the end whose absence makes a start the
# start of an open period), "by_date" (a visit's date) only after DM (mapping/visits.py); filling them
# first would change no value but the order of the findings of a run.
READ_BEFORE = tuple(p for p in VARIABLE_PARAMS if p not in ("unit", "by_date", "end"))


@dataclass
class Variable:
    name: str
    label: str
    type: str  # "Char" | "Num"
    core: str  # "Req" | "Exp" | "Perm"
    algorithm: str
    source: dict[str, Path] = field(default_factory=dict)  # FHIR release -> compiled path
    params: dict[str, Any] = field(default_factory=dict)
    codelist: str | None = None
    map: str | None = None
    dictionary: str | None = None
    comment: str = ""
    origin: str = ""  # Define-XML origin: Collected / Derived / Assigned
    method: str = ""  # the define's MethodDef of a derivation: the algorithm's method sentence (else its docstring)
    not_collected: str = ""  # why the study collects none of it: define.xml says so when every value is null
    translate: Supplemental | None = None  # the English replaces a text of the translation table; the text as sent goes here
    # a Permissible variable the study may not collect: the dataset holds it only when a record has a value
    when_collected: bool = False

    def path(self, version: str) -> Path | None:
        return self.source.get(version)

    @property
    def is_char(self) -> bool:
        return self.type == "Char"

    def referenced(self, keys: tuple[str, ...] = VARIABLE_PARAMS) -> list[tuple[str, str]]:
        """(param, variable name) for every variable the params of `keys` name."""
        out = []
        for key in keys:
            value = self.params.get(key)
            out += [(key, r) for r in (value if isinstance(value, list) else [value]) if isinstance(r, str)]
        return out


@dataclass
class Supplemental:
    """A SUPPxx qualifier: collected data with no standard variable."""

    qnam: str
    qlabel: str
    algorithm: str
    source: dict[str, Path] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    codelist: str | None = None
    map: str | None = None
    qorig: str = "Collected"
    qeval: str = ""

    # the row algorithms take a Variable-like object
    @property
    def name(self) -> str:
        return self.qnam

    def path(self, version: str) -> Path | None:
        return self.source.get(version)

    dictionary = None
    type = "Char"
    is_char = True


@dataclass(frozen=True)
class SuppStructure:
    """mappings/suppqual.yaml: the variables every SUPPxx dataset has (SDTMIG 3.4 section 8.4)."""

    label: str  # "... for {domain}"
    structure: str
    keys: tuple[str, ...]
    variables: tuple[VariableMeta, ...]

    def label_for(self, domain: str) -> str:
        return self.label.format(domain=domain)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def carried(self) -> list[str]:
        """The variables a SUPPxx record carries in FHIR (sdtm-supp): all but STUDYID, its parent's."""
        return [n for n in self.names if n != "STUDYID"]


@dataclass(frozen=True)
class OutOfScope:
    """rows.out_of_scope: a resource whose element has one of these values makes no row, for this reason."""

    element: str
    values: tuple[str, ...]
    reason: str = ""
    resource: str | None = None  # the FHIR type the rule is for, when the rows come from several (CM); None: all

    def applies_to(self, resource_type: str) -> bool:
        return self.resource is None or self.resource == resource_type


@dataclass
class RowCriteria:
    """What makes a resource a row, beyond its type (rows: in a spec): the selector's params (e.g.
    `product: EXTRT`, the variable whose map tells a study product), FHIR paths it reads (`study_link`),
    and the element values that put a resource out of scope."""

    params: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, dict[str, Path]] = field(default_factory=dict)  # param -> release -> compiled path
    out_of_scope: list[OutOfScope] = field(default_factory=list)
    deciders: dict[str, Variable] = field(default_factory=dict)  # a param naming the code that tells a row

    def path(self, name: str, version: str) -> Path | None:
        return self.paths.get(name, {}).get(version)


@dataclass(frozen=True)
class Relation:
    """relrec: in a spec: the row's resource references (source) resources that are records of the domain
    serving `role` (study.yaml domains); each such pair of records is related in RELREC (SDTMIG 3.4 8.2)."""

    role: str
    source: dict[str, Path]  # FHIR release -> compiled path to the Reference(s)
    comment: str = ""

    def path(self, version: str) -> Path | None:
        return self.source.get(version)


@dataclass
class RowSource:
    """One source of a spec's rows: a FHIR type, its selector and the selector's criteria. A spec has one
    (rows: a mapping), or several (rows: a list, DS: Consent and ResearchSubject), whose selectors
    return a resource's rows and leave its outcome to the domain it belongs to (registry.py `many`)."""

    resource: str
    select: str
    criteria: RowCriteria = field(default_factory=RowCriteria)


@dataclass
class DomainSpec:
    domain: str
    label: str
    klass: str
    structure: str
    keys: list[str]
    row_resource: str
    row_select: str
    sort: list[str]
    variables: list[Variable]
    supplemental: list[Supplemental]
    file: str
    reverse: dict = field(default_factory=dict)  # to-fhir: templates, links, fallback (see the specs)
    rows: RowCriteria = field(default_factory=RowCriteria)
    comment: str = ""  # define.xml's comment on the dataset (why a sponsor-defined domain, ...)
    sources: list[RowSource] = field(default_factory=list)  # rows: a list; empty for a single source
    relations: list[Relation] = field(default_factory=list)  # relrec: the records this one's references name
    # merge: records with the same `by` values are one record: the first in sort order, whose `latest`
    # variables take the latest value of them all (SV: one record per VISITNUM, to the last end)
    merge: dict[str, list[str]] = field(default_factory=dict)
    # rows.resource a list: every FHIR type one selector makes rows of (CM: MedicationAdministration and
    # MedicationStatement); row_resource is the first. A rows: list of sources keeps its first here.
    row_resources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_name = {v.name: v for v in self.variables}
        if not self.row_resources:
            self.row_resources = [self.row_resource]

    @property
    def resource_types(self) -> list[str]:
        """The FHIR types its rows come from."""
        return [s.resource for s in self.sources] if self.sources else list(self.row_resources)

    @property
    def names(self) -> list[str]:
        return [v.name for v in self.variables]

    @property
    def dataset(self) -> str:
        return self.domain.lower()


@dataclass
class MappingSet:
    directory: FsPath
    study: dict[str, Any]
    codelists: Codelists
    suppqual: SuppStructure
    domains: dict[str, DomainSpec] = field(default_factory=dict)  # role (dm, ex, ae, mune) -> spec
    trial_design: Any = None  # trial_design/spec.py TrialDesignSpec, from trial_design.yaml when present
    masked: bool = False  # a masked delivery (to-sdtm --masked): study.yaml masked_domains, variables' masked:
    site: Any = None  # site.py Site: the hospital's folder given with --site (its maps are in codelists)
    relrec: SuppStructure | None = None  # mappings/relrec.yaml: RELREC's structure (SDTMIG 3.4 section 8.2)
    verbatim: Any = None  # verbatim.py TranslationTable: translations.yaml, the non-English texts' English

    def spec(self, role: str) -> DomainSpec:
        return self.domains[role]

    @cached_property  # read for every VISITNUM and VISIT
    def visits(self) -> dict[str, dict]:
        return {v["code"]: v for v in self.study.get("visits", [])}

    def visit_of(self, system: str | None, code: str | None) -> dict | None:
        """The study.yaml visit a coding names: a code of the visit system, or a code a ConceptMap
        translates to one (the site's maps first, then the shipped ones)."""
        wanted = self.study.get("visit_system")
        if system == wanted and code in self.visits:
            return self.visits[code]
        for t_system, t_code in self.codelists.translations.of(system, code) if code else ():
            if t_system == wanted and t_code in self.visits:
                return self.visits[t_code]
        return None

    @cached_property
    def visit_windows(self) -> list[tuple[int, int, dict]]:
        """(first, last, visit) of every visit with a window in study.yaml: the calendar days from study
        day 1 that count as that visit, in date order (checked not to overlap when the set loads)."""
        out = [(*window_offsets(v["day"], v["window"]), v) for v in self.study.get("visits", []) if "window" in v]
        return sorted(out, key=lambda w: w[0])

    def visit_on(self, day: int) -> dict | None:
        """The visit whose window holds study day `day`, if any."""
        at = day_offset(day)
        return next((v for first, last, v in self.visit_windows if first <= at <= last), None)

    @cached_property
    def product_names(self) -> dict[str, str]:
        """study.yaml products: every name and synonym, in name_key form, -> the product's EXTRT."""
        return {name_key(n): str(p["extrt"]) for p in self.study.get("products") or []
                for n in [p["extrt"], *(p.get("names") or [])]}


def window_offsets(day: int, window: list[int]) -> tuple[int, int]:
    """A visit's window, [before, after] days around its planned study day, as the calendar days from
    study day 1 it spans (first, last)."""
    return day_offset(day) + window[0], day_offset(day) + window[1]


def name_key(text: str) -> str:
    """A product's name as compared with the text a hospital sends: case, accents and spacing aside."""
    return " ".join(fold_ascii(text).casefold().split())
