"""StructureDefinitions of the project's extensions (docs/fhir-extensions.md). Where each may appear
comes from the specs: the row resources of mappings/*.yaml carry sdtm-record and sdtm-supp, the
elements whose `extension('...laterality')` a spec reads carry laterality (retired: to-fhir writes
mCODE's; files written before carry it); sdtm-supp's sub-extensions are suppqual.yaml's variables.
The same definitions in R4 and R5 (`fhir`): the contexts are the paths the specs read in that release."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...mapping.row_algorithms import MEDDRA_LEVEL_URL
from ...mapping_spec.model import MappingSet
from ..extensions import LATERALITY, MCODE_LATERALITY, SDTM_DATASET, SDTM_RECORD, SDTM_SUPP
from .elements import binding, element, extension_slicing, structure_definition
from .terminology import LATERALITY_VALUE_SET, MEDDRA_LEVEL_SYSTEM, value_set_url

EXTENSION_URLS = (SDTM_RECORD, SDTM_SUPP, SDTM_DATASET, LATERALITY, MEDDRA_LEVEL_URL)
STUDY = "ResearchStudy"  # the overall study carries the datasets' descriptions and the trial design records


@dataclass
class Sub:
    """A sub-extension: its url (a name), value types (none for a complex one), cardinality, parts."""

    name: str
    types: tuple[str, ...] = ()
    min: int = 0
    max: str = "1"
    short: str = ""
    parts: list[Sub] = field(default_factory=list)
    binding: dict | None = None


def _value_elements(prefix: str, types: tuple[str, ...], min_: int, bind: dict | None) -> list[dict]:
    return [element(f"{prefix}.value[x]", min=min_, type=[{"code": t} for t in types], binding=bind)]


def _sub_elements(prefix: str, subs: list[Sub]) -> list[dict]:
    """The slices of `prefix`.extension, one per sub-extension, with their url and value."""
    out = [extension_slicing(f"{prefix}.extension")]
    for s in subs:
        sid = f"{prefix}.extension:{s.name}"
        out.append(element(sid, short=s.short or None, min=s.min, max=s.max))
        if s.parts:
            out += _sub_elements(sid, s.parts)
        else:
            out.append(element(f"{sid}.extension", max="0"))
        out.append(element(f"{sid}.url", fixedUri=s.name))
        out += _value_elements(sid, s.types, 1, s.binding) if not s.parts else [element(f"{sid}.value[x]", max="0")]
    return out


def _extension(url: str, title: str, description: str, contexts: list[dict], version: str, fhir: str,
               value: tuple[str, ...] = (), subs: list[Sub] | None = None, bind: dict | None = None,
               status: str = "active") -> dict:
    elements = [element("Extension", short=title, definition=description)]
    if subs:
        elements += _sub_elements("Extension", subs)
    else:
        elements.append(element("Extension.extension", max="0"))
    elements.append(element("Extension.url", fixedUri=url))
    elements += _value_elements("Extension", value, 1, bind) if not subs else [element("Extension.value[x]", max="0")]
    name = "".join(p.capitalize() for p in url.rsplit("/", 1)[-1].split("-"))
    sd = structure_definition(url, name, title, description, "complex-type", "Extension", elements, version,
                              fhir, context=contexts)
    sd["status"] = status
    return sd


def _on(*expressions: str) -> list[dict]:
    return [{"type": "element", "expression": e} for e in expressions]


def row_resources(ms: MappingSet) -> list[str]:
    """The resource types the specs make rows of (and to-fhir makes of rows), in spec order."""
    return list(dict.fromkeys(t for s in ms.domains.values() for t in s.row_resources))


def read_on(ms: MappingSet, url: str, fhir: str = "R4") -> list[str]:
    """The elements (Type.path) on which some spec reads extension `url` in FHIR release `fhir`."""
    pattern = re.compile(r"(?<![\w.'])([A-Za-z][\w.]*)\.extension\('" + re.escape(url) + r"'\)")
    found = []
    for spec in ms.domains.values():
        sources = [v.source for v in spec.variables] + [q.source for q in spec.supplemental]
        for source in sources:
            for path in [source[fhir]] if fhir in source else []:
                found += [f"{t}.{m}" for t in spec.row_resources for m in pattern.findall(path.text)]
    return sorted(set(found))


def extension_definitions(ms: MappingSet, version: str, fhir: str = "R4") -> list[dict]:
    rows = row_resources(ms)
    cell = Sub("cell", min=0, max="*", short="an SDTM value the mapped elements do not give back",
               parts=[Sub("name", ("string",), 1, short="the variable"),
                      Sub("value", ("string", "decimal"), 0, short="its value; absent: an empty SDTM value")])
    record = _extension(
        SDTM_RECORD, "SDTM record", "The SDTM record a resource was made from: its dataset, its row (from 0) "
        "and the cells the mapped elements do not give back.", _on(*rows, STUDY), version, fhir,
        subs=[Sub("dataset", ("string",), 1, short="the SDTM dataset (DM, EX, AE, XM, TS, ...)"),
              Sub("row", ("integer",), 1, short="the record's row in the dataset, from 0"), cell])
    supp = _extension(
        SDTM_SUPP, "SDTM supplemental qualifier", "A SUPPxx record, on the resource of its parent record.",
        _on(*rows), version, fhir,
        subs=[Sub("row", ("integer",), 1, short="the record's row in SUPPxx, from 0"),
              *[Sub(n, ("string",), 0, short=f"SUPPxx {n}; absent when empty") for n in ms.suppqual.carried]])
    variable = Sub("variable", min=0, max="*", short="a variable, in the dataset's order",
                   parts=[Sub("name", ("string",), 1), Sub("label", ("string",), 0),
                          Sub("type", ("code",), 1, short="Char or Num")])
    dataset = _extension(
        SDTM_DATASET, "SDTM dataset", "A dataset's label and variables (order, labels, types), on the overall "
        "ResearchStudy: to-sdtm gives the dataset exactly these variables.", _on(STUDY), version, fhir,
        subs=[Sub("name", ("string",), 1), Sub("label", ("string",), 0), variable])
    laterality = _extension(  # retired: files written before still carry it, and are still read
        LATERALITY, "Laterality (retired)", "The side of a body site (SNOMED CT left, right, bilateral). Retired: "
        f"to-fhir writes the side in mCODE's published extension, {MCODE_LATERALITY}; this one is still read.",
        _on(*read_on(ms, LATERALITY, fhir)), version, fhir, value=("CodeableConcept",),
        bind=binding("required", LATERALITY_VALUE_SET), status="retired")
    meddra = _extension(
        MEDDRA_LEVEL_URL, "MedDRA level", "The level in MedDRA's hierarchy of a MedDRA coding (LLT, PT, HLT, HLGT, SOC).",
        _on("Coding"), version, fhir, value=("code",), bind=binding("required", value_set_url(MEDDRA_LEVEL_SYSTEM)))
    return [record, supp, dataset, laterality, meddra]
