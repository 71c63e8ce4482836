"""An SDTM dataset in memory: its records (a DataFrame), its variables' metadata, and for every
record the FHIR resource(s) it came from."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


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

    @property
    def file_stem(self) -> str:
        return self.name.lower()

    def __len__(self) -> int:
        return len(self.frame)
