"""What the review report says, computed from an SDTM package alone (SDTMIG 3.4 variables, so any
package serves): subject flow (DM, DS), the MUNE readout (XM or NV), safety (AE, RELREC), data
completeness (the MUNE domain, EX or EC) and the run's accounting (run-report.json). Numbers only;
review/html.py and review/svg.py write them. Every list is sorted, so the same package gives the same
report."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..lazy import LazyMap
from ..sdtm.dataset import Dataset, with_text_columns
from ..sdtm.read import read_package
from .stats import Mean, mean_ci

MASKED = "MASKED"
ALL = "All subjects"   # the one group of a masked package
CELLS, PLACEBO_SIDE = "cells side", "placebo side"


@dataclass
class Package:
    """The package as the report reads it: its datasets by name, its run report and manifest (or {})."""
    datasets: Mapping[str, pd.DataFrame]  # each made when first read (of_datasets)
    run_report: dict
    manifest: dict
    # what once_per_package functions gave for it: a package is only read, and every section asks for
    # its groups and masking again
    answers: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

    def has(self, name: str) -> bool:
        return name in self.datasets and len(self.datasets[name]) > 0

    def get(self, name: str) -> pd.DataFrame:
        return self.datasets.get(name, pd.DataFrame())


def read(path: Path, datasets: Mapping[str, Dataset] | None = None) -> Package:
    """The package at path; datasets: its datasets as read_package would give them, when the caller holds
    them already (to-sdtm, which has just written them: package_writer.as_read_back)."""
    if datasets is None:
        datasets, _ = read_package(path)
    return of_datasets(datasets, _json(path / "run-report.json"), _json(path / "manifest.json"))


def of_datasets(datasets: Mapping[str, Dataset], run_report: dict | None = None, manifest: dict | None = None
                ) -> Package:
    """The report's view of the datasets; a dataset's frame is made when a section first reads it (a report
    reads a few of a package's datasets: DM, DS, AE, RELREC, the exposure and the MUNE domain)."""
    return Package(LazyMap({n: functools.partial(_text_blank, datasets, n) for n in datasets}), run_report or {},
                   manifest or {})


def once_per_package(f: Callable[[Package], object]) -> Callable[[Package], Any]:
    """f(p) computed once for each package (its result is shared: read it, never change it)."""
    @functools.wraps(f)
    def answer(p: Package) -> Any:
        if f.__name__ not in p.answers:
            p.answers[f.__name__] = f(p)
        return p.answers[f.__name__]
    return answer


def _text_blank(datasets: Mapping[str, Dataset], name: str) -> pd.DataFrame:
    """The dataset's text stripped, "" where missing (built once from its columns: pandas' own work per
    column assignment dominated on small datasets)."""
    frame = datasets[name].frame

    def blank(col: pd.Series) -> list[str]:
        values = col.to_numpy()
        return ["" if m else str(x).strip() for x, m in zip(values.tolist(), pd.isna(values).tolist(), strict=True)]

    return with_text_columns(frame, {c: blank(col) for c, col in frame.items() if col.dtype == object})


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@once_per_package
def is_masked(p: Package) -> bool:
    """Before unblinding: DM says MASKED, or exposure is in EC as MASKED with no EX (SDTMIG 3.4 6.1.3)."""
    dm, ec = p.get("DM"), p.get("EC")
    if "ARMNRS" in dm and (dm["ARMNRS"] == MASKED).any():
        return True
    return not p.has("EX") and "ECTRT" in ec and (ec["ECTRT"] == MASKED).any()


def created(p: Package) -> str:
    """The package's own creation time (manifest, else run report): the only time the report shows."""
    return str(p.manifest.get("options", {}).get("created") or p.run_report.get("created", {}).get("value") or "")


# the arm codes packages written before SDTMIG 3.4 (ARMNRS) gave subjects without an arm, e.g. the CDISC pilot
NO_ARM_CODES = {"SCRNFAIL", "NOTASSGN", "NOTTRT"}


@once_per_package
def screen_failures(p: Package) -> set[str]:
    """DM ARMNRS SCREEN FAILURE, an old-style SCRNFAIL arm code, or a DS SCREEN FAILURE."""
    dm, ds = p.get("DM"), p.get("DS")
    nrs = dm.get("ARMNRS", pd.Series("", index=dm.index))
    code = dm.get("ARMCD", pd.Series("", index=dm.index)).str.upper()
    failures = set(dm.loc[(nrs == "SCREEN FAILURE") | (code == "SCRNFAIL"), "USUBJID"])
    if "DSDECOD" in ds:
        failures |= set(ds.loc[ds["DSDECOD"] == "SCREEN FAILURE", "USUBJID"])
    return failures


@once_per_package
def arms(p: Package) -> pd.Series:
    """USUBJID -> the group a subject is reported in: the actual arm (else the planned), "All subjects"
    when masked; screen failures and subjects never assigned get no group."""
    dm = p.get("DM")
    if is_masked(p):
        grouped = dm["ARMNRS"] == MASKED if "ARMNRS" in dm else pd.Series(True, index=dm.index)
        return pd.Series(ALL, index=dm.loc[grouped, "USUBJID"].values, dtype=object)
    planned = dm.get("ARMCD", pd.Series("", index=dm.index))
    arm = dm.get("ACTARMCD", pd.Series("", index=dm.index)).where(lambda s: ~s.str.upper().isin(NO_ARM_CODES) & (s != ""),
                                                                 planned)
    keep = (arm != "") & ~arm.str.upper().isin(NO_ARM_CODES) & ~dm["USUBJID"].isin(screen_failures(p))
    return pd.Series(arm[keep].values, index=dm.loc[keep, "USUBJID"].values, dtype=object)  # object: "" fills


def group_of(group: pd.Series, ids: pd.Series, default: str = "") -> list[str]:
    """Each subject's group (arms' result), `default` for a subject in none."""
    return [str(group.get(u, default)) for u in ids]


def arm_order(p: Package) -> list[str]:
    return sorted(set(arms(p)))


# ---- (1) subject flow -------------------------------------------------------------------------------

@dataclass
class Flow:
    screened: int
    screen_failures: int
    not_assigned: int
    randomized: dict[str, int]
    treated: dict[str, int]
    completed: dict[str, int] | None              # None: no DS
    discontinued: dict[str, dict[str, int]] | None
    ongoing: dict[str, int] | None                # randomized, no disposition event
    died: dict[str, int]
    has_ds: bool


def subject_flow(p: Package) -> Flow:
    dm = p.get("DM")
    group = arms(p)
    nrs = dm.get("ARMNRS", pd.Series("", index=dm.index))
    failures = screen_failures(p)
    ds = p.get("DS")
    has_ds = p.has("DS") and {"DSDECOD", "DSCAT", "USUBJID"} <= set(ds.columns)
    order = arm_order(p)
    treated_ids = set(dm.loc[dm.get("RFXSTDTC", pd.Series("", index=dm.index)) != "", "USUBJID"])
    dead = set(dm.loc[dm.get("DTHFL", pd.Series("", index=dm.index)) == "Y", "USUBJID"])

    def count(ids: set[str]) -> dict[str, int]:
        return {a: int(sum(1 for u, g in group.items() if g == a and u in ids)) for a in order}

    flow = Flow(len(dm), len(failures), int(((nrs != "") & (nrs != "SCREEN FAILURE") & (nrs != MASKED)).sum()),
                count(set(group.index)), count(treated_ids), None, None, None, count(dead), has_ds)
    if has_ds:
        events = ds[ds["DSCAT"] == "DISPOSITION EVENT"]
        by = ["USUBJID", "DSSTDTC"] if "DSSTDTC" in events else ["USUBJID"]
        last = events.sort_values(by, kind="stable").groupby("USUBJID")["DSDECOD"].last()
        flow.completed = count(set(last[last == "COMPLETED"].index))
        flow.discontinued = {a: {} for a in order}
        for u, term in last[(last != "COMPLETED") & (last != "SCREEN FAILURE")].items():
            if u in group.index:
                reasons = flow.discontinued[group[u]]
                reasons[term] = reasons.get(term, 0) + 1
        flow.discontinued = {a: dict(sorted(r.items())) for a, r in flow.discontinued.items()}
        flow.ongoing = count(set(group.index) - set(last.index))
    return flow


# ---- (2) the MUNE readout ---------------------------------------------------------------------------

def mune_domain(p: Package) -> str | None:
    """NV when the package has NV (the standard domain a reviewer asked for), else XM."""
    return next((d for d in ("NV", "XM") if p.has(d)), None)


def mune_records(p: Package) -> pd.DataFrame:
    """The MUNE domain with the domain prefix dropped (TESTCD, LOC, LAT, STRESN, ...), every record."""
    dom = mune_domain(p)
    if dom is None:
        return pd.DataFrame()
    frame = p.get(dom).rename(columns=lambda c: c[2:] if c.startswith(dom) and c != dom else c)
    for c in ("LOC", "LAT", "STAT", "REASND", "LOBXFL", "BLFL", "STRESU", "TEST", "VISIT"):
        if c not in frame:
            frame[c] = ""
    for c in ("STRESN", "VISITNUM"):   # Expected variables: a package without them has no number to show
        if c not in frame:
            frame[c] = float("nan")
    return frame


def mune_results(p: Package) -> pd.DataFrame:
    """The MUNE records with a numeric result, each with its subject's group and, when unmasked, its side
    (cells or placebo, from the side EX gives the product on) and change from baseline (LOBXFL, else BLFL)."""
    frame = mune_records(p)
    if frame.empty:
        return frame
    frame = frame[frame["STRESN"].notna()].copy()
    group = arms(p)
    frame = frame[frame["USUBJID"].isin(group.index)].copy()
    frame["GROUP"] = frame["USUBJID"].map(group)
    flag = frame["LOBXFL"].where(frame["LOBXFL"] != "", frame["BLFL"])
    keys = ["USUBJID", "TESTCD", "LOC", "LAT"]
    base = frame[flag == "Y"].drop_duplicates(keys)[keys + ["STRESN", "VISITNUM"]]
    frame = frame.merge(base.rename(columns={"STRESN": "BASE", "VISITNUM": "BASEVIS"}), on=keys, how="left")
    frame["CHG"] = (frame["STRESN"] - frame["BASE"]).where(frame["VISITNUM"] > frame["BASEVIS"])
    frame["SIDE"] = ""
    if not is_masked(p):
        treated = treated_sides(p)
        frame["SIDE"] = [(CELLS if lat in treated[u] else PLACEBO_SIDE) if u in treated and lat else ""
                         for u, lat in zip(frame["USUBJID"], frame["LAT"], strict=True)]
    return frame


def treated_sides(p: Package) -> dict[str, set[str]]:
    """USUBJID -> the sides given the product (EX records not PLACEBO with a dose), for subjects whose
    EX also has a placebo side: the subjects who are their own control."""
    ex = p.get("EX")
    if not {"EXTRT", "EXLAT", "USUBJID"} <= set(ex.columns):
        return {}
    product = ex["EXTRT"] != "PLACEBO"
    cells = ex[product & (ex["EXLAT"] != "")].groupby("USUBJID")["EXLAT"].agg(set)
    placebo = ex[~product & (ex["EXLAT"] != "")].groupby("USUBJID")["EXLAT"].agg(set)
    return {u: s for u, s in cells.items() if u in placebo.index and not (s & placebo[u])}


@dataclass(frozen=True)
class Point:
    test: str
    loc: str
    visitnum: float
    visit: str
    series: str
    stat: Mean


def visits(results: pd.DataFrame) -> list[tuple[float, str]]:
    pairs = results[["VISITNUM", "VISIT"]].drop_duplicates().sort_values(["VISITNUM", "VISIT"])
    return [(float(n), str(v)) for n, v in pairs.itertuples(index=False)]


def subject_values(results: pd.DataFrame, value: str) -> pd.DataFrame:
    """One value per subject, test, muscle and visit (the mean of the sides measured): the unit a
    comparison between arms counts."""
    per = results[results[value].notna()]
    return (per.groupby(["TESTCD", "LOC", "VISITNUM", "VISIT", "GROUP", "USUBJID"], as_index=False)[value].mean())


def means_by(frame: pd.DataFrame, value: str, series: str) -> list[Point]:
    points = []
    for (t, loc, vn, v, s), g in frame.groupby(["TESTCD", "LOC", "VISITNUM", "VISIT", series], sort=True):
        points.append(Point(str(t), str(loc), float(vn), str(v), str(s), mean_ci([float(x) for x in g[value]])))
    return points


def arm_means(results: pd.DataFrame) -> list[Point]:
    return means_by(subject_values(results, "STRESN"), "STRESN", "GROUP")


def arm_changes(results: pd.DataFrame) -> list[Point]:
    return means_by(subject_values(results, "CHG"), "CHG", "GROUP")


def side_changes(results: pd.DataFrame) -> list[Point]:
    """Within the subjects treated on one side: change from baseline on the cells side and the placebo
    side, per muscle (one value per subject, side, muscle and visit)."""
    own = results[(results["SIDE"] != "") & results["CHG"].notna()]
    per = own.groupby(["TESTCD", "LOC", "VISITNUM", "VISIT", "SIDE", "USUBJID"], as_index=False)["CHG"].mean()
    return means_by(per, "CHG", "SIDE")


def trajectories(results: pd.DataFrame) -> dict[tuple[str, str], dict[str, list[tuple[float, float]]]]:
    """(test, muscle) -> USUBJID -> [(visit number, the subject's value)], for the thin grey lines."""
    out: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = {}
    per = subject_values(results, "STRESN").sort_values(["TESTCD", "LOC", "USUBJID", "VISITNUM"])
    for (t, loc, u), g in per.groupby(["TESTCD", "LOC", "USUBJID"], sort=True):
        out.setdefault((str(t), str(loc)), {})[str(u)] = [(float(a), float(b)) for a, b in
                                                         zip(g["VISITNUM"], g["STRESN"], strict=True)]
    return out


def test_names(p: Package) -> dict[str, tuple[str, str]]:
    """TESTCD -> (TEST, standard unit)."""
    frame = mune_records(p)
    named = {}
    for t, g in frame.groupby("TESTCD", sort=True):
        units = sorted(set(g["STRESU"]) - {""})
        named[str(t)] = (str(g["TEST"].iloc[0]), units[0] if units else "")
    return named


# ---- (3) safety -------------------------------------------------------------------------------------

@dataclass
class AeRow:
    soc: str
    pt: str            # "" for the SOC's own row
    subjects: dict[str, int]
    events: dict[str, int]


def ae_table(p: Package) -> list[AeRow]:
    """Subjects and events by SOC (AEBODSYS) and PT (AEDECOD) per group, plus "Total"."""
    ae = p.get("AE")
    if not p.has("AE"):
        return []
    group = arms(p)
    ae = ae.assign(**{c: ae.get(c, "") for c in ("AEBODSYS", "AEDECOD")})
    ae = ae.assign(GROUP=group_of(group, ae["USUBJID"], "No group"))
    cols = sorted(set(ae["GROUP"]))

    def counts(g: pd.DataFrame) -> tuple[dict[str, int], dict[str, int]]:
        subj = {c: int(g.loc[g["GROUP"] == c, "USUBJID"].nunique()) for c in cols}
        ev = {c: int((g["GROUP"] == c).sum()) for c in cols}
        subj["Total"], ev["Total"] = int(g["USUBJID"].nunique()), len(g)
        return subj, ev

    rows = [AeRow("Any adverse event", "", *counts(ae))]
    for soc, g in ae.groupby("AEBODSYS", sort=True):
        rows.append(AeRow(str(soc), "", *counts(g)))
        for pt, h in g.groupby("AEDECOD", sort=True):
            rows.append(AeRow(str(soc), str(pt), *counts(h)))
    return rows


def ae_columns(p: Package) -> list[str]:
    ae = p.get("AE")
    if not p.has("AE"):
        return []
    group = arms(p)
    return sorted(set(group_of(group, ae["USUBJID"], "No group"))) + ["Total"]


def serious_aes(p: Package) -> pd.DataFrame:
    ae = p.get("AE")
    if not p.has("AE") or "AESER" not in ae:
        return pd.DataFrame()
    cols = [c for c in ("USUBJID", "AESEQ", "AEDECOD", "AEBODSYS", "AESTDTC", "AESTDY", "AEOUT", "AESDTH") if c in ae]
    ser = ae.loc[ae["AESER"] == "Y", cols].copy()
    ser.insert(1, "GROUP", group_of(arms(p), ser["USUBJID"]))
    return ser.sort_values(["USUBJID", "AESEQ"] if "AESEQ" in ser else ["USUBJID"], kind="stable")


def deaths(p: Package) -> pd.DataFrame:
    dm, ae = p.get("DM"), p.get("AE")
    if "DTHFL" not in dm:
        return pd.DataFrame()
    dead = dm.loc[dm["DTHFL"] == "Y", [c for c in ("USUBJID", "DTHDTC") if c in dm]].copy()
    dead.insert(1, "GROUP", group_of(arms(p), dead["USUBJID"]))
    if "AESDTH" in ae:
        fatal = ae[ae["AESDTH"] == "Y"].groupby("USUBJID")["AEDECOD"].agg(lambda s: "; ".join(sorted(s)))
        dead["FATAL AE"] = [fatal.get(u, "") for u in dead["USUBJID"]]
    return dead.sort_values("USUBJID", kind="stable")


def injection_site_events(p: Package) -> pd.DataFrame | None:
    """AEs that RELREC relates to an exposure record (EX, or EC when masked) at the same location and
    side (AELOC/AELAT), counted by group and by side: cells or placebo side (unmasked), else the side
    as recorded. None when the package has no RELREC."""
    if not p.has("RELREC"):
        return None
    rel, ae = p.get("RELREC"), p.get("AE")
    dom = "EX" if p.has("EX") else "EC"
    exp = p.get(dom)
    if ae.empty or exp.empty:
        return pd.DataFrame(columns=["GROUP", "SIDE", "EVENTS", "SUBJECTS"])
    ids = rel.assign(SEQ=pd.to_numeric(rel["IDVARVAL"], errors="coerce"))
    ae_ids = ids[(ids["RDOMAIN"] == "AE") & (ids["IDVAR"] == "AESEQ")][["USUBJID", "RELID", "SEQ"]]
    ex_ids = ids[(ids["RDOMAIN"] == dom) & (ids["IDVAR"] == f"{dom}SEQ")][["USUBJID", "RELID", "SEQ"]]
    pairs = ae_ids.merge(ex_ids, on=["USUBJID", "RELID"], suffixes=("_AE", "_EX"))
    pairs = pairs.merge(ae.rename(columns={"AESEQ": "SEQ_AE"}), on=["USUBJID", "SEQ_AE"])
    pairs = pairs.merge(exp.rename(columns={f"{dom}SEQ": "SEQ_EX"}), on=["USUBJID", "SEQ_EX"])
    at_site = pairs[(pairs.get("AELAT", "") != "") & (pairs.get("AELAT", "") == pairs[f"{dom}LAT"])
                    & (pairs.get("AELOC", "") == pairs[f"{dom}LOC"])]
    at_site = at_site.drop_duplicates(["USUBJID", "SEQ_AE"])
    group = arms(p)
    side = at_site[f"{dom}LAT"] if is_masked(p) else at_site[f"{dom}TRT"].map(
        lambda t: PLACEBO_SIDE if t == "PLACEBO" else CELLS)
    counted = at_site.assign(GROUP=group_of(group, at_site["USUBJID"]), SIDE=side)
    out = counted.groupby(["GROUP", "SIDE"], sort=True).agg(EVENTS=("SEQ_AE", "size"), SUBJECTS=("USUBJID", "nunique"))
    return out.reset_index()


# ---- (4) completeness and accounting ----------------------------------------------------------------

@dataclass
class VisitCompleteness:
    visitnum: float
    visit: str
    expected: int | None   # None: a visit before baseline, not planned for every subject
    measured: int          # measures (subject, test, muscle, side) with a result
    not_done: int          # measures recorded as not done only
    records: int           # every record, repeats included

    @property
    def no_record(self) -> int | None:
        return None if self.expected is None else self.expected - self.measured - self.not_done


def completeness(p: Package) -> list[VisitCompleteness]:
    """Per visit: expected measures (every treated subject x every test, muscle and side the domain
    holds, from the baseline visit on), measured, not done (--STAT) and no record at all. A measure is
    counted once however many records it has; at an expected visit only treated subjects count."""
    frame = mune_records(p)
    if frame.empty:
        return []
    dm = p.get("DM")
    treated = set(dm.loc[dm.get("RFXSTDTC", pd.Series("", index=dm.index)) != "", "USUBJID"])
    keys = ["USUBJID", "TESTCD", "LOC", "LAT"]
    grid = len(frame[keys[1:]].drop_duplicates())
    flag = frame["LOBXFL"].where(frame["LOBXFL"] != "", frame["BLFL"])
    base_visits = frame.loc[flag == "Y", "VISITNUM"]
    first = float(base_visits.mode().min()) if len(base_visits) else float(frame["VISITNUM"].min())
    out = []
    for (vn, v), g in frame.groupby(["VISITNUM", "VISIT"], sort=True):
        planned = vn >= first
        counted = g[g["USUBJID"].isin(treated)] if planned else g
        measured = counted.loc[counted["STRESN"].notna(), keys].drop_duplicates()
        nd = counted.loc[counted["STAT"] == "NOT DONE", keys].drop_duplicates()
        done = set(measured.itertuples(index=False, name=None))  # a merge and a query cost more on small frames
        nd_only = sum(1 for k in nd.itertuples(index=False, name=None) if k not in done)
        out.append(VisitCompleteness(float(vn), str(v), len(treated) * grid if planned else None, len(measured),
                                     nd_only, len(g)))
    return out


def not_done_reasons(p: Package) -> pd.DataFrame:
    frame = mune_records(p)
    if frame.empty:
        return pd.DataFrame()
    nd = frame[frame["STAT"] == "NOT DONE"].assign(REASND=lambda f: f["REASND"].replace("", "(no reason given)"))
    return (nd.groupby(["VISITNUM", "VISIT", "REASND"], sort=True).size().rename("RECORDS").reset_index())


def exposure(p: Package) -> pd.DataFrame:
    """Per subject: injections, muscles and sides injected (EX, else EC), and when unmasked the side
    given the product."""
    dom = "EX" if p.has("EX") else "EC" if p.has("EC") else None
    if dom is None:
        return pd.DataFrame()
    exp = p.get(dom)
    group = arms(p)
    rows = []
    treated = {} if is_masked(p) else treated_sides(p)
    for u, g in exp.groupby("USUBJID", sort=True):
        row = {"USUBJID": u, "GROUP": group.get(u, ""), "INJECTIONS": len(g),
               "MUSCLES": ", ".join(sorted(set(g.get(f"{dom}LOC", pd.Series(dtype=str))) - {""})),
               "SIDES": ", ".join(sorted(set(g.get(f"{dom}LAT", pd.Series(dtype=str))) - {""}))}
        if not is_masked(p):
            row["CELLS SIDE"] = ", ".join(sorted(treated.get(u, set())))
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class Accounting:
    totals: dict[str, int]
    by_type: dict[str, dict[str, int]]
    findings: dict[str, int]
    by_code: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def adds_up(self) -> bool:
        t = self.totals
        return t.get("input", 0) == t.get("converted", 0) + t.get("rejected", 0) + t.get("out_of_scope", 0)


def accounting(p: Package) -> Accounting | None:
    r = p.run_report
    if not r:
        return None
    res = r.get("resources", {})
    keys = ("input", "converted", "rejected", "out_of_scope")
    by_code: dict[tuple[str, str], int] = {}
    for f in r.get("findings", []):
        k = (str(f.get("severity", "")), str(f.get("code", "")))
        by_code[k] = by_code.get(k, 0) + 1
    rank = {"error": 0, "warning": 1, "info": 2}
    return Accounting({k: int(res.get(k, 0)) for k in keys},
                      {t: {k: int(v.get(k, 0)) for k in keys} for t, v in sorted(res.get("by_resource_type", {}).items())},
                      {k: int(v) for k, v in r.get("findings_by_severity", {}).items()},
                      sorted(((s, c, n) for (s, c), n in by_code.items()), key=lambda x: (rank.get(x[0], 3), x[1])))
