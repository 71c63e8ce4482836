"""FHIR -> TS, TA, TE, TI, TV: one set per overall study that has subjects in DM.

    TS   each parameter of mappings/trial_design.yaml from its source (summary.py); coded values get
         TSVALCD/TSVCDREF/TSVCDVER; a value over 200 characters continues in TSVAL1..n (TS assumption 4)
    TA   the ResearchStudy's arms (R4 arm, R5 comparisonGroup: name = ARMCD as in DM, description =
         ARM) x the elements study.yaml gives each arm; TABRANCH on the last element all arms share
    TE   study.yaml's elements, those the arms use
    TI   the criteria of the eligibility Group (R4 enrollment, R5 recruitment.eligibility): one
         characteristic each; code = IETESTCD, text = IETEST, exclude = IECAT EXCLUSION
    TV   study.yaml's visit schedule (the same for every arm: ARMCD empty)

A ResearchStudy that to-fhir made carries its trial design records (sdtm-record extensions): those
are given back exactly, dataset by dataset, instead of being derived.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..fhir.extensions import read_datasets, read_records
from ..fhir.index import ResourceIndex
from ..fhir.read import InputResource
from ..findings import Report
from ..mapping.engine import Mapped
from ..mapping.row_algorithms import study_arms
from ..mapping_spec.model import MappingSet
from ..sdtm.dataset import Dataset, VariableMeta, present
from ..sdtm.text import MAX_BYTES, split_text, xpt_length
from . import MADE
from .spec import TrialDesignSpec
from .subject_elements import records_frame
from .summary import SOURCES, DesignContext, TsValue, config, registry_name

IE_SYSTEM = "http://tcim-interop.org/fhir/CodeSystem/ie-criterion"


def trial_design_of(mapped: Mapped, ms: MappingSet) -> dict[str, Dataset]:
    """TS, TA, TE, TI, TV of every overall study with subjects in the mapped DM: the step beside the
    domain mapping (sdtm_pipeline.map_resources)."""
    studies: dict[str, tuple] = {}
    for row in mapped.dm_rows:
        study = row.refs["study"]
        assert study is not None  # a DM row is selected through its study
        studies.setdefault(study.key, (study, row.values["STUDYID"]))
    dm = mapped.datasets["DM"].frame if "DM" in mapped.datasets else pd.DataFrame()
    run = mapped.run
    return build_trial_design(list(studies.values()), ms, dm, run.index, run.report, run.used)


def build_trial_design(studies: list[tuple[InputResource, str]], ms: MappingSet, dm: pd.DataFrame,
                       index: ResourceIndex, report: Report, used: set[str]) -> dict[str, Dataset]:
    """studies: (overall ResearchStudy, its STUDYID) for each study with subjects in DM."""
    spec: TrialDesignSpec | None = ms.trial_design
    if spec is None:
        return {}
    records: dict[str, list[dict]] = {n: [] for n in MADE}
    sources: dict[str, list[str]] = {n: [] for n in MADE}
    described: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}
    for study, studyid in studies:
        carried = _carried(study.data)
        described.update({n: d for n, d in read_datasets(study.data).items() if n in MADE})
        ctx = DesignContext(study, index, ms, dm[dm["STUDYID"] == studyid] if len(dm) else dm, report, used, studyid)
        made = {"TS": _ts, "TA": _ta, "TE": _te, "TI": _ti, "TV": _tv}
        for name in MADE:
            rows = carried[name] if name in carried else made[name](ctx, spec)
            records[name] += [{"STUDYID": studyid, "DOMAIN": name, **r} for r in rows]
            sources[name] += [study.key] * len(rows)
    out = {}
    for name, rows in records.items():
        if name in described:
            label, variables = described[name][0], [VariableMeta(*v) for v in described[name][1]]
        else:
            label, variables = spec.datasets[name]
            variables = _with_continuations(variables, rows, "TSVAL") if name == "TS" else variables
        out[name] = Dataset(name, label, variables, records_frame(variables, rows), sources[name],
                            notes={r["IETESTCD"]: r["_full"] for r in rows if r.get("_full") and r["_full"] != r["IETEST"]})
    return out


def _carried(study: dict) -> dict[str, list[dict]]:
    """The trial design records a to-fhir ResearchStudy carries, by dataset, in their row order."""
    out: dict[str, list[tuple[int, dict]]] = {}
    for dataset, row, cells in read_records(study):
        if dataset in MADE:
            out.setdefault(dataset, []).append((row, cells))
    return {n: [c for _, c in sorted(rows, key=lambda rc: rc[0])] for n, rows in out.items()}


def _with_continuations(variables: list[VariableMeta], rows: list[dict], name: str) -> list[VariableMeta]:
    """TSVAL1..n after TSVAL, as many as the longest value needs (none when all fit in 200)."""
    n = max((int(k[len(name):]) for r in rows for k in r if k.startswith(name) and k[len(name):].isdigit()), default=0)
    at = next(i for i, v in enumerate(variables) if v.name == name) + 1
    extra = [VariableMeta(f"{name}{i}", f"Parameter Value {i}", "Char", "Perm") for i in range(1, n + 1)]
    return variables[:at] + extra + variables[at:]


# -- TS -----------------------------------------------------------------------------------------------
def _ts(ctx: DesignContext, spec: TrialDesignSpec) -> list[dict]:
    codelists, ct_version = ctx.mappings.codelists.codelists, str(ctx.mappings.study.get("ct_version", ""))
    versions = {str(k): str(v) for k, v in (ctx.mappings.study.get("terminology_versions") or {}).items()}
    rows = []
    for p in spec.parameters:
        values = config(ctx, p) if p.source == "config" else SOURCES[p.source](ctx, p)
        values = _translated(ctx, p, values) if p.translate else values
        if not values and p.null_flavor:
            rows.append({"TSSEQ": 1, "TSPARMCD": p.parmcd, "TSPARM": p.parm, "TSVALNF": p.null_flavor})
            ctx.report.add("warning", "TS_PARAMETER_MISSING", f"{p.parmcd} has no value in the ResearchStudy or "
                           f"study.yaml: TSVAL null, TSVALNF {p.null_flavor}", domain="TS", variable="TSVAL",
                           source=ctx.study.key, hint=f"give {p.parmcd} under trial_design.summary in mappings/study.yaml")
        for seq, v in enumerate(values, start=1):
            row = {"TSSEQ": seq, "TSPARMCD": p.parmcd, "TSPARM": p.parm}
            row.update(_split("TSVAL", v.value))
            if p.codelist:
                term = codelists[p.codelist].by_value.get(v.value)
                if term is None:
                    ctx.report.add("warning" if codelists[p.codelist].extensible else "error", "CT_NOT_IN_CODELIST",
                                   f"{p.parmcd} value {v.value!r} is not a term of {p.codelist}", domain="TS",
                                   variable="TSVAL", value=v.value, source=ctx.study.key)
                elif term.nci_code:
                    row.update(TSVALCD=term.nci_code, TSVCDREF="CDISC CT", TSVCDVER=ct_version)
            elif p.parmcd == "REGID":
                row.update(TSVALCD=v.code, TSVCDREF=registry_name(ctx, v.value))
            elif v.code or p.ref.startswith("ISO"):  # a code from a terminology, or a value in an ISO format
                ref = v.ref or p.ref
                row.update(TSVALCD=v.code, TSVCDREF=ref, TSVCDVER=versions.get(ref))
            rows.append(row)
    return rows


def _translated(ctx: DesignContext, p, values: list[TsValue]) -> list[TsValue]:
    """A text of the translation table: its English first, then the text as sent (TS has no SUPP: the
    original is a second record of the parameter). Untranslated text that looks foreign: a warning."""
    table, out = ctx.mappings.verbatim, []
    for v in values:
        english = table.translate(v.value) if table is not None else None
        if english is not None and english != v.value:
            out += [TsValue(english), v]
            continue
        if english is None and table is not None and table.looks_untranslated(v.value):
            ctx.report.add("warning", "UNTRANSLATED", f"{p.parmcd} {v.value!r} looks {table.language or 'not English'} "
                           "and is not in the translation table: written as sent", domain="TS", variable="TSVAL",
                           value=v.value, source=ctx.study.key, hint="add it with its English to mappings/translations.yaml")
        out.append(v)
    return out


def _split(name: str, value: str) -> dict[str, str]:
    """A value over 200 bytes: the first part in NAME, the rest in NAME1, NAME2, ... (SDTMIG 4.5.3.2)."""
    if xpt_length(value) <= MAX_BYTES:
        return {name: value}
    chunks = split_text(value)
    return {name: chunks[0], **{f"{name}{i}": c for i, c in enumerate(chunks[1:], start=1)}}


# -- TA, TE -------------------------------------------------------------------------------------------
def _ta(ctx: DesignContext, spec: TrialDesignSpec) -> list[dict]:
    configured = ctx.configured.get("arms") or {}
    elements = {e["etcd"]: e for e in ctx.configured.get("elements") or []}
    arms = [a for a in study_arms(ctx.data, ctx.version) if present(a.get("name"))]
    sequences = {a["name"]: (configured.get(a["name"]) or {}).get("elements") or [] for a in arms}
    branch_at = _shared_prefix(list(s for s in sequences.values() if s))
    rows = []
    for arm in arms:
        code = arm["name"]
        if not sequences[code]:
            ctx.report.add("warning", "TA_ARM_NOT_CONFIGURED", f"arm {code!r} has no elements in study.yaml "
                           "trial_design.arms: no TA records for it", domain="TA", value=code, source=ctx.study.key,
                           hint="list the arm's elements, in order, under trial_design.arms in mappings/study.yaml")
            continue
        for order, etcd in enumerate(sequences[code], start=1):
            el = elements.get(etcd, {})
            rows.append({"ARMCD": code, "ARM": arm.get("description") or code, "TAETORD": order, "ETCD": etcd,
                         "ELEMENT": el.get("element"), "EPOCH": el.get("epoch"),
                         "TABRANCH": (configured[code].get("branch") if order == branch_at else None)})
    return sorted(rows, key=lambda r: (r["ARMCD"], r["TAETORD"]))


def _shared_prefix(sequences: list[list[str]]) -> int:
    """How many leading elements every arm shares: the branch is on the last of them (0: none)."""
    if len(sequences) < 2:
        return 0
    n = 0
    while all(len(s) > n for s in sequences) and len({s[n] for s in sequences}) == 1:
        n += 1
    return n


def _te(ctx: DesignContext, spec: TrialDesignSpec) -> list[dict]:
    if not study_arms(ctx.data, ctx.version):
        return []
    return [{"ETCD": e["etcd"], "ELEMENT": e.get("element"), "TESTRL": e.get("testrl"), "TEENRL": e.get("teenrl"),
             "TEDUR": e.get("tedur")} for e in ctx.configured.get("elements") or []]


# -- TI, TV -------------------------------------------------------------------------------------------
def eligibility_refs(study: dict, version: str) -> list[Any]:
    if version == "R4":
        return list(study.get("enrollment") or [])
    ref = (study.get("recruitment") or {}).get("eligibility")
    return [ref] if ref else []


def _ti(ctx: DesignContext, spec: TrialDesignSpec) -> list[dict]:
    rows, numbers = [], {"INCLUSION": 0, "EXCLUSION": 0}
    for ref in eligibility_refs(ctx.data, ctx.version):
        group = ctx.resolve(ref, "Group")
        if group is None:
            ctx.report.add("warning", "TI_GROUP_MISSING", f"eligibility criteria {ref.get('reference')!r} not in the input",
                           domain="TI", source=ctx.study.key, hint="add the criteria's Group resource to the input")
            continue
        for ch in group.get("characteristic") or []:
            category = "EXCLUSION" if ch.get("exclude") else "INCLUSION"
            numbers[category] += 1
            coding: dict = next(iter((ch.get("code") or {}).get("coding") or []), {})
            text = (ch.get("code") or {}).get("text") or coding.get("display") or ""
            code = coding.get("code") or f"{category[:4]}{numbers[category]:02d}"
            if xpt_length(text) > MAX_BYTES:
                # TI assumption 5: meaningful text in IETEST, the full text in the study metadata
                ctx.report.add("info", "TI_TEXT_SHORTENED", f"{code}: IETEST keeps the first {MAX_BYTES} bytes; "
                               "the full criterion is in define.xml", domain="TI", variable="IETEST", value=text)
            rows.append({"IETESTCD": code, "IETEST": split_text(text)[0] if text else None, "IECAT": category,
                         "_full": text})
    return rows


def _tv(ctx: DesignContext, spec: TrialDesignSpec) -> list[dict]:
    return [{"VISITNUM": v["visitnum"], "VISIT": v["visit"], "VISITDY": v.get("day"),
             "TVSTRL": v.get("start_rule") or f"Planned on study day {v['day']}" if "day" in v else v.get("start_rule"),
             "TVENRL": v.get("end_rule")} for v in sorted(ctx.configured.get("visits") or [],
                                                          key=lambda v: float(v["visitnum"]))]
