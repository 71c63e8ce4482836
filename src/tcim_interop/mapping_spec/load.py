"""Load mappings/: the study configuration, the codelists and one spec per domain, and check them.

Everything that can be wrong with a spec is found here, before a single resource is read: unknown
algorithms, missing sources or parameters, unparsable FHIR paths, codelists and maps that do not
exist, map values that are not terms of their codelist, names and labels that XPT v5 cannot hold.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path as FsPath
from typing import Any

from ..errors import SpecError
from ..fhir.path import PathSyntaxError, compile_path
from ..fhir.version import VERSIONS
from ..mapping import algorithms
from ..sdtm.dataset import VariableMeta
from .codelists import Codelists
from .concept_maps import Translations, read_concept_maps
from .model import (
    DomainSpec,
    MappingSet,
    OutOfScope,
    Relation,
    RowCriteria,
    RowSource,
    Supplemental,
    SuppStructure,
    Variable,
    name_key,
    window_offsets,
)
from .site import Site, load_site
from .verbatim import load_translations
from .yaml_files import read_yaml

SDTM_NAME = re.compile(r"^[A-Z][A-Z0-9]{0,7}$")  # a dataset or variable name: also what XPT v5 holds


# study.yaml's keys, each read by some part of the converter; any other key is refused when the set
# loads, since nothing would read it. A tuple lists a mapping's keys, a dict gives their own structure,
# [x] is the structure of each entry of a list, {"*": x} of each value of a mapping with free keys, and
# None leaves the value to its reader (role names, TS parameter codes, FHIR templates).
STUDY_KEYS = {
    "study": ("studyid", "registry_id", "protocol", "eu_ct_number"),
    "domains": None, "masked_domains": None, "birth_date": None, "non_ascii": None, "ct_version": None,
    "visit_system": None, "visits": [("code", "visitnum", "visit", "day", "window", "start_rule", "end_rule")],
    "timezone": None, "consent_policy": None, "visit_encounter": None, "products": [("extrt", "names", "ts")],
    "defaults": None, "terminology_versions": None,
    "trial_design": {"summary": None, "elements": [{"etcd": None, "element": None, "testrl": None, "teenrl": None,
                                                 "tedur": None, "epoch": None, "start": ("date", "next_day")}],
                     "arms": {"*": ("elements", "branch")}, "end": ("domain", "date", "where")},
}


def _known_keys(value: Any, schema: Any, where: str, at: str = "") -> None:
    if schema is None:
        return
    if isinstance(schema, list):
        for i, entry in enumerate(value if isinstance(value, list) else []):
            _known_keys(entry, schema[0], where, f"{at}[{i}]")
        return
    if not isinstance(value, dict):  # a value of the wrong shape is its reader's to report
        return
    schema = dict.fromkeys(schema) if isinstance(schema, tuple) else schema
    for key, sub in value.items():
        if "*" not in schema and key not in schema:
            raise SpecError(f"{where}: {at + ': ' if at else ''}unknown key {key!r} (known: {', '.join(schema)})")
        _known_keys(sub, schema.get("*", schema.get(key)), where, f"{at}.{key}" if at else str(key))


def default_mappings_dir() -> FsPath:
    here = FsPath(__file__).resolve()
    for candidate in (here.parents[3] / "mappings", here.parents[1] / "mappings"):
        if (candidate / "study.yaml").is_file():
            return candidate
    raise SpecError("cannot find the mappings/ folder; pass --mappings DIR")






def package_mappings(datasets, mappings: str | os.PathLike | None = None, masked: bool | None = None) -> MappingSet:
    """The mapping set that describes a package's datasets (to-fhir, validate): NV's spec when the MUNE
    domain is NV, the masked specs when EC stands for EX (a to-sdtm --masked delivery) or when `masked`
    (the manifest's word) says so."""
    mune = "NV" if "NV" in datasets and "XM" not in datasets else None
    if masked is None:
        masked = "EC" in datasets and "EX" not in datasets
    return load_mapping_set(mappings, mune_domain=mune, masked=masked)


def load_mapping_set(directory: str | os.PathLike | None = None, mune_domain: str | None = None,
                     masked: bool = False, site: str | os.PathLike | Site | None = None) -> MappingSet:
    """masked=True: the mapping set of a delivery before unblinding. The roles of study.yaml
    `masked_domains` are served by those specs (ex: ec.yaml, EC with ECTRT = MASKED), and every
    variable's `masked:` entry replaces the keys it names (DM's arm variables, RFXSTDTC read from EC).
    site: a hospital's site folder (site.py): its ConceptMaps translate its codes before the shipped
    ones (mappings/conceptmaps/), and its site.yaml completes what its FHIR does not say."""
    directory = FsPath(directory) if directory else default_mappings_dir()
    study = read_yaml(directory / "study.yaml")
    _known_keys(study, STUDY_KEYS, str(directory / "study.yaml"))
    codelists = Codelists.from_yaml(read_yaml(directory / "codelists.yaml"), str(directory / "codelists.yaml"))
    if site is not None and not isinstance(site, Site):
        site = load_site(site)
    codelists.translations = Translations()
    if site is not None:  # the hospital's own maps first: they know its codes best
        codelists.translations.extend(site.translations)
    if (directory / "conceptmaps").is_dir():
        read_concept_maps(sorted((directory / "conceptmaps").glob("*.json")), codelists.translations)
    _check_visit_windows(study, directory / "study.yaml")
    if study.get("birth_date", "year") not in ("year", "full", "omit"):
        raise SpecError(f"{directory / 'study.yaml'}: birth_date must be year, full or omit, got {study['birth_date']!r}")
    files = dict(study.get("domains") or {})
    if mune_domain:
        files["mune"] = f"{mune_domain.lower()}.yaml"
    if not files:
        raise SpecError(f"{directory / 'study.yaml'}: no domains listed")
    if masked:
        swaps = study.get("masked_domains")
        if not isinstance(swaps, dict) or not swaps:
            raise SpecError(f"{directory / 'study.yaml'}: a masked delivery needs `masked_domains` "
                            "(the specs that replace a role's spec before unblinding, e.g. ex: ec.yaml)")
        unknown = sorted(set(swaps) - set(files))
        if unknown:
            raise SpecError(f"{directory / 'study.yaml'}: masked_domains names roles not in domains: {', '.join(unknown)}")
        files.update(swaps)
    ms = MappingSet(directory, study, codelists, load_suppqual(directory / "suppqual.yaml"), masked=masked, site=site,
                    verbatim=load_translations(directory / "translations.yaml"))
    if (directory / "relrec.yaml").is_file():
        ms.relrec = load_suppqual(directory / "relrec.yaml", per_domain=False)
    for role, fname in files.items():
        path = directory / fname
        if not path.is_file():
            raise SpecError(f"{directory / 'study.yaml'}: domain {role!r} names {fname}, which does not exist")
        ms.domains[role] = load_domain(path, codelists, masked=masked)
    _check_exposure_reads(ms)
    _check_relations(ms, directory / "study.yaml")
    _check_defaults(ms, directory / "study.yaml")
    _check_products(ms, directory / "study.yaml")
    _check_element_starts(ms, directory / "study.yaml")
    if (directory / "trial_design.yaml").is_file():
        from ..trial_design.spec import load_trial_design

        ms.trial_design = load_trial_design(directory / "trial_design.yaml", codelists)
    return ms


def _check_visit_windows(study: dict, where: FsPath) -> None:
    """visits' windows (mapping/visits.py gives a visit by date): [before, after], whole days around the
    planned day, no two overlapping; with windows, whole and distinct visitnums, since an unplanned
    visit after visit N is numbered N.01, N.02 ..."""
    visits = study.get("visits") or []
    if not any(isinstance(v, dict) and "window" in v for v in visits):
        return
    spans = []
    for v in visits:
        if not isinstance(v, dict) or "window" not in v:
            continue
        window, day = v["window"], v.get("day")
        if not (isinstance(window, list) and len(window) == 2 and all(_whole(x) for x in window)
                and window[0] <= 0 <= window[1]):
            raise SpecError(f"{where}: visits: {v.get('code')}: window must be [before, after], whole days around "
                            f"the planned day (before <= 0 <= after, e.g. [-7, 7]), got {window!r}")
        if not isinstance(day, int) or isinstance(day, bool) or day == 0:
            raise SpecError(f"{where}: visits: {v.get('code')}: a window needs the planned study day `day` "
                            "(a whole number, never 0)")
        offsets = window_offsets(day, window)
        spans.append((*offsets, str(v.get("code"))))
    spans.sort()
    for (_, last, code), (first, _, other) in itertools.pairwise(spans):
        if first <= last:
            raise SpecError(f"{where}: visits: the windows of {code} and {other} overlap: a date in both "
                            "could be either visit")
    numbers = [v.get("visitnum") for v in visits if isinstance(v, dict)]
    if not all(_whole(n) for n in numbers) or len(set(numbers)) != len(numbers):
        raise SpecError(f"{where}: visits: with windows, every visitnum must be a distinct whole number "
                        "(an unplanned visit after visit N is numbered N.01, N.02 ...)")


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_products(ms: MappingSet, where: FsPath) -> None:
    """study.yaml products name terms of the codelist of the variable that tells a study product."""
    lists = {v.codelist for s in ms.domains.values() for v in s.rows.deciders.values() if v.algorithm == "study_product"}
    for product in ms.study.get("products") or []:
        if not isinstance(product.get("extrt"), str):
            raise SpecError(f"{where}: products: each needs an extrt (the EXTRT term) and may list names")
        bad = [cl for cl in lists if cl in ms.codelists.codelists and product["extrt"] not in ms.codelists.codelists[cl]]
        if bad:
            raise SpecError(f"{where}: products: {product['extrt']!r} is not a term of codelist {bad[0]}")
        for name in [product["extrt"], *(product.get("names") or [])]:
            if ms.product_names[name_key(name)] != product["extrt"]:
                raise SpecError(f"{where}: products: the name {name!r} is given to two products")


def _check_defaults(ms: MappingSet, where: FsPath) -> None:
    """study.yaml defaults: {variable: value}: a collected variable of a spec of this set, the value a term
    of its codelist (the value a record takes when its FHIR resource does not say)."""
    defaults = ms.study.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise SpecError(f"{where}: defaults must map variable names to values")
    variables = {v.name: v for s in ms.domains.values() for v in s.variables}
    for name, value in defaults.items():
        var = variables.get(name)
        if var is None or algorithms.get(var.algorithm).kind != "row":
            raise SpecError(f"{where}: defaults: {name!r} is not a variable a spec of this set reads from FHIR")
        if var.codelist in ms.codelists.codelists and str(value) not in ms.codelists.codelists[var.codelist]:
            raise SpecError(f"{where}: defaults: {name}: {value!r} is not a term of codelist {var.codelist}")


def _check_relations(ms: MappingSet, where: FsPath) -> None:
    """A spec's relrec: entries name a role of this mapping set whose domain has a --SEQ (RELREC's IDVAR),
    and relrec.yaml gives the dataset's structure."""
    for spec in ms.domains.values():
        for rel in spec.relations:
            other = ms.domains.get(rel.role)
            if other is None:
                raise SpecError(f"{spec.file}: relrec: role {rel.role!r} is not a domain role of study.yaml "
                                f"({', '.join(ms.domains)})")
            missing = [s.domain for s in (spec, other) if f"{s.domain}SEQ" not in s.by_name]
            if missing:
                raise SpecError(f"{spec.file}: relrec: {missing[0]} has no {missing[0]}SEQ to identify its records")
            if ms.relrec is None:
                raise SpecError(f"{where.parent / 'relrec.yaml'}: missing; {spec.file} declares relrec:")


def _check_element_starts(ms: MappingSet, where: FsPath) -> None:
    """trial_design.elements' `start` (SE's transition events) names a date variable of DM; `end` (the last
    element's end) a domain of the set, its date variable and the variables its `where` compares."""
    end = (ms.study.get("trial_design") or {}).get("end")
    if end is not None:
        spec = next((s for s in ms.domains.values() if isinstance(end, dict) and s.domain == end.get("domain")), None)
        names = [end.get("date"), *(end.get("where") or {})] if isinstance(end.get("where") or {}, dict) else [None]
        if spec is None or not all(isinstance(n, str) and n in spec.by_name for n in names):
            raise SpecError(f"{where}: trial_design.end must be {{domain: <a domain of the set>, date: <its date "
                            f"variable>, where: {{<its variable>: <value>}}}}, got {end!r}")
    dm = ms.domains.get("dm")
    for element in (ms.study.get("trial_design") or {}).get("elements") or []:
        start = element.get("start") if isinstance(element, dict) else None
        if start is None:
            continue
        if not isinstance(start, dict) or not isinstance(start.get("date"), str) \
                or (dm is not None and start["date"] not in dm.by_name):
            raise SpecError(f"{where}: trial_design.elements: {element.get('etcd')}: start must be {{date: <a DM "
                            f"variable>, next_day: true|false}}, got {start!r}")


def _check_exposure_reads(ms: MappingSet) -> None:
    """A derivation reading another domain (DM RFXSTDTC from EX, or from EC when masked) must name a
    domain of this mapping set and one of its variables: a masked set whose DM still read EX would
    leave the reference dates empty without a word."""
    produced = {s.domain: s for s in ms.domains.values()}
    for spec in ms.domains.values():
        for v in spec.variables:
            algo = algorithms.get(v.algorithm)
            if algo.kind != "derive" or "domain" not in algo.required_params:
                continue
            other = produced.get(str(v.params["domain"]))
            if other is None:
                raise SpecError(f"{spec.file}: {v.name}: params.domain {v.params['domain']!r} is not a domain of "
                                f"this mapping set ({', '.join(produced)})")
            ref = v.params.get("var")
            if isinstance(ref, str) and ref not in other.by_name:
                raise SpecError(f"{spec.file}: {v.name}: params.var {ref!r} is not a variable of {other.domain}")


def _merged(path: FsPath, seen: tuple = ()) -> dict:
    """A spec with what it `extends`: its own top-level keys replace the parent's, and `overrides`
    ({variable name as the parent writes it: {key: value}}) replaces keys of single variables (NV's
    test codelists), so that a spec changing one variable does not copy all of them."""
    doc = read_yaml(path)
    parent = doc.pop("extends", None)
    overrides = doc.pop("overrides", None)
    if parent is None:
        if overrides is not None:
            raise SpecError(f"{path}: 'overrides' changes the variables of the spec it extends; there is none")
        return doc
    ppath = path.parent / parent
    if ppath in seen:
        raise SpecError(f"{path}: 'extends' makes a loop")
    out = {**_merged(ppath, seen + (path,)), **doc}
    if overrides is not None:
        if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
            raise SpecError(f"{path}: 'overrides' must map variable names to the keys they replace")
        variables = [v for v in out.get("variables") or [] if isinstance(v, dict)]
        unknown = sorted(set(overrides) - {v.get("name") for v in variables})
        if unknown:
            raise SpecError(f"{path}: overrides: {', '.join(unknown)} is no variable of {parent}")
        if any("name" in keys for keys in overrides.values()):
            raise SpecError(f"{path}: overrides cannot rename a variable")
        out["variables"] = [{**v, **overrides.get(v.get("name"), {})} for v in out.get("variables") or []]
    return out


def load_domain(path: FsPath, codelists: Codelists, masked: bool = False) -> DomainSpec:
    doc = _merged(path)
    where = str(path)
    try:
        domain = str(doc["domain"]).upper()
        rows = doc["rows"]
        raw_vars = [_masking(v, masked, where) for v in doc["variables"]]
    except KeyError as e:
        raise SpecError(f"{where}: missing {e.args[0]!r}") from None
    if not SDTM_NAME.match(domain) or len(domain) > 4:
        raise SpecError(f"{where}: domain {domain!r} is not a valid SDTM domain code")
    def sub(s):
        return s.replace("--", domain) if isinstance(s, str) else s
    variables = [_variable(_subst(v, sub), where, codelists) for v in raw_vars]
    if not masked:  # the masked variants are checked too, so that a broken one fails on every load
        for v in doc["variables"]:
            if isinstance(v, dict) and "masked" in v:
                _variable(_subst(_masking(v, True, where), sub), where, codelists)
    _once_each([v.name for v in variables], where)
    supp = [_supplemental(_subst(s, sub), where, codelists) for s in doc.get("supplemental") or []]
    several = isinstance(rows, list)
    if several and not rows:
        raise SpecError(f"{where}: rows: an empty list names no source of rows")
    first = rows[0] if several else rows
    if not isinstance(first, dict):
        raise SpecError(f"{where}: rows must be a mapping (one source) or a list of them")
    types = _row_types(first.get("resource"), several, f"{where}: rows")
    spec = DomainSpec(
        domain=domain, label=str(doc.get("label", "")), klass=str(doc.get("class", "")), comment=str(doc.get("comment", "")),
        structure=str(doc.get("structure", "")), keys=[sub(k) for k in doc.get("keys", [])],
        row_resource=types[0], row_resources=types, row_select=str(first.get("select")),
        sort=[sub(k) for k in doc.get("sort", [])], variables=variables, supplemental=supp, file=where,
        reverse=_reverse_section(doc.get("reverse") or {}, sub, where))
    if several:
        spec.sources = _row_sources(rows, sub, spec, codelists, f"{where}: rows")
        spec.rows = spec.sources[0].criteria
    else:
        spec.rows = _row_criteria(rows, sub, spec, codelists, f"{where}: rows")
    spec.relations = _relations(doc.get("relrec"), f"{where}: relrec")
    spec.merge = _merge(doc.get("merge"), sub, spec, f"{where}: merge")
    _check_interval(spec, f"{where}: reverse: interval")
    _check_domain(spec)
    return spec


FHIR_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")


def _row_types(raw: Any, several: bool, where: str) -> list[str]:
    """rows.resource: a FHIR type, or (one source) a list of them, each given once, that one selector
    makes rows of (CM: MedicationAdministration and MedicationStatement)."""
    types = raw if isinstance(raw, list) and not several else [raw]
    if not types or not all(isinstance(t, str) and FHIR_TYPE.match(t) for t in types) or len(set(types)) < len(types):
        raise SpecError(f"{where}: resource must be a FHIR resource type" + ("" if several else
                        ", or a list of distinct ones") + f", got {raw!r}")
    return [str(t) for t in types]


def _check_interval(spec: DomainSpec, where: str) -> None:
    """reverse.interval: {start, end, with: [...]}: variables of the spec, and an `interval` template for the
    records that are not one occurrence (to-fhir: CM's MedicationStatements); `with` (optional) lists the
    variables whose value makes a record an interval whatever its dates (what only the interval holds)."""
    rule = spec.reverse.get("interval")
    if rule is None:
        return
    names = [rule.get("start"), rule.get("end"), *(rule.get("with") or [])] if isinstance(rule, dict) else [None]
    if not isinstance(rule, dict) or not {"start", "end"} <= set(rule) <= {"start", "end", "with"} \
            or not isinstance(rule.get("with") or [], list) or not set(names) <= set(spec.by_name):
        raise SpecError(f"{where}: must be {{start: <variable>, end: <variable>, with: [<variable>, ...]}} naming "
                        f"variables of {spec.domain}")
    if "interval" not in (spec.reverse.get("templates") or {}):
        raise SpecError(f"{where}: needs templates.interval, the resource of a record that is not one occurrence")


def _row_sources(rows: list, sub, spec: DomainSpec, codelists: Codelists, where: str) -> list[RowSource]:
    """rows: a list of sources, each {resource, select, and the selector's params}, for a domain whose
    rows come from several FHIR types (DS: Consent, ResearchSubject). Each selector must be one that
    returns a resource's rows and leaves its outcome to its own domain (registry.py `many`), so that a
    resource is accounted once whichever specs draw rows from it; a type is listed once."""
    out: list[RowSource] = []
    for i, entry in enumerate(rows):
        here = f"{where}[{i}]"
        criteria = _row_criteria(entry, sub, spec, codelists, here, many=True)
        if any(s.resource == entry["resource"] for s in out):
            raise SpecError(f"{here}: {entry['resource']} is listed twice; one source per FHIR type")
        out.append(RowSource(str(entry["resource"]), str(entry["select"]), criteria))
    return out


def _row_criteria(rows: Any, sub, spec: DomainSpec, codelists: Codelists, where: str,
                  many: bool = False) -> RowCriteria:
    """rows: {resource, select, out_of_scope, and the selector's params}. The selector must exist and
    be one; a param naming a variable (product, test) must name one with a map, since the map is what
    tells a row; paths compile. So renaming a map or a variable fails here, never mid-run."""
    if not isinstance(rows, dict) or not rows.get("resource") or not rows.get("select"):
        raise SpecError(f"{where}: needs resource (the FHIR type of a row) and select (its selector)")
    try:
        algo = algorithms.get(str(rows["select"]))
    except KeyError:
        raise SpecError(f"{where}: unknown selector {rows['select']!r}; known: {', '.join(algorithms.known('select'))}") from None
    if algo.kind != "select":
        raise SpecError(f"{where}: {rows['select']!r} is a {algo.kind} algorithm, not a selector")
    if algo.many != many:
        raise SpecError(f"{where}: selector {algo.name} " + (
            "makes one row per resource and decides its outcome: a source of a rows: list needs a "
            "selector that adds rows (" + ", ".join(n for n in algorithms.known('select') if algorithms.get(n).many) + ")"
            if many else "adds rows to resources of other domains: it belongs in a rows: list of sources"))
    params = {k: sub(v) for k, v in rows.items() if k not in ("resource", "select", "out_of_scope")}
    allowed = set(algo.required_params) | set(algo.optional_params)
    for key in params:
        if key not in allowed:
            raise SpecError(f"{where}: {key!r} is not a param of selector {algo.name} "
                            f"(its params: {', '.join(sorted(allowed)) or 'none'})")
    missing = [p for p in algo.required_params if p not in params]
    if missing:
        raise SpecError(f"{where}: selector {algo.name} needs {', '.join(missing)}")
    paths = {}
    for key in algo.path_params:
        if key in params:
            paths[key] = _sources(params[key], f"{where}: {key}")
    deciders = {}
    for key in sorted(set(params) - set(algo.path_params) - set(algo.value_params)):
        deciders[key] = _decider(params[key], spec, codelists, f"{where}: {key}")
    out = []
    for i, rule in enumerate(rows.get("out_of_scope") or []):
        if not isinstance(rule, dict) or not isinstance(rule.get("element"), str) \
                or not isinstance(rule.get("values"), list) or set(rule) - {"element", "values", "reason", "resource"}:
            raise SpecError(f"{where}: out_of_scope[{i}] must be {{element, values: [...], reason, resource}}")
        types = rows["resource"] if isinstance(rows["resource"], list) else [rows["resource"]]
        if "resource" in rule and rule["resource"] not in types:
            raise SpecError(f"{where}: out_of_scope[{i}]: resource {rule['resource']!r} is not a type the rows "
                            f"come from ({', '.join(map(str, types))})")
        out.append(OutOfScope(rule["element"], tuple(map(str, rule["values"])), str(rule.get("reason", "")),
                              rule.get("resource")))
    return RowCriteria(params, paths, out, deciders)


def _merge(raw: Any, sub, spec: DomainSpec, where: str) -> dict[str, list[str]]:
    """merge: {by: [variables], latest: [variables]}: records with the same `by` values (all present) are
    one record; every name a variable of the spec."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"by", "latest"} or not isinstance(raw.get("by"), list) \
            or not isinstance(raw.get("latest", []), list):
        raise SpecError(f"{where}: must be {{by: [variables], latest: [variables]}}")
    out = {"by": [sub(n) for n in raw["by"]], "latest": [sub(n) for n in raw.get("latest") or []]}
    unknown = [n for n in out["by"] + out["latest"] if n not in spec.by_name]
    if unknown or not out["by"]:
        raise SpecError(f"{where}: {', '.join(map(repr, unknown)) or 'by'} is not a variable of {spec.domain}")
    return out


def _decider(value: Any, spec: DomainSpec, codelists: Codelists, where: str) -> Variable:
    """A selector param that tells a row by its code: a variable of the spec with a map (EX's EXTRT), or,
    where no variable carries the code (EC's ECTRT is MASKED), {map, codelist, source} of its own."""
    var: Variable | None
    if isinstance(value, dict):
        entry = {"name": "ROWCODE", "label": "the code that selects a row", "type": "Char", "core": "Perm",
                 "algorithm": "assign_ct", **value}
        var = _variable(entry, where, codelists)
    else:
        var = spec.by_name.get(value) if isinstance(value, str) else None
    if var is None or not var.map or not var.source:
        raise SpecError(f"{where}: {value!r} must name a variable of {spec.domain} with a map and a source, or "
                        "give {map, codelist, source}: they tell the selector which resources are rows")
    return var


def _relations(raw: Any, where: str) -> list[Relation]:
    """relrec: [{role, source}]: the records of the domain serving `role` (study.yaml domains: ex is EX,
    or EC when masked) whose resources the row's `source` references are related to the row's record."""
    out = []
    for i, entry in enumerate(raw or []):
        if not isinstance(entry, dict) or set(entry) - {"role", "source", "comment"} or not entry.get("source") \
                or not isinstance(entry.get("role"), str):
            raise SpecError(f"{where}[{i}] must be {{role: a domain role of study.yaml, source: the FHIR reference(s)}}")
        out.append(Relation(entry["role"], _sources(entry["source"], f"{where}[{i}]"), str(entry.get("comment", ""))))
    return out


def _masking(entry: Any, masked: bool, where: str) -> Any:
    """A variable's `masked:` entry: the keys it names replace the variable's own in a masked delivery
    (e.g. ARMCD `masked: {algorithm: hardcode, params: {value: null}}`); ignored otherwise."""
    if not isinstance(entry, dict) or "masked" not in entry:
        return entry
    override = entry["masked"]
    name = entry.get("name", "a variable")
    if not isinstance(override, dict) or not override:
        raise SpecError(f"{where}: {name}: 'masked' must be a mapping of the keys it replaces")
    if "name" in override:
        raise SpecError(f"{where}: {name}: 'masked' cannot rename the variable")
    base = {k: v for k, v in entry.items() if k != "masked"}
    return {**base, **override} if masked else base


def _reverse_section(raw: dict, sub, where: str) -> dict:
    """to-fhir part of a spec: templates (fixed elements per resource role), links (which element of
    the row's resource points at each context resource), fallback (element <- variable when the
    reverse algorithms left a required element empty), about_patient (role -> the element, per release,
    of a resource about the subject's Patient that a template gives and a value written into keeps: DM's
    %age Observation)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: 'reverse' must be a mapping")
    for key in raw:
        if key not in ("templates", "links", "fallback", "consent_link", "interval", "about_patient"):
            raise SpecError(f"{where}: reverse: unknown key {key!r}")
    for role, link in (raw.get("about_patient") or {}).items():
        template = (raw.get("templates") or {}).get(role)
        if not isinstance(link, dict) or set(link) != set(VERSIONS) or not isinstance(template, dict) \
                or set(template) != set(VERSIONS):
            raise SpecError(f"{where}: reverse: about_patient: {role}: needs the element naming the Patient in "
                            f"{' and '.join(VERSIONS)}, and templates.{role} in both")
    fallback = {v: {path: sub(var) for path, var in (items or {}).items()} for v, items in (raw.get("fallback") or {}).items()}
    return {**raw, "fallback": fallback}


def _subst(entry: Any, sub) -> dict:
    if not isinstance(entry, dict):
        raise SpecError(f"a variable entry must be a mapping, got {entry!r}")
    out = {k: sub(v) for k, v in entry.items()}
    if isinstance(entry.get("params"), dict):
        out["params"] = {k: ([sub(x) for x in v] if isinstance(v, list) else sub(v)) for k, v in entry["params"].items()}
    if isinstance(entry.get("translate"), dict):
        out["translate"] = {k: sub(v) for k, v in entry["translate"].items()}
    return out


def _sources(raw: Any, where: str) -> dict:
    if raw is None:
        return {}
    texts = raw if isinstance(raw, dict) else {v: raw for v in VERSIONS}
    try:
        return {str(v).upper(): compile_path(str(t)) for v, t in texts.items()}
    except PathSyntaxError as e:
        raise SpecError(f"{where}: {e}") from None


def _common(entry: dict, name: str, where: str, codelists: Codelists, kinds: tuple[str, ...]):
    algo_name = entry.get("algorithm")
    try:
        algo = algorithms.get(str(algo_name))
    except KeyError:
        known = ", ".join(n for k in kinds for n in algorithms.known(k))
        raise SpecError(f"{where}: {name}: unknown algorithm {algo_name!r}; known: {known}") from None
    if algo.kind not in kinds:
        raise SpecError(f"{where}: {name}: {algo_name!r} is a {algo.kind} algorithm, not allowed here")
    source = _sources(entry.get("source"), f"{where}: {name}")
    if algo.needs_source and not source:
        raise SpecError(f"{where}: {name}: algorithm {algo_name!r} needs a 'source'")
    params = dict(entry.get("params") or {})
    missing = [p for p in algo.required_params if p not in params]
    if missing:
        raise SpecError(f"{where}: {name}: algorithm {algo_name!r} needs params: {', '.join(missing)}")
    cl, mp = entry.get("codelist"), entry.get("map")
    if cl and cl not in codelists.codelists and cl not in codelists.dictionaries:
        raise SpecError(f"{where}: {name}: unknown codelist {cl!r}")
    if mp:
        if mp not in codelists.maps:
            raise SpecError(f"{where}: {name}: unknown map {mp!r}")
        target = codelists.codelists.get(cl) if cl else None
        stray = sorted({v for v in codelists.maps[mp].values() if target is not None and v not in target})
        if stray:
            raise SpecError(f"{where}: {name}: map {mp} yields values not in codelist {cl}: {', '.join(stray)}")
    value = params.get("value")
    if value is not None and cl in codelists.codelists and str(value) not in codelists.codelists[cl]:
        raise SpecError(f"{where}: {name}: value {value!r} is not a term of codelist {cl}")
    return algo, source, params


def load_suppqual(path: FsPath, per_domain: bool = True) -> SuppStructure:
    """suppqual.yaml (per_domain: its label names {domain}), or relrec.yaml: a relationship dataset's
    structure (SDTMIG 3.4 section 8)."""
    doc = read_yaml(path)
    label = doc.get("label")
    if not isinstance(label, str) or ("{domain}" not in label) == per_domain:
        raise SpecError(f"{path}: 'label' must be a text{' naming {domain}' if per_domain else ''}, got {label!r}")
    entries = variable_list(doc.get("variables"), str(path))
    keys = doc.get("keys")
    if not isinstance(keys, list) or not keys or not set(keys) <= {e["name"] for e in entries}:
        raise SpecError(f"{path}: 'keys' must list variables of the file, got {keys!r}")
    return SuppStructure(label, str(doc.get("structure", "")), tuple(keys),
                         tuple(VariableMeta(e["name"], str(e["label"]), e["type"], e["core"]) for e in entries))


def _meta(entry: dict, where: str, keys: tuple[str, ...] = ("label", "type", "core")) -> str:
    """The name of a variable entry whose keys are there, its type and core those SDTM has."""
    name = str(entry.get("name", ""))
    for key in keys:
        if key not in entry:
            raise SpecError(f"{where}: {name or 'a variable'}: missing {key!r}")
    if "type" in keys and entry["type"] not in ("Char", "Num"):
        raise SpecError(f"{where}: {name}: type must be Char or Num, got {entry['type']!r}")
    if "core" in keys and entry["core"] not in ("Req", "Exp", "Perm"):
        raise SpecError(f"{where}: {name}: core must be Req, Exp or Perm, got {entry['core']!r}")
    return name


def variable_list(entries: Any, where: str, keys: tuple[str, ...] = ("label", "type", "core")) -> list[dict]:
    """A plain list of variables (suppqual.yaml, SDTMIG 3.4's table): each entry checked as a domain
    spec's is, its name a valid SDTM name given once, its label <= 40 characters."""
    if not isinstance(entries, list) or not entries:
        raise SpecError(f"{where}: 'variables' must be a list of variables")
    for entry in entries:
        if not isinstance(entry, dict):
            raise SpecError(f"{where}: a variable entry must be a mapping, got {entry!r}")
        name = _meta(entry, where, keys)
        if not isinstance(entry.get("name"), str) or not SDTM_NAME.match(name):
            raise SpecError(f"{where}: {name!r}: not a valid SDTM variable name (A-Z, 0-9, <= 8, starting with a letter)")
        if len(str(entry.get("label", ""))) > 40:
            raise SpecError(f"{where}: {name}: label longer than 40 characters")
    _once_each([e["name"] for e in entries], where)
    return entries


def _once_each(names: list[str], where: str) -> None:
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SpecError(f"{where}: variables defined twice: {', '.join(sorted(dupes))}")


def _variable(entry: dict, where: str, codelists: Codelists) -> Variable:
    name = _meta(entry, where)
    algo, source, params = _common(entry, name, where, codelists, ("row", "derive"))
    return Variable(name=name, label=str(entry["label"]), type=entry["type"], core=entry["core"],
                    algorithm=algo.name, source=source, params=params, codelist=entry.get("codelist"),
                    map=entry.get("map"), dictionary=entry.get("dictionary"), comment=str(entry.get("comment", "")),
                    origin=str(entry.get("origin") or algo.origin), method=algo.method or algo.doc,
                    not_collected=str(entry.get("not_collected", "")), translate=_translation(entry, name, where),
                    when_collected=_when_collected(entry, name, where))


def _when_collected(entry: dict, name: str, where: str) -> bool:
    """when_collected: true, a Permissible variable left out of a dataset where no record has a value."""
    value = entry.get("when_collected", False)
    if not isinstance(value, bool) or (value and entry["core"] != "Perm"):
        raise SpecError(f"{where}: {name}: when_collected must be true or false, and true only for a Perm variable")
    return value


def _translation(entry: dict, name: str, where: str) -> Supplemental | None:
    """translate: {qnam, qlabel}: the SUPPxx qualifier that keeps the text as sent when the translation
    table gives the variable its English."""
    raw = entry.get("translate")
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("qnam"), str) or not isinstance(raw.get("qlabel"), str):
        raise SpecError(f"{where}: {name}: translate needs qnam and qlabel (the SUPP qualifier of the text as sent)")
    problems = _name_and_label(f"QNAM {raw['qnam']!r}", raw["qlabel"], "QNAM", "QLABEL", name=raw["qnam"])
    if problems:
        raise SpecError(f"{where}: {name}: translate: {'; '.join(problems)}")
    return Supplemental(qnam=raw["qnam"], qlabel=raw["qlabel"], algorithm="assign", qorig="Collected")


def _supplemental(entry: dict, where: str, codelists: Codelists) -> Supplemental:
    qnam = str(entry.get("qnam", ""))
    algo, source, params = _common(entry, qnam, where, codelists, ("row",))
    return Supplemental(qnam=qnam, qlabel=str(entry.get("qlabel", "")), algorithm=algo.name, source=source,
                        params=params, codelist=entry.get("codelist"), map=entry.get("map"),
                        qorig=str(entry.get("qorig", "Collected")), qeval=str(entry.get("qeval", "")))


def _name_and_label(where: str, label: str, name_kind: str, label_kind: str, name: str | None = None) -> list[str]:
    """What XPT v5 cannot hold of a variable's (or QNAM's) name and label."""
    problems = [] if SDTM_NAME.match(where if name is None else name) else [f"{where}: not a valid {name_kind}"]
    if len(label) > 40:
        problems.append(f"{where}: {label_kind} longer than 40 characters ({len(label)})")
    return problems


def _check_domain(spec: DomainSpec) -> None:
    """XPT v5 and SDTM naming rules that the spec itself must satisfy."""
    problems = []
    if len(spec.label) > 40:
        problems.append(f"dataset label longer than 40 characters ({len(spec.label)})")
    for v in spec.variables:
        problems += _name_and_label(v.name, v.label, "XPT v5 variable name (A-Z, 0-9, <= 8, starting with a letter)",
                                    "label")
        for key, r in v.referenced():
            if r not in spec.by_name:
                problems.append(f"{v.name}: params.{key} names {r!r}, which is not a variable of {spec.domain}")
        when = v.params.get("when")
        for r in when if isinstance(when, dict) else ():
            if r not in spec.by_name:
                problems.append(f"{v.name}: params.when names {r!r}, which is not a variable of {spec.domain}")
    for s in spec.supplemental:
        problems += _name_and_label(f"SUPP{spec.domain} {s.qnam}", s.qlabel, "QNAM", "QLABEL", name=s.qnam)
    qnams = [s.qnam for s in spec.supplemental] + [v.translate.qnam for v in spec.variables if v.translate]
    problems += [f"QNAM {q} is given twice (supplemental, translate)" for q in sorted(set(qnams)) if qnams.count(q) > 1]
    for k in spec.sort + spec.keys:
        if k not in spec.by_name:
            problems.append(f"sort/keys name {k!r}, which is not a variable")
    if problems:
        raise SpecError(f"{spec.file}: " + "; ".join(problems))
