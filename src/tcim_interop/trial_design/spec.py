"""mappings/trial_design.yaml: the trial design datasets' variables and where each TS parameter comes from.

Checked when loaded, like the domain specs: an unknown source name, a parameter outside the TSPARMCD
codelist or an unknown codelist is a SpecError naming the file, not a surprise in the middle of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import SpecError
from ..mapping_spec.codelists import Codelists
from ..sdtm.dataset import VariableMeta


@dataclass(frozen=True)
class Parameter:
    parmcd: str
    parm: str  # TSPARM: the TSPARMCD term's decode (C67152 shares C66738's codes)
    source: str  # a name registered in summary.py, or "config"
    codelist: str = ""  # TSVAL is a term of it: TSVALCD is its NCI code, TSVCDREF "CDISC CT"
    ref: str = ""  # the reference terminology otherwise (ISO 8601, SNOMED, ...)
    null_flavor: str = ""  # expected: with no value, TSVAL null and TSVALNF this null flavor (ISO 21090), a finding
    translate: bool = False  # a text of translations.yaml: its English (TSSEQ 1), then the text as sent (TSSEQ 2)


@dataclass
class TrialDesignSpec:
    datasets: dict[str, tuple[str, list[VariableMeta]]]  # name -> (label, variables)
    codelist_of: dict[tuple[str, str], str]  # (dataset, variable) -> codelist
    parameters: list[Parameter] = field(default_factory=list)


def load_trial_design(path: Path, codelists: Codelists) -> TrialDesignSpec:
    from ..mapping_spec.yaml_files import load_yaml
    from .summary import SOURCES

    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
        datasets, codelist_of = {}, {}
        for name, ds in doc["datasets"].items():
            datasets[name] = (ds["label"], [VariableMeta(v["name"], v["label"], v["type"], v["core"])
                                            for v in ds["variables"]])
            for v in ds["variables"]:
                if v.get("codelist"):
                    codelist_of[(name, v["name"])] = v["codelist"]
        raw = doc.get("summary") or []
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as e:
        raise SpecError(f"{path}: malformed trial design spec: {' '.join(str(e).split())}") from None
    parmcds = codelists.codelists.get("TSPARMCD")
    params = []
    for p in raw:
        where = f"{path}: TS parameter {p.get('parmcd')!r}"
        term = parmcds.by_value.get(p.get("parmcd")) if parmcds else None
        if term is None:
            raise SpecError(f"{where}: not a term of codelist TSPARMCD in codelists.yaml")
        if p.get("from") != "config" and p.get("from") not in SOURCES:
            raise SpecError(f"{where}: unknown source {p.get('from')!r} (known: config, {', '.join(sorted(SOURCES))})")
        if p.get("codelist") and p["codelist"] not in codelists.codelists:
            raise SpecError(f"{where}: unknown codelist {p['codelist']!r}")
        # `if_unknown: UNK` (a null flavor) makes the parameter expected; `required: true` is if_unknown NI
        flavor = str(p.get("if_unknown") or ("NI" if p.get("required") else ""))
        flavors = codelists.codelists.get("NULLFLAV")
        if flavor and (flavors is None or flavor not in flavors):
            raise SpecError(f"{where}: if_unknown {flavor!r} is not a null flavor of codelist NULLFLAV")
        params.append(Parameter(term.value, term.decode, p["from"], p.get("codelist", ""), p.get("ref", ""), flavor,
                                bool(p.get("translate", False))))
    for (name, var), cl in codelist_of.items():
        if cl not in codelists.codelists:
            raise SpecError(f"{path}: {name}.{var} names unknown codelist {cl!r}")
    return TrialDesignSpec(datasets, codelist_of, params)
