"""CM (issue 16): the administrations that are not study treatment are Concomitant/Prior Medications.
EX and CM take them by one decision (selectors._treatment_decision), so an administration is an EX record
or a CM record, never both; statuses that say it did not take place, and administrations tied to a study
not in the input, are neither. to-fhir gives CM back as MedicationAdministrations that to-sdtm reads as CM."""

from __future__ import annotations

import copy
import json

import pandas as pd
from conftest import DATA, ROOT, read_json

from tcim_interop import to_fhir, to_sdtm

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
    given = {f"MedicationAdministration/{e['resource']['id']}" for e in read_json(EXAMPLE)["entry"]
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


# -- MedicationStatement: background therapy as the hospital reports it ------------------------------
RXNORM, ATC, UCUM = "http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc", "http://unitsofmeasure.org"


def _with_statements(*resources: dict) -> dict:
    bundle = copy.deepcopy(MINI)
    bundle["entry"] += [{"resource": r} for r in resources]
    return bundle


def _statement(rid: str, **elements) -> dict:
    return {"resourceType": "MedicationStatement", "id": rid, "status": "active",
            "subject": {"reference": "Patient/p1"}, **elements}


RILUZOLE = {"resourceType": "Medication", "id": "med1", "code": {"coding": [
    {"system": RXNORM, "code": "35623", "display": "riluzole"}, {"system": ATC, "code": "N07XX02", "display": "riluzole"}]}}
STATEMENTS = (
    RILUZOLE,
    # R4: riluzole by reference to a Medication, taken since May 2019 (no end), 50 mg by mouth
    _statement("ms1", medicationReference={"reference": "Medication/med1"}, effectivePeriod={"start": "2019-05"},
               reasonCode=[{"text": "ALS"}],
               dosage=[{"route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
                        "doseAndRate": [{"doseQuantity": {"value": 50, "unit": "mg", "system": UCUM, "code": "mg"}}]}]),
    _statement("ms2", status="completed", medicationCodeableConcept={"text": "ibuprofen"},
               effectivePeriod={"start": "2021-06-01", "end": "2021-06-10"}),
    _statement("ms3", status="not-taken", medicationCodeableConcept={"text": "edaravone"}),
    _statement("ms4", medicationCodeableConcept={"coding": [
        {"system": "http://tcim-interop.org/fhir/CodeSystem/study-product", "code": "BMNC"}]}),
)


def _statement_outcome(result, key: str) -> tuple[str, str]:
    d = next(d for d in result.report.dispositions if d.resource == key)
    return d.outcome, d.reason


def test_medication_statements_are_cm_records():
    result = to_sdtm([_with_statements(*STATEMENTS)])
    cm = result.datasets["CM"].set_index(pd.Index(result.metadata["CM"].sources))
    riluzole = cm.loc["MedicationStatement/ms1"]
    assert (riluzole["CMTRT"], riluzole["CMDECOD"], riluzole["CMINDC"]) == ("riluzole", "riluzole", "ALS")
    assert (riluzole["CMDOSE"], riluzole["CMDOSU"], riluzole["CMROUTE"]) == (50, "mg", "ORAL")
    assert riluzole["CMSTDTC"] == "2019-05" and riluzole["CMENDTC"] is None  # taken since, no end
    ibuprofen = cm.loc["MedicationStatement/ms2"]
    assert (ibuprofen["CMTRT"], ibuprofen["CMSTDTC"], ibuprofen["CMENDTC"]) == ("ibuprofen", "2021-06-01", "2021-06-10")
    assert _statement_outcome(result, "Medication/med1") == ("converted", "feeds the records that reference it")
    assert _statement_outcome(result, "MedicationStatement/ms3")[0] == "out_of_scope"
    assert "not-taken" in _statement_outcome(result, "MedicationStatement/ms3")[1]
    assert _statement_outcome(result, "MedicationStatement/ms4") == (
        "out_of_scope", "a statement of study treatment (EX records its administrations)")
    c = result.report.counts()["by_resource_type"]["MedicationStatement"]
    assert c == {"input": 4, "converted": 2, "rejected": 0, "out_of_scope": 2}


def test_a_statement_linked_to_the_study_is_still_cm():
    """A study link on a statement says it was collected in the study, not that it is study treatment."""
    linked = _statement("ms5", medicationCodeableConcept={"text": "baclofen"}, effectiveDateTime="2021-06-03",
                        extension=[{"url": STUDY_LINK, "valueReference": {"reference": "ResearchStudy/elsewhere"}}])
    result = to_sdtm([_with_statements(linked)])
    assert _statement_outcome(result, "MedicationStatement/ms5") == ("converted", "")
    assert "baclofen" in set(result.datasets["CM"]["CMTRT"])


def test_statements_round_trip_as_statements_r4_and_r5():
    """to-fhir: a record that is one administration (start = end) comes back as a MedicationAdministration,
    any other (a period, an open start) as a MedicationStatement; to-sdtm of either gives the cells back,
    in R4 (dosage.doseAndRate, effectivePeriod) and R5 (medication.concept, effective[x], reason)."""
    sdtm = to_sdtm([_with_statements(*STATEMENTS)]).metadata
    for version in ("R4", "R5"):
        fhir = to_fhir(sdtm, fhir_version=version)
        assert not fhir.report.errors, fhir.report.errors[:3]
        cm = [r for r in fhir.resources if "/cm.xpt#" in r.get("meta", {}).get("source", "")]
        statements = [r for r in cm if r["resourceType"] == "MedicationStatement"]
        assert len(cm) == 3 and [r["effectivePeriod"] for r in statements] == [
            {"start": "2019-05"}, {"start": "2021-06-01", "end": "2021-06-10"}]  # CM order: CMSTDTC
        assert statements[0]["dosage"][0]["doseAndRate"][0]["doseQuantity"] == {
            "value": 50, "unit": "mg", "system": UCUM, "code": "mg"}
        text = (lambda r: r["medicationCodeableConcept"]["text"]) if version == "R4" else \
            (lambda r: r["medication"]["concept"]["text"])
        assert [text(r) for r in statements] == ["riluzole", "ibuprofen"]
        back = to_sdtm([fhir.resources], fhir_version=version).datasets
        pd.testing.assert_frame_equal(back["CM"], sdtm["CM"].frame)


def test_a_rule_for_a_type_the_rows_do_not_come_from_fails_at_load(tmp_path):
    import shutil

    import pytest

    from tcim_interop.errors import SpecError
    from tcim_interop.mapping_spec.load import load_mapping_set

    specs = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", specs)
    cm = specs / "cm.yaml"
    cm.write_text(cm.read_text().replace("{resource: MedicationStatement, element: status",
                                         "{resource: Observation, element: status"))
    with pytest.raises(SpecError, match="resource 'Observation' is not a type the rows come from"):
        load_mapping_set(specs)
    cm.write_text(cm.read_text().replace("resource: [MedicationAdministration, MedicationStatement]",
                                         "resource: [MedicationStatement, MedicationStatement]"))
    with pytest.raises(SpecError, match="a list of distinct ones"):
        load_mapping_set(specs)


# -- how often, still taken, contained Medications (dosage.timing, status, contained) -----------------------
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
ADHERENCE = "http://hl7.org/fhir/CodeSystem/medication-statement-adherence"


def _dosage(**elements) -> list[dict]:
    return [{**elements}]


TIMED = (
    # riluzole in a contained Medication, twice a day by its HL7 code, taken since 2019, said on 20 May 2021
    _statement("t1", contained=[{**RILUZOLE, "id": "ril"}], medicationReference={"reference": "#ril"},
               effectivePeriod={"start": "2019-05"}, dateAsserted="2021-05-20",
               dosage=_dosage(timing={"code": {"coding": [{"system": GTS, "code": "BID"}]}},
                              doseAndRate=[{"doseQuantity": {"value": 50, "unit": "mg", "system": UCUM, "code": "mg"}}])),
    # three times a day by its repeat only, still taken, no assertion date
    _statement("t2", medicationCodeableConcept={"text": "baclofen"}, effectivePeriod={"start": "2020-01-10"},
               dosage=_dosage(timing={"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}})),
    # as needed, at most every 6 hours: PRN; ended: not ongoing although active
    _statement("t3", medicationCodeableConcept={"text": "paracetamol"},
               effectivePeriod={"start": "2021-06-01", "end": "2021-06-03"},
               dosage=_dosage(asNeededCodeableConcept={"text": "pain"},
                              timing={"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}})),
    # one or two a day: a range no FREQ term names; completed: not ongoing
    _statement("t4", status="completed", medicationCodeableConcept={"text": "ibuprofen"},
               effectivePeriod={"start": "2021-06-05"},
               dosage=_dosage(timing={"repeat": {"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"}})),
    # a point in time with a frequency: a statement too when it comes back
    _statement("t5", status="completed", medicationCodeableConcept={"text": "omeprazole"}, effectiveDateTime="2021-06-07",
               dosage=_dosage(timing={"code": {"coding": [{"system": GTS, "code": "QD"}]}})),
)


def _by_source(result) -> pd.DataFrame:
    return result.datasets["CM"].set_index(pd.Index(result.metadata["CM"].sources))


def test_dosing_frequency_from_the_timing():
    result = to_sdtm([_with_statements(*TIMED)])
    cm = _by_source(result)
    assert cm["CMDOSFRQ"].to_dict() == {
        "MedicationAdministration/cm1": None, "MedicationStatement/t1": "BID", "MedicationStatement/t2": "TID",
        "MedicationStatement/t3": "PRN", "MedicationStatement/t4": None, "MedicationStatement/t5": "QD"}
    unmapped = [f for f in result.report.findings if f.code == "CT_UNMAPPED" and f.variable == "CMDOSFRQ"]
    assert [(f.source, f.value) for f in unmapped] == [("MedicationStatement/t4", "timing repeat 1-2/1d")]
    assert "maps.DOSING_FREQUENCY" in unmapped[0].hint


def test_a_statement_still_taken_is_ongoing_at_its_assertion_date():
    """SDTMIG 3.4 4.4.7: CMENRTPT ONGOING with CMENTPT the reference time point: the date the statement
    was asserted, else the data cutoff. Ended (t3) or completed (t4) statements are not ongoing."""
    cm = _by_source(to_sdtm([_with_statements(*TIMED)]))
    assert cm[["CMENRTPT", "CMENTPT"]].dropna().to_dict("index") == {
        "MedicationStatement/t1": {"CMENRTPT": "ONGOING", "CMENTPT": "2021-05-20"},
        "MedicationStatement/t2": {"CMENRTPT": "ONGOING", "CMENTPT": "DATA CUTOFF"}}
    assert cm.loc["MedicationStatement/t1", "CMENDTC"] is None


def test_the_new_columns_are_there_only_when_collected():
    cm = to_sdtm([MINI]).datasets["CM"]
    assert not {"CMDOSFRQ", "CMENRTPT", "CMENTPT"} & set(cm.columns)


def test_a_contained_medication_gives_cmtrt_and_cmdecod():
    cm = _by_source(to_sdtm([_with_statements(*TIMED)]))
    assert tuple(cm.loc["MedicationStatement/t1", ["CMTRT", "CMDECOD"]]) == ("riluzole", "riluzole")


def _carried(resource: dict) -> dict:
    from tcim_interop.fhir.extensions import read_record

    record = read_record(resource)
    return record[2] if record else {}


def test_timing_and_ongoing_round_trip_in_standard_elements_r4_and_r5():
    """to-fhir: CMDOSFRQ as Dosage.timing (the HL7 code and the repeat) or asNeeded, ONGOING as R4 status
    active / R5 adherence taking, CMENTPT as dateAsserted; none rides in the sdtm-record extension, and
    to-sdtm gives every CM cell back."""
    sdtm = to_sdtm([_with_statements(*TIMED)]).metadata
    for version in ("R4", "R5"):
        fhir = to_fhir(sdtm, fhir_version=version)
        assert not fhir.report.errors, fhir.report.errors[:3]
        concept = "medicationCodeableConcept" if version == "R4" else "medication"
        records = [r for r in fhir.resources if "/cm.xpt#" in r.get("meta", {}).get("source", "")]
        assert not any(_carried(r) for r in records)
        # a frequency, an open start or a period: a statement (the mini example's riluzole, one date: not)
        cm = {(r[concept] if version == "R4" else r[concept]["concept"])["text"]: r for r in records
              if r["resourceType"] == "MedicationStatement"}
        assert sorted(cm) == ["baclofen", "ibuprofen", "omeprazole", "paracetamol", "riluzole"]
        riluzole, baclofen, omeprazole = cm["riluzole"], cm["baclofen"], cm["omeprazole"]
        assert riluzole["dosage"][0]["timing"] == {"code": {"coding": [{"system": GTS, "code": "BID"}]},
                                                   "repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}}
        assert baclofen["dosage"][0]["timing"] == {"code": {"coding": [{"system": GTS, "code": "TID"}]},
                                                   "repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}
        assert omeprazole["effectiveDateTime"] == "2021-06-07"  # one date and a frequency: still a statement
        assert cm["paracetamol"]["dosage"] == [{"asNeededBoolean" if version == "R4" else "asNeeded": True}]
        assert "dosage" not in cm["ibuprofen"]  # its range had no term
        assert riluzole["dateAsserted"] == "2021-05-20" and "dateAsserted" not in baclofen
        if version == "R4":
            assert [r["status"] for r in (riluzole, baclofen, omeprazole)] == ["active", "active", "unknown"]
        else:
            assert riluzole["status"] == "recorded" and "adherence" not in omeprazole
            assert riluzole["adherence"] == baclofen["adherence"] == {
                "code": {"coding": [{"system": ADHERENCE, "code": "taking"}]}}
        back = to_sdtm([fhir.resources], fhir_version=version).datasets
        pd.testing.assert_frame_equal(back["CM"], sdtm["CM"].frame)


def test_r5_ongoing_is_the_adherence_not_the_status():
    """R5 MedicationStatement.status is recorded | draft | entered-in-error: recorded says nothing of the
    end. Its adherence taking (or taking-as-directed ...) does; not-taking does not."""
    from tcim_interop.fhir.extensions import SDTM_RECORD

    fhir = to_fhir(to_sdtm([MINI]).metadata, fhir_version="R5").resources
    for r in fhir:  # a hospital's R5, not to-fhir's: no recorded cells to restore
        r["extension"] = [e for e in r.get("extension") or [] if e.get("url") != SDTM_RECORD]
    patient = next(r for r in fhir if r["resourceType"] == "Patient")

    def r5(rid: str, adherence: str | None) -> dict:
        r = {"resourceType": "MedicationStatement", "id": rid, "status": "recorded",
             "subject": {"reference": f"Patient/{patient['id']}"}, "medication": {"concept": {"text": rid}},
             "effectivePeriod": {"start": "2020-02"}, "dateAsserted": "2021-05-02",
             "dosage": [{"asNeededFor": [{"text": "cramps"}]}]}
        if adherence:
            r["adherence"] = {"code": {"coding": [{"system": ADHERENCE, "code": adherence}]}}
        return r

    result = to_sdtm([[*fhir, r5("quinine", "taking-as-directed"), r5("baclofen", "not-taking"), r5("tizanidine", None)]],
                     fhir_version="R5")
    cm = result.datasets["CM"].set_index("CMTRT")
    assert cm.loc[["quinine", "baclofen", "tizanidine"], ["CMENRTPT", "CMENTPT", "CMDOSFRQ"]].to_dict("index") == {
        "quinine": {"CMENRTPT": "ONGOING", "CMENTPT": "2021-05-02", "CMDOSFRQ": "PRN"},
        "baclofen": {"CMENRTPT": None, "CMENTPT": None, "CMDOSFRQ": "PRN"},
        "tizanidine": {"CMENRTPT": None, "CMENTPT": None, "CMDOSFRQ": "PRN"}}


def test_another_studys_reference_point_is_carried_not_invented():
    """CMENTPT text that is no date (VISIT 2) has no FHIR element: it rides in sdtm-record and comes back."""
    sdtm = to_sdtm([_with_statements(*TIMED)]).metadata
    frame = sdtm["CM"].frame
    frame.loc[frame["CMENTPT"] == "DATA CUTOFF", "CMENTPT"] = "VISIT 2"
    fhir = to_fhir(sdtm, fhir_version="R4")
    carried = [_carried(r) for r in fhir.resources if "/cm.xpt#" in r.get("meta", {}).get("source", "")]
    assert {"CMENTPT": "VISIT 2"} in carried
    pd.testing.assert_frame_equal(to_sdtm([fhir.resources]).datasets["CM"], frame)


# -- study treatment named through a Medication (EX) ------------------------------------------------------
def _medication_by_reference(bundle: dict, rid: str, contained: bool) -> None:
    """Administration rid names its medication through a Medication: contained ("#m"), or in the bundle."""
    r = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == rid)
    code = r.pop("medicationCodeableConcept")
    if contained:
        r["contained"] = [{"resourceType": "Medication", "id": "m", "code": code}]
        r["medicationReference"] = {"reference": "#m"}
    else:
        bundle["entry"].append({"resource": {"resourceType": "Medication", "id": f"med-{rid}", "code": code}})
        r["medicationReference"] = {"reference": f"Medication/med-{rid}"}


def test_study_treatment_through_a_referenced_or_contained_medication_is_ex():
    plain = to_sdtm([MINI])
    bundle = copy.deepcopy(MINI)
    _medication_by_reference(bundle, "ma2", contained=True)
    _medication_by_reference(bundle, "ma3", contained=False)
    _medication_by_reference(bundle, "cm1", contained=True)  # riluzole: still CM
    result = to_sdtm([bundle])
    pd.testing.assert_frame_equal(result.datasets["EX"], plain.datasets["EX"])
    assert result.metadata["EX"].sources == plain.metadata["EX"].sources
    pd.testing.assert_frame_equal(result.datasets["CM"], plain.datasets["CM"])
    assert _statement_outcome(result, "Medication/med-ma3") == ("converted", "feeds the records that reference it")
    masked = to_sdtm([bundle], masked=True).datasets["EC"]  # EC selects its rows by the same product
    assert len(masked) == len(plain.datasets["EX"])


def test_interval_with_must_name_variables(tmp_path):
    import shutil

    import pytest

    from tcim_interop.errors import SpecError
    from tcim_interop.mapping_spec.load import load_mapping_set

    specs = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", specs)
    cm = specs / "cm.yaml"
    cm.write_text(cm.read_text().replace("with: [CMDOSFRQ,", "with: [CMDOSFRQX,"))
    with pytest.raises(SpecError, match="reverse: interval: must be"):
        load_mapping_set(specs)
