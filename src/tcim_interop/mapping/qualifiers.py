"""SUPPxx records as FHIR Observations about their parent record, both ways.

A supplemental qualifier that no spec gives a FHIR home (the CDISC pilot's AETRTEM, its population flags
ITT, SAFETY, COMPLT8 ... in SUPPDM) is a statement about one record: to-fhir writes it as an Observation
whose `focus` is the parent record's resource (the subject's ResearchSubject for SUPPDM), `subject` the
Patient, `code` the QNAM in the sdtm-qualifier code system (display: QLABEL), `valueString` QVAL,
`method.text` QORIG (how the value came about) and `performer.display` QEVAL (who assigned it). A hospital
reads them as any Observation; to-sdtm makes them SUPPxx records again, after the parent records are
final (restore), in the Observations' input order. The choice and its limits: docs/decisions.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..fhir.extensions import SDTM_QUALIFIER, is_qualifier
from ..fhir.index import ResourceIndex
from ..mapping_spec.model import SuppStructure
from ..sdtm.dataset import Dataset, cell_text, records_as_frame
from .reverse_algorithms import resource_id

# a SUPP variable -> where its Observation holds it (QNAM and QLABEL: the code's coding)
_TEXT_FIELDS = ("QVAL", "QORIG", "QEVAL", "QLABEL")


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def qualifier_observations(name: str, records: list[tuple[int, dict]],
                           parent_of: Callable[[dict], tuple[dict, dict, dict] | None]) -> list[dict] | None:
    """The Observations of a SUPPxx dataset's records, or None when one of them cannot be written so
    that to-sdtm gives it back exactly: its parent unknown or shared with another record (IDVAR not the
    parent's --SEQ, a DS event on a ResearchSubject), IDVARVAL not the --SEQ as to-sdtm writes it, QVAL
    empty, or text with edge spaces (FHIR strings do not keep them). parent_of(record) gives (parent
    record, parent resource, Patient reference); records: (row in the dataset, record)."""
    out = []
    for i, r in records:
        found = parent_of(r)
        texts = [_text(r.get(k)) for k in _TEXT_FIELDS]
        if found is None or not texts[0] or any(t != t.strip() for t in texts) or not _text(r.get("QNAM")):
            return None
        parent, resource, patient = found
        seq = f"{r['RDOMAIN']}SEQ" if r["RDOMAIN"] != "DM" else ""
        if _text(r.get("IDVAR")) != seq or _text(r.get("IDVARVAL")) != cell_text(parent.get(seq) if seq else None) \
                or _text(r.get("STUDYID")) != _text(parent.get("STUDYID")):
            return None
        qval, qorig, qeval, qlabel = texts
        coding = {"system": SDTM_QUALIFIER, "code": _text(r["QNAM"]), **({"display": qlabel} if qlabel else {})}
        out.append({
            "resourceType": "Observation", "id": resource_id(r.get("STUDYID"), name, i),
            "meta": {"source": f"tcim-interop:sdtm/{name.lower()}.xpt#row={i + 1}"},
            "status": "final", "code": {"coding": [coding]}, "subject": patient,
            "focus": [{"reference": f"{resource['resourceType']}/{resource['id']}"}], "valueString": qval,
            **({"method": {"text": qorig}} if qorig else {}), **({"performer": [{"display": qeval}]} if qeval else {})})
    return out


def _first(items: Any) -> dict:
    """The first item of a list element, {} when there is none."""
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def read_qualifiers(datasets: dict[str, Dataset], index: ResourceIndex, shape: SuppStructure,
                    outcome: dict[str, tuple[str, str]],
                    describe: Callable[[Dataset], None]) -> None:
    """The SUPPxx records of the input's qualifier Observations, added to `datasets` after the records
    they qualify are final: each points at the record whose resource its focus references (DM's for a
    ResearchSubject, which also holds DS events). An Observation whose focus is no record's stays out of
    scope, as any unmapped Observation. describe(supp) applies the dataset's recorded description."""
    found = [(res, data) for res in index.of_type("Observation") if res.may_carry_sdtm
             and is_qualifier(data := res.data)]
    if not found:
        return
    where: dict[str, list[tuple[str, int]]] = {}
    for name, ds in datasets.items():
        if not name.startswith("SUPP") and name != "RELREC":
            for i, key in enumerate(ds.sources):
                where.setdefault(key, []).append((name, i))
    made: dict[str, list[dict]] = {}
    for res, data in found:
        target = index.resolve(_first(data.get("focus")))
        places = where.get(target.key, []) if target is not None else []
        place = next((p for p in places if p[0] == "DM"), places[0] if len(places) == 1 else None)
        if place is None:
            continue
        name, i = place
        frame = datasets[name].frame
        seq = f"{name}SEQ" if name != "DM" and f"{name}SEQ" in frame.columns else ""
        coding = next(c for c in data["code"]["coding"] if isinstance(c, dict) and c.get("system") == SDTM_QUALIFIER)
        made.setdefault(name, []).append({
            "STUDYID": frame.at[i, "STUDYID"], "RDOMAIN": name, "USUBJID": frame.at[i, "USUBJID"],
            "IDVAR": seq, "IDVARVAL": cell_text(frame.at[i, seq]) if seq else "",
            "QNAM": _text(coding.get("code")), "QLABEL": _text(coding.get("display")),
            "QVAL": _text(data.get("valueString")), "QORIG": _text((data.get("method") or {}).get("text")),
            "QEVAL": _text(_first(data.get("performer")).get("display"))})
        outcome[res.key] = ("converted", "a supplemental qualifier of the record its focus references")
    for name, records in made.items():
        frame = records_as_frame(records, shape.variables)
        have = datasets.get(f"SUPP{name}")
        if have is not None:
            frame = pd.concat([have.frame, frame], ignore_index=True)
        supp = Dataset(f"SUPP{name}", shape.label_for(name), list(shape.variables), frame)
        describe(supp)
        datasets[f"SUPP{name}"] = supp
