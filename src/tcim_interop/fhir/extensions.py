"""The project's own FHIR extensions, that carry what FHIR has no element for (docs/fhir-extensions.md).

    sdtm-record   on a resource made from an SDTM record: the dataset, the row number, and the cells
                  that the mapped elements do not give back (variables with no FHIR home, values that
                  re-derivation would change); a cell without "value" is an empty SDTM value
    sdtm-supp     a SUPPxx record, on its parent's resource
    sdtm-dataset  on the overall ResearchStudy: a dataset's label and its variables (order, label, type)
The overall ResearchStudy also carries the trial design records (TS, TA, TE, TI, TV) as sdtm-record
extensions, every cell of each: most of TS has no FHIR element; and RELREC's, when the suspectEntity
references would not give it back.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from ..sdtm.dataset import present

BASE = "http://tcim-interop.org/fhir/StructureDefinition/"
SDTM_RECORD = BASE + "sdtm-record"
SDTM_SUPP = BASE + "sdtm-supp"
SDTM_DATASET = BASE + "sdtm-dataset"
# on a body site, the side: the project's own extension, retired (to-fhir wrote it before; the specs still
# read it); to-fhir writes mCODE's, published by HL7 (docs/decisions.md, Laterality)
LATERALITY = BASE + "laterality"
MCODE_LATERALITY = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-laterality-qualifier"
# not an extension: the code system of the Observations that are SUPPxx records (mapping/qualifiers.py)
SDTM_QUALIFIER = "http://tcim-interop.org/fhir/CodeSystem/sdtm-qualifier"


def is_qualifier(resource: dict) -> bool:
    """An Observation coded in the sdtm-qualifier system: a SUPPxx record (mapping/qualifiers.py)."""
    code = resource.get("code") if resource.get("resourceType") == "Observation" else None
    return isinstance(code, dict) and isinstance(code.get("coding"), list) and any(
        isinstance(c, dict) and c.get("system") == SDTM_QUALIFIER for c in code["coding"])


def _value(value: Any) -> dict:
    if isinstance(value, float):
        return {"valueDecimal": int(value) if value.is_integer() else value}
    return {"valueString": str(value)}


def _read(ext: dict) -> Any:
    if "valueDecimal" in ext:
        return float(ext["valueDecimal"])
    return ext.get("valueString", ext.get("valueInteger", ext.get("valueCode")))


def _subs(ext: dict) -> list[dict]:
    return [e for e in ext.get("extension") or [] if isinstance(e, dict)]


def record_extension(dataset: str, row: int, cells: dict[str, Any]) -> dict:
    subs = [{"url": "dataset", "valueString": dataset}, {"url": "row", "valueInteger": row}]
    for name, value in cells.items():
        cell = [{"url": "name", "valueString": name}]
        if value is not None and value != "":
            cell.append({"url": "value", **_value(value)})
        subs.append({"url": "cell", "extension": cell})
    return {"url": SDTM_RECORD, "extension": subs}


def whole_record_extension(dataset: str, row: int, record: dict[str, Any]) -> dict:
    """A record carried whole (the trial design's, SE's, a RELREC the references do not give back): its
    non-null cells, the others being nulls when read back."""
    return record_extension(dataset, row, {k: v for k, v in record.items() if present(v)})


def read_record(resource: dict) -> tuple[str, int, dict[str, Any]] | None:
    """(dataset, row, cells) of a resource's sdtm-record extension, or None."""
    return next(iter(read_records(resource)), None)


def read_records(resource: dict) -> list[tuple[str, int, dict[str, Any]]]:
    """Every sdtm-record extension of a resource (a ResearchStudy carries its trial design records)."""
    out = []
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == SDTM_RECORD:
            dataset, row, cells = "", -1, {}
            for sub in _subs(ext):
                if sub.get("url") == "dataset":
                    dataset = sub.get("valueString", "")
                elif sub.get("url") == "row":
                    row = int(sub.get("valueInteger", -1))
                elif sub.get("url") == "cell":
                    parts = {p.get("url"): p for p in _subs(sub)}
                    name = parts.get("name", {}).get("valueString")
                    if name:
                        cells[name] = _read(parts["value"]) if "value" in parts else None
            out.append((dataset, row, cells))
    return out


def supp_extension(row: int, record: dict[str, Any], fields: list[str]) -> dict:
    """fields: the SUPPxx variables carried (mapping_spec SuppStructure.carried), in order."""
    subs = [{"url": "row", "valueInteger": row}]
    subs += [{"url": k, "valueString": str(record[k])} for k in fields if record.get(k) not in (None, "")]
    return {"url": SDTM_SUPP, "extension": subs}


def read_supps(resource: dict, fields: list[str]) -> list[tuple[int, dict[str, str]]]:
    out = []
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == SDTM_SUPP:
            parts = {p.get("url"): p for p in _subs(ext)}
            row = int(parts.get("row", {}).get("valueInteger", -1))
            out.append((row, {k: parts[k].get("valueString", "") if k in parts else "" for k in fields}))
    return out


def dataset_extension(name: str, label: str, variables: list[tuple[str, str, str]]) -> dict:
    subs: list[dict[str, Any]] = [{"url": "name", "valueString": name}]
    if label:
        subs.append({"url": "label", "valueString": label})
    for vname, vlabel, vtype in variables:
        var = [{"url": "name", "valueString": vname}, {"url": "type", "valueCode": vtype}]
        if vlabel:
            var.insert(1, {"url": "label", "valueString": vlabel})
        subs.append({"url": "variable", "extension": var})
    return {"url": SDTM_DATASET, "extension": subs}


def read_datasets(resource: dict) -> dict[str, tuple[str, list[tuple[str, str, str]]]]:
    """{dataset: (label, [(name, label, type), ...])} from a ResearchStudy's sdtm-dataset extensions."""
    out: dict = {}  # the strings as the JSON has them
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == SDTM_DATASET:
            parts = _subs(ext)
            name = next((p.get("valueString") for p in parts if p.get("url") == "name"), "")
            label = next((p.get("valueString") for p in parts if p.get("url") == "label"), "")
            variables = []
            for p in parts:
                if p.get("url") == "variable":
                    v = {q.get("url"): q for q in _subs(p)}
                    variables.append((v["name"]["valueString"], v.get("label", {}).get("valueString", ""),
                                      v["type"]["valueCode"]))
            out[name] = (label, variables)
    return out


def extension_only_cells(widths: dict[str, int], resources: Iterable[dict], supp_fields: list[str]) -> Counter:
    """dataset -> the cells of an SDTM package that FHIR made from it holds only in the project's own
    extensions: the sdtm-record cells, and each cell of a SUPPxx record that travels in sdtm-supp
    (widths: SUPPxx -> its number of variables). What a FHIR element gives back is not counted."""
    carried: Counter = Counter()
    for r in resources:
        for dataset, _row, cells in read_records(r):
            carried[dataset] += len(cells)
        for _row, supp in read_supps(r, supp_fields):
            name = f"SUPP{supp['RDOMAIN']}"
            carried[name] += widths.get(name, 0)
    return carried
