"""`tcim-interop survey`: what a hospital's FHIR holds, before a conversion, for the integrator.

For each domain's row resources (whatever their outcome: the codes of a resource left out of scope are
often the ones a site must map), every coded element the specs read, and the Encounters' types (listed
as Encounter.type, with the visit each names): the systems and codes found, how
many resources send each, and the study term each becomes (directly or through the site's ConceptMaps)
or UNMAPPED. With it, the accounting a conversion would give (converted, out of scope, rejected, why),
and a ConceptMap skeleton of every unmapped code for the site to fill in. Nothing is written but that.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fhir.index import ResourceIndex
from .findings import Report
from .gc_pause import paused_gc
from .mapping import engine
from .mapping.context import resolve_from
from .mapping_spec.concept_maps import concept_map
from .mapping_spec.model import MappingSet, Variable
from .options import SdtmOptions
from .sdtm_pipeline import read_inputs, validate_and_map

CODED = ("assign_ct", "study_product")  # the row algorithms that turn a code into a term
UNMAPPED = "UNMAPPED"


@dataclass(frozen=True)
class CodeUse:
    domain: str
    variable: str  # the variable, or the selector param (product, test) that tells a row
    system: str
    code: str
    count: int  # resources that send it
    term: str  # the study term it becomes, or UNMAPPED
    in_rows: int  # of those, the resources that became records (the others: out of scope or rejected)
    target_system: str  # where a ConceptMap for it should point (the map's first system, or the NCI Thesaurus)
    choices: str  # the terms a ConceptMap may give it


@dataclass
class Survey:
    report: Report
    codes: list[CodeUse]

    def unmapped(self) -> list[CodeUse]:
        return [c for c in self.codes if c.term == UNMAPPED]

    def to_dict(self) -> dict[str, Any]:
        doc = self.report.to_dict()
        return {"resources": doc["resources"], "out_of_scope": doc["out_of_scope"],
                "not_converted": doc["not_converted"], "codes": [c.__dict__ for c in self.codes]}

    def text(self) -> str:
        from .report_text import summary

        lines = [summary(self.report).split("\nfindings:")[0], "codes (resources sending each -> study term):"]
        for c in self.codes:
            note = " (only in resources out of scope or rejected)" if c.term == UNMAPPED and not c.in_rows else ""
            lines.append(f"  {c.domain}.{c.variable:<10} {c.count:>6}  {c.system}|{c.code} -> {c.term}{note}")
        lines.append(f"unmapped: {len(self.unmapped())} code(s)")
        return "\n".join(lines)

    def concept_map_skeleton(self) -> dict:
        """A Bundle of ConceptMaps (R4 form), one per hospital system and target: each unmapped code an
        element whose target code the site fills in (an empty code maps nothing: it loads, and changes
        nothing until filled)."""
        groups: dict[tuple[str, str], dict[str, CodeUse]] = {}
        for c in self.unmapped():
            groups.setdefault((c.system, c.target_system), {}).setdefault(c.code, c)
        maps = [concept_map(f"site-map-{n}", source, target,
                            [(code, "", f"{c.domain}.{c.variable} ({c.count} resources): one of {c.choices}")
                             for code, c in sorted(codes.items())], status="draft")
                for n, ((source, target), codes) in enumerate(sorted(groups.items()), 1)]
        return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": m} for m in maps]}


@paused_gc  # it reads and maps the input as to-sdtm does (api.py)
def survey(inputs: Iterable[str | os.PathLike | dict | list], ms: MappingSet,
           fhir_version: str | None = None) -> Survey:
    report = Report()
    read = read_inputs(inputs, report, fhir_version, keep=engine.whole_types(ms))
    datasets, report = validate_and_map(read, ms, report, SdtmOptions(fhir_version=fhir_version, fast=True))
    found: Counter[tuple[str, str, str, str]] = Counter()
    in_rows: Counter[tuple[str, str, str, str]] = Counter()
    converted = {d.resource for d in report.dispositions if d.outcome == "converted"}
    surveys = _surveyed_by(datasets, ms)
    variables: dict[tuple[str, str], Variable] = {}
    index = ResourceIndex(read.resources)  # resolve() in a path: a Medication contained or in the input
    for spec in ms.domains.values():
        coded = [(v.name, v) for v in spec.variables if v.algorithm in CODED]
        coded += [(param, v) for param, v in spec.rows.deciders.items() if v.name not in dict(coded)]
        rows = [r for r in read.resources if r.resource_type in spec.row_resources and surveys(spec, r.key)]
        for name, var in coded:
            variables[(spec.domain, name)] = var
            for res in rows:
                path = var.path(res.version)
                data = res.data
                # the row's own elements (no %var) and the resources they reference, as the mapping reads them
                values = path.values(_own(data), _resolver(data, index)) if path else []
                keys = {(spec.domain, name, s, c) for s, c in _codings(values)}
                found.update(keys)
                if res.key in converted:
                    in_rows.update(keys)
    codes = [_use(ms, variables[(d, n)], d, n, s, c, count, in_rows[(d, n, s, c)])
             for (d, n, s, c), count in found.items()]
    # a code another variable of the domain maps belongs to it (a laterality qualifier among a body
    # site's codings is no unmapped location)
    mapped = {(c.domain, c.system, c.code) for c in codes if c.term != UNMAPPED}
    codes = [c for c in codes if c.term != UNMAPPED or (c.domain, c.system, c.code) not in mapped]
    codes += _encounter_types(read.resources, ms, converted)
    codes.sort(key=lambda c: (c.term != UNMAPPED, c.domain, c.variable, -c.count, c.system, c.code))
    return Survey(report, codes)


def _surveyed_by(datasets: dict, ms: MappingSet):
    """Whether a domain's codes are surveyed on a resource of its row type: on its own records; on the
    records of a domain with no code decider of its own (CM takes what EX does not: a pharmacy code of a
    CM record may be an unmapped study product); on what no domain takes, by the last domain of that
    type with a decider (study.yaml order: MUNE after VS, so a hospital's EMG codes are offered as MUNE
    tests, not also as vital signs, which the FHIR vital-signs profile codes in LOINC anyway); never on
    another domain's coded records (a body weight is no unmapped MUNE test)."""
    specs = {s.domain: s for s in ms.domains.values()}
    owner = {key: name for name, ds in datasets.items() if name in specs for key in ds.sources}
    catch_all = {d for d, s in specs.items() if not s.rows.deciders}
    last_decider = {t: d for d, s in specs.items() if s.rows.deciders for t in s.row_resources}  # the last one listed wins

    def surveys(spec, key: str) -> bool:
        if key in owner:
            return owner[key] in (spec.domain, *catch_all)
        return spec.domain in catch_all or last_decider.get(key.split("/", 1)[0]) == spec.domain
    return surveys


def _encounter_types(resources: list, ms: MappingSet, converted: set[str]) -> list[CodeUse]:
    """The Encounters' types and the visit each names (directly or through a ConceptMap), or UNMAPPED:
    an Encounter with no visit code takes its visit from the study.yaml windows, if any."""
    found: Counter[tuple[str, str]] = Counter()
    used: Counter[tuple[str, str]] = Counter()
    for res in (r for r in resources if r.resource_type == "Encounter"):
        keys = _codings(res.data.get("type") or [])
        found.update(keys)
        if res.key in converted:
            used.update(keys)
    system = str(ms.study.get("visit_system") or "")
    choices = ", ".join(f"{code} ({v['visit']})" for code, v in ms.visits.items())
    return [CodeUse("Encounter", "type", s, c, n, str(v["visit"]) if (v := ms.visit_of(s or None, c)) else UNMAPPED,
                    used[(s, c)], system, choices) for (s, c), n in found.items()]


def _own(data: dict):
    return lambda var: data if var is None else None


def _resolver(data: dict, index: ResourceIndex):
    return lambda reference: resolve_from(data, index, reference)[0]


def _codings(values: list) -> set[tuple[str, str]]:
    out = set()
    for v in values:
        for c in (v.get("coding") or []) if isinstance(v, dict) and "coding" in v else [v]:
            if isinstance(c, dict) and c.get("code") not in (None, ""):
                out.add((str(c.get("system") or ""), str(c["code"])))
    return out


def _use(ms: MappingSet, var: Variable, domain: str, name: str, system: str, code: str, count: int,
         in_rows: int) -> CodeUse:
    codelists = ms.codelists
    term = codelists.lookup(var.codelist or "", var.map, system or None, code) or UNMAPPED
    if term == UNMAPPED and code in var.params.get("dimensionless", ()) and system == "http://unitsofmeasure.org":
        term = "(dimensionless: no unit)"
    the_map = codelists.maps.get(var.map or "", {})
    if the_map:
        target = next(iter(the_map)).rpartition("|")[0]
        choices = ", ".join(f"{k.rpartition('|')[2]} ({v})" for k, v in the_map.items() if k.startswith(target + "|"))
    else:
        target = codelists.nci_system
        terms = codelists.codelists[var.codelist].terms if var.codelist in codelists.codelists else []
        choices = ", ".join(f"{t.nci_code} ({t.value})" for t in terms if t.nci_code)
    return CodeUse(domain, name, system, code, count, term, in_rows, target, choices)


def write_survey(result: Survey, out: Path) -> list[Path]:
    from .atomic import write_atomic
    from .json_files import dump_json

    out.mkdir(parents=True, exist_ok=True)
    written = [out / "survey.json", out / "conceptmap-skeleton.json"]
    write_atomic(written[0], dump_json(result.to_dict()))
    write_atomic(written[1], dump_json(result.concept_map_skeleton()))
    return written
