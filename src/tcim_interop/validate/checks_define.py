"""define.xml against the datasets: the same datasets, and per dataset the same variables in the same
order, with matching types, lengths and labels. Any Define-XML version (1.0, 2.0, 2.1): elements are
found by local name."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ..sdtm.dataset_json import text_length
from .context import Context
from .registry import check

_CHAR_TYPES = {"text", "date", "datetime", "time", "partialDate", "partialTime", "partialDatetime",
               "incompleteDatetime", "durationDatetime", "intervalDatetime", "URI", "string"}
_NUM_TYPES = {"integer", "float", "double", "decimal"}


@dataclass(frozen=True)
class DefinedVariable:
    name: str
    data_type: str
    length: int | None
    label: str


@dataclass(frozen=True)
class DefinedDataset:
    name: str
    has_data: bool
    variables: tuple[DefinedVariable, ...]


@lru_cache(maxsize=4)
def parse_define(define_xml: bytes) -> dict[str, DefinedDataset] | str:
    """The datasets a define describes, by name; or the reason it cannot be read."""
    from lxml import etree

    try:
        root = etree.fromstring(define_xml, etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False))
    except etree.XMLSyntaxError as e:
        return f"define.xml is not well-formed XML: {e}"
    items = {el.get("OID"): el for el in root.iter("{*}ItemDef")}
    out = {}
    for group in root.iter("{*}ItemGroupDef"):
        refs = sorted(enumerate(group.iter("{*}ItemRef")),
                      key=lambda r: (int(r[1].get("OrderNumber") or r[0] + 1), r[0]))
        variables = []
        for _, ref in refs:
            item = items.get(ref.get("ItemOID"))
            if item is None:
                continue
            length = item.get("Length")
            variables.append(DefinedVariable(item.get("Name") or "", item.get("DataType") or "",
                                             int(length) if length and length.isdigit() else None, _label(item)))
        has_data = _attr(group, "HasNoData") != "Yes" and any(True for _ in group.iter("{*}leaf"))
        out[(group.get("Name") or "").upper()] = DefinedDataset(group.get("Name") or "", has_data, tuple(variables))
    return out


def _attr(el, local: str) -> str | None:
    return next((v for k, v in el.attrib.items() if k.rsplit("}", 1)[-1] == local), None)


def _label(el) -> str:
    """Define-XML 2.x: Description/TranslatedText; 1.0: the def:Label attribute."""
    text = next((t.text for d in el.findall("{*}Description") for t in d.findall("{*}TranslatedText")), None)
    return " ".join((text if text is not None else _attr(el, "Label") or "").split())


def _defined(ctx: Context) -> dict[str, DefinedDataset] | str | None:
    return None if ctx.define_xml is None else parse_define(ctx.define_xml)


@check("define_datasets", "TCIM-DEFINE")
def define_datasets(ctx: Context):
    """Every dataset of the package is described in define.xml, and every dataset define.xml describes
    with data is in the package."""
    parsed = _defined(ctx)
    if parsed is None:
        return
    if isinstance(parsed, str):
        yield ctx.finding("error", "TCIM-DEFINE", "DEFINE_UNREADABLE", parsed, value="define.xml")
        return
    for name in ctx.datasets:
        if name not in parsed:
            yield ctx.finding("error", "TCIM-DEFINE", "DEFINE_DATASET_MISSING",
                              f"dataset {name} is not described in define.xml", name)
    for name, d in parsed.items():
        if name not in ctx.datasets and d.has_data:
            yield ctx.finding("error", "TCIM-DEFINE", "DEFINE_DATASET_ABSENT",
                              f"define.xml describes dataset {name}, which is not in the package", name)


@check("define_variables", "TCIM-DEFINE", "CORE-000507")
def define_variables(ctx: Context):
    """Per dataset, define.xml's variables are the dataset's, in the same order, with the same type
    (Char: text/date/datetime...; Num: integer/float), a Length that holds the longest value and is not
    longer (lengths are set to the longest value present), and the same label."""
    parsed = _defined(ctx)
    if not isinstance(parsed, dict):
        return
    for name, ds in ctx.datasets.items():
        if name not in parsed:
            continue
        defined = {v.name: v for v in parsed[name].variables}
        present_names = [v.name for v in ds.variables]
        for v in ds.variables:
            if v.name not in defined:
                yield ctx.finding("error", "TCIM-DEFINE", "DEFINE_VARIABLE_MISSING",
                                  f"{v.name} is not described in define.xml", name, variable=v.name)
        for d in parsed[name].variables:
            if d.name not in present_names:
                yield ctx.finding("error", "TCIM-DEFINE", "DEFINE_VARIABLE_ABSENT",
                                  f"define.xml describes {d.name}, which is not in the dataset", name, variable=d.name)
        common = [n for n in present_names if n in defined]
        defined_order = [d.name for d in parsed[name].variables if d.name in present_names]
        if common != defined_order:
            yield ctx.finding("error", "TCIM-DEFINE", "DEFINE_VARIABLE_ORDER",
                              f"variable order differs: dataset {' '.join(common)}; define.xml {' '.join(defined_order)}",
                              name)
        for v in ds.variables:
            dv = defined.get(v.name)
            if dv is not None:
                yield from _compare(ctx, name, v, dv)


def _compare(ctx: Context, name: str, v, d: DefinedVariable):
    kinds = _CHAR_TYPES if v.type == "Char" else _NUM_TYPES
    if d.data_type not in kinds:
        yield ctx.finding("error", "TCIM-DEFINE", "DEFINE_TYPE",
                          f"{v.name} is {v.type} but define.xml says DataType {d.data_type}", name, variable=v.name,
                          value=d.data_type)
    elif v.type == "Char" and d.length is not None:
        longest = text_length(ctx.datasets[name].frame[v.name].tolist())
        if longest > d.length:
            yield ctx.finding("error", "TCIM-DEFINE", "DEFINE_LENGTH_SHORT",
                              f"{v.name}: define.xml Length {d.length} cannot hold the longest value ({longest})",
                              name, variable=v.name, value=d.length)
        elif longest < d.length:
            yield ctx.finding("warning", "TCIM-DEFINE", "DEFINE_LENGTH_LONG",
                              f"{v.name}: define.xml Length {d.length} is more than the longest value ({longest})",
                              name, variable=v.name, value=d.length)
    if d.label and v.label and d.label != " ".join(v.label.split()):
        yield ctx.finding("error", "CORE-000507", "DEFINE_LABEL",
                          f"{v.name}: label {v.label!r} in the dataset, {d.label!r} in define.xml", name,
                          variable=v.name, value=d.label)
