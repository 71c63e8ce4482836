"""The vocabulary of named algorithms a spec may use, looked up by name.

Three kinds, each with one argument shape:
  select(resource, ctx)      -> Row context, or a Skip saying why the resource is not a row
  row(row, var)              -> the value of one variable for one record, from its FHIR sources
  derive(data, var)          -> a whole column, computed from the dataset (and DM) after all rows exist;
                                one registered with `collect` finds in its column the value that row
                                algorithm read from its source (RFENDTC: the collected end, else derived)
An unknown name is rejected when the spec is loaded (mapping_spec/load.py), never in the middle of a run.
This module only records what the algorithm modules register; mapping/algorithms.py is the complete
vocabulary, looked up by name.

The other direction (to-fhir) uses the same names: a row algorithm may have a reverse,
    reverse(target, var, value)   writes one SDTM value into the FHIR resources of its record,
registered under the same name (reverse_algorithms.py). Derived values have none: they are derived
again, and where that does not give back the value, it travels in the sdtm-record extension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Algorithm:
    name: str
    kind: str  # "row" | "derive" | "select"
    fn: Callable
    origin: str  # Define-XML origin of what it fills: Collected, Derived, Assigned
    needs_source: bool
    required_params: tuple[str, ...]
    doc: str
    optional_params: tuple[str, ...] = ()  # a selector's: the rows: keys it may read besides the required
    path_params: tuple[str, ...] = ()  # a selector's params that are FHIR paths (compiled when the spec loads)
    method: str = ""  # a derivation as a reviewer reads it in define.xml: {target} the variable, {param}s
    # a selector of one source of a spec with several (rows: a list): it returns the resource's rows (a
    # list, maybe empty) and never decides its outcome, which stays its own domain's (a ResearchSubject
    # is DM's and gives DS rows too)
    many: bool = False
    value_params: tuple[str, ...] = ()  # a selector's params taken as written (a code it gives an event)
    collect: str = ""  # a derivation's: the row algorithm that reads its collected value first (from its source)


ALGORITHMS: dict[str, Algorithm] = {}
REVERSES: dict[str, Callable] = {}


def algorithm(name: str, kind: str, origin: str = "Collected", needs_source: bool = False,
              params: tuple[str, ...] = (), optional: tuple[str, ...] = (), paths: tuple[str, ...] = (),
              method: str = "", many: bool = False, values: tuple[str, ...] = (), collect: str = ""):
    def register(fn: Callable) -> Callable:
        if name in ALGORITHMS:
            raise RuntimeError(f"algorithm {name!r} registered twice")
        ALGORITHMS[name] = Algorithm(name, kind, fn, origin, needs_source, params, (fn.__doc__ or "").strip(),
                                     optional, paths, method, many, values, collect)
        return fn

    return register


def reverse(name: str):
    def register(fn: Callable) -> Callable:
        REVERSES[name] = fn
        return fn

    return register
