"""CM (issue 16): the administrations that are not study treatment are Concomitant/Prior Medications.
EX and CM take them by one decision (selectors._treatment_decision), so an administration is an EX record
or a CM record, never both; statuses that say it did not take place, and administrations tied to a study
not in the input, are neither. to-fhir gives CM back as MedicationAdministrations that to-sdtm reads as CM."""

from __future__ import annotations

import copy
import json

import pandas as pd
from conftest import DATA, ROOT

from tcim_interop import to_sdtm

EXAMPLE = ROOT / "examples" / "tcim-elaii-100-r4.json"
MINI = json.loads((DATA / "mini-r4.json").read_text())
STUDY_LINK = "http://hl7.org/fhir/StructureDefinition/workflow-researchStudy"


def test_example_cm_records(example_conversion):
    result, _ = example_conversion
    cm = result.datasets["CM"]
    assert len(cm) == 99
    assert set(cm["DOMAIN"]) == {"CM"} and cm["CMTRT"].notna().all() and cm["CMDECOD"].notna().all()
    assert set(cm["CMTRT"]) == {"riluzole", "acetaminophen"}
    assert set(cm["CMDECOD"]) == {"riluzole", "paracetamol"}  # the ATC display
    assert set(cm["CMROUTE"]) == {"ORAL"}
    assert set(cm["CMDOSU"]) == {"mg", "g"} and cm["CMDOSE"].notna().all()
    assert cm["CMSTDTC"].notna().all() and cm["CMSTDY"].notna().all()
    assert list(cm.groupby("USUBJID")["CMSEQ"].apply(lambda s: list(s) == list(range(1, len(s) + 1)))).count(False) == 0


def test_an_administration_is_ex_or_cm_never_both(example_conversion):
    result, _ = example_conversion
    ex, cm = set(result.metadata["EX"].sources), set(result.metadata["CM"].sources)
    assert ex and cm and not ex & cm
    given = {f"MedicationAdministration/{e['resource']['id']}" for e in json.loads(EXAMPLE.read_text())["entry"]
             if e["resource"]["resourceType"] == "MedicationAdministration"}
    assert ex | cm == given  # none left out: every administration of the example took place
    c = result.report.counts()["by_resource_type"]["MedicationAdministration"]
    assert c == {"input": 495, "converted": 495, "rejected": 0, "out_of_scope": 0}


def test_cm_round_trip(example_conversion, example_round_trip):
    before = example_conversion[0].datasets
    fhir, _, back = example_round_trip("R4")
    cm = [r for r in fhir.resources if "/cm.xpt#" in r.get("meta", {}).get("source", "")]
    assert len(cm) == 99 and all(r["resourceType"] == "MedicationAdministration" for r in cm)
    back = back.datasets
    for name in ("CM", "EX"):
        pd.testing.assert_frame_equal(back[name].reset_index(drop=True), before[name].reset_index(drop=True))


def _bundle(*changes) -> dict:
    bundle = copy.deepcopy(MINI)
    extra = []
    for i, change in enumerate(changes):
        cm = copy.deepcopy(next(e for e in bundle["entry"] if e["resource"]["id"] == "cm1"))
        cm["resource"]["id"] = f"x{i}"
        change(cm["resource"])
        extra.append(cm)
    bundle["entry"] += extra
    return bundle


def _outcome(result, rid: str) -> tuple[str, str]:
    d = next(d for d in result.report.dispositions if d.resource == f"MedicationAdministration/{rid}")
    return d.outcome, d.reason


def test_status_and_study_rules():
    def status(value):
        return lambda r: r.update(status=value)

    def other_study(r):
        r["extension"] = [{"url": STUDY_LINK, "valueReference": {"reference": "ResearchStudy/elsewhere"}}]

    result = to_sdtm([_bundle(status("entered-in-error"), status("not-done"), other_study, status("in-progress"))])
    for rid in ("x0", "x1"):
        outcome, reason = _outcome(result, rid)
        assert outcome == "out_of_scope" and "CM holds medications taken" in reason
    assert _outcome(result, "x2") == ("out_of_scope", "its workflow-researchStudy extension names no study of the input")
    assert _outcome(result, "x3") == ("converted", "")
    assert len(result.datasets["CM"]) == 2  # cm1 and x3
    # a study product that did not take place stays EX's out of scope, never CM
    ex_cancelled = [d for d in result.report.dispositions if d.outcome == "out_of_scope" and "EX holds" in d.reason]
    assert all(k not in set(result.metadata["CM"].sources) for k in (d.resource for d in ex_cancelled))


def test_cm_is_unaffected_by_masking():
    plain, masked = to_sdtm([MINI]).datasets, to_sdtm([MINI], masked=True).datasets
    assert "EX" not in masked and "EC" in masked
    pd.testing.assert_frame_equal(plain["CM"], masked["CM"])
