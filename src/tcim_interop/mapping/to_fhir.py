"""SDTM datasets -> FHIR resources, driven by the same specs as to-sdtm, and proven lossless.

    build    each DM record becomes a ResearchSubject, its Patient and Consent, under a site
             ResearchStudy partOf the overall one; each EX, AE and MUNE record its resource. The
             specs' reverse algorithms write the values into the elements their forward paths read.
             The study's own resources (studies, sites, arms, trial design) are built first
             (study_level), then the subjects a few at a time (subjects_part): memory holds one
             part's records and resources, not the study's (fhir_pipeline.py writes each part).
    verify   to-sdtm of what was built must give the input back, cell by cell (round_trip.py).
Ids are UUIDv5 of the study, dataset and record, so the same SDTM gives the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import InputError
from ..fhir.extensions import read_records, record_extension, whole_record_extension
from ..fhir.path import compile_path, set_value
from ..findings import Report
from ..mapping_spec.model import DomainSpec, MappingSet
from ..sdtm.dataset import Dataset, cell_text, present
from ..sdtm.records import Records
from ..sdtm.text import continuation_qnam, join_text
from ..trial_design import CARRIED as CARRIED_ON_STUDY, ON_SUBJECTS
from . import algorithms
from .disposition import STATE_SYSTEM, add_progress, is_consent
from .reverse_algorithms import Target, resource_id
from .statuses import Statuses


def link_path(spec: DomainSpec, role: str, version: str) -> str | None:
    """The element of the spec's resource that references the resource of `role` (reverse: links:)."""
    link = spec.reverse.get("links", {}).get(role)
    return link.get(version) if isinstance(link, dict) else link


def _ref(resource: dict) -> dict:
    return {"reference": f"{resource['resourceType']}/{resource['id']}"}


# A resource's place in the output: the record being built when it was made (the phase: DM, then each
# dataset in the specs' order, then the trial design; the row in its dataset), the study's own resources
# before a subject's made at the same record, then the order made. The output is in this order, which is
# the order of a study built dataset by dataset, although it is built subject by subject.
TRIAL_PHASE = 255


def place(phase: int, row: int, level: int, n: int) -> int:
    return phase << 56 | row << 24 | level << 23 | n


@dataclass
class Built:
    resources: list[dict] = field(default_factory=list)
    rows: dict[tuple[str, int], dict] = field(default_factory=dict)  # (dataset, row) -> its resource
    # (dataset, row) -> the source to-sdtm gives its record: the resource's key, and "#n" for the n-th
    # further record of that dataset it carries (a ResearchSubject's DS events)
    sources: dict[tuple[str, int], str] = field(default_factory=dict)
    places: list[int] = field(default_factory=list)  # each resource's place in the output (place())
    level: int = 1  # 0: the study's own resources (its sites, its trial design)
    at: tuple[int, int] = (0, 0)  # (phase, row) of the record being built

    def add(self, resource: dict) -> dict:
        self.resources.append(resource)
        self.places.append(place(*self.at, self.level, len(self.places)))
        return resource

    def keep(self, wanted: set[int]) -> None:
        """Keep only the resources whose id() is in wanted."""
        kept = [(r, k) for r, k in zip(self.resources, self.places, strict=True) if id(r) in wanted]
        self.resources, self.places = [r for r, _ in kept], [k for _, k in kept]
        self.rows.clear()
        self.sources.clear()


class Builder:
    def __init__(self, sdtm: dict[str, Dataset], ms: MappingSet, version: str, report: Report,
                 timezone: str | None = None):
        self.sdtm, self.ms, self.version, self.report = sdtm, ms, version, report
        self.timezone = timezone  # --timezone: the zone of every study in the input
        self.out = Built()
        self.studies: dict[str, dict] = {}
        self.sites: dict[tuple[str, str], dict] = {}
        self.subjects: dict[str, dict[str, dict]] = {}  # USUBJID -> roles
        self.statuses = Statuses(ms, version)  # the subjects' states as they are built, then the studies'
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
        return link_path(spec, role, self.version)

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
        """The subject's Encounter for a visit occurrence, the one every record of that visit points at
        (SV's gives it its period): a visit of the study's schedule (number and name both match) typed
        with its code; any other that SV records (an unplanned visit, another study's schedule) by its
        VISITNUM, typed by its VISIT in words only, since a code would be told again as a planned visit.
        None for a visit off the schedule that SV does not record: no Encounter is made up for it."""
        visit = next((v for v in self.ms.study.get("visits", []) if float(v["visitnum"]) == float(visitnum)
                      and (not present(visit_name) or v["visit"] == visit_name)), None)
        if visit is None and (usubjid, float(visitnum)) not in self.recorded_visits:
            return None
        key = (usubjid, visit["code"] if visit is not None else float(visitnum))
        if key not in self.encounters:
            enc = self._visit_template()
            enc["id"] = resource_id(usubjid, "visit", key[1] if visit is not None else f"{float(visitnum):g}")
            if visit is not None:
                enc["type"] = [{"coding": [{"system": self.ms.study["visit_system"], "code": visit["code"]}]}]
            elif present(visit_name):
                enc["type"] = [{"text": str(visit_name)}]
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

    # -- the study, then subject by subject ------------------------------------------------------------
    def prepare(self) -> None:
        """What building any subject reads: the records (sdtm/records.py: those every part reads held,
        the others made a part at a time by subjects_part), SUPP records by parent, RELREC by member, the
        datasets to build in their order and each one's rows by subject."""
        self.records = {name: Records(ds) for name, ds in self.sdtm.items()}
        for name in ("DM", "RELREC", *CARRIED_ON_STUDY):
            if name in self.records:
                self.records[name].hold_all()
        self.supp_index: dict[tuple[str, str, str], dict[str, str]] = {}
        for name in self.sdtm:
            for r in self.records[name] if name.startswith("SUPP") else ():
                key = (r["RDOMAIN"], str(r["USUBJID"]), str(r["IDVARVAL"]))
                self.supp_index.setdefault(key, {})[r["QNAM"]] = r["QVAL"]
        visits = next((s.domain for s in self.specs.values() if s.row_resource == "Encounter"), "")
        self.recorded_visits = {(str(r["USUBJID"]), float(r["VISITNUM"])) for r in self.records.get(visits, [])
                                if present(r.get("VISITNUM"))}  # (USUBJID, VISITNUM) of the SV records
        if self.sdtm.get("DM") is None:
            raise InputError("no DM dataset: every other domain's records need their subject in DM")
        self.relations = _relations(self.records.get("RELREC", []))
        order = {s.domain: i for i, s in enumerate(self.ms.domains.values())}  # EX before AE, which references it
        self.plan: list[tuple[str, Dataset, DomainSpec]] = [("DM", self.sdtm["DM"], self.specs["DM"])]
        for name, ds in sorted(self.sdtm.items(), key=lambda item: order.get(item[0], len(order))):
            if name in ("DM", "RELREC", *CARRIED_ON_STUDY, *ON_SUBJECTS) or name.startswith("SUPP"):
                continue
            spec = self.specs.get(name)
            if spec is None:
                self.report.add("warning", "DATASET_NOT_MAPPED", f"dataset {name} has no FHIR mapping: not converted",
                                domain=name)
                continue
            self.plan.append((name, ds, spec))
        # dataset -> USUBJID -> its rows, in order
        self.rows_of: dict[str, Mapping[str, Sequence[int]]] = {name: ds.subject_rows() for name, ds in self.sdtm.items()}

    def study_level(self) -> Built:
        """The studies and their sites (at the DM record of their first subject), their arms as every
        subject's DM record declares them, in DM order, and the trial design: what every subject refers to."""
        dm_spec, dm = self.specs["DM"], self.sdtm["DM"]
        self.out = Built(level=0)
        for i in range(len(dm)):  # the subjects' own resources made here are made again with each
            self.out.at = (0, i)
            self._dm_record(dm_spec, dm, i)
        self.out.keep({id(r) for r in (*self.studies.values(), *self.sites.values())})
        for name, ds, spec in self.plan[1:]:  # a record whose subject is not in DM: the first one, named
            for usubjid, rows in self.rows_of[name].items():
                if usubjid not in self.subjects:
                    self._subject_record(spec, ds, rows[0])
        for name in ON_SUBJECTS:
            for usubjid, rows in self.rows_of.get(name, {}).items():
                if usubjid not in self.subjects:
                    raise InputError(f"{name} row {rows[0] + 1}: USUBJID {usubjid} is not in DM")
        from ..trial_design.to_fhir import add_trial_design

        self.out.at = (TRIAL_PHASE, 0)
        add_trial_design(self)
        for studyid, arms in self.arms.items():
            self._write_arms(self.studies[studyid], arms)
        self.subject_ids = list(self.subjects)
        for made in (self.subjects, self.encounters, self.by_seq, self._marked):
            made.clear()  # every subject's resources, made again by its part: not held meanwhile
        return self.out

    def subjects_part(self, usubjids: list[str]) -> Built:
        """The resources of these subjects' records (DM's, then each dataset's in the specs' order). Their
        records stay held until the next part (mapping/round_trip.py reads them)."""
        for name, records in self.records.items():
            records.hold(i for u in usubjids for i in self.rows_of[name].get(u, ()))
        self.out = Built()
        for usubjid in usubjids:
            self.subjects.clear()
            self.encounters.clear()
            self.by_seq.clear()
            self._marked.clear()
            for phase, (name, ds, spec) in enumerate(self.plan):
                for i in self.rows_of[name].get(usubjid, ()):
                    self.out.at = (phase, i)
                    if name == "DM":
                        self._dm_record(spec, ds, i)
                    elif spec.sources:  # DS: events written on the subject's own resources
                        self._subject_event(spec, ds, i)
                    else:
                        self._event_record(spec, ds, i)
            subject = self.subjects[usubjid]["resource"]
            for name in ON_SUBJECTS:  # whole, as the trial design's on the study
                for i in self.rows_of.get(name, {}).get(usubjid, ()):
                    subject.setdefault("extension", []).append(
                        whole_record_extension(name, i, self.records[name][i]))
            dm_row = self.rows_of["DM"][usubjid][0]
            self.statuses.subject(self.records["DM"][dm_row], self.subjects[usubjid])
        return self.out

    def write_study_statuses(self) -> None:
        """The studies' and sites' states, once every part is built (mapping/statuses.py)."""
        self.statuses.studies([*self.studies.values(), *self.sites.values()])

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
        about = spec.reverse.get("about_patient", {})
        for role in about:  # %age: an Observation about the Patient, kept if a value is written into it
            template = self._template(spec, role)
            roles[role] = {"resourceType": template.pop("resourceType"), "id": resource_id(studyid, role, usubjid),
                           **template}
        target = Target(self.version, roles, self.ms, record, arms=self.arms[studyid], zone=self.zone(studyid))
        self._apply(spec, target)
        for role in ("patient", "site", "consent"):
            self._link(spec, subject, role, roles.get(role))
        self.out.add(patient)
        if "consent" in roles:
            self.out.add(roles["consent"])
        for role, link in about.items():
            if any(k.startswith("value") for k in roles[role]):
                roles[role][link[self.version]] = _ref(patient)
                self.out.add(roles[role])
            else:
                del roles[role]
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
        resource = self._visit(spec, record, key) if spec.row_resource == "Encounter" \
            else self._template(spec, _template_role(spec, record))
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
        """An SV record's Encounter: the one the other domains' records of that visit point at
        (_encounter); an unplanned visit's has no visit code (its VISITNUM rides in sdtm-record)."""
        usubjid = str(record["USUBJID"])
        encounter = self._encounter(usubjid, record["VISITNUM"], record.get("VISIT")) if present(record.get("VISITNUM")) else None
        if encounter is None or any(r[0] == spec.domain for r in read_records(encounter)):  # a visit SV holds twice
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


def _template_role(spec: DomainSpec, record: dict[str, Any]) -> str:
    """The template of a record's resource: `interval` (CM: a MedicationStatement) for a record of a spec
    with reverse.interval that is not one occurrence (no start, or an end other than the start), or that
    has a value of its `with` variables (a dosing frequency: what only the interval's resource holds)."""
    rule = spec.reverse.get("interval")
    if not rule:
        return "resource"
    start, end = record.get(rule["start"]), record.get(rule["end"])
    one = present(start) and start == end and not any(present(record.get(v)) for v in rule.get("with") or ())
    return "resource" if one else "interval"


def _relations(relrec: Iterable[dict]) -> dict[tuple[str, str, str], list[list[tuple[str, str, str]]]]:
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


def _key(value: Any) -> str:
    """IDVARVAL as text, read as a number where it is one, so that 3.0, "3" and "3.0" meet."""
    try:
        return cell_text(float(value))
    except (TypeError, ValueError):
        return cell_text(value)


# the profile a resource conforms to, from its type and the dataset of its first SDTM record (None: no
# profile); given by the caller (fhir_pipeline: fhir.conformance.profile_url), which stands above this module
ProfileOf = Callable[[str, "str | None"], "str | None"]


def profiles_apply(sdtm: dict[str, Dataset], ms: MappingSet) -> bool:
    """Whether the output declares the profiles the project publishes (tcim-interop fhir-package, one
    package per release, the same URLs): only for the study study.yaml describes, since the profiles'
    bindings and patterns are its own: another study's SDTM (the CDISC pilot) claims none."""
    own = (ms.study.get("study") or {}).get("studyid")
    dm = sdtm.get("DM")
    return dm is not None and set(map(str, dm.column("STUDYID"))) == {str(own)}


def declare_profiles(resources: list[dict], profile_of: ProfileOf) -> None:
    """meta.profile of every resource whose profile the project publishes (see profiles_apply)."""
    for r in resources:
        records = read_records(r)
        url = profile_of(r["resourceType"], records[0][0] if records else None)
        if url:
            r.setdefault("meta", {})["profile"] = [url]
