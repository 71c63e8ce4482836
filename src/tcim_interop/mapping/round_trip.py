"""to-fhir's proof that nothing is lost, made part by part: a few subjects at a time, then the study.

    carry    to-sdtm is run on a part's resources (with the study's own resources they refer to), cell by
             cell against the input: a cell that does not come back (no FHIR home, or re-derivation would
             change it) is carried in its resource's sdtm-record extension; SUPPxx records ride in
             sdtm-supp on their parent record's resource, or are Observations of their own when no spec
             makes any of the dataset's QNAMs (mapping/qualifiers.py: another study's flags). A RELREC the references do not give back rides
             whole on the overall study (decided once every part is seen).
    compare  a second to-sdtm pass on the part's final resources must give its records back exactly; the
             figures of every part add up to the study's (ROUND_TRIP), the trial design and a carried
             RELREC are compared once, on the study's own resources.

A part's to-sdtm sees the overall study and the part's resources (SE rides on each subject's
ResearchSubject): what a subject's records give back depends on that subject and the study, never on
another subject, so the figures are the ones of one to-sdtm of the whole output.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..fhir.extensions import (
    SDTM_RECORD,
    dataset_extension,
    read_records,
    record_extension,
    supp_extension,
    whole_record_extension,
)
from ..fhir.read import InputResource
from ..findings import Report
from ..mapping_spec.model import MappingSet
from ..sdtm.dataset import Dataset
from ..sdtm.text import continuation_qnam, fold_ascii
from ..trial_design import CARRIED as CARRIED_ON_STUDY
from .qualifiers import qualifier_observations
from .to_fhir import TRIAL_PHASE, Built, _key, link_path, place

# the Observations of SUPPxx records: after every dataset's resources, before the trial design
# (to_fhir.TRIAL_PHASE), dataset by dataset (the row's top bits), record by record
QUALIFIER_PHASE = TRIAL_PHASE - 1

# to-sdtm of resources in memory, given by the caller (sdtm_pipeline.map_resources: the domains and the
# trial design); passed in, since the pipeline that composes them stands above this module
ToSdtm = Callable[[list, MappingSet, Report], dict[str, Dataset]]


def _norm(value: Any, kind: str) -> Any:
    if kind == "Char":
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return None if value is None or value == "" or (isinstance(value, float) and math.isnan(value)) else float(value)


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


def overall_study(resources: list[dict]) -> dict:
    return next(r for r in resources if r["resourceType"] == "ResearchStudy" and "partOf" not in r)


class Figures:
    """The cells compared and given back, dataset by dataset, over the parts; the first differences and
    folded cells in dataset, variable, row order (as one comparison of the whole datasets lists them)."""

    def __init__(self, sdtm: dict[str, Dataset], limit: int = 20):
        self.sdtm, self.limit = sdtm, limit
        self.order = {name: k for k, name in enumerate(sdtm)}
        self.compared = self.equal = self.folded = 0
        self.examples: list[tuple[tuple, str]] = []  # the first folded cells
        self.cells: list[tuple[tuple, str]] = []  # the first differing cells
        self.notes: dict[str, list[str]] = {}  # dataset -> what differs in it as a whole
        self.given: dict[str, int] = {}  # dataset -> rows given back
        self.checked: set[str] = set()  # datasets whose variables and labels were compared

    def _note(self, name: str, text: str) -> None:
        self.notes.setdefault(name, []).append(text)

    @staticmethod
    def _first(found: list, items: list, limit: int) -> list:
        return heapq.nsmallest(limit, found + items) if items else found

    def add(self, name: str, rows: list[int], records: Sequence[dict], got: Dataset | None) -> None:
        """The records `rows` of dataset `name` against `got`, to-sdtm's dataset of the same records."""
        ds = self.sdtm[name]
        if got is None:
            if rows:
                self._note(name, f"{name}: not given back")
                self.compared += len(rows) * len(ds.columns)
            return
        self.given[name] = self.given.get(name, 0) + len(got.frame)
        if name not in self.checked:
            self.checked.add(name)
            if [v.name for v in got.variables] != [v.name for v in ds.variables]:
                self._note(name, f"{name}: variables differ")
            for v in ds.variables:
                glabel = next((g.label for g in got.variables if g.name == v.name), None)
                if glabel != v.label:
                    self._note(name, f"{name}.{v.name}: label {glabel!r} != {v.label!r}")
        if not rows:
            return
        at = self.order[name]
        for j, v in enumerate(ds.variables):
            wants = [records[i][v.name] for i in rows]
            haves = got.frame[v.name].tolist()[:len(wants)] if v.name in got.frame.columns else []
            unequal = _unequal(wants[:len(haves)], haves, v.type)
            unequal += [k for k in range(len(haves), len(wants)) if _norm(wants[k], v.type) != "<missing>"]
            self.compared += len(wants)
            self.equal += len(wants) - len(unequal)
            if v.type == "Char":
                skip = set(unequal)
                changed = [k for k, h in enumerate(haves) if k not in skip and isinstance(h, str) and fold_ascii(h) != h]
                self.equal -= len(changed)
                self.folded += len(changed)
                self.examples = self._first(self.examples, [((at, j, rows[k]), f"{name} row {rows[k] + 1} {v.name}")
                                                            for k in changed[:3]], 3)
            cells = []
            for k in unequal[:self.limit]:
                have = _norm(haves[k], v.type) if k < len(haves) else "<missing>"
                cells.append(((at, j, rows[k]),
                              f"{name} row {rows[k] + 1} {v.name}: {have!r} != {_norm(wants[k], v.type)!r}"))
            self.cells = self._first(self.cells, cells, self.limit)

    def absorb(self, other: Figures) -> None:
        self.compared += other.compared
        self.equal += other.equal
        self.folded += other.folded
        self.examples = self._first(self.examples, other.examples, 3)
        self.cells = self._first(self.cells, other.cells, self.limit)
        for name, notes in other.notes.items():
            self.notes.setdefault(name, []).extend(notes)
        for name, n in other.given.items():
            self.given[name] = self.given.get(name, 0) + n
        self.checked |= other.checked

    def differences(self) -> list[str]:
        """What differs: each dataset's notes (once each), its row count, then the first cells."""
        out = []
        for name, ds in self.sdtm.items():
            out += list(dict.fromkeys(self.notes.get(name, [])))
            if name in self.given and self.given[name] != len(ds):
                out.append(f"{name}: {self.given[name]} rows given back, {len(ds)} in the input")
        return out + [text for _, text in self.cells]


class RoundTrip:
    """carry and compare part by part (see the module's docstring); `finish` once every part is written.
    records, rows_of: the Builder's (each dataset's records, those of the part being built held, with those
    of DM, RELREC and the trial design: sdtm/records.py; dataset -> USUBJID -> rows)."""

    def __init__(self, sdtm: dict[str, Dataset], records: Mapping[str, Sequence[dict]],
                 rows_of: dict[str, Mapping[str, Sequence[int]]],
                 ms: MappingSet, version: str, to_sdtm: ToSdtm):
        self.sdtm, self.records, self.rows_of = sdtm, records, rows_of
        self.ms, self.version, self.to_sdtm = ms, version, to_sdtm
        self.per_subject = [n for n in sdtm if n not in CARRIED_ON_STUDY and n != "RELREC"]
        self.figures = Figures(sdtm)
        # decided once for the study, not per part, so that the output does not depend on the parts
        self.as_observations = [n for n in sdtm if n.startswith("SUPP") and not _spec_makes_any(ms, n, records[n])]
        self.relrec = Figures(sdtm)  # RELREC as the references give it back, part by part
        self.relrec_back, self.relrec_rows = True, 0

    def _rows(self, name: str, usubjids: list[str]) -> list[int]:
        by_subject = self.rows_of.get(name, {})
        return sorted(i for u in usubjids for i in by_subject.get(u, ()))

    # -- the study's own resources ---------------------------------------------------------------------
    def settle_study(self, study: Built, built_datasets: set[str]) -> None:
        """The datasets' own variables (order, labels) on the overall study (sdtm-dataset), for those
        built (built_datasets) and the SUPP ones."""
        self.study = study
        overall = overall_study(study.resources)
        self.relrec_at = len(overall.get("extension") or [])  # a RELREC carried whole goes here
        for name, ds in self.sdtm.items():
            if name in built_datasets or name.startswith("SUPP"):
                overall.setdefault("extension", []).append(
                    dataset_extension(name, ds.label, [(v.name, v.label, v.type) for v in ds.variables]))

    def _forward(self, part: Built) -> dict[str, Dataset]:
        places = [*self.study.places, *part.places]
        resources = [*self.study.resources, *part.resources]
        ordered = [resources[k] for k in sorted(range(len(places)), key=places.__getitem__)]
        return forward(ordered, self.ms, self.version, self.to_sdtm)

    # -- a part ------------------------------------------------------------------------------------------
    def carry(self, part: Built, usubjids: list[str]) -> None:
        """Carry what to-sdtm of the part does not give back (see the module's docstring)."""
        given = self._forward(part)
        self._check_relrec(given.get("RELREC"), usubjids)
        where: dict[tuple[str, str], tuple[str, int]] = {}  # (dataset, source) -> (forward dataset, row)
        for fname, ds in given.items():
            for j, key in enumerate(ds.sources):
                where[(fname, key)] = (fname, j)
        by_dataset: dict[str, list[tuple[int, dict]]] = {}
        for (name, i), resource in part.rows.items():
            by_dataset.setdefault(name, []).append((i, resource))
        columns: dict[tuple[str, str], list] = {}  # forward (dataset, variable) -> its values
        for name, items in by_dataset.items():
            records, locs = self.records[name], [where.get((name, part.sources[(name, i)])) for i, _ in items]
            cells: list[dict] = [{} for _ in items]
            for v in self.sdtm[name].variables:  # column by column: what each resource's row gives back
                wants, haves = [records[i][v.name] for i, _ in items], []
                for loc in locs:
                    if loc is not None and (loc[0], v.name) not in columns:
                        f = given[loc[0]].frame
                        columns[(loc[0], v.name)] = f[v.name].tolist() if v.name in f.columns else [None] * len(f)
                    haves.append(columns[(loc[0], v.name)][loc[1]] if loc is not None else None)
                for k in _unequal(wants, haves, v.type):
                    cells[k][v.name] = _norm(wants[k], v.type)
            for (i, resource), carried in zip(items, cells, strict=True):
                if carried:  # the record's own extension, in its place among those the resource carries
                    mine = [r[:2] for r in read_records(resource)].index((name, i))
                    at = [k for k, e in enumerate(resource["extension"]) if e.get("url") == SDTM_RECORD][mine]
                    resource["extension"][at] = record_extension(name, i, carried)
        self._carry_supp(part, usubjids)

    def _carry_supp(self, part: Built, usubjids: list[str]) -> None:
        """Each SUPP record on its parent record's resource; without one, on its subject's."""
        supp_names = [n for n in self.sdtm if n.startswith("SUPP")]
        supp = {n: self._rows(n, usubjids) for n in supp_names}
        wanted: dict[str, set[str]] = {}
        for name, rows in supp.items():
            for i in rows:
                r = self.records[name][i]
                wanted.setdefault(r["RDOMAIN"], set()).add(r["IDVAR"])
        parents: dict[tuple, tuple[str, int]] = {}  # (RDOMAIN, USUBJID, IDVAR, IDVARVAL) -> parent record
        for domain, idvars in wanted.items():
            for i in self._rows(domain, usubjids) if domain in self.sdtm else ():
                rec = self.records[domain][i]
                for idvar in idvars:
                    if idvar in rec:
                        parents.setdefault((domain, rec["USUBJID"], idvar, _key(rec[idvar])), (domain, i))
        for i in self._rows("DM", usubjids):
            parents.setdefault(("DM", self.records["DM"][i]["USUBJID"], "", ""), ("DM", i))
        carried_fields = self.ms.suppqual.carried
        shared = Counter(part.sources.values())
        patient_link = link_path(self.ms.spec("dm"), "patient", self.version) or ""
        for name, rows in supp.items():
            if name in self.as_observations:
                made = qualifier_observations(name, [(i, self.records[name][i]) for i in rows], lambda r: _qualified(
                    r, parents, self.records, part, shared, patient_link))
                if made is not None:  # else, for a record that cannot be told from its resource alone: sdtm-supp
                    k = self.as_observations.index(name)
                    part.resources += made
                    part.places += [place(QUALIFIER_PHASE, k << 24 | i, 1, 0) for i in rows]
                    continue
            for i in rows:
                r = self.records[name][i]
                row: Any = parents.get((r["RDOMAIN"], r["USUBJID"], r["IDVAR"], _key(r["IDVARVAL"])))
                if row is None:  # no such parent record: keep it on the subject
                    row = parents[("DM", r["USUBJID"], "", "")]
                part.rows[row].setdefault("extension", []).append(supp_extension(i, r, carried_fields))

    def _check_relrec(self, given: Dataset | None, usubjids: list[str]) -> None:
        """Whether the references give the part's RELREC records back (all of them, cell for cell)."""
        if "RELREC" not in self.sdtm:
            return
        wanted, rows = self.sdtm["RELREC"], self._rows("RELREC", usubjids)
        self.relrec_rows += len(rows)
        if not rows and given is None:
            return
        records = self.records["RELREC"]
        self.relrec_back = self.relrec_back and given is not None and len(given) == len(rows) and all(
            v.name in given.frame and not _unequal([records[i][v.name] for i in rows], given.frame[v.name].tolist(), v.type)
            for v in wanted.variables)

    def compare(self, part: Built, usubjids: list[str]) -> None:
        """The part's records against to-sdtm of its final resources."""
        given = self._forward(part)
        for name in self.per_subject:
            self.figures.add(name, self._rows(name, usubjids), self.records[name], given.get(name))
        if "RELREC" in self.sdtm:
            self.relrec.add("RELREC", self._rows("RELREC", usubjids), self.records["RELREC"], given.get("RELREC"))

    # -- the study, once every part is written ---------------------------------------------------------
    def finish(self, firsts: list[dict], verify: bool) -> Figures:
        """A RELREC the references do not give back, whole on the overall study; with verify, the figures
        of the study: its parts' and those of the datasets it carries, given back by to-sdtm of its own
        resources with the first subject of each study (whose DM record makes the study's trial design)."""
        wanted = self.sdtm.get("RELREC")
        carried = wanted is not None and not (self.relrec_back and self.relrec_rows == len(wanted))
        if carried:
            assert wanted is not None
            overall = overall_study(self.study.resources)
            overall["extension"][self.relrec_at:self.relrec_at] = [
                whole_record_extension("RELREC", i, r)
                for i, r in enumerate(self.records["RELREC"])]
        if not verify:
            return self.figures
        if wanted is not None and not carried:
            self.figures.absorb(self.relrec)
        resources = sorted(zip(self.study.places, self.study.resources, strict=True), key=lambda pr: pr[0])
        given = forward([r for _, r in resources] + firsts, self.ms, self.version, self.to_sdtm)
        for name in self.sdtm:
            if name in CARRIED_ON_STUDY or (name == "RELREC" and carried):
                self.figures.add(name, list(range(len(self.sdtm[name]))), self.records[name], given.get(name))
            elif name in self.per_subject and not len(self.sdtm[name]):  # no part had it
                self.figures.add(name, [], [], given.get(name))
                if name not in given:
                    self.figures._note(name, f"{name}: not given back")
        return self.figures


def _spec_makes_any(ms: MappingSet, supp: str, records: Iterable[dict]) -> bool:
    """Whether to-sdtm makes any QNAM of the SUPPxx dataset: one the domain's spec declares (supplemental,
    a translation's text as sent), or a continuation of one or of a variable's text (AETERM1)."""
    spec = next((s for s in ms.domains.values() if s.domain == supp[4:]), None)
    if spec is None:
        return False
    names = {sq.qnam for sq in spec.supplemental} | {v.translate.qnam for v in spec.variables if v.translate}
    stems = names | {v.name for v in spec.variables}
    for qnam in {str(r.get("QNAM") or "") for r in records}:
        m = re.fullmatch(r"(.*?)([1-9][0-9]*)", qnam)
        if qnam in names or (m and any(continuation_qnam(x, int(m[2])) == qnam for x in stems)):
            return True
    return False


def _qualified(r: dict, parents: dict, records: Mapping[str, Sequence[dict]], part: Built, shared: Counter,
               patient_link: str) -> tuple[dict, dict, dict] | None:
    """(the parent record, its resource, the subject's Patient reference: the DM resource's patient_link)
    of a SUPP record, when to-sdtm can tell that record from the resource alone: the resource holds no
    other record (DM's ResearchSubject may hold DS events too: to-sdtm takes DM's)."""
    at = parents.get((r["RDOMAIN"], r["USUBJID"], r["IDVAR"], _key(r["IDVARVAL"])))
    dm = parents.get(("DM", r["USUBJID"], "", ""))
    if at not in part.sources or dm not in part.rows or "#" in part.sources[at] \
            or (at[0] != "DM" and shared[part.sources[at]] > 1):
        return None
    patient = part.rows[dm].get(patient_link) if patient_link else None
    return (records[at[0]][at[1]], part.rows[at], patient) if patient else None


def forward(resources: list[dict], ms: MappingSet, version: str, to_sdtm: ToSdtm) -> dict[str, Dataset]:
    inputs = [InputResource(r, "<to-fhir>", f"{r['resourceType']}/{r['id']}", version=version) for r in resources]
    return to_sdtm(inputs, ms, Report())
