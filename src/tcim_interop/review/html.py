"""The review report as one self-contained HTML page: inline CSS and SVG, no script, no font, no
link out of the file, so it opens from a USB stick. Each plot has the table of the numbers it draws
beside it; numbers have fixed decimals; nothing but the package's own creation time is dated."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

import pandas as pd

from . import data, svg
from .data import Package

CSS = """
body{font-family:sans-serif;margin:1.5em auto;padding:0 1em;max-width:1400px;color:#000;background:#fff;line-height:1.35}
h1{font-size:1.6em}h2{border-bottom:2px solid #000;margin-top:2em}h3{margin-top:1.5em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #777;padding:2px 6px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;font-weight:bold;padding:2px 0}
svg.plot{flex:none;max-width:none}
figure{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start;margin:1em 0;page-break-inside:avoid}
figcaption{flex-basis:100%;font-style:italic}
.note{border-left:4px solid #000;padding:.3em .8em;background:#f2f2f2}
.scroll{max-height:30em;overflow:auto}
@media print{.scroll{max-height:none;overflow:visible}}
"""


def num(x: float | None, digits: int = 2) -> str:
    """Fixed decimals; a value that rounds to zero is "0.00", never "-0.00"."""
    return "" if x is None or pd.isna(x) else f"{round(float(x), digits) + 0.0:.{digits}f}"


def slug(*parts: str) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts)


def table(tid: str, caption: str, header: list[str], rows: Sequence[Sequence[object]],
          numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th scope="col"{" class=n" if i in numeric else ""}>{escape(h)}</th>' for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{escape(str(c))}</td>'
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table id="{tid}"><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def render(p: Package) -> str:
    dm = p.get("DM")
    study = str(dm["STUDYID"].iloc[0]) if "STUDYID" in dm and len(dm) else "the study"
    masked = data.is_masked(p)
    title = f"{study}: review report"
    intro = [f"<h1>{escape(title)}</h1>",
             f"<p>Built from the SDTM package alone (datasets: {escape(', '.join(sorted(p.datasets)))}). "
             f"Package created: {escape(data.created(p) or 'not recorded')}.</p>"]
    if masked:
        intro.append(note("Masked package (before unblinding): no arm and no side of treatment is shown; "
                          "every randomized subject is in one group."))
    body = intro + flow_section(p, masked) + readout_section(p, masked) + safety_section(p, masked) + \
        completeness_section(p, masked)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ---- (1) subject flow -------------------------------------------------------------------------------

def flow_section(p: Package, masked: bool) -> list[str]:
    f = data.subject_flow(p)
    arms = list(f.randomized)
    rows: list[tuple[str, dict[str, int]]] = [("Randomized", f.randomized), ("Treated", f.treated)]
    if f.completed is not None and f.discontinued is not None and f.ongoing is not None:
        rows.append(("Completed", f.completed))
        for reason in sorted({r for d in f.discontinued.values() for r in d}):
            rows.append((f"Discontinued: {reason}", {a: f.discontinued[a].get(reason, 0) for a in arms}))
        rows.append(("No disposition event", f.ongoing))
    rows.append(("Died (DM DTHFL)", f.died))
    columns = []
    for a in arms:
        col = [svg.Box([a if not masked else "Randomized (masked)", f"randomized n={f.randomized[a]}"], True),
               svg.Box(["Treated", f"n={f.treated[a]}"])]
        if f.completed is not None and f.discontinued is not None and f.ongoing is not None:
            col.append(svg.Box(["Completed", f"n={f.completed[a]}"]))
            lines = [f"{r}: {n}" for r, n in f.discontinued[a].items()] or ["none"]
            col.append(svg.Box([f"Discontinued n={sum(f.discontinued[a].values())}"] + lines))
            if f.ongoing[a]:
                col.append(svg.Box(["No disposition event", f"n={f.ongoing[a]}"]))
        col.append(svg.Box(["Died", f"n={f.died[a]}"]))
        columns.append(col)
    trunk = [svg.Box(["Screened", f"n={f.screened}"]), svg.Box(["Randomized", f"n={sum(f.randomized.values())}"])]
    side = [f"n={f.screen_failures}"] + ([f"not assigned n={f.not_assigned}"] if f.not_assigned else [])
    diagram = svg.flow_diagram("flow", "Subject flow", "Screened, screen failures, randomized by arm, treated, and "
                               "how the randomized subjects left the study, with counts.", trunk,
                               {0: svg.Box(["Screen failures"] + side)}, columns)
    header = ["Stage"] + arms + ["Total"]
    trows = [["Screened"] + [""] * len(arms) + [f.screened], ["Screen failures"] + [""] * len(arms) + [f.screen_failures]]
    trows += [[name] + [d.get(a, 0) for a in arms] + [sum(d.values())] for name, d in rows]
    out = ["<h2 id=\"sec-flow\">1. Subject flow</h2>", "<figure>", diagram,
           table("flow-table", "Subjects at each stage", header, trows, set(range(1, len(header)))),
           "<figcaption>Randomized: a subject with an arm in DM (ACTARMCD, else ARMCD"
           + ("; masked: ARMNRS MASKED" if masked else "") + "); treated: RFXSTDTC present; screen failures: "
           "ARMNRS SCREEN FAILURE" + (" or DS SCREEN FAILURE" if f.has_ds else "") + ".</figcaption></figure>"]
    if not f.has_ds:
        out.append(note("The package has no DS (disposition) dataset: completion and discontinuation cannot be "
                        "told; deaths come from DM (DTHFL)."))
    return out


# ---- (2) the MUNE readout ---------------------------------------------------------------------------

def _series(points: list[data.Point], test: str, loc: str) -> dict[str, list[svg.SeriesPoint]]:
    out: dict[str, list[svg.SeriesPoint]] = {}
    for pt in points:
        if pt.test == test and pt.loc == loc:
            out.setdefault(pt.series, []).append(svg.SeriesPoint(pt.visitnum, pt.stat.mean, pt.stat.low, pt.stat.high))
    return dict(sorted(out.items()))


def _point_rows(points: list[data.Point], test: str, loc: str) -> list[list[object]]:
    return [[pt.visit, pt.series, pt.stat.n, num(pt.stat.mean), num(pt.stat.low), num(pt.stat.high)]
            for pt in sorted(points, key=lambda q: (q.visitnum, q.series)) if pt.test == test and pt.loc == loc]


POINT_HEADER = ["Visit", "Group", "n", "Mean", "95% CI low", "95% CI high"]


def readout_section(p: Package, masked: bool) -> list[str]:
    dom = data.mune_domain(p)
    out = ["<h2 id=\"sec-readout\">2. Primary readout: MUNE</h2>"]
    if dom is None:
        return out + [note("The package has no MUNE domain (XM or NV).")]
    results = data.mune_results(p)
    if results.empty:
        return out + [note(f"{dom} holds no numeric result of a randomized subject.")]
    names = data.test_names(p)
    visits = data.visits(results)
    means, changes = data.arm_means(results), data.arm_changes(results)
    sides = [] if masked else data.side_changes(results)
    lines = data.trajectories(results)
    out.append(f"<p>From {dom}: --STRESN per test, muscle (--LOC) and visit. A subject's value at a visit is the "
               "mean of the sides measured; means with t-based 95% confidence intervals; thin grey lines are "
               "the subjects. Baseline: the record flagged --LOBXFL (else --BLFL); change from baseline is "
               "counted at the visits after it.</p>")
    for test in sorted(names):
        name, unit = names[test]
        ylabel = f"{name} ({unit})" if unit else name
        out.append(f"<h3>{escape(test)}: {escape(name)}</h3>")
        for loc in sorted(set(results.loc[results["TESTCD"] == test, "LOC"])):
            where = loc.lower() if loc else "location not recorded"
            uid = slug("mean", test, loc)
            series = _series(means, test, loc)
            desc = (f"Mean {name} by visit for each group in the {where}, with 95% confidence intervals and "
                    f"each subject's values as grey lines; the numbers are in the table beside the plot.")
            plot = svg.line_plot(uid, f"{test}, {where}", desc, visits, series, ylabel,
                                 list(lines.get((test, loc), {}).values()))
            out += ["<figure>", plot, table(f"{uid}-table", f"{test} {where}: mean by visit", POINT_HEADER,
                                            _point_rows(means, test, loc), {2, 3, 4, 5}), "</figure>"]
            cuid = slug("chg", test, loc)
            out.append(table(cuid, f"{test} {where}: change from baseline by group", POINT_HEADER,
                             _point_rows(changes, test, loc), {2, 3, 4, 5}))
            side_series = _series(sides, test, loc)
            if side_series:
                suid = slug("side", test, loc)
                sdesc = (f"Change from baseline of {name} in the {where} of the subjects given cells on one side: "
                         f"the cells side against the placebo side, means with 95% confidence intervals.")
                out += ["<figure>", svg.line_plot(suid, f"{test}, {where}: cells side vs placebo side", sdesc,
                                                  [v for v in visits if any(s.x == v[0] for ss in side_series.values() for s in ss)],
                                                  side_series, f"change in {ylabel}", zero_line=True),
                        table(f"{suid}-table", f"{test} {where}: change from baseline, cells side vs placebo side "
                              "(subjects treated on one side)", POINT_HEADER, _point_rows(sides, test, loc), {2, 3, 4, 5}),
                        "</figure>"]
    if masked:
        out.append(note("Masked: which side was treated is not shown, so the two sides of a subject are not compared."))
    return out


# ---- (3) safety -------------------------------------------------------------------------------------

def _frame_table(tid: str, caption: str, frame: pd.DataFrame) -> str:
    rows = [[num(v, 0) if isinstance(v, float) else v for v in r] for r in frame.itertuples(index=False)]
    numeric = {i for i, c in enumerate(frame.columns) if pd.api.types.is_numeric_dtype(frame[c])}
    return table(tid, caption, [str(c) for c in frame.columns], rows, numeric)


def safety_section(p: Package, masked: bool) -> list[str]:
    out = ["<h2 id=\"sec-safety\">3. Safety</h2>"]
    rows = data.ae_table(p)
    if not rows:
        out.append(note("The package has no AE records."))
    else:
        cols = data.ae_columns(p)
        header = ["System organ class", "Preferred term"] + [f"{c}: subjects" for c in cols] + [f"{c}: events" for c in cols]
        trs = [[r.soc, r.pt] + [r.subjects[c] for c in cols] + [r.events[c] for c in cols] for r in rows]
        out.append('<div class="scroll">' + table("ae-table", "Adverse events by SOC (AEBODSYS) and PT (AEDECOD): "
                                                  "subjects with at least one, and events", header, trs,
                                                  set(range(2, len(header)))) + "</div>")
    ser = data.serious_aes(p)
    out.append(_frame_table("sae-list", "Serious adverse events (AESER Y)", ser) if len(ser)
               else note("No serious adverse event (AESER Y)."))
    dead = data.deaths(p)
    out.append(_frame_table("deaths-list", "Deaths (DM DTHFL Y)", dead) if len(dead) else note("No death (DM DTHFL Y)."))
    inj = data.injection_site_events(p)
    if inj is None:
        out.append(note("Injection-site events by side: the package has no RELREC, so no adverse event is "
                        "related to the injection it followed; not shown."))
    else:
        what = "side as recorded (masked)" if masked else "cells side or placebo side"
        out.append(_frame_table("injection-site", f"Injection-site events (RELREC to the exposure record at the "
                                f"AE's AELOC/AELAT) by {what}", inj) if len(inj)
                   else note("No adverse event is related (RELREC) to an injection at its own site."))
    return out


# ---- (4) completeness and accounting ----------------------------------------------------------------

def completeness_section(p: Package, masked: bool) -> list[str]:
    out = ["<h2 id=\"sec-completeness\">4. Data completeness</h2>"]
    visits = data.completeness(p)
    if visits:
        rows = [[v.visit, "" if v.expected is None else v.expected, v.measured, v.not_done,
                 "" if v.no_record is None else v.no_record, v.records] for v in visits]
        bars = [(v.visit, [v.measured, v.not_done, max(v.no_record or 0, 0)]) for v in visits]
        plot = svg.stacked_bars("completeness-plot", "MUNE measures per visit", "For each visit, the MUNE "
                                "measures measured, not done, and expected but without a record.", bars,
                                ["result", "not done", "no record"])
        out += ["<figure>", plot, table("completeness", "MUNE measures per visit: expected (treated subjects x "
                                        "tests x muscles x sides, from the baseline visit on) and present",
                                        ["Visit", "Expected", "Measured", "Not done", "No record", "Records"], rows,
                                        {1, 2, 3, 4, 5}),
                "<figcaption>A measure is a subject's test in one muscle and side, counted once however many records "
                "it has (Records counts them all). A subject who died or left the study counts as no record at the "
                "visits after; a visit before baseline is not planned for every subject (no expected count)."
                "</figcaption></figure>"]
        nd = data.not_done_reasons(p)
        out.append(_frame_table("not-done", "Not done (--STAT NOT DONE) by visit and reason (--REASND)", nd)
                   if len(nd) else note("No MUNE measure is recorded as not done."))
    exp = data.exposure(p)
    if len(exp):
        if masked:
            exp = exp.drop(columns=["GROUP"])
        summary = exp.groupby("INJECTIONS").size().rename("SUBJECTS").reset_index()
        out += [_frame_table("exposure-summary", "Subjects by number of injections", summary),
                '<div class="scroll">' + _frame_table("exposure", "Exposure per subject", exp) + "</div>"]
    else:
        out.append(note("The package has no exposure dataset (EX or EC)."))
    out.append("<h2 id=\"sec-accounting\">5. The run's accounting</h2>")
    acc = data.accounting(p)
    if acc is None:
        return out + [note("The package has no run-report.json: no accounting of the input.")]
    t = acc.totals
    out.append(table("accounting", "Input resources: converted, rejected, out of scope",
                     ["Resource type", "Input", "Converted", "Rejected", "Out of scope"],
                     [[k, v["input"], v["converted"], v["rejected"], v["out_of_scope"]] for k, v in acc.by_type.items()]
                     + [["All", t["input"], t["converted"], t["rejected"], t["out_of_scope"]]], {1, 2, 3, 4}))
    out.append(f"<p>Input = converted + rejected + out of scope: "
               f"{'yes' if acc.adds_up else '<strong>NO</strong>'} ({t['input']} = {t['converted']} + "
               f"{t['rejected']} + {t['out_of_scope']}).</p>")
    out.append(table("findings-by-severity", "Findings by severity", ["Severity", "Findings"],
                     [[s, acc.findings.get(s, 0)] for s in ("error", "warning", "info")], {1}))
    out.append(table("findings-by-code", "Findings by severity and code", ["Severity", "Code", "Findings"],
                     [list(r) for r in acc.by_code], {2}))
    return out
