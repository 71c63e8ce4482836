"""Give back SDTM exactly as it was, for FHIR that to-fhir made from SDTM.

Resources made by to-fhir carry the sdtm-record, sdtm-supp and sdtm-dataset extensions
(fhir/extensions.py). After the spec-driven mapping, this layer puts back what the mapped elements
could not: the cells recorded on each resource, the original row order, the dataset's own variables
(order, labels, and those the spec does not know), and the SUPPxx records. FHIR that carries none of
these extensions goes through unchanged.
"""

from __future__ import annotations

import pandas as pd

from ..fhir.extensions import read_datasets, read_record, read_supps
from ..fhir.index import ResourceIndex
from ..findings import Report
from ..mapping_spec.model import SuppStructure
from ..sdtm.dataset import Dataset, VariableMeta


def restore(datasets: dict[str, Dataset], index: ResourceIndex, report: Report,
            supp_shape: SuppStructure) -> None:
    described: dict[str, tuple[str, list]] = {}
    supps: dict[str, list[tuple[int, dict]]] = {}
    by_source: dict[str, tuple | None] = {}
    sources = {k for n, ds in datasets.items() if not n.startswith("SUPP") for k in ds.sources}
    for res in index.by_key.values():
        if not res.may_carry_sdtm:  # an NDJSON line with no sdtm-* extension: not read again
            continue
        data = res.data  # once per resource: an NDJSON line is parsed anew on each .data
        if res.resource_type == "ResearchStudy":
            described.update(read_datasets(data))
        for row, rec in read_supps(data, supp_shape.carried):
            supps.setdefault(rec["RDOMAIN"], []).append((row, rec))
        if res.key in sources:
            by_source[res.key] = read_record(data)
    overridden: set[tuple[str, str]] = set()
    for name in [n for n in datasets if not n.startswith("SUPP")]:
        ds = datasets[name]
        records = [by_source.get(k) for k in ds.sources]
        if not any(r is not None and r[0] == name for r in records):
            continue
        frame = ds.frame
        for i, record in enumerate(records):
            for var, value in (record[2] if record else {}).items():
                if var not in frame.columns:
                    frame[var] = pd.Series([None] * len(frame), index=frame.index, dtype="object")
                frame.at[i, var] = value
                overridden.add((ds.sources[i], var))
        order = sorted(range(len(frame)), key=lambda i: (r[1] if (r := records[i]) else float("inf"), i))
        ds.frame = frame.iloc[order].reset_index(drop=True)
        ds.sources = [ds.sources[i] for i in order]
        if name in described:
            _apply_description(ds, *described[name])
        if name in supps:
            rows = sorted(supps.pop(name), key=lambda r: r[0])
            frame = pd.DataFrame([{**rec, "STUDYID": ds.frame.at[0, "STUDYID"]} for _, rec in rows],
                                 columns=supp_shape.names)
            supp = Dataset(f"SUPP{name}", supp_shape.label_for(name), list(supp_shape.variables), frame)
            if f"SUPP{name}" in described:
                _apply_description(supp, *described[f"SUPP{name}"])
            datasets[f"SUPP{name}"] = supp
    report.findings[:] = [f for f in report.findings if (f.source, f.variable) not in overridden]


def _apply_description(ds: Dataset, label: str, variables: list[tuple[str, str, str]]) -> None:
    known = {v.name: v for v in ds.variables}
    ds.label = label
    ds.variables = [VariableMeta(n, lab, t, known[n].core if n in known else "Perm") for n, lab, t in variables]
    for n, _, t in variables:
        if n not in ds.frame.columns:
            ds.frame[n] = pd.Series([None] * len(ds.frame), index=ds.frame.index,
                                    dtype="object" if t == "Char" else "float64")
    ds.frame = ds.frame[[n for n, _, _ in variables]]
