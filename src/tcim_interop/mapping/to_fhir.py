"""SDTM datasets -> FHIR resources, driven by the same specs as to-sdtm, and proven lossless.

    build    each DM record becomes a ResearchSubject, its Patient and Consent, under a site
             ResearchStudy partOf the overall one; each EX, AE and MUNE record its resource. The
             specs' reverse algorithms write the values into the elements their forward paths read.
    verify   to-sdtm is run on what was built, cell by cell against the input: any cell that does not
             come back (no FHIR home, or re-derivation would change it) is carried in the resource's
             sdtm-record extension; SUPPxx records ride in sdtm-supp; the datasets' own variables
             (order, labels) in sdtm-dataset on the overall study. A second to-sdtm pass must then
             give back the input exactly; any difference is reported as an error finding.
Ids are UUIDv5 of the study, dataset and record, so the same SDTM gives the same ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import InputError
from ..fhir.extensions import SDTM_RECORD, dataset_extension, read_records, record_extension, supp_extension
from ..fhir.path import compile_path, set_value
from ..fhir.read import InputResource
from ..fhir.validate import Validation
from ..findings import Report
from ..mapping_spec.model import DomainSpec, MappingSet
from ..sdtm.dataset import Dataset, present
from ..sdtm.text import continuation_qnam, fold_ascii, join_text
from ..trial_design import CARRIED as CARRIED_ON_STUDY
from . import algorithms
from .disposition import STATE_SYSTEM, add_progress, is_consent
from .reverse_algorithms import Target, resource_id


def _ref(resource: dict) -> dict:
    return {"reference": f"{resource['resourceType']}/{resource['id']}"}


@dataclass
class Built:
    resources: list[dict] = field(default_factory=list)
    rows: dict[tuple[str, int], dict] = field(default_factory=dict)  # (dataset, row) -> its resource
    # (dataset, row) -> the source to-sdtm gives its record: the resource's key, and "#n" for the n-th
    # further record of that dataset it carries (a ResearchSubject's DS events)
    sources: dict[tuple[str, int], str] = field(default_factory=dict)

    def add(self, resource: dict) -> dict:
        self.resources.append(resource)
        return resource


class Builder:
    def __init__(self, sdtm: dict[str, Dataset], ms: MappingSet, version: str, report: Report,
                 timezone: str | None = None):
        self.sdtm, self.ms, self.version, self.report = sdtm, ms, version, report
        self.timezone = timezone  # --timezone: the zone of every study in the input
        self.out = Built()
        self.studies: dict[str, dict] = {}
        self.sites: dict[tuple[str, str], dict] = {}
        self.subjects: dict[str, dict[str, dict]] = {}  # USUBJID -> roles
        self.arms: dict[str, dict[str, dict]] = {}  # STUDYID -> ARMCD -> arm definition
        self.encounters: dict[tuple[str, Any], dict] = {}
        self.specs = {s.domain: s for s in ms.domains.values()}
        self._marked: dict[int, list] = {}  # id(resource) -> the (dataset, row) records it carries, in order
        self.by_seq: dict[tuple[str, str, str], dict] = {}  # (domain, USUBJID, --SEQ) -> the record's resource

    # -- the pieces -------------------------------------------------------------------------------
    def zone(self, studyid: Any) -> str | None:
        """The time zone of a study's local date-times: --timezone, else study.yaml's `timezone` for the
        study study.yaml describes (its STUDYID), else none: another study's times are not the site's."""
        if self.timezone:
            return self.timezone
        return self.ms.study.get("timezone") if self._own_study(studyid) else None

    def dictionaries(self, ds: Dataset) -> dict[str, str]:
        """The versions of the dictionaries (MedDRA) a dataset is coded in: define.xml's for it (sdtm/read),
        else TS's TSVCDVER of the TSVCDREF that names the dictionary; one version each, or none."""
        return {k: v for k, v in {**self._ts_versions, **ds.dictionaries}.items() if "," not in v}

    @cached_property
    def _ts_versions(self) -> dict[str, str]:
        return {str(r.get("TSVCDREF") or "").upper(): str(r["TSVCDVER"]) for r in self.records.get("TS", [])
                if present(r.get("TSVCDVER"))}

    def _own_study(self, studyid: Any) -> bool:
        return studyid == (self.ms.study.get("study") or {}).get("studyid")

    def _consent_policy(self, studyid: Any) -> dict:
        """The rules the consent was given under: study.yaml's consent_policy URI for its own study. R4
        requires a policy or a policyRule (invariant ppc-1): another study's gets a policyRule in words."""
        uri = self.ms.study.get("consent_policy") if self._own_study(studyid) else None
        if self.version == "R5":
            return {"policyBasis": {"url": uri}} if uri else {}
        return {"policy": [{"uri": uri}]} if uri else {"policyRule": {"text": "Informed consent to the study protocol"}}

    def _template(self, spec: DomainSpec, role: str) -> dict:
        return deepcopy(spec.reverse.get("templates", {}).get(role, {}).get(self.version, {}))

    def _link_path(self, spec: DomainSpec, role: str) -> str | None:
        link = spec.reverse.get("links", {}).get(role)
        return link.get(self.version) if isinstance(link, dict) else link

    def _link(self, spec: DomainSpec, resource: dict, role: str, target: dict | None) -> None:
        path = self._link_path(spec, role)
        if path and target is not None:
            set_value(resource, compile_path(path), _ref(target), self.version, resource["resourceType"])

    def _study(self, dm: DomainSpec, studyid: str) -> dict:
        if studyid not in self.studies:
            study = self._template(dm, "study")
            study["id"] = resource_id(studyid)
            self.studies[studyid] = self.out.add(study)
            self.arms[studyid] = {}
        return self.studies[studyid]

    def _site(self, dm: DomainSpec, studyid: str, siteid: str) -> dict:
        key = (studyid, siteid)
        if key not in self.sites:
            site = self._template(dm, "site")
            site["id"] = resource_id(studyid, "site", siteid)
            site["partOf"] = [_ref(self._study(dm, studyid))]
            self.sites[key] = self.out.add(site)
        return self.sites[key]

    def _visit_template(self) -> dict:
        return deepcopy(self.ms.study.get("visit_encounter", {}).get(self.version, {"resourceType": "Encounter"}))

    def _encounter(self, usubjid: str, visitnum: Any, visit_name: Any) -> dict | None:
        """The subject's Encounter for a visit of the study's schedule (number and name both match)."""
        visit = next((v for v in self.ms.study.get("visits", []) if float(v["visitnum"]) == float(visitnum)
                      and (not present(visit_name) or v["visit"] == visit_name)), None)
        if visit is None:
            return None
        key = (usubjid, visit["code"])
        if key not in self.encounters:
            enc = self._visit_template()
            enc["id"] = resource_id(usubjid, "visit", visit["code"])
            enc["type"] = [{"coding": [{"system": self.ms.study["visit_system"], "code": visit["code"]}]}]
            enc["subject"] = _ref(self.subjects[usubjid]["patient"])
            self.encounters[key] = self.out.add(enc)
        return self.encounters[key]

    # -- records ----------------------------------------------------------------------------------
    def _record(self, ds: Dataset, i: int, spec: DomainSpec) -> dict[str, Any]:
        """The record's values, text split into SUPP continuation records (AETERM1, ...) joined back."""
        record = dict(self.records[ds.name][i])
        supp = self.supp_index.get((spec.domain, str(record["USUBJID"]), _idvarval(spec, record)), {})
        for v in spec.variables if supp else ():  # most records have no SUPP record, so no continuation
            if v.is_char and isinstance(record.get(v.name), str):
                record[v.name] = join_text([record[v.name], *_continuations(supp, v.name)])
        for v in spec.variables if supp else ():  # a translated text: FHIR gets it as the site sent it
            if v.translate is not None and v.translate.qnam in supp:
                record[v.name] = join_text([supp[v.translate.qnam], *_continuations(supp, v.translate.qnam)])
        return record

    def _apply(self, spec: DomainSpec, target: Target) -> None:
        for var in spec.variables:
            value = target.record.get(var.name)
            fn = algorithms.get_reverse(var.algorithm)
            if fn is not None and present(value):
                fn(target, var, value)
        supp = self.supp_index.get((spec.domain, str(target.record["USUBJID"]), _idvarval(spec, target.record)), {})
        for sq in spec.supplemental:
            value = supp.get(sq.qnam)
            fn = algorithms.get_reverse(sq.algorithm)
            if fn is not None and present(value):
                fn(target, sq, value)
        resource = target.resources["resource"]
        for path, var in spec.reverse.get("fallback", {}).get(self.version, {}).items():
            if not compile_path(path).values(lambda v: resource) and present(target.record.get(var)):
                set_value(resource, compile_path(path), str(target.record[var]), self.version, resource["resourceType"])

    def build(self) -> Built:
        self.records = {name: ds.frame.to_dict("records") for name, ds in self.sdtm.items()}
        self.supp_index: dict[tuple[str, str, str], dict[str, str]] = {}
        for name in self.sdtm:
            for r in self.records[name] if name.startswith("SUPP") else ():
                key = (r["RDOMAIN"], str(r["USUBJID"]), str(r["IDVARVAL"]))
                self.supp_index.setdefault(key, {})[r["QNAM"]] = r["QVAL"]
        dm_spec = self.specs["DM"]
        dm = self.sdtm.get("DM")
        if dm is None:
            raise InputError("no DM dataset: every other domain's records need their subject in DM")
        for i in range(len(dm.frame)):
            self._dm_record(dm_spec, dm, i)
        from ..trial_design.to_fhir import add_trial_design

        self.relations = _relations(self.records.get("RELREC", []))
        order = {s.domain: i for i, s in enumerate(self.ms.domains.values())}  # EX before AE, which references it
        for name, ds in sorted(self.sdtm.items(), key=lambda item: order.get(item[0], len(order))):
            if name in ("DM", "RELREC", *CARRIED_ON_STUDY) or name.startswith("SUPP"):
                continue
            spec = self.specs.get(name)
            if spec is None:
                self.report.add("warning", "DATASET_NOT_MAPPED", f"dataset {name} has no FHIR mapping: not converted",
                                domain=name)
                continue
            for i in range(len(ds.frame)):
                if spec.sources:  # DS: events written on the subject's own resources
                    self._subject_event(spec, ds, i)
                else:
                    self._event_record(spec, ds, i)
        add_trial_design(self)
        for studyid, arms in self.arms.items():
            self._write_arms(self.studies[studyid], arms)
        del self.records, self.supp_index  # every record as a dict: as large as the frames, not needed now
        return self.out

    def _dm_record(self, spec: DomainSpec, ds: Dataset, i: int) -> None:
        record = self._record(ds, i, spec)
        usubjid, studyid = str(record["USUBJID"]), str(record["STUDYID"])
        if usubjid in self.subjects:
            raise InputError(f"DM row {i + 1}: USUBJID {usubjid} appears twice")
        study = self._study(spec, studyid)
        site = self._site(spec, studyid, str(record.get("SITEID") or ""))
        subject = self._template(spec, "resource")
        patient = self._template(spec, "patient")
        subject["id"], patient["id"] = resource_id(studyid, "DM", usubjid), resource_id(studyid, "Patient", usubjid)
        roles = {"resource": subject, "patient": patient, "site": site, "study": study}
        if present(record.get("RFICDTC")):
            consent = self._template(spec, "consent")
            consent["id"] = resource_id(studyid, "Consent", usubjid)
            path = spec.reverse.get("consent_link", {}).get(self.version)
            if path:
                consent[path] = _ref(patient)
            consent.update(self._consent_policy(studyid))
            roles["consent"] = consent
        target = Target(self.version, roles, self.ms, record, arms=self.arms[studyid], zone=self.zone(studyid))
        self._apply(spec, target)
        for role in ("patient", "site", "consent"):
            self._link(spec, subject, role, roles.get(role))
        self.out.add(patient)
        if "consent" in roles:
            self.out.add(roles["consent"])
        self.out.add(subject)
        self._mark(subject, "DM", i)
        self.subjects[usubjid] = roles

    def _write_arms(self, study: dict, arms: dict) -> None:
        if not arms:
            return
        if self.version == "R4":
            study["arm"] = [{k: v for k, v in a.items() if k != "linkId"} for a in arms.values()]
        else:
            study["comparisonGroup"] = [{"linkId": a["linkId"], "name": a["name"],
                                         **({"description": a["description"]} if "description" in a else {})}
                                        for a in arms.values()]

    def _subject_record(self, spec: DomainSpec, ds: Dataset, i: int) -> tuple[dict[str, Any], str, dict[str, dict]]:
        """(the record, its USUBJID, the resources of its subject by role): a subject DM has."""
        record = self._record(ds, i, spec)
        usubjid = str(record["USUBJID"])
        roles = self.subjects.get(usubjid)
        if roles is None:
            raise InputError(f"{ds.name} row {i + 1}: USUBJID {usubjid} is not in DM")
        return record, usubjid, roles

    def _event_record(self, spec: DomainSpec, ds: Dataset, i: int) -> None:
        record, usubjid, roles = self._subject_record(spec, ds, i)
        seq = record.get(f"{spec.domain}SEQ")
        key = seq if present(seq) else f"row{i}"
        resource = self._visit(spec, record, key) if spec.row_resource == "Encounter" else self._template(spec, "resource")
        resource.setdefault("id", resource_id(record["STUDYID"], spec.domain, usubjid, key))
        target = Target(self.version, {**roles, "resource": resource}, self.ms, record,
                        encounter_for=lambda vn: self._encounter(usubjid, vn, record.get("VISIT")),
                        zone=self.zone(record["STUDYID"]), dictionaries=self.dictionaries(ds))
        self._apply(spec, target)
        self._link(spec, resource, "patient", roles["patient"])
        self._link(spec, resource, "site", roles["site"])
        for rel in spec.relations:
            self._reference_related(resource, rel, self._related(spec.domain, record, self.ms.spec(rel.role).domain))
        if present(seq):
            self.by_seq[(spec.domain, usubjid, _idvarval(spec, record))] = resource
        if spec.row_resource != "Encounter":  # a visit's Encounter is in the output already
            self.out.add(resource)
        self._mark(resource, ds.name, i)

    def _subject_event(self, spec: DomainSpec, ds: Dataset, i: int) -> None:
        """A DS record: the informed consent on the subject's Consent (the first such record; R4 names
        one Consent), any other event as a progress entry of its ResearchSubject (R4: the pre-adopted
        extension), in DS order, which is the order to-sdtm reads them back (disposition.py)."""
        record, _, roles = self._subject_record(spec, ds, i)
        event = self._template(spec, "event")
        target = Target(self.version, {**roles, "event": event}, self.ms, record,
                        shapes={"event": ("R5", event.get("resourceType", ""))})
        self._apply(spec, target)
        event.pop("resourceType", None)
        subject = roles["resource"]
        consent = self._consent_for(spec, roles, record) if is_consent(event) else None
        if consent is not None:
            if "startDate" in event:
                path = next(s.criteria.path("date", self.version) for s in spec.sources if s.resource == "Consent")
                if path is not None and not path.values(lambda v: consent):
                    set_value(consent, path, event["startDate"], self.version, "Consent")
            self._mark(consent, ds.name, i)
            return
        add_progress(subject, event, self.version)
        if self.version == "R4":  # R4's own element for the state the subject is in: the last one written
            state = next((c["code"] for c in (event.get("subjectState") or {}).get("coding") or []
                          if c.get("system") == STATE_SYSTEM), None)
            if state:
                subject["status"] = state
        self._mark(subject, ds.name, i)

    def _consent_for(self, spec: DomainSpec, roles: dict, record: dict) -> dict | None:
        """The subject's Consent for its informed consent record: DM's (made for RFICDTC), else a new one;
        None when it carries a DS record already (a further consent is a progress milestone)."""
        consent = roles.get("consent")
        if consent is not None:
            return None if any(r[0] == spec.domain for r in read_records(consent)) else consent
        dm = self.specs["DM"]
        consent = self._template(dm, "consent")
        consent["id"] = resource_id(record["STUDYID"], "Consent", record["USUBJID"])
        path = dm.reverse.get("consent_link", {}).get(self.version)
        if path:
            consent[path] = _ref(roles["patient"])
        self._link(dm, roles["resource"], "consent", consent)
        roles["consent"] = self.out.add(consent)
        return consent

    def _visit(self, spec: DomainSpec, record: dict, key: Any) -> dict:
        """An SV record's Encounter: a planned visit's is the one the other domains' records point at
        (_encounter); an unplanned visit's has no visit code (its VISITNUM rides in sdtm-record)."""
        usubjid = str(record["USUBJID"])
        encounter = self._encounter(usubjid, record["VISITNUM"], record.get("VISIT")) if present(record.get("VISITNUM")) else None
        if encounter is None:
            encounter = self._visit_template()
            encounter["id"] = resource_id(record["STUDYID"], spec.domain, usubjid, key)
            encounter["subject"] = _ref(self.subjects[usubjid]["patient"])
            self.out.add(encounter)
        return encounter

    def _mark(self, resource: dict, dataset: str, row: int) -> None:
        """Where the resource came from; the cells that do not come back are added by the verify pass."""
        before = sum(1 for (d, _), r in self._marked.get(id(resource), ()) if d == dataset)
        resource.setdefault("extension", []).append(record_extension(dataset, row, {}))
        if "source" not in resource.get("meta", {}):  # the first record it holds
            resource.setdefault("meta", {})["source"] = f"tcim-interop:sdtm/{dataset.lower()}.xpt#row={row + 1}"
        self.out.rows[(dataset, row)] = resource
        key = f"{resource['resourceType']}/{resource['id']}"
        self.out.sources[(dataset, row)] = key if not before else f"{key}#{before}"
        self._marked.setdefault(id(resource), []).append(((dataset, row), resource))

    def _related(self, domain: str, record: dict, other: str) -> list[dict]:
        """The resources of the records of `other` that RELREC relates to this record (built before it:
        the datasets are built in the specs' order, EX before AE)."""
        usubjid, seq = str(record["USUBJID"]), _idvarval(self.specs[domain], record)
        out = []
        for members in self.relations.get((usubjid, domain, seq), ()):
            for rdomain, idvar, value in members:
                found = self.by_seq.get((rdomain, usubjid, value)) if (rdomain, idvar) == (other, f"{other}SEQ") else None
                if found is not None and found not in out:
                    out.append(found)
        return out

    def _reference_related(self, resource: dict, rel, targets: list[dict]) -> None:
        """The reference a relrec: entry reads (R4 suspectEntity.instance), to each related record's resource.
        FHIR requires what an AE is suspected of: an item (AEREL's causality) with no related record names
        the study treatment in words only, so that no relation is made up."""
        path = rel.path(self.version)
        head, _, tail = path.text.partition(".") if path is not None else ("", "", "")
        refs = [_ref(t) for t in targets]
        items = resource.setdefault(head, []) if refs else resource.get(head) or []
        for item in items:
            if tail not in item:
                item[tail] = refs.pop(0) if refs else {"display": "study treatment"}
        items += [{tail: ref} for ref in refs]


def _relations(relrec: list[dict]) -> dict[tuple[str, str, str], list[list[tuple[str, str, str]]]]:
    """RELREC by member: (USUBJID, RDOMAIN, IDVARVAL) -> the members (RDOMAIN, IDVAR, IDVARVAL) of each
    relationship (RELID) the record is in."""
    groups: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for r in relrec:
        groups.setdefault((str(r["USUBJID"]), str(r["RELID"])), []).append(
            (str(r["RDOMAIN"]), str(r["IDVAR"]), _key(r["IDVARVAL"])))
    out: dict[tuple[str, str, str], list[list[tuple[str, str, str]]]] = {}
    for (usubjid, _), members in groups.items():
        for rdomain, idvar, value in members:
            if idvar == f"{rdomain}SEQ":
                out.setdefault((usubjid, rdomain, value), []).append(members)
    return out


def _continuations(supp: dict[str, str], name: str) -> list[str]:
    """The rest of a text split over records (SDTMIG 4.5.3.2): SUPP QNAM name1, name2, ..."""
    chunks, n = [], 1
    while (cont := continuation_qnam(name, n)) in supp:
        chunks.append(str(supp[cont]))
        n += 1
    return chunks


def _idvarval(spec: DomainSpec, record: dict) -> str:
    seq = record.get(f"{spec.domain}SEQ")
    return f"{int(seq)}" if present(seq) else ""  # type: ignore[arg-type]  # present(): a number


# -- verify: to-sdtm of what was built must give the input back ---------------------------------------
def _norm(value: Any, kind: str) -> Any:
    if kind == "Char":
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return None if value is None or value == "" or (isinstance(value, float) and math.isnan(value)) else float(value)


# to-sdtm of resources in memory, given by the caller (sdtm_pipeline.map_resources: the domains and the
# trial design); passed in, since the pipeline that composes them stands above this module
ToSdtm = Callable[[list, MappingSet, Report], dict[str, Dataset]]


def _forward(resources: list[dict], ms: MappingSet, version: str, to_sdtm: ToSdtm) -> tuple[dict[str, Dataset], Report]:
    report = Report()
    inputs = [InputResource(r, "<to-fhir>", f"{r['resourceType']}/{r['id']}", version=version) for r in resources]
    return to_sdtm(inputs, ms, report), report


def _unequal(wants: list, haves: list, kind: str) -> list[int]:
    """Positions where two aligned columns differ once normalised (_norm). A column that is plainly
    equal (the same text, or the same numbers, with nulls in the same places) is told by one list
    comparison instead of two _norm calls per cell."""
    plain: set[type]
    if kind == "Char":
        w, h, plain = ["" if x is None else x for x in wants], ["" if x is None else x for x in haves], {str}
    else:
        w, h, plain = [None if x is None or x != x else x for x in wants], \
            [None if x is None or x != x else x for x in haves], {float, int, type(None)}
    if w == h and set(map(type, w)) <= plain:
        return []
    return [k for k, (a, b) in enumerate(zip(wants, haves, strict=True)) if _norm(a, kind) != _norm(b, kind)]


def carry_what_does_not_come_back(sdtm: dict[str, Dataset], built: Built, ms: MappingSet, version: str,
                                  to_sdtm: ToSdtm) -> None:
    forward, _ = _forward(built.resources, ms, version, to_sdtm)
    _carry_relrec(sdtm.get("RELREC"), forward.get("RELREC"), built)
    where: dict[tuple[str, str], tuple[str, int]] = {}  # (dataset, source) -> (forward dataset, row)
    for fname, ds in forward.items():
        for j, key in enumerate(ds.sources):
            where[(fname, key)] = (fname, j)
    by_dataset: dict[str, list[tuple[int, dict]]] = {}
    for (name, i), resource in built.rows.items():
        by_dataset.setdefault(name, []).append((i, resource))
    columns: dict[tuple[str, str], list] = {}  # forward (dataset, variable) -> its values
    for name, items in by_dataset.items():
        frame, locs = sdtm[name].frame, [where.get((name, built.sources[(name, i)])) for i, _ in items]
        cells: list[dict] = [{} for _ in items]
        for v in sdtm[name].variables:  # column by column: what each resource's row gives back
            col = frame[v.name].tolist()
            wants, haves = [col[i] for i, _ in items], []
            for loc in locs:
                if loc is not None and (loc[0], v.name) not in columns:
                    f = forward[loc[0]].frame
                    columns[(loc[0], v.name)] = f[v.name].tolist() if v.name in f.columns else [None] * len(f)
                haves.append(columns[(loc[0], v.name)][loc[1]] if loc is not None else None)
            for k in _unequal(wants, haves, v.type):
                cells[k][v.name] = _norm(wants[k], v.type)
        for (i, resource), carried in zip(items, cells, strict=True):
            if carried:  # the record's own extension, in its place among those the resource carries
                mine = [r[:2] for r in read_records(resource)].index((name, i))
                at = [k for k, e in enumerate(resource["extension"]) if e.get("url") == SDTM_RECORD][mine]
                resource["extension"][at] = record_extension(name, i, carried)
    supp_names = [n for n in sdtm if n.startswith("SUPP")]
    originals = {n: sdtm[n].frame.to_dict("records") for n in supp_names}  # SUPP and their parents only
    parent_names = {"DM"} | {r["RDOMAIN"] for n in supp_names for r in originals[n]}
    originals.update({n: sdtm[n].frame.to_dict("records") for n in parent_names if n in sdtm and n not in originals})
    study = next(r for r in built.resources if r["resourceType"] == "ResearchStudy" and "partOf" not in r)
    names = {name for name, _ in built.rows}
    for name, ds in sdtm.items():
        if name in names or name.startswith("SUPP"):
            study.setdefault("extension", []).append(
                dataset_extension(name, ds.label, [(v.name, v.label, v.type) for v in ds.variables]))
    parents = _parent_index(sdtm, originals)
    carried_fields = ms.suppqual.carried
    for name in sdtm:
        for i, r in enumerate(originals[name] if name.startswith("SUPP") else ()):
            row: Any = parents.get((r["RDOMAIN"], r["USUBJID"], r["IDVAR"], _key(r["IDVARVAL"])))
            if row is None:  # no such parent record: keep it on the subject
                row = parents[("DM", r["USUBJID"], "", "")]
            built.rows[row].setdefault("extension", []).append(supp_extension(i, r, carried_fields))


def _carry_relrec(wanted: Dataset | None, given: Dataset | None, built: Built) -> None:
    """A RELREC the references do not give back (RELIDs of another convention, relations the specs'
    relrec: entries do not make) rides whole on the overall study, as sdtm-record extensions of dataset
    RELREC; to-sdtm then puts it back instead of the one the references make (mapping/restore.py)."""
    if wanted is None or (given is not None and len(given) == len(wanted) and all(
            v.name in given.frame and not _unequal(wanted.frame[v.name].tolist(), given.frame[v.name].tolist(), v.type)
            for v in wanted.variables)):
        return
    study = next(r for r in built.resources if r["resourceType"] == "ResearchStudy" and "partOf" not in r)
    for i, r in enumerate(wanted.frame.to_dict("records")):
        study.setdefault("extension", []).append(record_extension("RELREC", i, {k: v for k, v in r.items() if present(v)}))


def _key(value: Any) -> str:
    """IDVARVAL as text: numbers without a trailing .0, so that 3.0 and "3" meet."""
    if isinstance(value, float):
        return "" if math.isnan(value) else (f"{int(value)}" if value.is_integer() else repr(value))
    try:
        return _key(float(value))
    except (TypeError, ValueError):
        return str(value)


def _parent_index(sdtm: dict[str, Dataset], originals: dict[str, list[dict]]) -> dict[tuple, tuple[str, int]]:
    """(RDOMAIN, USUBJID, IDVAR, IDVARVAL) -> the parent record a SUPP record points at."""
    wanted: dict[str, set[str]] = {}
    for name in sdtm:
        for r in originals[name] if name.startswith("SUPP") else ():
            wanted.setdefault(r["RDOMAIN"], set()).add(r["IDVAR"])
    index: dict[tuple, tuple[str, int]] = {}
    for domain, idvars in wanted.items():
        for i, rec in enumerate(originals.get(domain, ())):
            for idvar in idvars:
                if idvar in rec:
                    index.setdefault((domain, rec["USUBJID"], idvar, _key(rec[idvar])), (domain, i))
    for i, rec in enumerate(originals.get("DM", ())):
        index.setdefault(("DM", rec["USUBJID"], "", ""), ("DM", i))
    return index


def differences(sdtm: dict[str, Dataset], resources: list[dict], ms: MappingSet, version: str, to_sdtm: ToSdtm,
                limit: int = 20) -> tuple[int, int, list[str], list[str]]:
    """(cells compared, cells equal, first differences, cells XPT changes) of to-sdtm(resources) against
    the input. A cell given back equal in memory but holding text XPT v5 cannot (not printable ASCII: a
    typographic apostrophe, an accent) is not counted equal: written as XPT it comes back folded
    (sdtm/text.fold_ascii), so the figure holds for the files, not only for memory."""
    forward, _ = _forward(resources, ms, version, to_sdtm)
    compared = equal = 0
    folded: list[str] = []
    diffs: list[str] = []
    for name, ds in sdtm.items():
        got = forward.get(name)
        if got is None:
            diffs.append(f"{name}: not given back")
            compared += ds.frame.size
            continue
        if [v.name for v in got.variables] != [v.name for v in ds.variables]:
            diffs.append(f"{name}: variables differ")
        for v in ds.variables:
            glabel = next((g.label for g in got.variables if g.name == v.name), None)
            if glabel != v.label and len(diffs) < limit:
                diffs.append(f"{name}.{v.name}: label {glabel!r} != {v.label!r}")
            wants = ds.frame[v.name].tolist()
            haves = got.frame[v.name].tolist()[:len(wants)] if v.name in got.frame.columns else []
            unequal = _unequal(wants[:len(haves)], haves, v.type)
            unequal += [i for i in range(len(haves), len(wants)) if _norm(wants[i], v.type) != "<missing>"]
            compared += len(wants)
            equal += len(wants) - len(unequal)
            if v.type == "Char":
                skip = set(unequal)
                changed = [i for i, h in enumerate(haves) if i not in skip and isinstance(h, str) and fold_ascii(h) != h]
                equal -= len(changed)
                folded += [f"{name} row {i + 1} {v.name}" for i in changed]
            for i in unequal[:max(0, limit - len(diffs))]:
                have = _norm(haves[i], v.type) if i < len(haves) else "<missing>"
                diffs.append(f"{name} row {i + 1} {v.name}: {have!r} != {_norm(wants[i], v.type)!r}")
        if len(got.frame) != len(ds.frame):
            diffs.append(f"{name}: {len(got.frame)} rows given back, {len(ds.frame)} in the input")
    return compared, equal, diffs, folded


# the profile a resource conforms to, from its type and the dataset of its first SDTM record (None: no
# profile); given by the caller (fhir_pipeline: fhir.conformance.profile_url), which stands above this module
ProfileOf = Callable[[str, "str | None"], "str | None"]


def declare_profiles(resources: list[dict], sdtm: dict[str, Dataset], ms: MappingSet, version: str,
                     profile_of: ProfileOf) -> None:
    """meta.profile of every resource whose profile the project publishes (tcim-interop fhir-package, one
    package per release, the same URLs), only for the study study.yaml describes, since the profiles'
    bindings and patterns are its own: another study's SDTM (the CDISC pilot) claims none."""
    own = (ms.study.get("study") or {}).get("studyid")
    dm = sdtm.get("DM")
    if dm is None or set(map(str, dm.frame["STUDYID"])) != {str(own)}:
        return
    for r in resources:
        records = read_records(r)
        url = profile_of(r["resourceType"], records[0][0] if records else None)
        if url:
            r.setdefault("meta", {})["profile"] = [url]


def build_fhir(sdtm: dict[str, Dataset], ms: MappingSet, version: str, report: Report, to_sdtm: ToSdtm,
               verify: bool = True, jobs: int | None = None, timezone: str | None = None,
               profile_of: ProfileOf | None = None) -> list[dict]:
    """The resources of the datasets, each validated with fhir.resources (in `jobs` workers, while the
    round trip is checked here with to_sdtm): an invalid one is an INVALID_OUTPUT error. With profile_of,
    each resource declares the profile it conforms to in meta.profile."""
    builder = Builder(sdtm, ms, version, report, timezone)
    built = builder.build()
    if profile_of is not None:
        declare_profiles(built.resources, sdtm, ms, version, profile_of)

    mapped = {n: d for n, d in sdtm.items() if n in builder.specs or n in CARRIED_ON_STUDY or n == "RELREC"
              or (n.startswith("SUPP") and n[4:] in builder.specs)}
    carry_what_does_not_come_back(mapped, built, ms, version, to_sdtm)
    resources = built.resources  # final from here on: the round trip only reads them
    with Validation(len(resources), lambda i: (resources[i], version), jobs,
                    kinds={(version, r["resourceType"]) for r in resources}) as validation:
        if verify:
            compared, equal, diffs, folded = differences(mapped, built.resources, ms, version, to_sdtm)
            report.add("info", "ROUND_TRIP", f"to-sdtm of the output gives back {equal} of {compared} cells"
                       + (f" as XPT, {equal + len(folded)} as Dataset-JSON" if folded else ""))
            if folded:
                report.add("warning", "ROUND_TRIP_XPT_FOLDS",
                           f"{len(folded)} cell(s) hold text XPT v5 cannot (not printable ASCII): given back "
                           f"whole as Dataset-JSON, folded as XPT (study.yaml non_ascii), e.g. {', '.join(folded[:3])}")
            for d in diffs:
                report.error("ROUND_TRIP_MISMATCH", d)
        invalid = validation.reasons()
    for i, reason in invalid.items():
        report.error("INVALID_OUTPUT", reason, source=f"{resources[i]['resourceType']}/{resources[i]['id']}")
    return resources
