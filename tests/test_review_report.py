"""The review report (issue 18): `tcim-interop report PACKAGE_DIR --out report.html`, and report.html
in every package to-sdtm writes. Its numbers are checked against pandas computations on the package
(read with read_sdtm, written here independently of tcim_interop.review); a masked package gives a
report naming no arm; the same package gives the same bytes; headless Chromium renders every plot."""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from conftest import DATA, ROOT, need_external
from typer.testing import CliRunner

from tcim_interop import read_sdtm, to_sdtm
from tcim_interop.cli import app
from tcim_interop.review import data, review_report
from tcim_interop.review.html import render
from tcim_interop.review.stats import t975
from tcim_interop.sdtm.dataset import Dataset

SHIPPED = ROOT / "examples" / "tcim-elaii-100-report.html"
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def page(example_package) -> str:
    return (example_package / "report.html").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def sdtm(example_package) -> dict[str, pd.DataFrame]:
    return {n: d.frame for n, d in read_sdtm(example_package).items()}


def html_table(page: str, tid: str) -> pd.DataFrame:
    """The table of that id; a column whose filled cells are all numbers is numeric (a blank cell NaN)."""
    table = pd.read_html(io.StringIO(page), attrs={"id": tid}, keep_default_na=False)[0]
    for c in table.columns:
        filled = table[c][table[c].astype(str) != ""]
        if len(filled) and pd.to_numeric(filled, errors="coerce").notna().all():
            table[c] = pd.to_numeric(table[c].replace("", None))
    return table


def blank(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.strip()


def arm_of(dm: pd.DataFrame) -> pd.Series:
    arm = blank(dm["ACTARMCD"]).where(blank(dm["ACTARMCD"]) != "", blank(dm["ARMCD"]))
    return pd.Series(arm.values, index=dm["USUBJID"]).loc[lambda s: s != ""]


# ---- the numbers -------------------------------------------------------------------------------------

def test_flow_counts_are_dm_s(page, sdtm):
    dm = sdtm["DM"]
    arm = arm_of(dm)
    table = html_table(page, "flow-table").set_index("Stage")
    assert table.loc["Screened", "Total"] == len(dm)
    assert table.loc["Screen failures", "Total"] == (blank(dm["ARMNRS"]) == "SCREEN FAILURE").sum() > 0
    treated = set(dm.loc[blank(dm["RFXSTDTC"]) != "", "USUBJID"])
    for a, n in arm.value_counts().items():
        assert table.loc["Randomized", a] == n
        assert table.loc["Treated", a] == sum(1 for u, g in arm.items() if g == a and u in treated)
        assert table.loc["Died (DM DTHFL)", a] == sum(1 for u in dm.loc[blank(dm["DTHFL"]) == "Y", "USUBJID"]
                                                      if arm.get(u) == a)
    if "DS" not in sdtm:
        assert "no DS (disposition) dataset" in page


def _subject_means(sdtm: dict[str, pd.DataFrame], value: str) -> pd.DataFrame:
    """One value per subject, test, muscle and visit (mean of sides), with the subject's arm, and the
    change from the flagged baseline at later visits."""
    xm = sdtm["XM"].copy()
    xm = xm[xm["XMSTRESN"].notna()]
    xm["ARM"] = xm["USUBJID"].map(arm_of(sdtm["DM"]))
    xm = xm[xm["ARM"].notna()]
    keys = ["USUBJID", "XMTESTCD", "XMLOC", "XMLAT"]
    base = xm[blank(xm["XMLOBXFL"]) == "Y"].drop_duplicates(keys)[keys + ["XMSTRESN", "VISITNUM"]]
    xm = xm.merge(base, on=keys, suffixes=("", "_B"), how="left")  # a measure with no baseline has no change
    xm["CHG"] = (xm["XMSTRESN"] - xm["XMSTRESN_B"]).where(xm["VISITNUM"] > xm["VISITNUM_B"])
    return xm.groupby(["XMTESTCD", "XMLOC", "VISITNUM", "VISIT", "ARM", "USUBJID"], as_index=False)[value].mean()


def _check_means(page: str, tid: str, per_subject: pd.DataFrame, value: str, series: str) -> int:
    scipy_stats = pytest.importorskip("scipy.stats")
    shown = html_table(page, tid)
    assert len(shown)
    checked = 0
    for row in shown.itertuples(index=False):
        vals = per_subject.loc[(per_subject["VISIT"] == row.Visit) & (per_subject[series] == row.Group), value].dropna()
        n, m, sd = len(vals), vals.mean(), vals.std(ddof=1)
        half = scipy_stats.t.ppf(0.975, n - 1) * sd / n ** 0.5
        assert (row.n, f"{row.Mean:.2f}") == (n, f"{round(m, 2) + 0:.2f}"), (tid, row)
        assert abs(row[4] - (m - half)) <= 0.00501 and abs(row[5] - (m + half)) <= 0.00501, (tid, row)
        checked += 1
    return checked


@pytest.mark.parametrize("test", ["MUNIX", "D50", "CMAPAMP"])
def test_means_by_arm_and_visit_with_t_intervals(page, sdtm, test):
    per = _subject_means(sdtm, "XMSTRESN")
    for loc in sorted(set(blank(sdtm["XM"]["XMLOC"]))):
        one = per[(per["XMTESTCD"] == test) & (per["XMLOC"] == loc)]
        tid = f"mean-{test.lower()}-{loc.lower().replace(' ', '-')}-table"
        assert _check_means(page, tid, one, "XMSTRESN", "ARM") == len(one.groupby(["VISIT", "ARM"]))


def test_change_from_baseline_by_arm(page, sdtm):
    per = _subject_means(sdtm, "CHG")
    one = per[(per["XMTESTCD"] == "MUNIX") & (per["XMLOC"] == "TIBIALIS ANTERIOR MUSCLE")].dropna(subset=["CHG"])
    assert _check_means(page, "chg-munix-tibialis-anterior-muscle", one, "CHG", "ARM") == len(one.groupby(["VISIT", "ARM"]))


def test_cells_side_against_placebo_side_within_the_cells_arm(page, sdtm):
    ex = sdtm["EX"]
    cells = ex[ex["EXTRT"] != "PLACEBO"].groupby("USUBJID")["EXLAT"].agg(set)
    xm = sdtm["XM"].copy()
    xm = xm[xm["XMSTRESN"].notna() & xm["USUBJID"].isin(cells.index)]
    keys = ["USUBJID", "XMTESTCD", "XMLOC", "XMLAT"]
    base = xm[blank(xm["XMLOBXFL"]) == "Y"].drop_duplicates(keys)[keys + ["XMSTRESN", "VISITNUM"]]
    xm = xm.merge(base, on=keys, suffixes=("", "_B"))
    xm["CHG"] = (xm["XMSTRESN"] - xm["XMSTRESN_B"]).where(xm["VISITNUM"] > xm["VISITNUM_B"])
    xm["ARM"] = ["cells side" if lat in cells[u] else "placebo side" for u, lat in zip(xm["USUBJID"], xm["XMLAT"], strict=True)]
    d50 = xm[(xm["XMTESTCD"] == "D50") & (xm["XMLOC"] == "TIBIALIS ANTERIOR MUSCLE")]
    per = d50.groupby(["VISITNUM", "VISIT", "ARM", "USUBJID"], as_index=False)["CHG"].mean().dropna()
    assert set(arm_of(sdtm["DM"])[per["USUBJID"]]) == {"MNC"}  # the subjects given cells on one side
    assert _check_means(page, "side-d50-tibialis-anterior-muscle-table", per, "CHG", "ARM") == 8


def test_adverse_events_by_soc_and_pt_per_arm(page, sdtm):
    ae = sdtm["AE"].assign(ARM=lambda f: f["USUBJID"].map(arm_of(sdtm["DM"])))
    shown = html_table(page, "ae-table")
    shown["Preferred term"] = blank(shown["Preferred term"])
    pts = ae.groupby(["AEBODSYS", "AEDECOD"])
    assert len(shown) == 1 + ae["AEBODSYS"].nunique() + len(pts)
    for (soc, pt), g in pts:
        row = shown[(shown["System organ class"] == soc) & (shown["Preferred term"] == pt)].iloc[0]
        for arm in sorted(ae["ARM"].unique()):
            assert row[f"{arm}: events"] == (g["ARM"] == arm).sum()
            assert row[f"{arm}: subjects"] == g.loc[g["ARM"] == arm, "USUBJID"].nunique()
        assert row["Total: subjects"] == g["USUBJID"].nunique()
    top = shown.iloc[0]
    assert (top["Total: events"], top["Total: subjects"]) == (len(ae), ae["USUBJID"].nunique())
    listed = html_table(page, "sae-list")
    assert sorted(listed["USUBJID"]) == sorted(ae.loc[ae["AESER"] == "Y", "USUBJID"])
    dead = html_table(page, "deaths-list")
    assert list(dead["USUBJID"]) == list(sdtm["DM"].loc[blank(sdtm["DM"]["DTHFL"]) == "Y", "USUBJID"])
    if "RELREC" not in sdtm:
        assert "has no RELREC" in page


def test_completeness_per_visit(page, sdtm):
    xm, dm = sdtm["XM"], sdtm["DM"]
    treated = set(dm.loc[blank(dm["RFXSTDTC"]) != "", "USUBJID"])
    grid = len(xm[["XMTESTCD", "XMLOC", "XMLAT"]].drop_duplicates())
    shown = html_table(page, "completeness").set_index("Visit")
    for visit, g in xm[xm["USUBJID"].isin(treated)].groupby("VISIT"):
        if visit == "SCREENING":
            continue
        keys = g[["USUBJID", "XMTESTCD", "XMLOC", "XMLAT"]]
        measured = keys[g["XMSTRESN"].notna()].drop_duplicates()
        assert shown.loc[visit, "Expected"] == len(treated) * grid
        assert shown.loc[visit, "Measured"] == len(measured)
        assert shown.loc[visit, "Records"] == (xm["VISIT"] == visit).sum()
        assert shown.loc[visit, "Measured"] + shown.loc[visit, "Not done"] + shown.loc[visit, "No record"] == \
            len(treated) * grid
    reasons = html_table(page, "not-done")
    assert reasons["RECORDS"].sum() == (blank(xm["XMSTAT"]) == "NOT DONE").sum() > 0
    exposure = html_table(page, "exposure").set_index("USUBJID")
    assert exposure["INJECTIONS"].to_dict() == sdtm["EX"].groupby("USUBJID").size().to_dict()


def test_accounting_and_findings_are_the_run_report_s(page, example_package):
    run = json.loads((example_package / "run-report.json").read_text())
    shown = html_table(page, "accounting").set_index("Resource type")
    res = run["resources"]
    assert shown.loc["All"].tolist() == [res["input"], res["converted"], res["rejected"], res["out_of_scope"]]
    for kind, counts in res["by_resource_type"].items():
        assert shown.loc[kind, "Input"] == counts["input"]
    assert "Input = converted + rejected + out of scope: yes" in page
    sev = html_table(page, "findings-by-severity").set_index("Severity")["Findings"].to_dict()
    assert sev == {s: run["findings_by_severity"].get(s, 0) for s in ("error", "warning", "info")}
    codes = html_table(page, "findings-by-code")
    assert codes["Findings"].sum() == len(run["findings"])


def test_t_quantile_is_student_s():
    scipy_stats = pytest.importorskip("scipy.stats")
    for df in list(range(1, 200)) + [500, 10_000]:
        assert abs(t975(df) - scipy_stats.t.ppf(0.975, df)) < 2e-6, df


# ---- DS and RELREC, when the package has them ---------------------------------------------------------

def _with(datasets: dict[str, Dataset], name: str, frame: pd.DataFrame) -> dict[str, Dataset]:
    out = dict(datasets)
    out[name] = Dataset(name, name, [], frame)
    return out


def test_disposition_from_ds(example_conversion):
    datasets = read_sdtm(example_conversion[1])
    dm = datasets["DM"].frame
    randomized = list(dm.loc[blank(dm["ARMCD"]) != "", "USUBJID"])
    terms = ["COMPLETED"] * (len(randomized) - 3) + ["ADVERSE EVENT", "WITHDRAWAL BY SUBJECT", "DEATH"]
    ds = pd.DataFrame({"USUBJID": randomized, "DSDECOD": terms, "DSCAT": "DISPOSITION EVENT",
                       "DSSTDTC": "2022-01-01"})
    milestone = pd.DataFrame({"USUBJID": randomized[:1], "DSDECOD": ["INFORMED CONSENT OBTAINED"],
                              "DSCAT": ["PROTOCOL MILESTONE"], "DSSTDTC": ["2021-01-01"]})
    page = render(data.of_datasets(_with(datasets, "DS", pd.concat([ds, milestone]))))
    table = html_table(page, "flow-table").set_index("Stage")
    arm = arm_of(dm)
    assert table.loc["Completed", "Total"] == len(randomized) - 3
    for term, u in zip(terms[-3:], randomized[-3:], strict=True):
        assert table.loc[f"Discontinued: {term}", arm[u]] == 1
    assert "no DS (disposition) dataset" not in page


def test_injection_site_events_by_side_from_relrec(example_conversion):
    datasets = read_sdtm(example_conversion[1])
    ex, ae = datasets["EX"].frame, datasets["AE"].frame.copy()
    # two AEs of the first subjects, related to one cells injection and one placebo injection each
    subjects = [u for u in ae["USUBJID"].unique() if (ex.loc[ex["USUBJID"] == u, "EXTRT"] != "PLACEBO").any()][:2]
    rel, want = [], {"cells side": 0, "placebo side": 0}
    for i, u in enumerate(subjects):
        seq = ae.loc[ae["USUBJID"] == u, "AESEQ"].iloc[0]
        pick = ex[(ex["USUBJID"] == u) & ((ex["EXTRT"] == "PLACEBO") == bool(i))].iloc[0]
        want["placebo side" if i else "cells side"] += 1
        ae.loc[(ae["USUBJID"] == u) & (ae["AESEQ"] == seq), ["AELOC", "AELAT"]] = [pick["EXLOC"], pick["EXLAT"]]
        rel += [{"USUBJID": u, "RDOMAIN": "AE", "IDVAR": "AESEQ", "IDVARVAL": str(int(seq)), "RELID": "R1"},
                {"USUBJID": u, "RDOMAIN": "EX", "IDVAR": "EXSEQ", "IDVARVAL": str(int(pick["EXSEQ"])), "RELID": "R1"}]
    with_rel = _with(_with(datasets, "AE", ae), "RELREC", pd.DataFrame(rel))
    shown = html_table(render(data.of_datasets(with_rel)), "injection-site")
    assert shown.groupby("SIDE")["EVENTS"].sum().to_dict() == want


def test_another_sponsor_s_package_the_cdisc_pilot(tmp_path):
    """The pilot: old-style SCRNFAIL arm codes, DS with many reasons, no MUNE, no run report."""
    pilot = need_external("cdiscpilot01")
    page = review_report(pilot)
    dm, ds = (read_sdtm(pilot)[n].frame for n in ("DM", "DS"))
    failures = set(dm.loc[dm["ARMCD"] == "Scrnfail", "USUBJID"]) | set(ds.loc[ds["DSDECOD"] == "SCREEN FAILURE", "USUBJID"])
    table = html_table(page, "flow-table").set_index("Stage")
    assert table.loc["Screen failures", "Total"] == len(failures) > 0
    assert table.loc["Randomized", "Total"] == len(dm) - len(failures)
    last = ds[ds["DSCAT"] == "DISPOSITION EVENT"].groupby("USUBJID")["DSDECOD"].last()
    assert table.loc["Completed", "Total"] == (last[~last.index.isin(failures)] == "COMPLETED").sum()
    assert "Scrnfail" not in table.columns and "has no MUNE domain" in page and "no run-report.json" in page


# ---- masked, determinism, the shipped example, the command --------------------------------------------

@pytest.fixture(scope="module")
def masked_page(tmp_path_factory) -> tuple[str, set[str]]:
    out = tmp_path_factory.mktemp("masked") / "sdtm"
    to_sdtm([DATA / "mini-r4.json"], out, masked=True)
    plain = to_sdtm([DATA / "mini-r4.json"]).datasets
    secrets = {str(v) for c in ("ARMCD", "ARM") for v in plain["TA"][c]} | set(plain["EX"]["EXTRT"])
    return (out / "report.html").read_text(encoding="utf-8"), secrets


def test_masked_report_names_no_arm_and_no_side_of_treatment(masked_page):
    page, secrets = masked_page
    assert {"MNC", "PLACEBO"} <= secrets
    assert [s for s in secrets | {"cells side", "mononuclear"} if s.lower() in page.lower()] == []
    assert "Masked package" in page and data.ALL in html_table(page, "flow-table").columns


def test_unmasked_report_names_the_arms(page):
    assert "MNC" in page and "PLACEBO" in page and "cells side" in page


def test_same_package_same_bytes_and_the_shipped_example(example_package, page):
    again = review_report(example_package)
    assert again == review_report(example_package) == page
    assert re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?", page.split("<h2")[0]) == [
        json.loads((example_package / "manifest.json").read_text())["options"]["created"]]
    if not SHIPPED.exists() or SHIPPED.read_text(encoding="utf-8") != page:
        SHIPPED.write_text(page, encoding="utf-8")  # regenerated: the diff shows in git
        pytest.fail(f"{SHIPPED.name} was not the example's report: rewritten, review and commit it")


def test_report_is_self_contained(page):
    for outside in ("<script", "<link", "<img", "@import", "url(http", "src=", "href=\"http"):
        assert outside not in page, outside
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(svgs) == page.count('class="plot"') >= 2 + 2 * 12
    for s in svgs:
        assert 'role="img"' in s and "aria-label=" in s and "<title id=" in s and "<desc id=" in s


def test_report_is_listed_in_the_manifest(example_package):
    manifest = json.loads((example_package / "manifest.json").read_text())
    entry = next(o for o in manifest["outputs"] if o["path"] == "report.html")
    assert entry["bytes"] == (example_package / "report.html").stat().st_size


def test_report_command(example_package, tmp_path):
    out = tmp_path / "r.html"
    done = CliRunner().invoke(app, ["report", str(example_package), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_bytes() == (example_package / "report.html").read_bytes()
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "nowhere"), "--out", str(out)])
    assert missing.exit_code == 2 and "not a directory" in missing.output


@pytest.mark.parametrize("formats", [("json",), ("xpt",)])
def test_to_sdtm_writes_the_report_of_its_package_as_read_back(tmp_path, formats):
    """to-sdtm makes report.html of the datasets it has just written, without reading them back: the page
    `tcim-interop report` makes of the files, from the Dataset-JSON or from the XPT. The example's package
    (both formats, read from the XPT): test_same_package_same_bytes_and_the_shipped_example."""
    out = tmp_path / "sdtm"
    to_sdtm([DATA / "mini-r4.json"], out, formats=formats)
    assert (out / "report.html").read_text(encoding="utf-8") == review_report(out)


# ---- headless Chromium -------------------------------------------------------------------------------

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MEASURE = """<script>
window.addEventListener('load', () => {
  const out = [...document.querySelectorAll('svg.plot')].map(s => {
    const r = s.getBoundingClientRect();
    return [s.id, Math.round(r.width), Math.round(r.height), s.getAttribute('width'), s.getAttribute('height'),
            s.querySelectorAll('*').length].join(' ');
  });
  const pre = document.createElement('pre'); pre.id = 'measured'; pre.textContent = out.join('\\n');
  document.body.appendChild(pre);
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium; .ci/run installs it)")
    return subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
                           "--v=0", *args], capture_output=True, text=True, timeout=180, check=True)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line]


def test_report_loads_without_console_error_and_every_plot_renders(page, tmp_path):
    probe = tmp_path / "probe.html"  # the detector itself: a page that does log an error
    probe.write_text("<!DOCTYPE html><html><body><script>console.error('probe-error')</script></body></html>")
    assert any("probe-error" in line for line in _console_errors(_chromium(tmp_path, "--dump-dom", probe.as_uri()).stderr))
    plain = tmp_path / "report.html"
    plain.write_text(page, encoding="utf-8")
    assert _console_errors(_chromium(tmp_path, "--dump-dom", plain.as_uri()).stderr) == []
    measured = tmp_path / "measured.html"
    measured.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    dom = _chromium(tmp_path, "--dump-dom", "--virtual-time-budget=5000", measured.as_uri()).stdout
    rows = [r.split() for r in re.search(r'<pre id="measured">(.*?)</pre>', dom, re.S).group(1).strip().splitlines()]
    assert len(rows) == page.count('class="plot"')
    for uid, w, h, want_w, want_h, children in rows:
        assert (w, h) == (want_w, want_h) and int(w) > 0 and int(h) > 0 and int(children) > 10, uid


def test_screenshot_has_the_window_s_shape_and_is_not_blank(page, tmp_path):
    plain = tmp_path / "report.html"
    plain.write_text(page, encoding="utf-8")
    png = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,2000", plain.as_uri())
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", head[16:24]) == (1280, 2000)
    assert png.stat().st_size > 30_000  # a blank page compresses to a few hundred bytes


@pytest.mark.parametrize("keep", [{"DM"}, {"DM", "AE"}, {"DM", "XM"}])
def test_a_package_with_little_in_it_still_gives_a_report(mini_conversion, keep):
    """DM alone, or without arms: every part says what is missing instead of failing."""
    datasets = {n: d for n, d in read_sdtm(mini_conversion[1]).items() if n in keep}
    for d in datasets.values():
        if "ARMCD" in d.frame:
            d.frame = d.frame.assign(ARMCD="", ACTARMCD="", ARMNRS="NOT ASSIGNED")
    page = render(data.of_datasets(datasets))
    assert "Subject flow" in page and "<svg" in page
    if "AE" not in keep:
        assert "no AE records" in page
    if "XM" not in keep:
        assert "has no MUNE domain" in page


def test_missing_expected_variables_leave_gaps_not_failures(mini_conversion):
    datasets = read_sdtm(mini_conversion[1])
    datasets["XM"].frame = datasets["XM"].frame.drop(columns=["VISITNUM", "XMSTRESN"])
    datasets["AE"].frame = datasets["AE"].frame.drop(columns=["AEBODSYS"])
    page = render(data.of_datasets(datasets))
    assert "holds no numeric result" in page and html_table(page, "ae-table")["System organ class"].iloc[0]


def test_the_report_reads_text_as_objects(example_package):
    """The report's frames keep text in object columns ("" where missing), not pandas' string dtype."""
    package = data.of_datasets(read_sdtm(example_package))
    for name, frame in package.datasets.items():
        texts = [c for c in frame.columns if frame[c].dtype != "float64"]
        assert texts and all(frame[c].dtype == "object" for c in texts), name
