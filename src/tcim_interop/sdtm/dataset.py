"""An SDTM dataset in memory: its records (a DataFrame), its variables' metadata, and for every
record the FHIR resource(s) it came from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

# The trial design datasets of SDTMIG 3.4 (section 7): about the study, not a subject (no USUBJID).
TRIAL_DESIGN = ("TS", "TA", "TE", "TI", "TV", "TD", "TM")


def present(value: Any) -> bool:
    """An SDTM value that is not null: None, "" and NaN are SDTM's nulls."""
    return value is not None and value != "" and not (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class VariableMeta:
    name: str
    label: str
    type: str  # "Char" | "Num"
    core: str = "Perm"


@dataclass
class Dataset:
    name: str  # "DM", "SUPPAE"
    label: str
    variables: list[VariableMeta]
    frame: pd.DataFrame
    sources: list[str] = field(default_factory=list)  # per record: "ResourceType/id"
    notes: dict[str, str] = field(default_factory=dict)  # for define.xml: full texts SDTM had to shorten
    dictionaries: dict[str, str] = field(default_factory=dict)  # for define.xml: dictionary -> version coded in

    @property
    def file_stem(self) -> str:
        return self.name.lower()

    def __len__(self) -> int:
        return len(self.frame)
