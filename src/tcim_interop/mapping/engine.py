"""FHIR resources -> SDTM datasets, as the specs say: select rows, fill variables, derive, add SUPP.

    rows     each domain's selector picks its resources; row algorithms fill the variables in spec order
    derive   DM first, then the visits told by date (visits.py), the records a spec merges (SV: one
             per visit), SE (trial_design/subject_elements.py), then the other domains: --SEQ, --DY,
             reference dates, baseline flags, EPOCH (from SE)
    supp     supplemental qualifiers and the continuation of text longer than 200 bytes
    account  every input resource is converted, rejected or out of scope, exactly once
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import methodcaller
from typing import Any

import pandas as pd

from ..fhir.index import ResourceIndex
from ..fhir.read import InputResource, LineResource
from ..findings import Report
from ..mapping_spec.model import READ_BEFORE, DomainSpec, MappingSet, SuppStructure
from ..sdtm.dataset import Dataset, VariableMeta, frame_of, present, records_as_frame
from ..sdtm.text import MAX_BYTES, continuation_qnam, key_text, split_text, xpt_length
from ..trial_design.subject_elements import carried_elements, se_dataset, subject_elements
from . import algorithms
from .context import Row, RunContext, Skip
from .derivations import DeriveContext, by_subject
from .qualifiers import read_qualifiers
from .relations import link_records, referenced_keys, related_of, relrec_dataset
from .restore import Recorded, carried_relrec, describe, read_recorded, restore
from .visits import assign_visits_by_date

IDENTIFIERS = ("STUDYID", "SITEID", "SUBJID", "USUBJID")
SUPPORTING_TYPES = ("Patient", "ResearchStudy", "Consent", "Encounter", "Group", "Organization")  # Group, Organization: trial design


def whole_types(mappings: MappingSet) -> set[str]:
    """The types read parsed from NDJSON: those every record is joined with (the supporting types and
    DM's row resource, each event row's %subject). The others, one record each, are read again per use."""
    return set(SUPPORTING_TYPES) | {mappings.spec("dm").row_resource}


@dataclass
class Mapped:
    """The domains built from the resources, and what the steps after it need: the DM rows (whose
    studies the trial design describes), the run's context (its index and the resources it used) and
    every resource's outcome so far."""

    datasets: dict[str, Dataset]
    dm_rows: list[Row]
    run: RunContext
    outcome: dict[str, tuple[str, str]]


def map_domains(resources: Sequence[InputResource | LineResource], mappings: MappingSet, report: Report,
                outcome: dict[str, tuple[str, str]] | None = None,
                progress: Callable[..., None] | None = None) -> Mapped:
    """The spec-driven mapping: rows selected and filled, derivations, SUPPxx, then restore (what
    to-fhir carried). outcome: resources already rejected upstream (invalid, duplicate), by key.
    progress: called ("mapping", done, total) once per resource of a row type."""
    index = ResourceIndex(r for r in resources if r.key not in (outcome or {}))
    recorded = read_recorded(index, mappings.suppqual)
    with report.moot(recorded.cells()):
        rows, run, outcome = _select_rows(index, mappings, report, outcome, progress)
        frames = {d: _frame(mappings.domains[_role(mappings, d)], rs) for d, rs in rows.items()}
        _derive(mappings.spec("dm"), frames, report)
        if run.visits.pending:
            # Visits by date are a step of their own, not a derivation: they need DM's RFSTDTC (known once
            # EX is built and DM derived), each record's Encounter (rows hold it, frames do not), and every
            # domain's records of a subject at once (one Encounter, one VISITNUM in EX and XM alike; a
            # planned visit taken once). The frames they change are built again, in their sort order.
            rfstdtc = by_subject(frames["DM"][0], "RFSTDTC")
            for d in assign_visits_by_date(run.visits, mappings, index, rfstdtc, run.used):
                frames[d] = _frame(mappings.domains[_role(mappings, d)], rows[d])
        for d in [d for d in frames if mappings.domains[_role(mappings, d)].merge]:  # VISITNUM known
            spec = mappings.domains[_role(mappings, d)]
            rows[d] = _merge_records(spec, rows[d])
            frames[d] = _frame(spec, rows[d])
        elements = _subject_elements(recorded, {d: f[0] for d, f in frames.items()}, mappings)
        links = link_records(mappings, rows)
        keys = {d: f[1] for d, f in frames.items()}
        for d in [d for d in frames if d != "DM"]:  # in the specs' order: EX before AE, which reads it (AELOC)
            _derive(mappings.domains[_role(mappings, d)], frames, report, related_of(mappings, links, d, keys), elements)
        datasets: dict[str, Dataset] = {}
        for d in frames:
            spec = mappings.domains[_role(mappings, d)]
            frame, sources, supp_rows = frames[d]
            supp_rows = _split_long_supp(supp_rows) + _split_long_text(spec, frame, report)
            variables = [v for v in spec.variables if not v.when_collected or frame[v.name].map(present).any()]
            datasets[d] = Dataset(d, spec.label, [VariableMeta(v.name, v.label, v.type, v.core) for v in variables],
                                  frame[[v.name for v in variables]].reset_index(drop=True), sources)
            if supp_rows:
                datasets[f"SUPP{d}"] = _supp_dataset(spec, frame, supp_rows, mappings.suppqual)
            if d == "DM" and elements is not None and not mappings.masked:  # SE's ETCD would unmask the arm
                datasets["SE"] = elements
    _report_levels_not_sent(run, datasets, report)
    for d, ds in datasets.items():
        ds.dictionaries = _dictionary_versions(mappings.domains[_role(mappings, d)], run, report) if d in frames else {}
    restore(datasets, recorded, mappings.suppqual)
    # SUPPxx records written as Observations: they point at their parent's final --SEQ, known after restore
    read_qualifiers(datasets, index, mappings.suppqual, outcome, lambda supp: describe(supp, recorded))
    # after restore: its --SEQ are final; a RELREC to-fhir carried whole wins over the references'
    relrec = carried_relrec(recorded, mappings.relrec) or relrec_dataset(mappings, datasets, links)
    if relrec is not None:
        datasets["RELREC"] = relrec
    return Mapped(datasets, rows.get("DM", []), run, outcome)


def _report_levels_not_sent(run: RunContext, datasets: dict[str, Dataset], report: Report) -> None:
    """One warning per Expected dictionary variable (AELLT, AEHLT, AEHLGT ...) that records leave empty
    because their codings do not send that level (a hospital's MedDRA without level extension)."""
    for (domain, name), n in sorted(run.levels_not_sent.items()):
        report.add("warning", "DICTIONARY_LEVEL_NOT_SENT",
                   f"{name} is empty in {n} of {len(datasets[domain])} records: their codings do not send this level",
                   domain=domain, variable=name,
                   hint="send a coding of every level, each with its level (the meddra-level extension)")


def _dictionary_versions(spec: DomainSpec, run: RunContext, report: Report) -> dict[str, str]:
    """The version of each external dictionary the domain's variables are coded in, as the codings say
    (Coding.version); several versions are listed and reported, since one study codes in one version."""
    out = {}
    for name in sorted({v.dictionary for v in spec.variables if v.dictionary}):
        versions = sorted(run.dictionary_versions.get(name, ()))
        if len(versions) > 1:
            report.add("warning", "DICTIONARY_VERSIONS", f"{spec.domain} is coded in {name} versions "
                       f"{', '.join(versions)}: one version is expected", domain=spec.domain)
        if versions:
            out[name] = ", ".join(versions)
    return out


def account(mapped: Mapped, resources: Sequence[InputResource | LineResource], report: Report) -> None:
    """Every input resource's disposition, and the records per dataset, once every dataset is built."""
    _account(resources, mapped.outcome, mapped.run, report)
    for name, ds in mapped.datasets.items():
        report.records_per_domain[name] = len(ds)


def _select_rows(index: ResourceIndex, mappings: MappingSet, report: Report, outcome=None, progress=None):
    run = RunContext(mappings, index, report)
    outcome = dict(outcome or {})
    rows: dict[str, list[Row]] = {}
    order = ["dm"] + [r for r in mappings.domains if r != "dm"]
    candidates = {role: [r for t in mappings.spec(role).row_resources for r in index.of_type(t)] for role in order
                  if not mappings.spec(role).sources}
    if progress:
        total, done = sum(map(len, candidates.values())), iter(range(1, 1 << 62))
        run.progress = lambda: progress("mapping", next(done), total)
    for role in order:
        spec = mappings.spec(role)
        if spec.sources:
            rows[spec.domain] = _added_rows(spec, index, run, outcome)
            continue
        rows[spec.domain] = _rows(spec, candidates[role], run, outcome)
        if role == "dm":
            _link_subjects(rows[spec.domain], run, outcome)
    return rows, run, outcome


def rows_with_context(resources: list[InputResource], mappings: MappingSet, report: Report) -> list[tuple]:
    """(spec, Row) for every record, before derivation: the row's resource, its context resources
    and its row-level values. For tracing a record to what it was made of."""
    rows, _, _ = _select_rows(ResourceIndex(resources), mappings, report)
    specs = {s.domain: s for s in mappings.domains.values()}
    return [(specs[d], r) for d, rs in rows.items() for r in rs]


def _role(mappings: MappingSet, domain: str) -> str:
    return next(r for r, s in mappings.domains.items() if s.domain == domain)


def _rows(spec: DomainSpec, candidates: list[InputResource | LineResource], run: RunContext,
          outcome: dict[str, tuple[str, str]]) -> list[Row]:
    """The spec's records from the candidates. Several specs may read one resource type (EX and CM,
    VS and MUNE): a resource an earlier spec passes on (Skip.defer) is offered to the next, and the
    first that converts or rejects it decides; one that every spec passes on is out of scope with all
    their reasons. What an earlier spec takes, no later one sees: a resource is one record at most."""
    select = algorithms.get(spec.row_select).fn
    fill = _filler(spec, run)
    out = []
    for res in candidates:
        if run.progress:
            run.progress()
        if res.key in outcome and res.key not in run.deferred:  # rejected upstream (invalid, duplicate), or decided
            continue
        loaded = res.loaded()  # an NDJSON line parsed once for its row, dropped once the row is built
        try:
            row = select(loaded, run, spec)
            if not isinstance(row, Skip):
                fill(row)
                row.forget_sources(res)
        except (AttributeError, TypeError) as e:
            # what a reader meets in an element of the wrong JSON type (a string where FHIR has an object).
            # --fast and the full validation reject such a resource before the mapping, but a build while
            # the validation runs in worker processes sees every resource (that build is dropped when one
            # is invalid); the resource is rejected, the run goes on
            row = Skip("rejected", f"malformed {res.resource_type}: an element the mapping reads "
                                   f"has the wrong shape ({type(e).__name__})")
        if isinstance(row, Skip):
            passed_on = outcome.get(res.key) if res.key in run.deferred else None
            if row.defer and passed_on is not None and passed_on[0] == "out_of_scope" == row.outcome:
                # none of the domains that pass it on takes it: every one's reason (not a MUNE measure; not a vital sign)
                outcome[res.key] = (row.outcome, f"{passed_on[1]}; {row.reason}")
            else:
                outcome[res.key] = (row.outcome, row.reason)
            if row.defer:
                run.deferred.add(res.key)
            else:
                run.deferred.discard(res.key)
            if row.outcome == "rejected":  # a record lost: an error, so that --strict fails on it
                run.report.error("REJECTED", row.reason, domain=spec.domain, source=res.key, file=res.where)
            continue
        out.append(row)
        outcome[res.key] = ("converted", "")
        run.deferred.discard(res.key)
    return out


def _added_rows(spec: DomainSpec, index: ResourceIndex, run: RunContext, outcome: dict[str, tuple[str, str]]) -> list[Row]:
    """The rows of a spec with several sources (rows: a list): each selector returns the rows a resource
    gives (maybe none) and its outcome stays what its own domain decided: a resource that another
    domain rejected or put out of scope gives no row here either, and one that gives rows counts as
    used (a Consent that only DS reads is converted). Rows of one resource are told apart by part."""
    fill, out = _filler(spec, run), []
    for source in spec.sources:
        select = algorithms.get(source.select).fn
        for res in index.of_type(source.resource):
            if outcome.get(res.key, ("converted",))[0] != "converted":
                continue
            try:
                made = select(res.loaded(), run, spec, source.criteria)
                for part, row in enumerate(made):
                    row.part = part
                    fill(row)
                    row.forget_sources(res)
            except (AttributeError, TypeError) as e:  # an element of the wrong JSON type, as in _rows
                run.report.warning("MALFORMED_ELEMENT", f"no {spec.domain} record: an element the mapping reads has "
                                   f"the wrong shape ({type(e).__name__})", domain=spec.domain, source=res.key,
                                   file=res.where)
                continue
            out += made
            if made:
                run.used.add(res.key)
    return out


def _filler(spec: DomainSpec, run: RunContext) -> Callable[[Row], None]:
    """What fills a selected row: its variables (row algorithms, in dependency order; study.yaml's
    `defaults` for a value the FHIR record does not say), its supplemental qualifiers, the English of a
    text the study's translation table holds, and the keys of the resources its relrec: references name."""
    defaults = run.mappings.study.get("defaults") or {}
    # the defaults are the study's own (AEACN NOT APPLICABLE: its one injection): another study's records
    # in the input (the CDISC pilot's SDTM through to-fhir) keep what they say, empty included
    own_study = (run.mappings.study.get("study") or {}).get("studyid")
    row_vars = [(v, algorithms.get(v.algorithm).fn, defaults.get(v.name)) for v in in_dependency_order(spec, "row")]
    # derivations that start from a collected value: it is read with the rows, the derivation completes it
    row_vars += [(v, algorithms.get(algorithms.get(v.algorithm).collect).fn, None) for v in spec.variables
                 if algorithms.get(v.algorithm).collect]
    supp_vars = [(sq, algorithms.get(sq.algorithm).fn) for sq in spec.supplemental]
    translated = [v for v in spec.variables if v.translate is not None]

    def fill(row: Row) -> None:
        for var, fn, default in row_vars:
            value = fn(row, var)
            if value is None and default is not None and _study_of(row) == own_study:
                value = default
            row.values[var.name] = value
        for sq, fn in supp_vars:
            value = fn(row, sq)
            if value not in (None, ""):
                row.supp[sq.qnam] = (value, sq)
        for var in translated:
            _translate(row, var, run.mappings.verbatim)
        referenced_keys(row, spec)

    return fill


def _study_of(row: Row) -> Any:
    """The STUDYID of a row's record: its own, else its subject's (DM)."""
    studyid = row.values.get("STUDYID")
    return studyid if studyid is not None or row.subject_row is None else row.subject_row.values.get("STUDYID")


def _translate(row: Row, var, table) -> None:
    """A text of the study's translation table: its English in the variable, the text as sent in the
    SUPP qualifier the spec names. A text the table lacks that looks untranslated: a warning."""
    value = row.values.get(var.name)
    if not isinstance(value, str) or not value or table is None:
        return
    english = table.translate(value)
    if english is not None:
        if english != value:
            row.values[var.name] = english
            row.supp[var.translate.qnam] = (value, var.translate)
    elif table.looks_untranslated(value):
        row.finding("warning", "UNTRANSLATED", f"{var.name} {value!r} looks {table.language or 'not English'} "
                    "and is not in the translation table: converted as sent", var.name, value,
                    "add it with its English to mappings/translations.yaml")


def _link_subjects(dm_rows: list[Row], run: RunContext, outcome: dict) -> None:
    """Only DM rows with a full identity become subjects; events point at them through the Patient.
    The identifiers take their written form here (key_text: what XPT can hold), so that every dataset
    and every format has the same keys, and two subjects whose keys meet in that form are never merged."""
    seen: dict[str, str] = {}
    keep = []
    for row in dm_rows:
        _key_form(row)
        missing = [v for v in IDENTIFIERS if not row.values.get(v)]
        if missing:
            outcome[row.resource.key] = ("rejected", f"cannot identify the subject: no {', '.join(missing)}")
            row.finding("error", "REJECTED", outcome[row.resource.key][1])
            continue
        usubjid = row.values["USUBJID"]
        if usubjid in seen:
            outcome[row.resource.key] = ("rejected", f"USUBJID {usubjid} already given by {seen[usubjid]}")
            row.finding("error", "REJECTED", outcome[row.resource.key][1])
            continue
        seen[usubjid] = row.resource.key
        patient = row.refs["patient"]
        assert patient is not None  # a DM row is selected through its Patient
        if patient.key in run.subjects_by_patient:
            row.finding("warning", "SUBJECT_IN_TWO_STUDIES",
                        f"{patient.key} is enrolled more than once; its events go to the first enrolment")
        run.subjects_by_patient.setdefault(patient.key, []).append(row)
        run.used.update(r.key for r in row.refs.values() if r is not None)
        for role, ref in row.refs.items():  # a resource of a row type that DM reads (%age, an Observation)
            if ref is not None and ref.resource_type not in SUPPORTING_TYPES:  # is DM's: no other domain's row
                outcome[ref.key] = ("converted", f"feeds the subject's DM record (%{role})")
        keep.append(row)
    dm_rows[:] = keep


def _key_form(row: Row) -> None:
    for name in IDENTIFIERS:
        value = row.values.get(name)
        if isinstance(value, str) and (written := key_text(value)) != value:
            row.values[name] = written
            row.finding("warning", "KEY_FOLDED", f"{name} {value!r} is written {written!r} (printable ASCII, "
                                                 "no trailing blank), in every dataset and format", variable=name)


def _sort_key(values: dict, keys: list[str]) -> tuple:
    """Nulls last, per key."""
    return tuple([(v is None, "" if v is None else v) for v in map(values.get, keys)])


def _frame(spec: DomainSpec, rows: list[Row]) -> tuple[pd.DataFrame, list[str], list[dict]]:
    rows = sorted(rows, key=lambda r: _sort_key(r.values, spec.sort))
    records = [r.values for r in rows]
    # Char columns hold str or None (object dtype, never pandas' NaN-filled string dtype); Num float64.
    frame = frame_of({v.name: list(map(methodcaller("get", v.name), records)) for v in spec.variables},
                     {v.name for v in spec.variables if not v.is_char})
    supp = [{"row": i, "qnam": q, "value": val, "spec": sq} for i, r in enumerate(rows) for q, (val, sq) in r.supp.items()]
    return frame, [r.source for r in rows], supp


def in_dependency_order(spec: DomainSpec, kind: str) -> list:
    """The spec's variables of one algorithm kind, in spec order except that a variable named by
    another's params (model.READ_BEFORE) comes before it (USUBJID needs SITEID and SUBJID)."""
    wanted = [v for v in spec.variables if algorithms.get(v.algorithm).kind == kind]
    order, seen = [], set()

    def visit(var) -> None:
        if var.name in seen:
            return
        seen.add(var.name)
        for _, ref in var.referenced(READ_BEFORE):
            dep = spec.by_name.get(ref)
            if dep is not None and dep in wanted:
                visit(dep)
        order.append(var)

    for var in wanted:
        visit(var)
    return order


def _derive(spec: DomainSpec, frames: dict, report: Report, related: dict | None = None,
            elements: Dataset | None = None) -> None:
    frame = frames[spec.domain][0]
    others = {d: f[0] for d, f in frames.items()} | ({"SE": elements.frame} if elements is not None else {})
    ctx = DeriveContext(spec.domain, frame, others, report, related or {})
    for var in in_dependency_order(spec, "derive"):
        values = algorithms.get(var.algorithm).fn(ctx, var)
        frame[var.name] = pd.Series(values, index=frame.index, dtype="object" if var.is_char else "float64")


def _subject_elements(recorded: Recorded, frames: dict[str, pd.DataFrame], mappings: MappingSet) -> Dataset | None:
    """SE: the records to-fhir carried (on the subjects' ResearchSubjects), else made from DM (and the
    disposition events that end the last element) and the elements of study.yaml
    (trial_design/subject_elements.py); None without SE in trial_design.yaml."""
    carried = carried_elements(recorded.described.get("SE"), (r for rs in recorded.records.values() for r in rs))
    if carried is not None or mappings.trial_design is None or "SE" not in mappings.trial_design.datasets:
        return carried
    return se_dataset(subject_elements(frames["DM"], mappings, frames), mappings)


def _merge_records(spec: DomainSpec, rows: list[Row]) -> list[Row]:
    """spec.merge: rows with the same `by` values (all present) are one record, the first in sort order,
    whose `latest` variables take the latest value of them all (SV: one record per VISITNUM)."""
    by, latest = spec.merge["by"], spec.merge.get("latest", [])
    kept: dict[tuple, Row] = {}
    out = []
    for row in sorted(rows, key=lambda r: _sort_key(r.values, spec.sort)):
        key = tuple(row.values.get(n) for n in by)
        first = kept.get(key)
        if first is None or any(v is None for v in key):
            kept.setdefault(key, row)
            out.append(row)
            continue
        for name in latest:
            value = row.values.get(name)
            if value is not None and (first.values.get(name) is None or str(value) > str(first.values[name])):
                first.values[name] = value
        first.finding("info", "RECORDS_MERGED", f"{row.resource.key} is the same record ("
                      + ", ".join(f"{n} {v:g}" if isinstance(v, float) else f"{n} {v}" for n, v in zip(by, key, strict=True))
                      + f"): one {spec.domain} record" + (f", {', '.join(latest)} the latest" if latest else ""))
    return out


def _seq_name(spec: DomainSpec) -> str | None:
    name = f"{spec.domain}SEQ"
    return name if name in spec.by_name else None


def _split_long_text(spec: DomainSpec, frame: pd.DataFrame, report: Report) -> list[dict]:
    """Text over 200 bytes: the first chunk stays, the rest become SUPP records (SDTMIG 4.5.3.2)."""
    out = []
    for v in spec.variables:
        if not v.is_char:
            continue
        for i, value in enumerate(frame[v.name]):
            # ASCII text keeps its length when folded: only other text needs folding to be measured
            if isinstance(value, str) and (len(value) if value.isascii() else xpt_length(value)) > MAX_BYTES:
                chunks = split_text(value)
                frame.at[i, v.name] = chunks[0]
                for n, chunk in enumerate(chunks[1:], start=1):
                    qnam = continuation_qnam(v.name, n)
                    label = f"{v.label[:min(37, 39 - len(str(n)))]} {n}"  # QLABEL <= 40
                    out.append({"row": i, "qnam": qnam, "value": chunk, "label": label,
                                "spec": None})
                report.add("info", "TEXT_SPLIT", f"{len(chunks) - 1} continuation record(s) in SUPP{spec.domain}",
                           domain=spec.domain, variable=v.name, usubjid=frame.at[i, "USUBJID"])
    return out


def _split_long_supp(supp_rows: list[dict]) -> list[dict]:
    """A qualifier over 200 bytes (a verbatim term as sent, AETERMO): the first chunk keeps its QNAM,
    the rest continue in QNAM1, QNAM2, ... as a variable's text does (SDTMIG 4.5.3.2)."""
    out = []
    for s in supp_rows:
        value = s["value"]
        if not isinstance(value, str) or xpt_length(value) <= MAX_BYTES:
            out.append(s)
            continue
        chunks = split_text(value)
        out.append({**s, "value": chunks[0]})
        label = s["spec"].qlabel if s["spec"] is not None else s.get("label", "")
        for n, chunk in enumerate(chunks[1:], start=1):
            out.append({"row": s["row"], "qnam": continuation_qnam(s["qnam"], n), "value": chunk,
                        "label": f"{label[:min(37, 39 - len(str(n)))]} {n}", "spec": None})
    return out


def _supp_dataset(spec: DomainSpec, parent: pd.DataFrame, supp_rows: list[dict], shape: SuppStructure) -> Dataset:
    """SUPPxx records pointing at their parent by --SEQ (DM: by USUBJID alone, IDVAR empty)."""
    seq = _seq_name(spec)
    records = []
    studyid, usubjid = parent["STUDYID"].tolist(), parent["USUBJID"].tolist()  # lists: no pandas call per record
    seqs = parent[seq].tolist() if seq else []
    for s in supp_rows:
        sq, i = s["spec"], s["row"]
        records.append({
            "STUDYID": studyid[i], "RDOMAIN": spec.domain, "USUBJID": usubjid[i],
            "IDVAR": seq or "", "IDVARVAL": f"{int(seqs[i])}" if seq else "",
            "QNAM": s["qnam"], "QLABEL": s.get("label") or sq.qlabel, "QVAL": str(s["value"]),
            "QORIG": sq.qorig if sq else "Collected", "QEVAL": sq.qeval if sq else ""})
    frame = records_as_frame(records, shape.variables)
    frame["_seq"] = pd.to_numeric(frame["IDVARVAL"], errors="coerce")
    frame = frame.sort_values(["USUBJID", "_seq", "QNAM"], kind="stable").drop(columns="_seq").reset_index(drop=True)
    return Dataset(f"SUPP{spec.domain}", shape.label_for(spec.domain), list(shape.variables), frame)


def _account(resources: Sequence[InputResource | LineResource], outcome: dict, run: RunContext, report: Report) -> None:
    for res in resources:
        kind, reason = outcome.get(res.key, ("", ""))
        if kind in ("rejected", "out_of_scope"):
            report.dispose(res.key, res.where, kind, reason)
        elif kind == "converted":
            report.dispose(res.key, res.where, "converted")
        elif res.key in run.used and res.resource_type in SUPPORTING_TYPES:
            report.dispose(res.key, res.where, "converted", "feeds DM, DS, visits or the trial design")
        elif res.key in run.used:  # a row's own context (an adverse event's resulting Condition)
            report.dispose(res.key, res.where, "converted", "feeds the records that reference it")
        elif res.resource_type in SUPPORTING_TYPES:
            report.dispose(res.key, res.where, "out_of_scope", "not referenced by any converted record")
        else:
            report.dispose(res.key, res.where, "out_of_scope", f"{res.resource_type} is not mapped to SDTM")
