"""AdverseEvents as a hospital sends them (the FHIR to CDISC Joint Mapping IG, the AE Clinical Research IG
and its R4 backport): MedDRA in the resulting Condition, codings without the meddra-level extension, a fatal
outcome, the backport's extension URLs. Built on tests/data/mini-r4.json and a synthetic R5 trial."""

import copy
import json

import pytest
from conftest import MINI

from tcim_interop import to_sdtm
from tcim_interop.errors import SpecError
from tcim_interop.mapping_spec.codelists import Codelists
from tcim_interop.synth import generate

MDR = "http://terminology.hl7.org/CodeSystem/mdr"
LEVEL = "http://tcim-interop.org/fhir/StructureDefinition/meddra-level"
SNOMED = "http://snomed.info/sct"
NCI = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
SER = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
OUTCOME = "http://terminology.hl7.org/CodeSystem/adverse-event-outcome"
BACKPORT = "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/"
MEDDRA_VARS = ("AELLT", "AELLTCD", "AEDECOD", "AEPTCD", "AEBODSYS", "AEBDSYCD")

HEADACHE = {"system": MDR, "code": "10019211", "display": "Headache"}
NERVOUS = {"system": MDR, "code": "10029205", "display": "Nervous system disorders"}  # a SOC
HEAD_ACHE = {"system": MDR, "code": "10019198", "display": "Head ache"}  # an LLT of Headache


def coding(c: dict, level: str | None = None) -> dict:
    return {**c, "extension": [{"url": LEVEL, "valueCode": level}]} if level else dict(c)


def r4_event(codings=(), **more) -> dict:
    """A Joint-IG style R4 AdverseEvent of mini-r4.json's subject p1."""
    return {"resourceType": "AdverseEvent", "id": "ae-j1", "actuality": "actual",
            "subject": {"reference": "Patient/p1"}, "date": "2021-06-10",
            "event": {"text": "cefalea", **({"coding": list(codings)} if codings else {})},
            "seriousness": {"coding": [{"system": SER, "code": "Non-serious"}]}, **more}


def condition(cid: str, codings, patient: str = "Patient/p1", version: str = "R4") -> dict:
    status = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}
    return {"resourceType": "Condition", "id": cid, "clinicalStatus": status, "subject": {"reference": patient},
            "code": {"coding": list(codings), "text": "Dolor de cabeza"}}


def convert(*resources: dict, fhir_version: str | None = None):
    """to_sdtm of mini-r4.json with these resources added: (the AE record of ae-j1, the result)."""
    bundle = json.loads(MINI.read_text(encoding="utf-8"))
    bundle["entry"] += [{"resource": copy.deepcopy(r)} for r in resources]
    result = to_sdtm([bundle], fast=True, fhir_version=fhir_version)
    return record_of(result, "AdverseEvent/ae-j1"), result


def record_of(result, key: str) -> dict:
    ae = result.metadata["AE"]
    row = ae.sources.index(key)
    return {k: (None if v != v else v) for k, v in ae.frame.iloc[row].to_dict().items()}  # NaN -> None


def findings(result, code: str) -> list:
    return [f for f in result.report.findings if f.code == code]


def disposition(result, key: str):
    return next(d for d in result.report.dispositions if d.resource == key)


# --- MedDRA from the resulting Condition -----------------------------------------------------------
def test_meddra_from_resulting_condition_r4():
    """An event with no MedDRA coding of its own (here SNOMED only): the referenced Condition's code."""
    ae = r4_event([{"system": SNOMED, "code": "25064002", "display": "Headache"}],
                  resultingCondition=[{"reference": "Condition/c1"}])
    rec, result = convert(ae, condition("c1", [coding(HEADACHE, "PT"), coding(NERVOUS, "SOC")]))
    assert [rec[n] for n in ("AEDECOD", "AEPTCD", "AEBODSYS", "AEBDSYCD")] == [
        "Headache", 10019211.0, "Nervous system disorders", 10029205.0]
    assert rec["AETERM"] == "Headache"  # the verbatim "cefalea", in English (mappings/translations.yaml)
    assert disposition(result, "Condition/c1").outcome == "converted"


def test_meddra_of_the_event_wins_over_its_condition():
    ae = r4_event([coding(HEAD_ACHE, "PT")], resultingCondition=[{"reference": "Condition/c1"}])
    rec, result = convert(ae, condition("c1", [coding(HEADACHE, "PT")]))
    assert rec["AEDECOD"] == "Head ache"
    assert disposition(result, "Condition/c1").outcome == "converted"  # referenced by a record all the same


def test_unreferenced_condition_stays_out_of_scope():
    rec, result = convert(r4_event([coding(HEADACHE, "PT")]), condition("c9", [coding(HEADACHE, "PT")]))
    assert disposition(result, "Condition/c9").outcome == "out_of_scope"


def test_resulting_condition_not_in_the_input_is_reported():
    rec, result = convert(r4_event(resultingCondition=[{"reference": "Condition/gone"}]))
    assert rec["AEDECOD"] is None
    [f] = findings(result, "BROKEN_REFERENCE")
    assert (f.severity, f.source, f.value) == ("warning", "AdverseEvent/ae-j1", "Condition/gone")
    assert f.hint


def test_event_term_from_the_condition_when_the_event_has_none():
    ae = r4_event(resultingCondition=[{"reference": "Condition/c1"}])
    del ae["event"]
    rec, _ = convert(ae, condition("c1", [HEADACHE]))
    assert (rec["AETERM"], rec["AEDECOD"]) == ("Dolor de cabeza", "Headache")


def test_resulting_condition_read_from_ndjson(tmp_path):
    """A Condition of an NDJSON file is read again per use (not held parsed): the same result."""
    bundle = json.loads(MINI.read_text(encoding="utf-8"))
    ae = r4_event(resultingCondition=[{"reference": "Condition/c1"}])
    lines = [e["resource"] for e in bundle["entry"]] + [ae, condition("c1", [HEADACHE, NERVOUS])]
    (tmp_path / "in.ndjson").write_text("\n".join(json.dumps(r) for r in lines), encoding="utf-8")
    result = to_sdtm([tmp_path / "in.ndjson"], fast=True)
    rec = record_of(result, "AdverseEvent/ae-j1")
    assert (rec["AEDECOD"], rec["AEBODSYS"]) == ("Headache", "Nervous system disorders")
    assert disposition(result, "Condition/c1").reason == "feeds the records that reference it"


def test_backport_resulting_effect_extension_r4():
    ae = r4_event(extension=[{"url": BACKPORT + "resultingEffect", "valueReference": {"reference": "Condition/c1"}}])
    rec, result = convert(ae, condition("c1", [HEADACHE, NERVOUS]))
    assert (rec["AEDECOD"], rec["AEBODSYS"]) == ("Headache", "Nervous system disorders")
    assert disposition(result, "Condition/c1").outcome == "converted"


@pytest.fixture(scope="module")
def r5_trial():
    return [r for r in generate(2, seed=1, fhir_version="R5") if r["resourceType"] != "Observation"]


def test_meddra_from_resulting_effect_r5(r5_trial):
    resources = copy.deepcopy(r5_trial)
    ae = next(r for r in resources if r["resourceType"] == "AdverseEvent")
    ae["code"] = {"text": "cefalea"}
    obs = {"resourceType": "Observation", "id": "o-effect", "status": "final", "code": {"text": "temperature"},
           "subject": ae["subject"]}
    ae["resultingEffect"] = [{"reference": "Observation/o-effect"}, {"reference": "Condition/c1"}]
    cond = condition("c1", [HEADACHE, NERVOUS], patient=ae["subject"]["reference"], version="R5")
    result = to_sdtm(resources + [obs, cond], fast=True, fhir_version="R5")
    rec = record_of(result, f"AdverseEvent/{ae['id']}")
    assert [rec[n] for n in ("AETERM", "AEDECOD", "AEPTCD", "AEBODSYS")] == [
        "Headache", "Headache", 10019211.0, "Nervous system disorders"]  # "cefalea" translated
    assert disposition(result, "Condition/c1").outcome == "converted"


# --- MedDRA levels without the meddra-level extension ----------------------------------------------
def test_soc_told_by_the_list_and_lone_coding_is_the_pt():
    rec, result = convert(r4_event([NERVOUS, HEADACHE]))
    assert {n: rec[n] for n in MEDDRA_VARS} == {
        "AELLT": None, "AELLTCD": None, "AEDECOD": "Headache", "AEPTCD": 10019211.0,
        "AEBODSYS": "Nervous system disorders", "AEBDSYCD": 10029205.0}
    assert not findings(result, "MEDDRA_AMBIGUOUS")


def test_lone_coding_alone_is_the_pt():
    rec, _ = convert(r4_event([HEAD_ACHE]))
    assert (rec["AEDECOD"], rec["AEPTCD"], rec["AEBODSYS"]) == ("Head ache", 10019198.0, None)


def test_two_codings_without_level_are_ambiguous():
    rec, result = convert(r4_event([HEAD_ACHE, HEADACHE, NERVOUS]))
    assert (rec["AEDECOD"], rec["AEPTCD"], rec["AELLT"]) == (None, None, None)
    assert rec["AEBODSYS"] == "Nervous system disorders"  # the SOC is still told by the list
    [f] = findings(result, "MEDDRA_AMBIGUOUS")
    assert (f.severity, f.variable, f.source, f.value) == ("warning", "AEDECOD", "AdverseEvent/ae-j1",
                                                           "10019198, 10019211")
    assert "meddra-level" in f.hint and "one MedDRA coding per level" in f.hint


def test_the_level_extension_still_wins():
    # two bare codings beside an explicit PT: not ambiguous; a SOC code the extension calls an LLT is the LLT
    other = {"system": MDR, "code": "10019233", "display": "Headache NOS"}
    rec, result = convert(r4_event([HEAD_ACHE, other, coding(HEADACHE, "PT"), coding(NERVOUS, "LLT")]))
    assert (rec["AEDECOD"], rec["AELLT"], rec["AEBODSYS"]) == ("Headache", "Nervous system disorders", None)
    assert not findings(result, "MEDDRA_AMBIGUOUS")


def test_soc_list_is_checked_when_it_loads():
    doc = {"nci_system": NCI, "dictionaries": {"MEDDRA": {"name": "MedDRA", "soc": {"1000532": "Blood"}}}}
    with pytest.raises(SpecError, match=r"codelists.yaml: dictionaries.MEDDRA.soc: .*1000532"):
        Codelists.from_yaml(doc, "codelists.yaml")
    ok = {**doc, "dictionaries": {"MEDDRA": {"soc": {10005329: "Blood and lymphatic system disorders"}}}}
    assert Codelists.from_yaml(ok, "codelists.yaml").meddra_socs == {"10005329"}


# --- a fatal outcome -------------------------------------------------------------------------------
@pytest.mark.parametrize("seriousness, outcome, aesdth", [
    ("Serious", "fatal", "Y"),  # no death criterion: the fatal outcome says it
    ("Serious", "resolved", "N"),
    ("SeriousResultsInHospitalization", "fatal", "Y"),
    ("Non-serious", "fatal", None),  # not serious: no criterion flag at all
])
def test_fatal_outcome_of_a_serious_event(seriousness, outcome, aesdth):
    ae = r4_event([HEADACHE], seriousness={"coding": [{"system": SER, "code": seriousness}]},
                  outcome={"coding": [{"system": OUTCOME, "code": outcome}]})
    rec, _ = convert(ae)
    assert rec["AESDTH"] == aesdth
    assert rec["AESLIFE"] == (None if aesdth is None else "N")


# --- the AE Clinical Research IG's R4 backport -----------------------------------------------------
def test_backport_extension_urls_r4():
    criteria = {"url": BACKPORT + "seriousness-criteria", "extension": [
        {"url": "criterionCode", "valueCodeableConcept": {"coding": [{"system": NCI, "code": "C84266"}]}},
        {"url": "criterionPresent", "valueBoolean": True}]}
    discon = {"url": BACKPORT + "caused-subject-to-discontinue-study", "valueBoolean": True}
    ae = r4_event([HEADACHE], seriousness={"coding": [{"system": SER, "code": "Serious"}]},
                  extension=[criteria, discon])
    rec, result = convert(ae)
    assert (rec["AESER"], rec["AESLIFE"], rec["AESHOSP"]) == ("Y", "Y", "N")
    supp = result.datasets["SUPPAE"]
    seq = rec["AESEQ"]
    mine = supp[(supp["USUBJID"] == rec["USUBJID"]) & (supp["IDVARVAL"] == f"{int(seq)}")]
    assert mine.set_index("QNAM")["QVAL"].to_dict() == {"AEDISCON": "Y", "AETERMO": "cefalea"}  # and the verbatim as sent


def test_r4_severity_extension_is_the_r5_ig_s():
    """Without R4's severity element, the R5 IG's ae-severity; the backport defines no ae-severity."""
    def severity(base):
        return {"url": base + "ae-severity", "valueCodeableConcept": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/adverse-event-severity", "code": "severe"}]}}

    r5_ig = BACKPORT.replace("ae-research-backport-ig", "ae-research-ig")
    assert convert(r4_event([HEADACHE], extension=[severity(r5_ig)]))[0]["AESEV"] == "SEVERE"
    assert convert(r4_event([HEADACHE], extension=[severity(BACKPORT)]))[0]["AESEV"] is None


# --- the whole primary path, the levels not sent, AEACN ------------------------------------------
HEADACHES_NEC = {"system": MDR, "code": "10019233", "display": "Headaches NEC", "version": "26.0"}
HEADACHES = {"system": MDR, "code": "10019231", "display": "Headaches", "version": "26.0"}
PATH_VARS = ("AELLT", "AELLTCD", "AEHLT", "AEHLTCD", "AEHLGT", "AEHLGTCD")


def test_every_level_of_the_primary_path_by_its_extension():
    codings = [coding(HEAD_ACHE, "LLT"), coding(HEADACHE, "PT"), coding(HEADACHES_NEC, "HLT"),
               coding(HEADACHES, "HLGT"), coding(NERVOUS, "SOC")]
    rec, result = convert(r4_event(codings))
    assert {n: rec[n] for n in PATH_VARS} == {
        "AELLT": "Head ache", "AELLTCD": 10019198.0, "AEHLT": "Headaches NEC", "AEHLTCD": 10019233.0,
        "AEHLGT": "Headaches", "AEHLGTCD": 10019231.0}
    assert (rec["AEDECOD"], rec["AESOC"]) == ("Headache", "Nervous system disorders")
    # mini-r4.json's ae1 sends PT and SOC (counted), its ae2 no MedDRA at all (its AEDECOD's business)
    ae = result.datasets["AE"]
    empty = int((ae["AEHLT"].isna() & ae["AEDECOD"].notna()).sum())
    assert (empty, len(ae)) == (1, 3)
    [f] = [f for f in findings(result, "DICTIONARY_LEVEL_NOT_SENT") if f.variable == "AEHLT"]
    assert f.message.startswith(f"AEHLT is empty in {empty} of {len(ae)} records")
    assert result.metadata["AE"].dictionaries == {"MEDDRA": "26.0"}  # define.xml's ExternalCodeList version


def test_expected_levels_not_sent_stay_empty_with_one_warning_each():
    """PT and SOC only (a hospital's coding): the Expected LLT, HLT, HLGT and codes stay empty; one warning
    per variable, not per record. AEDECOD (Req) and the SOC are there: nothing said of them."""
    second = {**r4_event([NERVOUS, HEADACHE]), "id": "ae-j2"}
    rec, result = convert(r4_event([NERVOUS, HEADACHE]), second)
    assert all(rec[n] is None for n in PATH_VARS)
    found = findings(result, "DICTIONARY_LEVEL_NOT_SENT")
    assert sorted(f.variable for f in found) == sorted(PATH_VARS)
    # ae-j1, ae-j2 and mini-r4.json's ae1 send PT and SOC; its ae2 no MedDRA coding (not counted)
    assert all(f.severity == "warning" and "is empty in 3 of 4 records" in f.message for f in found)
    assert result.metadata["AE"].dictionaries == {}  # no Coding.version sent


def test_aeacn_is_the_study_default_unless_the_record_says():
    withdrawn = {"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-AdverseEvent.mitigatingAction",
                 "extension": [{"url": "item", "valueCodeableConcept": {"coding": [{"system": NCI, "code": "C49502"}]}}]}
    said = {**r4_event([HEADACHE], extension=[withdrawn]), "id": "ae-j2"}
    rec, result = convert(r4_event([HEADACHE]), said)
    assert rec["AEACN"] == "NOT APPLICABLE"  # study.yaml defaults: one injection, no dose to change
    other = result.metadata["AE"]
    assert other.frame["AEACN"].tolist()[other.sources.index("AdverseEvent/ae-j2")] == "DRUG WITHDRAWN"


def test_a_default_is_checked_against_the_codelist(tmp_path):
    import shutil

    from conftest import ROOT

    from tcim_interop import load_mapping_set

    shutil.copytree(ROOT / "mappings", tmp_path / "m")
    study = tmp_path / "m" / "study.yaml"
    study.write_text(study.read_text().replace("AEACN: NOT APPLICABLE", "AEACN: NONE"))
    with pytest.raises(SpecError, match="defaults: AEACN: 'NONE' is not a term of codelist ACN"):
        load_mapping_set(tmp_path / "m")
    study.write_text(study.read_text().replace("AEACN: NONE", "AESEQ: 1"))
    with pytest.raises(SpecError, match="defaults: 'AESEQ' is not a variable a spec of this set reads from FHIR"):
        load_mapping_set(tmp_path / "m")
