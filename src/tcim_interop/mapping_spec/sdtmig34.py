"""SDTMIG 3.4 variable metadata (sdtmig34.yaml beside this file) for the datasets the specs in mappings/
do not describe (trial design, DS, SE, SV, EC, ...) and for the standard core of those they do: per
domain, its class and each variable's name, type and core, in SDTMIG order. Read and checked once, on
first use; SUPPxx variables are those of mappings/suppqual.yaml, the structure the converter writes.
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
        if name == "SUPPQUAL":  # its variables: mappings/suppqual.yaml
            out[name] = (entry["class"], ())
            continue
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
    """The SDTMIG 3.4 variables of a dataset, in order; () for a domain SDTMIG 3.4 does not define here.
    SUPPxx: those of the shipped mappings/suppqual.yaml."""
    if domain.startswith("SUPP"):
        from .load import default_mappings_dir, load_suppqual

        shape = load_suppqual(default_mappings_dir() / "suppqual.yaml")
        return tuple(StdVariable(v.name, v.type, v.core) for v in shape.variables)
    entry = _entry(domain)
    return entry[1] if entry else ()
