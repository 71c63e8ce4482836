"""SDTMIG 3.4 variable metadata (sdtmig34.yaml beside this file) for the datasets the specs in mappings/
do not describe (trial design, DS, SE, SV, EC, ...) and for the standard core of those they do: per
domain, its class and each variable's name, type and core, in SDTMIG order. Read and checked once, on
first use; a SUPPxx has SDTMIG's SUPPQUAL variables.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import NamedTuple

from ..errors import SpecError

DATA = Path(__file__).with_name("sdtmig34.yaml")


class StdVariable(NamedTuple):
    name: str
    type: str  # "Char" | "Num"
    core: str  # "Req" | "Exp" | "Perm"


class Standard(NamedTuple):
    classes: tuple[str, ...]  # in define.xml's order
    domains: dict[str, tuple[str, tuple[StdVariable, ...]]]  # name -> (class, variables)


@cache
def standard(path: Path = DATA) -> Standard:
    from .load import SDTM_NAME, variable_list
    from .yaml_files import read_yaml

    doc = read_yaml(path)
    classes, domains = doc.get("classes"), doc.get("domains")
    if not isinstance(classes, list) or not isinstance(domains, dict):
        raise SpecError(f"{path}: needs 'classes' (a list) and 'domains' (a mapping)")
    out: dict[str, tuple[str, tuple[StdVariable, ...]]] = {}
    for name, entry in domains.items():
        where = f"{path}: {name}"
        if not isinstance(name, str) or not SDTM_NAME.match(name) or not isinstance(entry, dict):
            raise SpecError(f"{where}: not a domain code with its class and variables")
        if entry.get("class") not in classes:
            raise SpecError(f"{where}: class {entry.get('class')!r} is none of {', '.join(classes)}")
        raw = entry.get("variables")
        if not isinstance(raw, list) or not all(isinstance(v, list) and len(v) == 3 for v in raw):
            raise SpecError(f"{where}: 'variables' must be a list of [name, type, core]")
        checked = variable_list([dict(zip(("name", "type", "core"), v, strict=True)) for v in raw], where, ("type", "core"))
        out[name] = (entry["class"], tuple(StdVariable(v["name"], v["type"], v["core"]) for v in checked))
    return Standard(tuple(classes), out)


def _entry(domain: str):
    return standard().domains.get("SUPPQUAL" if domain.startswith("SUPP") else domain)


@cache
def domain_class(domain: str) -> str | None:
    """"EVENTS", "FINDINGS", "TRIAL DESIGN", ... of a standard domain (SUPPxx: RELATIONSHIP)."""
    entry = _entry(domain)
    return entry[0] if entry else None


@cache
def variables(domain: str) -> tuple[StdVariable, ...]:
    """The SDTMIG 3.4 variables of a dataset, in order (a SUPPxx: SUPPQUAL's); () for a domain SDTMIG 3.4
    does not define here."""
    entry = _entry(domain)
    return entry[1] if entry else ()


@cache
def class_variables(klass: str, domain: str) -> tuple[StdVariable, ...]:
    """What SDTMIG 3.4 requires of a sponsor-defined domain of a general class (SDTMIG 2.6.5: its
    variables follow the class): the Req and Exp variables that every domain of the class here has,
    with the core they have in all of them (Req where one says Req), "--" standing for `domain`."""
    members = [vs for klass_of, vs in standard().domains.values() if klass_of == klass.upper() and vs]
    if not members:
        return ()

    def generic(name: str, code: str) -> str:
        return "--" + name[len(code):] if name.startswith(code) and len(name) > len(code) else name

    codes = [code for code, (klass_of, vs) in standard().domains.items() if klass_of == klass.upper() and vs]
    cores: list[dict[str, StdVariable]] = [{generic(v.name, code): v for v in vs} for code, vs in zip(codes, members, strict=True)]
    out = []
    for name, first in cores[0].items():
        seen = [c[name] for c in cores if name in c]
        if len(seen) == len(cores) and all(v.core in ("Req", "Exp") for v in seen):
            core = "Req" if any(v.core == "Req" for v in seen) else "Exp"
            out.append(StdVariable(name.replace("--", domain, 1), first.type, core))
    return tuple(out)
