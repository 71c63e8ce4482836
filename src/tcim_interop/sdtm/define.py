"""Define-XML 2.1 for the SDTM package, built from the mapping specs and the datasets as written.

The layout follows CDISC's SDTM example (defineV21-SDTM.xml). What comes from where:
  - datasets, variables, order, labels, keys, class, structure: the specs (mappings/*.yaml) and the
    Dataset objects; lengths and data types: the values actually present (docs/define-and-dataset-json.md);
  - origins: each variable's `origin` (else its algorithm's), Source Investigator when collected,
    Sponsor otherwise, and the FHIR path it is read from;
  - methods: the registry's docstring of each derivation, with the spec's parameters;
  - codelists: mappings/codelists.yaml (NCI C-codes as nci:ExtCodeID aliases, sponsor terms of
    CDISC lists as def:ExtendedValue), MedDRA and ISO 3166 as external dictionaries;
  - value-level metadata: one per MUNE test code on --ORRES/--STRESN, one per QNAM on SUPPxx.QVAL.
OIDs: IG.<dataset>, IT.<dataset>.<variable> (the Dataset-JSON itemOIDs), CL., MT., COM., WC., VL., LF.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from lxml import etree

from ..errors import SpecError
from ..mapping_spec import sdtmig34
from ..mapping_spec.model import DomainSpec, MappingSet
from .dataset import Dataset, VariableMeta, cell_text
from .dataset_json import column_type, is_integral, item_oid, package_version, present, text_length

ODM, DEF, XLINK = "http://www.cdisc.org/ns/odm/v1.3", "http://www.cdisc.org/ns/def/v2.1", "http://www.w3.org/1999/xlink"
NSMAP = {None: ODM, "def": DEF, "xlink": XLINK}
LANG = "{http://www.w3.org/XML/1998/namespace}lang"
SDTMIG = "3.4"
DEFAULT_CT_VERSION = "2024-12-20"  # the 2024 CDISC CT of reference/; study.yaml `ct_version` overrides it
_DEFINE_TYPE = {"string": "text", "date": "date", "datetime": "datetime", "integer": "integer", "double": "float"}
_DICTIONARIES = {"MEDDRA": ("MedDRA", "https://www.meddra.org"),
                 "ISO3166": ("ISO 3166", "https://www.iso.org/iso-3166-country-codes.html")}
_TRIAL_DESIGN = {  # trial_design.MADE, made without a spec of mappings/: SDTMIG 3.4 structure and keys
    "TA": ("One record per planned Element per Arm", ["STUDYID", "ARMCD", "TAETORD"]),
    "TE": ("One record per planned Element", ["STUDYID", "ETCD"]),
    "TI": ("One record per I/E criterion", ["STUDYID", "IETESTCD"]),
    "TS": ("One record per trial summary parameter value", ["STUDYID", "TSPARMCD", "TSSEQ"]),
    "TV": ("One record per planned Visit per Arm", ["STUDYID", "ARM", "VISITNUM"])}
# and SE, made from DM and the elements (trial_design/subject_elements.py), with no spec of mappings/ either
_WITHOUT_SPEC = {**_TRIAL_DESIGN, "SE": ("One record per actual Element per subject",
                                         ["STUDYID", "USUBJID", "ETCD", "SESTDTC"])}


def define_oids(study_name: str) -> tuple[str, str]:
    """(Study OID, MetaDataVersion OID): Dataset-JSON's studyOID and metaDataVersionOID must match them."""
    return f"STDY.{study_name}", f"MDV.{study_name}.SDTMIG.{SDTMIG}"


def dataset_keys(ms: MappingSet, name: str) -> list[str]:
    """A dataset's key variables, in order, as the define gives them (for Dataset-JSON's keySequence)."""
    specs = {s.domain: s for s in ms.domains.values()}
    if name.startswith("SUPP") and name[4:] in specs:
        return list(ms.suppqual.keys)
    if name == "RELREC" and ms.relrec is not None:
        return list(ms.relrec.keys)
    if name in specs:
        return list(specs[name].keys)
    return list(_WITHOUT_SPEC[name][1]) if name in _WITHOUT_SPEC else []


STYLESHEET = "define2-1.xsl"


def build_define(ms: MappingSet, datasets: dict[str, Dataset], *, study_name: str, created: datetime,
                 dataset_files: dict[str, str], ct_version: str | None = None) -> bytes:
    """define.xml (UTF-8 bytes) describing `datasets`, whose files are dataset_files[name] (else
    <name>.xpt). The same input gives the same bytes."""
    return _Builder(ms, study_name, ct_version or str(ms.study.get("ct_version") or DEFAULT_CT_VERSION)).build(
        datasets, created, dataset_files)


def schema_path() -> Path:
    """The Define-XML 2.1 XSD shipped by odmlib (the same files as CDISC's)."""
    import odmlib.schemas

    return Path(odmlib.schemas.__file__).parent / "define" / "2.1" / "define2-1-0.xsd"


def validate_define(define_xml: bytes, xsd: str | Path | None = None) -> list[str]:
    """The XSD errors of a define (empty when valid)."""
    schema = _schema(str(xsd or schema_path()))
    doc = etree.fromstring(define_xml, etree.XMLParser(resolve_entities=False, no_network=True))
    schema.validate(doc)
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


@functools.cache  # parsing the XSD and its imports costs more than validating a define with it
def _schema(xsd: str) -> etree.XMLSchema:
    """The XSD at that path. It imports its neighbours by relative path, so it is parsed from its own folder."""
    return etree.XMLSchema(etree.parse(xsd))


def _el(parent, tag: str, attrs: dict | None = None, text: str | None = None):
    el = etree.SubElement(parent, tag) if parent is not None else etree.Element(tag, nsmap=NSMAP)
    for k, v in (attrs or {}).items():
        if v is not None:
            el.set(k, str(v))
    if text is not None:
        el.text = text
    return el


def _d(name: str) -> str:
    return f"{{{DEF}}}{name}"


def _o(name: str) -> str:
    return f"{{{ODM}}}{name}"


def _description(parent, text: str, tag: str = "Description"):
    el = _el(parent, _o(tag))
    _el(el, _o("TranslatedText"), {LANG: "en"}, " ".join(text.split()))
    return el


def _num_profile(values: list) -> tuple[str, int, int | None]:
    """(DataType, Length, SignificantDigits) of numbers, from their shortest decimal text: Length is
    its width with sign and point (SAS w.d), SignificantDigits the most decimals."""
    numbers = [float(v) for v in present(values)]
    # each distinct number formatted once; a set holds one of 0.0 and -0.0, whose texts differ ("0", "-0")
    zeros = [math.copysign(0.0, s) for s in {math.copysign(1.0, x) for x in numbers if x == 0}]
    texts = {np.format_float_positional(x, trim="-") for x in [*set(numbers), *zeros]}
    width = max([1] + [len(t) for t in texts])
    if is_integral(values):
        return "integer", width, None
    return "float", width, max([0] + [len(t.partition(".")[2]) for t in texts])


def _numbers(texts: list) -> list[float] | None:
    """The values as numbers when every present one is a number, else None."""
    out = []
    for t in present(texts):
        try:
            out.append(float(t))
        except (TypeError, ValueError):
            return None
    return out


class _Builder:
    def __init__(self, ms: MappingSet, study_name: str, ct_version: str):
        self.ms, self.study_name, self.ct_version = ms, study_name, ct_version
        self.specs = {s.domain: s for s in ms.domains.values()}
        self.mune = ms.domains["mune"].domain if "mune" in ms.domains else None
        self.groups: list[etree._Element] = []
        self.items: list[etree._Element] = []
        self.value_lists: list[etree._Element] = []
        self.where: dict[str, etree._Element] = {}
        self.codelists: dict[str, etree._Element] = {}
        self.codelist_refs: dict[str, tuple[str, str]] = {}  # OID -> (codelist name, data type)
        self.used: dict[str, set[str]] = {}  # OID -> the values the package holds
        self.methods: dict[tuple, tuple[tuple[str, str], list[str]]] = {}  # (algorithm, params) -> ((OID, text), users)
        self.comments: dict[str, str] = {}

    # -- the document -----------------------------------------------------------------------
    def build(self, datasets: dict[str, Dataset], created: datetime, files: dict[str, str]) -> bytes:
        self.datasets = datasets
        for ds in sorted(datasets.values(), key=lambda d: (self._order(d), d.name)):
            self._dataset(ds, files.get(ds.name) or f"{ds.file_stem}.xpt")
        for oid, (name, data_type) in self.codelist_refs.items():
            self.codelists[oid] = self._codelist(oid, name, data_type)
        stamp = created.isoformat(timespec="seconds")
        root = _el(None, _o("ODM"), {"ODMVersion": "1.3.2", "FileOID": f"DEF.{self.study_name}", "FileType": "Snapshot",
                                     "CreationDateTime": stamp, "Originator": "tcim-interop",
                                     "SourceSystem": "tcim-interop", "SourceSystemVersion": package_version(),
                                     _d("Context"): "Submission"})
        study_oid, mdv_oid = define_oids(self.study_name)
        study = _el(root, _o("Study"), {"OID": study_oid})
        gv = _el(study, _o("GlobalVariables"))
        registry_id = (self.ms.study.get("study") or {}).get("registry_id")
        _el(gv, _o("StudyName"), text=self.study_name)
        _el(gv, _o("StudyDescription"), text=f"{self.study_name}{f' ({registry_id})' if registry_id else ''}: "
                                             "SDTM tabulation datasets")
        _el(gv, _o("ProtocolName"), text=str((self.ms.study.get("study") or {}).get("protocol") or self.study_name))
        mdv = _el(study, _o("MetaDataVersion"), {"OID": mdv_oid, "Name": f"{self.study_name} SDTM define",
                                                 "Description": f"SDTMIG {SDTMIG} tabulation datasets of {self.study_name}",
                                                 _d("DefineVersion"): "2.1.0"})
        std = _el(mdv, _d("Standards"))
        _el(std, _d("Standard"), {"OID": "STD.SDTMIG", "Name": "SDTMIG", "Type": "IG", "Version": SDTMIG, "Status": "Final"})
        _el(std, _d("Standard"), {"OID": "STD.CT", "Name": "CDISC/NCI", "Type": "CT", "PublishingSet": "SDTM",
                                  "Version": self.ct_version, "Status": "Final"})
        mdv.extend(self.value_lists)
        mdv.extend(self.where.values())
        mdv.extend(self.groups)
        mdv.extend(self.items)
        mdv.extend(self.codelists.values())
        for (oid, doc), names in self.methods.values():
            m = _el(mdv, _o("MethodDef"), {"OID": oid, "Name": f"Algorithm to derive {', '.join(names)}"[:200],
                                           "Type": "Computation"})
            _description(m, doc)
        for oid, text in self.comments.items():
            _description(_el(mdv, _d("CommentDef"), {"OID": oid}), text)
        # The CDISC stylesheet's processing instruction, as the Define-XML 2.1 examples write it: a reviewer
        # who puts CDISC's define2-1.xsl beside define.xml (as a submission does) sees it rendered. The
        # package does not ship that file; define.html is its standalone view.
        root.addprevious(etree.PI("xml-stylesheet", f'type="text/xsl" href="{STYLESHEET}"'))
        return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def _order(self, ds: Dataset) -> int:
        klass = self._shape(ds)[0]
        order = sdtmig34.standard().classes
        return order.index(klass) if klass in order else len(order)

    # -- datasets -----------------------------------------------------------------------------
    def _shape(self, ds: Dataset) -> tuple[str | None, str, list[str], DomainSpec | None]:
        """(class, structure, keys, spec) of a dataset; a SUPPxx's spec is its parent's."""
        if ds.name.startswith("SUPP") and ds.name[4:] in self.specs:
            supp = self.ms.suppqual
            return sdtmig34.domain_class(ds.name), supp.structure, list(supp.keys), self.specs[ds.name[4:]]
        if ds.name in self.specs:
            s = self.specs[ds.name]
            return s.klass, s.structure, s.keys, s
        if ds.name in _WITHOUT_SPEC:
            return (sdtmig34.domain_class(ds.name), *_WITHOUT_SPEC[ds.name], None)
        if ds.name == "RELREC" and self.ms.relrec is not None:  # made from the specs' relrec: entries
            return sdtmig34.domain_class(ds.name), self.ms.relrec.structure, list(self.ms.relrec.keys), None
        raise SpecError(f"define.xml: no spec in mappings/ describes dataset {ds.name}")

    def _dataset(self, ds: Dataset, file: str) -> None:
        klass, structure, keys, spec = self._shape(ds)
        supp = klass == "RELATIONSHIP" and ds.name.startswith("SUPP")
        domain = ds.name[4:] if supp else ds.name
        custom = domain[0] in "XYZ" and not supp  # sponsor-defined domain (SDTMIG 2.6.5)
        attrs = {"OID": f"IG.{ds.name}", "Domain": domain, "Name": ds.name,
                 "Repeating": "No" if ds.name == "DM" or klass == "TRIAL DESIGN" else "Yes",
                 "IsReferenceData": "Yes" if klass == "TRIAL DESIGN" else "No", "SASDatasetName": ds.name,
                 _d("Structure"): structure, "Purpose": "Tabulation",
                 _d("StandardOID"): None if custom else "STD.SDTMIG", _d("IsNonStandard"): "Yes" if custom else None,
                 _d("HasNoData"): "Yes" if not len(ds) else None,
                 _d("ArchiveLocationID"): f"LF.{ds.name}" if len(ds) else None}
        if spec is not None and spec.comment and not supp:  # why a sponsor-defined domain, what NV extends
            self.comments[f"COM.{ds.name}"] = spec.comment
            attrs[_d("CommentOID")] = f"COM.{ds.name}"
        group = _el(None, _o("ItemGroupDef"), attrs)
        _description(group, ds.label)
        for n, var in enumerate(ds.variables, start=1):
            origin, method = self._variable(ds, var, spec, supp)
            _el(group, _o("ItemRef"), {"ItemOID": item_oid(ds.name, var.name), "Mandatory": "Yes" if var.core == "Req" else "No",
                                       "OrderNumber": n, "KeySequence": keys.index(var.name) + 1 if var.name in keys else None,
                                       "MethodOID": method})
        if supp and spec is not None:
            _el(group, _o("Alias"), {"Context": "DomainDescription", "Name": spec.label})
        _el(group, _d("Class"), {"Name": klass})
        if len(ds):
            leaf = _el(group, _d("leaf"), {"ID": f"LF.{ds.name}", f"{{{XLINK}}}href": file})
            _el(leaf, _d("title"), text=file)
        self.groups.append(group)

    # -- variables ----------------------------------------------------------------------------
    def _variable(self, ds: Dataset, var: VariableMeta, spec: DomainSpec | None, supp: bool) -> tuple[str, str | None]:
        """Write the ItemDef (and its value-level metadata); return (origin type, MethodOID)."""
        values = ds.frame[var.name].tolist() if var.name in ds.frame else []
        sv = spec.by_name.get(var.name) if spec is not None and not supp else None
        origin = sv.origin if sv else ("Protocol" if ds.name in _TRIAL_DESIGN else "Assigned")
        comment = sv.comment if sv else _full_texts(ds, var)
        if sv is not None and sv.not_collected and not any(v not in (None, "") for v in present(values)):
            # the study collects none of it (RACE at a Spanish site): said, not left for a reviewer to guess
            origin, comment = "Not Available", f"Not collected: {sv.not_collected}"
        method = self._method(sv, ds.name) if sv and origin == "Derived" else None
        item = self._item_def(item_oid(ds.name, var.name), var.name, var, values, var.label,
                              comment, f"COM.{ds.name}.{var.name}")
        design = self.ms.trial_design.codelist_of if self.ms.trial_design is not None else {}
        codelist = (sv.codelist or sv.dictionary) if sv else design.get((ds.name, var.name))
        if codelist:
            self._codelist_ref(item, codelist, values)
        if supp and var.name == "QVAL":  # its origins are per QNAM, in the value list
            if self._supp_values(ds, spec):
                _el(item, _d("ValueListRef"), {"ValueListOID": f"VL.{ds.name}.QVAL"})
            return origin, None
        self._origin(item, origin, sv, spec)
        if ds.name == self.mune and var.name in (f"{ds.name}ORRES", f"{ds.name}STRESN"):
            if self._mune_values(ds, var, sv, method):
                _el(item, _d("ValueListRef"), {"ValueListOID": f"VL.{ds.name}.{var.name}"})
        return origin, method

    def _item_def(self, oid: str, name: str, var: VariableMeta, values: list, label: str, comment: str,
                  comment_oid: str, numeric_text: bool = False):
        kind = _DEFINE_TYPE[column_type(var, values)]
        length, digits = None, None
        numbers = _numbers(values) if numeric_text else None
        if numbers is not None and numbers:  # a text result that holds numbers (--ORRES of one test)
            kind, _, digits = _num_profile(numbers)
            length = text_length(values)
        elif kind == "text":
            length = text_length(values)
        elif kind in ("integer", "float"):
            kind, length, digits = _num_profile(values)
        if comment:
            self.comments[comment_oid] = comment
        item = _el(None, _o("ItemDef"), {"OID": oid, "Name": name, "DataType": kind, "Length": length,
                                         "SignificantDigits": digits, "SASFieldName": name,
                                         _d("DisplayFormat"): f"{length}.{digits}" if digits else None,
                                         _d("CommentOID"): comment_oid if comment else None})
        _description(item, label)
        self.items.append(item)
        return item

    def _origin(self, item, origin: str, sv, spec: DomainSpec | None) -> None:
        source = None if origin == "Not Available" else "Investigator" if origin == "Collected" else "Sponsor"
        el = _el(item, _d("Origin"), {"Type": origin, "Source": source})
        where = _fhir_source(sv, spec) if origin in ("Collected", "Assigned") else ""
        if where:
            _description(el, where)

    def _method(self, sv, dataset: str) -> str:
        """The MethodDef of a derivation: one per algorithm and parameters, shared across datasets."""
        # shared across datasets when the sentence reads the same (STUDYID from DM); a sentence that names
        # its variable ("AESEQ numbers ...") is one per variable
        key = (sv.algorithm, repr(sorted(sv.params.items())), sv.name if "{target}" in sv.method else "")
        if key not in self.methods:
            doc = method_text(sv)
            first = next(iter(sv.params.values()), None)  # MT.STUDY_DAY.AESTDTC reads better than a number
            first = first[0] if isinstance(first, list) and first else first
            oid = f"MT.{sv.algorithm.upper()}" + (f".{re.sub(r'[^A-Za-z0-9_-]', '_', str(first))}" if first is not None else "")
            if any(o == oid for (o, _), _ in self.methods.values()):
                oid += f".{dataset}.{sv.name}"
            self.methods[key] = (oid, doc), []
        (oid, doc), names = self.methods[key]
        names.append(f"{dataset}.{sv.name}")
        return oid

    # -- value-level metadata -----------------------------------------------------------------
    def _mune_values(self, ds: Dataset, var: VariableMeta, sv, method: str | None) -> bool:
        """One ItemRef per test code, WHERE --TESTCD EQ code, with the test's own type and unit;
        False when there is no test (a value list cannot be empty)."""
        d, frame = ds.name, ds.frame
        testcd, unit_var = f"{d}TESTCD", f"{d}STRESU" if var.name.endswith("STRESN") else f"{d}ORRESU"
        codes = [c for c in dict.fromkeys(frame[testcd].dropna().tolist())]
        cl = self.ms.codelists.codelists.get(self.specs[d].by_name[testcd].codelist or "")
        if cl is not None:  # codelist order first, then any code the codelist lacks
            codes = [t.value for t in cl.terms if t.value in codes] + [c for c in codes if c not in cl]
        vl = _el(None, _d("ValueListDef"), {"OID": f"VL.{d}.{var.name}"})
        for n, code in enumerate(codes, start=1):
            rows = frame[frame[testcd] == code]
            units = sorted({str(u) for u in present(rows[unit_var])}) if unit_var in rows else []
            name = (cl.by_value[code].decode if cl is not None and code in cl else "") or code
            label = f"{name} ({', '.join(units) if units else 'no unit'})"
            wc = self._where(d, testcd, code)
            ref = _el(vl, _o("ItemRef"), {"ItemOID": f"{item_oid(d, var.name)}.{code}", "OrderNumber": n,
                                          "Mandatory": "No", "MethodOID": method})
            _el(ref, _d("WhereClauseRef"), {"WhereClauseOID": wc})
            item = self._item_def(f"{item_oid(d, var.name)}.{code}", var.name, var, rows[var.name].tolist(), label,
                                  "", "", numeric_text=var.type == "Char")
            self._origin(item, sv.origin if sv else "Collected", sv, self.specs[d])
        if codes:
            self.value_lists.append(vl)
        return bool(codes)

    def _supp_values(self, ds: Dataset, parent: DomainSpec | None) -> bool:
        """One ItemRef per QNAM present: the spec's supplemental qualifiers, and text continuations."""
        frame = ds.frame
        # one pass over the records, as lists: a 20 MB verbatim term is 100,000 continuation QNAMs, and a
        # frame filtered per QNAM would read the whole table each time
        labels: dict[str, object] = {}
        values: dict[str, list] = {}
        for q, label, value in zip(frame["QNAM"].tolist(), frame["QLABEL"].tolist(), frame["QVAL"].tolist(), strict=True):
            if isinstance(q, str):
                labels.setdefault(q, label)
                values.setdefault(q, []).append(value)
        qnams = list(labels)
        declared = {s.qnam: s for s in (parent.supplemental if parent else [])}
        qnams = [q for q in declared if q in qnams] + sorted(q for q in qnams if q not in declared)
        vl = _el(None, _d("ValueListDef"), {"OID": f"VL.{ds.name}.QVAL"})
        qval = next(v for v in ds.variables if v.name == "QVAL")
        for n, qnam in enumerate(qnams, start=1):
            sq, cont = declared.get(qnam), _continued(parent, qnam)
            label = sq.qlabel if sq else str(labels[qnam])
            wc = self._where(ds.name, "QNAM", qnam)
            ref = _el(vl, _o("ItemRef"), {"ItemOID": f"IT.{ds.name}.QVAL.{qnam}", "OrderNumber": n, "Mandatory": "No"})
            _el(ref, _d("WhereClauseRef"), {"WhereClauseOID": wc})
            item = self._item_def(f"IT.{ds.name}.QVAL.{qnam}", qnam, qval, values[qnam], label, "", "")
            if sq and sq.codelist:
                self._codelist_ref(item, sq.codelist, values[qnam])
            if sq:
                self._origin(item, sq.qorig, sq, parent)
            else:
                self._origin(item, cont.origin if cont else "Collected", cont, parent)
        if qnams:
            self.value_lists.append(vl)
        return bool(qnams)

    def _where(self, dataset: str, var: str, value: str) -> str:
        oid = f"WC.{dataset}.{var}.{value}"
        if oid not in self.where:
            wc = _el(None, _d("WhereClauseDef"), {"OID": oid})
            rc = _el(wc, _o("RangeCheck"), {"Comparator": "EQ", "SoftHard": "Soft", _d("ItemOID"): item_oid(dataset, var)})
            _el(rc, _o("CheckValue"), text=value)
            self.where[oid] = wc
        return oid

    # -- codelists ----------------------------------------------------------------------------
    def _codelist_ref(self, item, name: str, values: list) -> None:
        """Point the item at its codelist, and note the values it holds: a codelist lists the terms the
        package uses (built by build(), once every dataset is read)."""
        data_type = item.get("DataType")
        oid = f"CL.{name}" + ("" if data_type == "text" else f".{data_type.upper()}")
        # a CodeListRef comes right after the Description (ODM order)
        item.find(_o("Description")).addnext(etree.Element(_o("CodeListRef"), CodeListOID=oid, nsmap=NSMAP))
        self.codelist_refs[oid] = (name, data_type)
        self.used.setdefault(oid, set()).update(cell_text(v) for v in present(values))

    def _codelist(self, oid: str, name: str, data_type: str):
        cts = self.ms.codelists
        if name in cts.dictionaries:
            dictionary, href = _DICTIONARIES.get(name, (str(cts.dictionaries[name].get("name", name)), None))
            comment = str(cts.dictionaries[name].get("comment") or "")
            if comment:
                self.comments[f"COM.CL.{name}"] = comment
            cl = _el(None, _o("CodeList"), {"OID": oid, "Name": str(cts.dictionaries[name].get("name", name)),
                                            "DataType": data_type, _d("CommentOID"): f"COM.CL.{name}" if comment else None})
            # the version the codings carried (Coding.version), else the one codelists.yaml names
            version = next((ds.dictionaries[name] for ds in self.datasets.values() if name in ds.dictionaries),
                           cts.dictionaries[name].get("version"))
            _el(cl, _o("ExternalCodeList"), {"Dictionary": dictionary, "Version": version, "href": href})
            return cl
        spec = cts.codelists[name]
        cl = _el(None, _o("CodeList"), {"OID": oid, "Name": spec.title, "DataType": data_type,
                                        _d("StandardOID"): None if spec.sponsor else "STD.CT"})
        # the terms the package uses (no MASKED in an unmasked package); all of them when it uses none
        # (an empty dataset), since a codelist cannot be empty
        used = self.used.get(oid, set())
        terms = [t for t in spec.terms if t.value in used] or spec.terms
        decoded = any(t.decode for t in terms)
        for n, term in enumerate(terms, start=1):
            attrs = {"CodedValue": term.value, "OrderNumber": n,
                     _d("ExtendedValue"): "Yes" if term.sponsor and not spec.sponsor else None}
            el = _el(cl, _o("CodeListItem" if decoded else "EnumeratedItem"), attrs)
            if decoded:
                _description(el, term.decode or term.value, "Decode")
            if term.nci_code and not spec.sponsor:
                _el(el, _o("Alias"), {"Context": "nci:ExtCodeID", "Name": term.nci_code})
        if spec.nci_code and not spec.sponsor:
            _el(cl, _o("Alias"), {"Context": "nci:ExtCodeID", "Name": spec.nci_code})
        return cl


def _words(value: Any) -> str:
    """A parameter as a sentence names it: a list as "A, B and C"."""
    if isinstance(value, list):
        items = [str(v) for v in value]
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    return str(value)


def method_text(sv) -> str:
    """A derivation as a reviewer reads it: the algorithm's method sentence with the variable and its
    parameters filled in ("AESTDY is the study day of AESTDTC: ..."). An algorithm without one (a
    sponsor's addition) gives its docstring and the parameters as they are."""
    params = {k: _words(v) for k, v in sv.params.items()}
    if "{" in sv.method:
        try:
            return sv.method.format(target=sv.name, **params)
        except (KeyError, IndexError):  # a parameter the sentence names and the spec leaves out
            pass
    listed = "; ".join(f"{k} = {v}" for k, v in params.items())
    return sv.method + (f" Parameters: {listed}." if listed else "")


def _full_texts(ds: Dataset, var: VariableMeta) -> str:
    """TI assumption 5: a criterion over 200 characters is shortened in IETEST, its full text is here."""
    if var.name != "IETEST" or not ds.notes:
        return ""
    return "Full text of the criteria shortened in IETEST: " + "; ".join(f"{k}: {v}" for k, v in ds.notes.items())


def _fhir_source(sv, spec: DomainSpec | None) -> str:
    """Where a collected value is read: "FHIR AdverseEvent: R4 event.text; R5 code.text"."""
    if sv is None or not getattr(sv, "source", None):
        return ""
    # "a ?? b" (first of) read as a reviewer reads it; "|" stays, FHIRPath's union
    texts = {v: " ".join(p.text.split()).replace(" ?? ", ", else ") for v, p in sv.source.items()}
    resource = " or ".join(spec.resource_types) if spec is not None else "resource"
    if len(set(texts.values())) == 1:
        return f"FHIR {resource}: {next(iter(texts.values()))}"
    return f"FHIR {resource}: " + "; ".join(f"{v} {t}" for v, t in texts.items())


def _continued(parent: DomainSpec | None, qnam: str):
    """The variable whose text a continuation QNAM (AETERM1, ...) carries (SDTMIG 4.5.3.2)."""
    if parent is None:
        return None
    stem = re.sub(r"\d+$", "", qnam)
    return next((v for v in parent.variables if v.is_char and stem and v.name.startswith(stem)
                 and len(stem) >= min(len(v.name), 6)), None)
