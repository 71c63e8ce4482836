"""mapping/row_algorithms.py: one variable of one record, from hand-built rows and the shipped specs."""

import dataclasses

import pytest

from tcim_interop.fhir.index import ResourceIndex
from tcim_interop.fhir.path import compile_path
from tcim_interop.fhir.read import InputResource
from tcim_interop.findings import Report
from tcim_interop.mapping import algorithms, row_algorithms as ra
from tcim_interop.mapping.context import Row, RunContext
from tcim_interop.mapping_spec.concept_maps import Translations
from tcim_interop.mapping_spec.load import load_mapping_set
from tcim_interop.mapping_spec.model import Variable

NCI = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
ISO = "urn:iso:std:iso:3166"
VISIT = "http://tcim-interop.org/fhir/CodeSystem/visit"
MDR = "http://terminology.hl7.org/CodeSystem/mdr"
LEVEL = "http://tcim-interop.org/fhir/StructureDefinition/meddra-level"
SER = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
CRITERIA = "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/seriousness-criteria"
DISCON = "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/caused-subject-to-discontinue-study"


@pytest.fixture(scope="module")
def ms():
    return load_mapping_set()


def var(ms, role, name):
    spec = ms.spec(role)
    if name in spec.by_name:
        return spec.by_name[name]
    return next(s for s in spec.supplemental if s.qnam == name)


def custom(name, algorithm, source=None, type="Char", **params):
    src = {v: compile_path(source) for v in ("R4", "R5")} if source else {}
    return Variable(name=name, label=name, type=type, core="Perm", algorithm=algorithm, source=src, params=params)


def make_row(ms, data, version="R4", domain="DM", refs=None, others=(), values=None, subject_row=None):
    data = {"resourceType": "ResearchSubject", "id": "rs1", **data} if "resourceType" not in data else data
    res = InputResource(data, "in.json", "entry[0]", version=version)
    ref_res = {}
    for i, (name, d) in enumerate((refs or {}).items(), start=1):
        ref_res[name] = InputResource(d, "in.json", f"entry[{i}]", version=version) if d is not None else None
    extra = [InputResource(d, "in.json", f"entry[{50 + i}]", version=version) for i, d in enumerate(others)]
    index = ResourceIndex([res, *(r for r in ref_res.values() if r is not None), *extra])
    run = RunContext(ms, index, Report())
    return Row(res, run, domain, refs=ref_res, values=dict(values or {}), subject_row=subject_row)


def run_algo(row, variable):
    return algorithms.get(variable.algorithm).fn(row, variable)


def found(row):
    return [(f.severity, f.code, f.variable) for f in row.run.report.findings]


def test_every_row_algorithm_is_registered():
    assert algorithms.known("row") == sorted([
        "assign", "assign_ct", "hardcode", "hardcode_if", "domain_code", "concat", "subject_var", "iso_datetime",
        "death_flag", "birth_date", "age", "arm", "arm_null_reason", "country", "visit", "meddra",
        "seriousness_criterion", "result_text", "not_done", "yes_no", "study_product", "site_id", "study_id",
        "disposition_term", "verbatim", "unplanned_arm", "own_visit", "visit_on_date",
        "dosing_frequency", "ongoing", "reference_point"])  # mapping/dosing.py, mapping/ongoing.py (CM)


# --- assign ------------------------------------------------------------------------------------
def test_assign_char_first_matching_alternative(ms):
    row = make_row(ms, {"identifier": [{"value": "X-1"}, {"use": "official", "value": "001"}]})
    assert run_algo(row, var(ms, "dm", "SUBJID")) == "001"
    row = make_row(ms, {"identifier": [{"value": "X-1"}, {"use": "secondary", "value": "002"}]})
    assert run_algo(row, var(ms, "dm", "SUBJID")) == "X-1"
    assert found(row) == []


def test_assign_from_a_context_resource(ms):
    row = make_row(ms, {}, refs={"study": {"resourceType": "ResearchStudy", "id": "s",
                                           "identifier": [{"value": "TCIM-ELAII"}]}})
    assert run_algo(row, var(ms, "dm", "STUDYID")) == "TCIM-ELAII"


def test_assign_missing_is_none_without_finding(ms):
    row = make_row(ms, {})
    assert run_algo(row, var(ms, "dm", "SUBJID")) is None
    assert run_algo(row, var(ms, "dm", "STUDYID")) is None  # %study not resolved
    assert found(row) == []


def test_assign_num(ms):
    exdose = var(ms, "ex", "EXDOSE")
    row = make_row(ms, {"resourceType": "MedicationAdministration", "dosage": {"dose": {"value": 50}}}, domain="EX")
    value = run_algo(row, exdose)
    assert value == 50.0 and isinstance(value, float)
    row = make_row(ms, {"resourceType": "MedicationAdministration", "dosage": {"dose": {"value": "2.5"}}}, domain="EX")
    assert run_algo(row, exdose) == 2.5


@pytest.mark.parametrize("bad", ["fifty", "nan", "inf", True])
def test_assign_num_not_a_number(ms, bad):
    row = make_row(ms, {"resourceType": "MedicationAdministration", "dosage": {"dose": {"value": bad}}},
                   domain="EX", values={"USUBJID": "TCIM-ELAII-01-001"})
    assert run_algo(row, var(ms, "ex", "EXDOSE")) is None
    if bad is True:  # a boolean is no number, but not reported as a bad one either
        assert found(row) == []
    else:
        assert found(row) == [("error", "NOT_A_NUMBER", "EXDOSE")]
        f = row.run.report.findings[0]
        assert (f.usubjid, f.source, f.file, f.domain) == ("TCIM-ELAII-01-001", "MedicationAdministration/#in.json:entry[0]",
                                                           "in.json:entry[0]", "EX")


def test_assign_numbers_as_text(ms):
    v = custom("XXORRES", "assign", "valueQuantity.value")
    for value, text in ((45.0, "45"), (4.25, "4.25"), (45, "45"), (-0.5, "-0.5")):
        row = make_row(ms, {"valueQuantity": {"value": value}})
        assert run_algo(row, v) == text


def test_assign_complex_element_is_a_finding(ms):
    v = custom("XXTEST", "assign", "code")
    row = make_row(ms, {"code": {"coding": [{"code": "x"}]}})
    assert run_algo(row, v) is None
    assert found(row) == [("error", "NOT_A_PRIMITIVE", "XXTEST")]
    num = custom("XXNUM", "assign", "valueQuantity", type="Num")
    row = make_row(ms, {"valueQuantity": {"value": 3}})
    assert run_algo(row, num) is None
    assert found(row) == [("error", "NOT_A_PRIMITIVE", "XXNUM")]


# --- assign_ct ---------------------------------------------------------------------------------
def test_assign_ct_primitive_code_with_params_system(ms):
    row = make_row(ms, {}, refs={"patient": {"resourceType": "Patient", "id": "p", "gender": "female"}})
    assert run_algo(row, var(ms, "dm", "SEX")) == "F"
    assert found(row) == []


def test_assign_ct_unmapped_primitive_is_a_warning(ms):
    row = make_row(ms, {}, refs={"patient": {"resourceType": "Patient", "id": "p", "gender": "other"}})
    assert run_algo(row, var(ms, "dm", "SEX")) is None
    assert found(row) == [("warning", "CT_UNMAPPED", "SEX")]
    f = row.run.report.findings[0]
    assert f.value == "other"
    assert f.message == "no SEX term for other"
    assert f.hint.startswith(f'add "system|code": TERM to maps.{var(ms, "dm", "SEX").map} in mappings/codelists.yaml')


def test_assign_ct_mapped_coding(ms):
    row = make_row(ms, {"resourceType": "MedicationAdministration",
                        "dosage": {"route": {"coding": [{"system": SNOMED, "code": "78421000"}]}}}, domain="EX")
    assert run_algo(row, var(ms, "ex", "EXROUTE")) == "INTRAMUSCULAR"


def test_assign_ct_nci_coding_without_map(ms):
    row = make_row(ms, {"resourceType": "MedicationAdministration",
                        "dosage": {"site": {"coding": [{"system": NCI, "code": "C117874"}]}}}, domain="EX")
    assert run_algo(row, var(ms, "ex", "EXLOC")) == "TIBIALIS ANTERIOR MUSCLE"
    assert found(row) == []


def test_assign_ct_first_mappable_coding_wins(ms):
    row = make_row(ms, {"resourceType": "MedicationAdministration", "dosage": {"site": {"coding": [
        {"system": SNOMED, "code": "182281004"}, {"system": NCI, "code": "C163514"}, {"system": NCI, "code": "C117874"}]}}},
        domain="EX")
    assert run_algo(row, var(ms, "ex", "EXLOC")) == "EXTENSOR DIGITORUM BREVIS MUSCLE"
    assert found(row) == []


def test_assign_ct_unmapped_coding_is_a_warning_and_none(ms):
    row = make_row(ms, {"resourceType": "MedicationAdministration", "dosage": {"site": {"coding": [
        {"system": SNOMED, "code": "182281004"}, {"system": NCI, "code": "C99999"}]}}}, domain="EX")
    assert run_algo(row, var(ms, "ex", "EXLOC")) is None
    assert found(row) == [("warning", "CT_UNMAPPED", "EXLOC")]
    assert row.run.report.findings[0].value == f"{SNOMED}|182281004, {NCI}|C99999"


def test_assign_ct_text_only(ms):
    v = custom("EXROUTE", "assign_ct", "dosage.route")
    v.codelist, v.map = "ROUTE", "ROUTE"
    row = make_row(ms, {"dosage": {"route": {"text": "into the muscle"}}})
    assert run_algo(row, v) is None
    assert found(row) == [("warning", "CT_UNMAPPED", "EXROUTE")]
    assert row.run.report.findings[0].value == "text only: 'into the muscle'"


def test_assign_ct_quantity_unit(ms):
    orresu = var(ms, "mune", "XMORRESU")
    row = make_row(ms, {"resourceType": "Observation", "valueQuantity": {"value": 4.2, "unit": "mV", "system": UCUM,
                                                                          "code": "mV"}}, domain="XM")
    assert run_algo(row, orresu) == "mV"
    exdosu = var(ms, "ex", "EXDOSU")
    row = make_row(ms, {"resourceType": "MedicationAdministration", "dosage": {"dose": {
        "value": 50, "unit": "million cells", "system": UCUM, "code": "10*6{cells}"}}}, domain="EX")
    assert run_algo(row, exdosu) == "10^6 Therapeutic Cells"


@pytest.mark.parametrize("quantity", [
    {"value": 45, "unit": "1", "system": UCUM, "code": "1"},
    {"value": 45, "unit": "count", "system": UCUM, "code": "{count}"},
    {"value": 45, "code": "{index}"},
    {"value": 45},  # no unit at all
])
def test_assign_ct_dimensionless_unit_is_none_without_finding(ms, quantity):
    row = make_row(ms, {"resourceType": "Observation", "valueQuantity": quantity}, domain="XM")
    assert run_algo(row, var(ms, "mune", "XMORRESU")) is None
    assert found(row) == []


def test_assign_ct_unit_without_ucum_code_is_a_warning(ms):
    row = make_row(ms, {"resourceType": "Observation", "valueQuantity": {"value": 4.2, "unit": "millivolts"}},
                   domain="XM")
    assert run_algo(row, var(ms, "mune", "XMORRESU")) is None
    assert found(row) == [("warning", "CT_UNMAPPED", "XMORRESU")]
    assert row.run.report.findings[0].value == "unit 'millivolts' without a UCUM code"


# --- constants and row values -------------------------------------------------------------------
def test_hardcode(ms):
    row = make_row(ms, {})
    assert run_algo(row, var(ms, "dm", "DOMAIN")) == "DM"
    assert run_algo(row, var(ms, "ex", "EXDOSFRM")) == "INJECTION, SUSPENSION"


def test_hardcode_if(ms):
    ageu = var(ms, "dm", "AGEU")
    assert run_algo(make_row(ms, {}, values={"AGE": 61.0}), ageu) == "YEARS"
    assert run_algo(make_row(ms, {}, values={"AGE": 0.0}), ageu) == "YEARS"
    assert run_algo(make_row(ms, {}, values={"AGE": None}), ageu) is None
    assert run_algo(make_row(ms, {}), ageu) is None


def test_domain_code(ms):
    v = var(ms, "mune", "DOMAIN")
    assert run_algo(make_row(ms, {}, domain="XM"), v) == "XM"
    assert run_algo(make_row(ms, {}, domain="NV"), v) == "NV"


def test_concat(ms):
    usubjid = var(ms, "dm", "USUBJID")
    row = make_row(ms, {}, values={"STUDYID": "TCIM-ELAII", "SITEID": "01", "SUBJID": "001"})
    assert run_algo(row, usubjid) == "TCIM-ELAII-01-001"


def test_concat_gives_way_to_the_usubjid_identifier(ms):
    """Another study's USUBJID (the CDISC pilot's) is not STUDYID-SITEID-SUBJID: its identifier gives it."""
    subject = {"resourceType": "ResearchSubject", "id": "rs1",
               "identifier": [{"system": "http://tcim-interop.org/fhir/sid/usubjid", "value": "01-701-1015"}]}
    row = make_row(ms, subject, values={"STUDYID": "CDISCPILOT01", "SITEID": "701", "SUBJID": "1015"})
    assert run_algo(row, var(ms, "dm", "USUBJID")) == "01-701-1015"


@pytest.mark.parametrize("values", [
    {"STUDYID": "TCIM-ELAII", "SITEID": None, "SUBJID": "001"},
    {"STUDYID": "TCIM-ELAII", "SITEID": "01", "SUBJID": ""},
    {"STUDYID": "TCIM-ELAII", "SITEID": "01"},
])
def test_concat_missing_part_is_none(ms, values):
    assert run_algo(make_row(ms, {}, values=values), var(ms, "dm", "USUBJID")) is None


def test_subject_var(ms):
    dm_row = make_row(ms, {}, values={"STUDYID": "TCIM-ELAII", "USUBJID": "TCIM-ELAII-01-001"})
    row = make_row(ms, {"resourceType": "AdverseEvent", "id": "ae1"}, domain="AE", subject_row=dm_row)
    assert run_algo(row, var(ms, "ae", "USUBJID")) == "TCIM-ELAII-01-001"
    assert run_algo(row, var(ms, "ae", "STUDYID")) == "TCIM-ELAII"
    assert run_algo(make_row(ms, {"resourceType": "AdverseEvent"}, domain="AE"), var(ms, "ae", "USUBJID")) is None


# --- dates -------------------------------------------------------------------------------------
def test_iso_datetime_r4_and_r5_sources(ms):
    rficdtc = var(ms, "dm", "RFICDTC")
    row = make_row(ms, {}, refs={"consent": {"resourceType": "Consent", "id": "c",
                                             "dateTime": "2021-03-02T00:15:00+01:00"}})
    assert run_algo(row, rficdtc) == "2021-03-02T00:15:00"
    row = make_row(ms, {}, version="R5", refs={"consent": {"resourceType": "Consent", "id": "c", "date": "2021-03-02"}})
    assert run_algo(row, rficdtc) == "2021-03-02"
    # the R4 element in an R5 resource is not read
    row = make_row(ms, {}, version="R5", refs={"consent": {"resourceType": "Consent", "id": "c",
                                                           "dateTime": "2021-03-02"}})
    assert run_algo(row, rficdtc) is None
    assert found(row) == []


def test_iso_datetime_bad_date_is_an_error(ms):
    row = make_row(ms, {"period": {"end": "2021-02-30"}}, values={"USUBJID": "U1"})
    rfpendtc = var(ms, "dm", "RFPENDTC")  # a derivation whose collected end iso_datetime reads (collect)
    assert algorithms.get(algorithms.get(rfpendtc.algorithm).collect).fn(row, rfpendtc) is None
    assert found(row) == [("error", "BAD_DATE", "RFPENDTC")]
    f = row.run.report.findings[0]
    assert (f.value, f.usubjid, f.domain) == ("2021-02-30", "U1", "DM")
    assert "no such day" in f.message
    assert "YYYY-MM-DD" in f.hint


@pytest.mark.parametrize("patient, flag", [
    ({"deceasedDateTime": "2022-01-10"}, "Y"),
    ({"deceasedBoolean": True}, "Y"),
    ({"deceasedBoolean": False}, None),
    ({}, None),
])
def test_death_flag(ms, patient, flag):
    row = make_row(ms, {}, refs={"patient": {"resourceType": "Patient", "id": "p", **patient}})
    assert run_algo(row, var(ms, "dm", "DTHFL")) == flag


@pytest.mark.parametrize("policy, birth, expected", [
    ("year", "1960-05-17", "1960"),
    ("full", "1960-05-17", "1960-05-17"),
    ("omit", "1960-05-17", None),
    ("year", "1960-05", "1960"),
    ("full", "1960-05", "1960-05"),
    ("full", None, None),
])
def test_birth_date_policies(ms, monkeypatch, policy, birth, expected):
    monkeypatch.setitem(ms.study, "birth_date", policy)
    patient = {"resourceType": "Patient", "id": "p", **({"birthDate": birth} if birth else {})}
    row = make_row(ms, {}, refs={"patient": patient})
    assert run_algo(row, var(ms, "dm", "BRTHDTC")) == expected
    assert found(row) == []


def test_birth_date_default_policy_is_year(ms, monkeypatch):
    monkeypatch.delitem(ms.study, "birth_date")
    row = make_row(ms, {}, refs={"patient": {"resourceType": "Patient", "id": "p", "birthDate": "1960-05-17"}})
    assert run_algo(row, var(ms, "dm", "BRTHDTC")) == "1960"


def test_birth_date_bad_date(ms, monkeypatch):
    monkeypatch.setitem(ms.study, "birth_date", "year")
    row = make_row(ms, {}, refs={"patient": {"resourceType": "Patient", "id": "p", "birthDate": "1960-13-01"}})
    assert run_algo(row, var(ms, "dm", "BRTHDTC")) is None
    assert found(row) == [("error", "BAD_DATE", "BRTHDTC")]


def test_age(ms):
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1960-06-14"}
    age = var(ms, "dm", "AGE")
    row = make_row(ms, {}, refs={"patient": patient}, values={"RFICDTC": "2021-06-13T10:00"})
    value = run_algo(row, age)
    assert value == 60.0 and isinstance(value, float)
    row = make_row(ms, {}, refs={"patient": patient}, values={"RFICDTC": "2021-06-14"})
    assert run_algo(row, age) == 61.0
    assert found(row) == []


def age_observation(value, unit=None, **more):
    quantity = {"value": value, **({"system": UCUM, "code": unit} if unit else {})}
    return {"resourceType": "Observation", "id": "age", "status": "final", "valueQuantity": quantity,
            "code": {"coding": [{"system": "http://loinc.org", "code": "30525-0"}]}, **more}


def test_age_as_collected_wins_over_the_birth_date(ms):
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1960-06-14"}
    row = make_row(ms, {}, refs={"patient": patient, "age": age_observation(58, "a", effectiveDateTime="2019-03-02")},
                   values={"RFICDTC": "2021-06-14"})
    assert run_algo(row, var(ms, "dm", "AGE")) == 58.0  # not the 61 of the birth date at RFICDTC
    assert run_algo(row, var(ms, "dm", "DMDTC")) == "2019-03-02"
    row.values["AGE"] = 58.0
    assert run_algo(row, var(ms, "dm", "AGEU")) == "YEARS"
    assert found(row) == []


@pytest.mark.parametrize(("unit", "ageu"), [("mo", "MONTHS"), ("wk", "WEEKS"), ("d", "DAYS"), ("h", "HOURS"), ("a", "YEARS")])
def test_age_unit_from_ucum(ms, unit, ageu):
    row = make_row(ms, {}, refs={"age": age_observation(7, unit)}, values={"AGE": 7.0})
    assert run_algo(row, var(ms, "dm", "AGEU")) == ageu


def test_age_unit_not_ucum_is_reported_never_years(ms):
    row = make_row(ms, {}, refs={"age": age_observation(7, "ann")}, values={"AGE": 7.0})
    assert run_algo(row, var(ms, "dm", "AGEU")) is None
    assert found(row) == [("warning", "CT_UNMAPPED", "AGEU")]


def test_age_unknown(ms):
    age = var(ms, "dm", "AGE")
    row = make_row(ms, {}, refs={"patient": {"resourceType": "Patient", "id": "p", "birthDate": "1960-06-14"}})
    assert run_algo(row, age) is None  # no RFICDTC
    assert found(row) == [("warning", "AGE_UNKNOWN", "AGE")]
    row = make_row(ms, {}, refs={"patient": {"resourceType": "Patient", "id": "p", "birthDate": "1960"}},
                   values={"RFICDTC": "2021-06-14"})
    assert run_algo(row, age) is None  # partial birth date
    assert found(row) == [("warning", "AGE_UNKNOWN", "AGE")]
    row = make_row(ms, {}, refs={"patient": {"resourceType": "Patient", "id": "p"}}, values={"RFICDTC": "2021-06-14"})
    assert run_algo(row, age) is None  # no birth date at all: nothing to say
    assert found(row) == []


# --- arms --------------------------------------------------------------------------------------
R4_STUDY = {"resourceType": "ResearchStudy", "id": "overall", "arm": [
    {"name": "BMNC", "description": "Bone marrow mononuclear cells"}, {"name": "PLACEBO"}]}
R4_SITE = {"resourceType": "ResearchStudy", "id": "site", "partOf": [{"reference": "ResearchStudy/overall"}]}
R5_SITE = {"resourceType": "ResearchStudy", "id": "site", "comparisonGroup": [
    {"linkId": "grp-1", "name": "BMNC", "description": "Bone marrow mononuclear cells"},
    {"linkId": "grp-2", "name": "PLACEBO", "description": "Placebo"}]}


def arm_values(ms, row):
    return {n: run_algo(row, var(ms, "dm", n)) for n in ("ARMCD", "ARM", "ACTARMCD", "ACTARM", "ARMNRS")}


def test_arm_r4_by_arm_name(ms):
    row = make_row(ms, {"assignedArm": "BMNC", "actualArm": "PLACEBO"}, refs={"site": R4_SITE, "study": R4_STUDY})
    assert arm_values(ms, row) == {"ARMCD": "BMNC", "ARM": "Bone marrow mononuclear cells",
                                   "ACTARMCD": "PLACEBO", "ACTARM": "PLACEBO", "ARMNRS": None}
    assert found(row) == []


def test_arm_r5_by_comparison_group_link_id(ms):
    row = make_row(ms, {"assignedComparisonGroup": "grp-1", "actualComparisonGroup": "grp-2"}, version="R5",
                   refs={"site": R5_SITE, "study": {"resourceType": "ResearchStudy", "id": "overall"}})
    assert arm_values(ms, row) == {"ARMCD": "BMNC", "ARM": "Bone marrow mononuclear cells",
                                   "ACTARMCD": "PLACEBO", "ACTARM": "Placebo", "ARMNRS": None}


def test_arm_undeclared(ms):
    row = make_row(ms, {"assignedArm": "LOW-DOSE"}, refs={"site": R4_SITE, "study": R4_STUDY})
    assert run_algo(row, var(ms, "dm", "ARMCD")) is None
    assert found(row) == [("error", "ARM_UNDECLARED", "ARMCD")]
    assert row.run.report.findings[0].value == "LOW-DOSE"
    # R5: the arm's name is not its linkId
    row = make_row(ms, {"assignedComparisonGroup": "BMNC"}, version="R5", refs={"site": R5_SITE, "study": None})
    assert run_algo(row, var(ms, "dm", "ARMCD")) is None
    assert found(row) == [("error", "ARM_UNDECLARED", "ARMCD")]


@pytest.mark.parametrize("subject, reason", [
    ({"status": "ineligible"}, "SCREEN FAILURE"),
    ({"status": "not-registered"}, "SCREEN FAILURE"),
    ({"status": "candidate"}, "NOT ASSIGNED"),
    ({}, "NOT ASSIGNED"),
    ({"status": "on-study", "assignedArm": "BMNC"}, "ASSIGNED, NOT TREATED"),
    ({"status": "on-study", "assignedArm": "BMNC", "actualArm": "BMNC"}, None),
])
def test_arm_null_reason_r4(ms, subject, reason):
    row = make_row(ms, subject, refs={"site": R4_SITE, "study": R4_STUDY})
    assert run_algo(row, var(ms, "dm", "ARMNRS")) == reason


def _progress(*codes):
    return {"progress": [{"subjectState": {"coding": [{"system": "http://hl7.org/fhir/research-subject-state",
                                                       "code": c}]}} for c in codes]}


@pytest.mark.parametrize("subject, reason", [
    (_progress("candidate", "ineligible"), "SCREEN FAILURE"),
    (_progress("on-study"), "NOT ASSIGNED"),
    ({"status": "active"}, "NOT ASSIGNED"),  # R5 status is the record's publication status
    ({**_progress("on-study"), "assignedComparisonGroup": "grp-1"}, "ASSIGNED, NOT TREATED"),
    ({"assignedComparisonGroup": "grp-1", "actualComparisonGroup": "grp-1"}, None),
])
def test_arm_null_reason_r5(ms, subject, reason):
    row = make_row(ms, subject, version="R5", refs={"site": R5_SITE, "study": None})
    assert run_algo(row, var(ms, "dm", "ARMNRS")) == reason


def test_arm_null_reason_ignores_the_other_release(ms):
    # an R4 status read as R5 means nothing, and an R5 progress read as R4 too
    assert run_algo(make_row(ms, {"status": "ineligible"}, version="R5"), var(ms, "dm", "ARMNRS")) == "NOT ASSIGNED"
    assert run_algo(make_row(ms, _progress("ineligible")), var(ms, "dm", "ARMNRS")) == "NOT ASSIGNED"


# --- country -----------------------------------------------------------------------------------
@pytest.mark.parametrize("code", ["ES", "ESP", "es"])
def test_country_r4(ms, code):
    site = {**R4_SITE, "location": [{"coding": [{"system": ISO, "code": code}]}]}
    row = make_row(ms, {}, refs={"site": site, "study": R4_STUDY})
    assert run_algo(row, var(ms, "dm", "COUNTRY")) == "ESP"
    assert found(row) == []


def test_country_from_the_overall_study_and_r5_region(ms):
    study = {**R4_STUDY, "location": [{"coding": [{"system": ISO, "code": "PT"}]}]}
    row = make_row(ms, {}, refs={"site": R4_SITE, "study": study})
    assert run_algo(row, var(ms, "dm", "COUNTRY")) == "PRT"
    site = {**R5_SITE, "region": [{"coding": [{"system": "urn:other", "code": "Spain"}, {"system": ISO, "code": "ES"}]}]}
    row = make_row(ms, {}, version="R5", refs={"site": site, "study": None})
    assert run_algo(row, var(ms, "dm", "COUNTRY")) == "ESP"


@pytest.mark.parametrize("coding, shown", [
    ({"system": ISO, "code": "XX"}, f"{ISO}|XX"),
    ({"system": ISO, "code": "724"}, f"{ISO}|724"),
    ({"system": "urn:other", "code": "ES"}, "urn:other|ES"),
])
def test_country_unknown_is_a_warning(ms, coding, shown):
    site = {**R4_SITE, "location": [{"coding": [coding]}]}
    row = make_row(ms, {}, refs={"site": site, "study": R4_STUDY})
    assert run_algo(row, var(ms, "dm", "COUNTRY")) is None
    assert found(row) == [("warning", "CT_UNMAPPED", "COUNTRY")]
    assert row.run.report.findings[0].value == shown


def test_country_absent_is_none_without_finding(ms):
    row = make_row(ms, {}, refs={"site": R4_SITE, "study": R4_STUDY})
    assert run_algo(row, var(ms, "dm", "COUNTRY")) is None
    assert found(row) == []


# --- visit -------------------------------------------------------------------------------------
def encounter(eid, code, system=VISIT):
    return {"resourceType": "Encounter", "id": eid, "type": [{"coding": [{"system": "urn:x", "code": "AMB"}]},
                                                             {"coding": [{"system": system, "code": code}]}]}


def test_visit_from_the_encounter_type(ms):
    ma = {"resourceType": "MedicationAdministration", "id": "ma1", "context": {"reference": "Encounter/e1"}}
    row = make_row(ms, ma, domain="EX", others=[encounter("e1", "DAY30")])
    visitnum = run_algo(row, var(ms, "ex", "VISITNUM"))
    assert visitnum == 4.0 and isinstance(visitnum, float)
    assert run_algo(row, var(ms, "ex", "VISIT")) == "DAY 30"
    assert row.run.used == {"Encounter/e1"}
    assert found(row) == []


def test_visit_r5_observation(ms):
    obs = {"resourceType": "Observation", "id": "o1", "encounter": {"reference": "Encounter/e2"}}
    row = make_row(ms, obs, version="R5", domain="XM", others=[encounter("e2", "INJECTION")])
    assert run_algo(row, var(ms, "mune", "VISITNUM")) == 3.0
    assert run_algo(row, var(ms, "mune", "VISIT")) == "INJECTION"


def test_visit_missing_encounter_is_a_warning(ms):
    ma = {"resourceType": "MedicationAdministration", "id": "ma1", "context": {"reference": "Encounter/nope"}}
    row = make_row(ms, ma, domain="EX")
    assert run_algo(row, var(ms, "ex", "VISITNUM")) is None
    assert found(row) == [("warning", "BROKEN_REFERENCE", "VISITNUM")]
    assert row.run.report.findings[0].value == "Encounter/nope"
    assert row.run.used == set()


def test_visit_reference_to_something_else_is_broken(ms):
    ma = {"resourceType": "MedicationAdministration", "id": "ma1", "context": {"reference": "Patient/p"}}
    row = make_row(ms, ma, domain="EX", others=[{"resourceType": "Patient", "id": "p"}])
    assert run_algo(row, var(ms, "ex", "VISITNUM")) is None
    assert found(row) == [("warning", "BROKEN_REFERENCE", "VISITNUM")]


@pytest.mark.parametrize("enc", [encounter("e1", "DAY45"), encounter("e1", "DAY30", system="urn:other-visits"),
                                 {"resourceType": "Encounter", "id": "e1"}])
def test_visit_encounter_without_a_known_visit_code(ms, enc):
    """With visit windows (the shipped study.yaml), the record's visit is told by date after DM
    (mapping/visits.py, tests/test_visits.py); without, it is unmapped."""
    ma = {"resourceType": "MedicationAdministration", "id": "ma1", "context": {"reference": "Encounter/e1"}}
    row = make_row(ms, ma, domain="EX", others=[enc])
    assert run_algo(row, var(ms, "ex", "VISIT")) is None
    assert found(row) == []
    pending = row.run.visits.pending["MedicationAdministration/ma1"]
    assert (pending.encounter, pending.date_var, pending.fields) == ("Encounter/e1", "EXSTDTC", {"VISIT": ("visit", True)})
    no_windows = _without_windows(ms)
    row = make_row(no_windows, ma, domain="EX", others=[enc])
    assert run_algo(row, var(no_windows, "ex", "VISIT")) is None
    assert found(row) == [("warning", "CT_UNMAPPED", "VISIT")] and row.run.visits.pending == {}


def _without_windows(ms):
    study = {**ms.study, "visits": [{k: v for k, v in visit.items() if k != "window"} for visit in ms.study["visits"]]}
    return dataclasses.replace(ms, study=study)


def test_visit_no_encounter_reference(ms):
    row = make_row(ms, {"resourceType": "MedicationAdministration", "id": "ma1"}, domain="EX")
    assert run_algo(row, var(ms, "ex", "VISITNUM")) is None
    assert found(row) == []
    assert row.run.visits.pending["MedicationAdministration/ma1"].encounter is None  # its own date tells
    row = make_row(_without_windows(ms), {"resourceType": "MedicationAdministration", "id": "ma1"}, domain="EX")
    assert run_algo(row, var(ms, "ex", "VISITNUM")) is None
    assert found(row) == [] and row.run.visits.pending == {}


def test_visit_of_an_encounter_typed_through_a_concept_map(ms):
    """A hospital's encounter type that a ConceptMap translates to a visit code is that visit."""
    mapped = dataclasses.replace(ms, codelists=dataclasses.replace(ms.codelists, translations=Translations()))
    mapped.codelists.translations.add("urn:hospital|REV", f"{VISIT}|DAY90", "test")
    ma = {"resourceType": "MedicationAdministration", "id": "ma1", "context": {"reference": "Encounter/e1"}}
    enc = encounter("e1", "REV", system="urn:hospital")
    row = make_row(mapped, ma, domain="EX", others=[enc])
    assert run_algo(row, var(mapped, "ex", "VISITNUM")) == 5.0
    assert run_algo(row, var(mapped, "ex", "VISIT")) == "DAY 90"
    assert found(row) == [] and row.run.visits.pending == {} and row.run.used == {"Encounter/e1"}
    row = make_row(ms, ma, domain="EX", others=[enc])  # the shipped maps do not know it
    assert run_algo(row, var(ms, "ex", "VISITNUM")) is None


# --- MedDRA ------------------------------------------------------------------------------------
def meddra(code, display, level=None):
    c = {"system": MDR, "version": "26.0", "code": code, "display": display}
    if level:
        c["extension"] = [{"url": LEVEL, "valueCode": level}]
    return c


def ae_row(ms, codings, version="R4", **more):
    element = "event" if version == "R4" else "code"
    data = {"resourceType": "AdverseEvent", "id": "ae1", element: {"coding": codings, "text": "dolor de cabeza"},
            **more}
    return make_row(ms, data, version=version, domain="AE", values={"USUBJID": "U1"})


def test_meddra_levels(ms):
    row = ae_row(ms, [{"system": SNOMED, "code": "25064002", "display": "Headache"},
                      meddra("10019198", "Head ache", "LLT"),
                      meddra("10019211", "Headache"),  # no level: the preferred term
                      meddra("10029205", "Nervous system disorders", "SOC")])
    got = {n: run_algo(row, var(ms, "ae", n)) for n in ("AELLT", "AELLTCD", "AEDECOD", "AEPTCD", "AEBODSYS",
                                                         "AEBDSYCD")}
    assert got == {"AELLT": "Head ache", "AELLTCD": 10019198.0, "AEDECOD": "Headache", "AEPTCD": 10019211.0,
                   "AEBODSYS": "Nervous system disorders", "AEBDSYCD": 10029205.0}
    assert isinstance(got["AEPTCD"], float)
    assert found(row) == []


def test_meddra_pt_by_level_extension_r5(ms):
    row = ae_row(ms, [meddra("10029205", "Nervous system disorders", "soc"), meddra("10019211", "Headache", "PT")],
                 version="R5")
    assert run_algo(row, var(ms, "ae", "AEDECOD")) == "Headache"
    assert run_algo(row, var(ms, "ae", "AEBODSYS")) == "Nervous system disorders"
    assert run_algo(row, var(ms, "ae", "AELLT")) is None


def test_meddra_ignores_other_systems(ms):
    row = ae_row(ms, [{"system": SNOMED, "code": "25064002", "display": "Headache"}])
    assert run_algo(row, var(ms, "ae", "AEDECOD")) is None
    assert run_algo(row, var(ms, "ae", "AEPTCD")) is None
    assert found(row) == []


def test_meddra_code_that_is_not_a_number(ms):
    row = ae_row(ms, [meddra("HEAD", "Headache")])
    assert run_algo(row, var(ms, "ae", "AEPTCD")) is None
    assert found(row) == [("error", "NOT_A_NUMBER", "AEPTCD")]
    assert run_algo(row, var(ms, "ae", "AEDECOD")) == "Headache"


# --- seriousness -------------------------------------------------------------------------------
def seriousness(code):
    return {"seriousness": {"coding": [{"system": SER, "code": code}]}}


def criterion(nci, present=None):
    subs = [{"url": "criterionCode", "valueCodeableConcept": {"coding": [{"system": NCI, "code": nci}]}}]
    if present is not None:
        subs.append({"url": "criterionPresent", "valueBoolean": present})
    return {"url": CRITERIA, "extension": subs}


CRITS = ("AESCONG", "AESDISAB", "AESDTH", "AESHOSP", "AESLIFE", "AESMIE")


def crit_values(ms, row):
    row.values["AESER"] = run_algo(row, var(ms, "ae", "AESER"))
    return {n: run_algo(row, var(ms, "ae", n)) for n in ("AESER",) + CRITS}


def test_seriousness_r4_code(ms):
    row = ae_row(ms, [], **seriousness("SeriousResultsInDeath"))
    assert crit_values(ms, row) == {"AESER": "Y", "AESCONG": "N", "AESDISAB": "N", "AESDTH": "Y", "AESHOSP": "N",
                                    "AESLIFE": "N", "AESMIE": "N"}


def test_seriousness_r4_not_serious(ms):
    row = ae_row(ms, [], **seriousness("Non-serious"))
    assert crit_values(ms, row) == {"AESER": "N", **{n: None for n in CRITS}}


def test_seriousness_criteria_extension_r5(ms):
    """R5 says only serious / non-serious; the criteria travel in the AE research IG extension."""
    row = ae_row(ms, [], version="R5", **seriousness("serious"),
                 extension=[criterion("C83052", True), criterion("C48275")])
    assert crit_values(ms, row) == {"AESER": "Y", "AESCONG": "N", "AESDISAB": "N", "AESDTH": "Y", "AESHOSP": "Y",
                                    "AESLIFE": "N", "AESMIE": "N"}


def test_seriousness_criterion_present_false(ms):
    row = ae_row(ms, [], version="R5", **seriousness("serious"),
                 extension=[criterion("C83052", False), criterion("C84266", True)])
    assert crit_values(ms, row) == {"AESER": "Y", "AESCONG": "N", "AESDISAB": "N", "AESDTH": "N", "AESHOSP": "N",
                                    "AESLIFE": "Y", "AESMIE": "N"}


def test_seriousness_criterion_said_absent_of_a_non_serious_event_is_n(ms):
    """The CDISC pilot fills every flag: to-fhir says the absent ones with criterionPresent false."""
    row = ae_row(ms, [], version="R5", **seriousness("non-serious"),
                 extension=[criterion("C83052", False), criterion("C48275", False)])
    assert crit_values(ms, row) == {"AESER": "N", "AESCONG": None, "AESDISAB": None, "AESDTH": "N",
                                    "AESHOSP": "N", "AESLIFE": None, "AESMIE": None}


def test_seriousness_serious_without_criterion_is_n(ms):
    row = ae_row(ms, [], version="R5", **seriousness("serious"))
    assert crit_values(ms, row) == {"AESER": "Y", **{n: "N" for n in CRITS}}


def test_seriousness_not_serious_or_unknown_is_empty(ms):
    row = ae_row(ms, [], version="R5", **seriousness("non-serious"))
    assert crit_values(ms, row) == {"AESER": "N", **{n: None for n in CRITS}}
    row = ae_row(ms, [], version="R5")
    assert crit_values(ms, row) == {"AESER": None, **{n: None for n in CRITS}}


# --- findings results --------------------------------------------------------------------------
@pytest.mark.parametrize("obs, text", [
    ({"valueQuantity": {"value": 45.0}}, "45"),
    ({"valueQuantity": {"value": 4.25}}, "4.25"),
    ({"valueQuantity": {"value": 120}}, "120"),
    ({"valueQuantity": {"value": 0.1}}, "0.1"),
    ({"valueInteger": 87}, "87"),
    ({"valueString": "<10"}, "<10"),
    ({"valueQuantity": {"value": 45.0}, "valueString": "ignored"}, "45"),
    ({}, None),
])
def test_result_text(ms, obs, text):
    row = make_row(ms, {"resourceType": "Observation", "id": "o", **obs}, domain="XM")
    assert run_algo(row, var(ms, "mune", "XMORRES")) == text
    assert found(row) == []


def test_format_number():
    assert ra.format_number(45.0) == "45"
    assert ra.format_number(4.25) == "4.25"
    assert ra.format_number(7) == "7"
    assert ra.format_number(-3.0) == "-3"


def test_not_done(ms):
    stat = var(ms, "mune", "XMSTAT")
    row = make_row(ms, {"resourceType": "Observation", "id": "o", "dataAbsentReason": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "not-performed"}]}}, domain="XM")
    assert run_algo(row, stat) == "NOT DONE"
    assert run_algo(row, var(ms, "mune", "XMREASND")) == "not-performed"
    row = make_row(ms, {"resourceType": "Observation", "id": "o", "valueInteger": 3}, domain="XM")
    assert run_algo(row, stat) is None


@pytest.mark.parametrize("value, flag", [(True, "Y"), (False, "N"), ("true", None), (1, None), (None, None)])
def test_yes_no(ms, value, flag):
    ext = [{"url": DISCON, "valueBoolean": value}] if value is not None else []
    row = make_row(ms, {"resourceType": "AdverseEvent", "id": "ae1", "extension": ext}, domain="AE")
    assert run_algo(row, var(ms, "ae", "AEDISCON")) == flag
