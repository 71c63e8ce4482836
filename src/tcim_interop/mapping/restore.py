"""Give back SDTM exactly as it was, for FHIR that to-fhir made from SDTM.

Resources made by to-fhir carry the sdtm-record, sdtm-supp and sdtm-dataset extensions
(fhir/extensions.py). They are read before the mapping (read_recorded), so that the mapping knows which
cells the input records verbatim: a finding about the value it would have mapped there describes a value
never written, and is not reported (Report.moot). After the spec-driven mapping, restore puts back what
the mapped elements could not: the recorded cells, the original row order, the dataset's own variables
(order, labels, and those the spec does not know), and the SUPPxx records. FHIR that carries none of
these extensions goes through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..fhir.extensions import read_datasets, read_records, read_supps
from ..fhir.index import ResourceIndex
from ..mapping_spec.model import SuppStructure
from ..sdtm.dataset import Dataset, VariableMeta, records_as_frame


@dataclass
class Recorded:
    """What the input's sdtm-* extensions hold."""

    records: dict[str, list[tuple]]  # by resource key: (dataset, row, cells) of each sdtm-record it carries
    described: dict[str, tuple[str, list]] = field(default_factory=dict)  # dataset -> (label, variables)
    supps: dict[str, list[tuple[int, dict]]] = field(default_factory=dict)  # RDOMAIN -> (row, SUPP record)
    relrec: list[tuple[int, dict]] = field(default_factory=list)  # (row, cells): a RELREC carried whole

    def cells(self) -> set[tuple[str, str]]:
        """(resource key, variable) of every recorded cell."""
        return {(key, var) for key, records in self.records.items() for _, _, cells in records for var in cells}

    def of(self, dataset: str, source: str) -> tuple | None:
        """The record a row of `dataset` traced to `source` carries: the resource's n-th record of that
        dataset for source "key#n" (a ResearchSubject holds its DM record and its DS events)."""
        key, _, part = source.partition("#")
        mine = [r for r in self.records.get(key, ()) if r[0] == dataset]
        n = int(part) if part.isdigit() else 0
        return mine[n] if n < len(mine) else None


def read_recorded(index: ResourceIndex, supp_shape: SuppStructure) -> Recorded:
    recorded = Recorded({})
    for res in index.by_key.values():
        if not res.may_carry_sdtm:  # an NDJSON line with no sdtm-* extension: not read again
            continue
        data = res.data  # once per resource: an NDJSON line is parsed anew on each .data
        if res.resource_type == "ResearchStudy":
            recorded.described.update(read_datasets(data))
            recorded.relrec += [(row, cells) for name, row, cells in read_records(data) if name == "RELREC"]
        for row, rec in read_supps(data, supp_shape.carried):
            recorded.supps.setdefault(rec["RDOMAIN"], []).append((row, rec))
        if records := read_records(data):
            recorded.records[res.key] = records
    return recorded


def restore(datasets: dict[str, Dataset], recorded: Recorded, supp_shape: SuppStructure) -> None:
    supps = dict(recorded.supps)
    for name in [n for n in datasets if not n.startswith("SUPP")]:
        ds = datasets[name]
        records = [recorded.of(name, k) for k in ds.sources]
        if not any(r is not None for r in records):
            continue
        frame = ds.frame
        for i, record in enumerate(records):
            for var, value in (record[2] if record else {}).items():
                if var not in frame.columns:
                    frame[var] = pd.Series([None] * len(frame), index=frame.index, dtype="object")
                frame.at[i, var] = value
        order = sorted(range(len(frame)), key=lambda i: (r[1] if (r := records[i]) else float("inf"), i))
        ds.frame = frame.iloc[order].reset_index(drop=True)
        ds.sources = [ds.sources[i] for i in order]
        if name in recorded.described:
            _apply_description(ds, *recorded.described[name])
        if name in supps:
            rows = sorted(supps.pop(name), key=lambda r: r[0])
            frame = records_as_frame([{**rec, "STUDYID": ds.frame.at[0, "STUDYID"]} for _, rec in rows],
                                     supp_shape.variables)
            supp = Dataset(f"SUPP{name}", supp_shape.label_for(name), list(supp_shape.variables), frame)
            if f"SUPP{name}" in recorded.described:
                _apply_description(supp, *recorded.described[f"SUPP{name}"])
            datasets[f"SUPP{name}"] = supp


def describe(ds: Dataset, recorded: Recorded) -> None:
    """The dataset's own label and variables, as its sdtm-dataset extension recorded them (if it did)."""
    if ds.name in recorded.described:
        _apply_description(ds, *recorded.described[ds.name])


def _apply_description(ds: Dataset, label: str, variables: list[tuple[str, str, str]]) -> None:
    known = {v.name: v for v in ds.variables}
    ds.label = label
    ds.variables = [VariableMeta(n, lab, t, known[n].core if n in known else "Perm") for n, lab, t in variables]
    for n, _, t in variables:
        if n not in ds.frame.columns:
            ds.frame[n] = pd.Series([None] * len(ds.frame), index=ds.frame.index,
                                    dtype="object" if t == "Char" else "float64")
        elif t == "Num" and ds.frame[n].dtype != "float64":  # a column restore() added for carried cells
            ds.frame[n] = pd.to_numeric(ds.frame[n], errors="coerce").astype("float64")
    ds.frame = ds.frame[[n for n, _, _ in variables]]


def carried_relrec(recorded: Recorded, shape: SuppStructure | None) -> Dataset | None:
    """The RELREC to-fhir carried whole (its references would not give it back), in its row order."""
    if not recorded.relrec or shape is None:
        return None
    rows = [cells for _, cells in sorted(recorded.relrec, key=lambda rc: rc[0])]
    frame = records_as_frame(rows, shape.variables)
    return Dataset("RELREC", shape.label, list(shape.variables), frame)
