"""Subject keys (STUDYID, SITEID, SUBJID, USUBJID) are one string everywhere: the same in XPT and in
Dataset-JSON, in DM and in every event; two subjects whose keys meet once written are never merged."""

from __future__ import annotations

import json
from pathlib import Path

import pyreadstat
from conftest import DATA

from tcim_interop import to_sdtm
from tcim_interop.sdtm.dataset_json import read_dataset_json

KEYS = ("STUDYID", "SITEID", "SUBJID", "USUBJID")


def _mini(tmp_path: Path, **subjid: str) -> Path:
    doc = json.loads((DATA / "mini-r4.json").read_text(encoding="utf-8"))
    for e in doc["entry"]:
        r = e["resource"]
        if r["id"] in subjid:
            r["identifier"][0]["value"] = subjid[r["id"]]
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def test_keys_are_the_same_in_xpt_and_dataset_json(tmp_path):
    out = tmp_path / "sdtm"
    # "002 ": a trailing blank, which XPT would drop and Dataset-JSON keep
    result = to_sdtm([_mini(tmp_path, rs1="Ñ-001", rs2="002 ")], out, formats=("xpt", "json"))
    assert sorted(result.datasets["DM"]["USUBJID"]) == ["TCIM-ELAII-01-002", "TCIM-ELAII-01-N-001"]
    folded = [f for f in result.report.findings if f.code == "KEY_FOLDED"]
    assert sorted((f.source, f.variable) for f in folded) == [
        ("ResearchSubject/rs1", "SUBJID"), ("ResearchSubject/rs1", "USUBJID"),
        ("ResearchSubject/rs2", "SUBJID"), ("ResearchSubject/rs2", "USUBJID")]
    for xpt in out.glob("*.xpt"):
        frame, _ = pyreadstat.read_xport(str(xpt))
        as_json = read_dataset_json(xpt.with_suffix(".json")).frame
        for key in KEYS:
            if key in frame:
                assert list(frame[key]) == list(as_json[key]), (xpt.name, key)
    ae, _ = pyreadstat.read_xport(str(out / "ae.xpt"))
    assert set(ae["USUBJID"]) <= set(result.datasets["DM"]["USUBJID"])


def test_subjects_whose_keys_meet_once_folded_are_an_error_not_a_merge(tmp_path):
    result = to_sdtm([_mini(tmp_path, rs1="N-001", rs2="Ñ-001")])
    assert list(result.datasets["DM"]["USUBJID"]) == ["TCIM-ELAII-01-N-001"]
    rejected = {d.resource: d.reason for d in result.report.dispositions if d.outcome == "rejected"}
    assert "USUBJID TCIM-ELAII-01-N-001 already given by ResearchSubject/rs1" in rejected["ResearchSubject/rs2"]
    assert any(f.severity == "error" and f.source == "ResearchSubject/rs2" for f in result.report.findings)
