"""spec/load.py: the shipped mappings load; a broken spec is a SpecError that says what and where."""

import shutil
from pathlib import Path

import pytest

from tcim_interop.errors import SpecError
from tcim_interop.mapping_spec.load import default_mappings_dir, load_mapping_set

MAPPINGS = Path(__file__).resolve().parents[1] / "mappings"

DM = ["STUDYID", "DOMAIN", "USUBJID", "SUBJID", "RFSTDTC", "RFENDTC", "RFXSTDTC", "RFXENDTC", "RFICDTC",
      "RFPENDTC", "DTHDTC", "DTHFL", "SITEID", "BRTHDTC", "AGE", "AGEU", "SEX", "RACE", "ETHNIC", "ARMCD", "ARM",
      "ACTARMCD", "ACTARM", "ARMNRS", "ACTARMUD", "COUNTRY", "DMDTC", "DMDY"]
EX = ["STUDYID", "DOMAIN", "USUBJID", "EXSEQ", "EXTRT", "EXDOSE", "EXDOSU", "EXDOSFRM", "EXROUTE", "EXLOC", "EXLAT",
      "VISITNUM", "VISIT", "EPOCH", "EXSTDTC", "EXENDTC", "EXSTDY", "EXENDY"]
AE = ["STUDYID", "DOMAIN", "USUBJID", "AESEQ", "AESPID", "AETERM", "AELLT", "AELLTCD", "AEDECOD", "AEPTCD",
      "AEHLT", "AEHLTCD", "AEHLGT", "AEHLGTCD", "AEBODSYS", "AEBDSYCD", "AESOC", "AESOCCD", "AELOC", "AELAT", "AESEV", "AESER", "AEACN", "AEREL", "AEOUT", "AESCONG", "AESDISAB",
      "AESDTH", "AESHOSP", "AESLIFE", "AESMIE", "EPOCH", "AEDTC", "AESTDTC", "AEENDTC", "AESTDY", "AEENDY"]
MUNE = ["STUDYID", "DOMAIN", "USUBJID", "--SEQ", "--GRPID", "--TESTCD", "--TEST", "--ORRES", "--ORRESU", "--STRESC",
        "--STRESN", "--STRESU", "--STAT", "--REASND", "--LOC", "--LAT", "--METHOD", "--LOBXFL", "VISITNUM", "VISIT",
        "EPOCH", "--DTC", "--DY"]
SV = ["STUDYID", "DOMAIN", "USUBJID", "VISITNUM", "VISIT", "SVPRESP", "SVOCCUR", "VISITDY", "SVSTDTC", "SVENDTC",
      "SVSTDY", "SVENDY", "SVUPDES"]  # SDTMIG 3.4 order

VS = ["STUDYID", "DOMAIN", "USUBJID", "VSSEQ", "VSTESTCD", "VSTEST", "VSPOS", "VSORRES", "VSORRESU", "VSSTRESC",
      "VSSTRESN", "VSSTRESU", "VSSTAT", "VSREASND", "VSLOC", "VSLOBXFL", "VISITNUM", "VISIT", "EPOCH", "VSDTC", "VSDY"]


def mune(domain):
    return [n.replace("--", domain) for n in MUNE]


# --- the shipped specs -------------------------------------------------------------------------
def test_default_mappings_dir_is_the_project_folder():
    assert default_mappings_dir() == MAPPINGS


def test_shipped_mappings_load_in_sdtmig_order():
    ms = load_mapping_set()
    assert ms.directory == MAPPINGS
    assert {role: spec.domain for role, spec in ms.domains.items()} == {"dm": "DM", "ex": "EX", "ae": "AE", "cm": "CM",
                                                                              "ds": "DS", "vs": "VS",
                                                                              "mune": "XM", "sv": "SV"}
    assert ms.spec("sv").names == SV
    assert ms.spec("dm").names == DM
    assert ms.spec("ex").names == EX
    assert ms.spec("ae").names == AE
    assert ms.spec("mune").names == mune("XM")
    assert ms.spec("vs").names == VS  # SDTMIG 3.4 order (sdtmig34.yaml)
    for spec in ms.domains.values():
        assert spec.names[:3] == ["STUDYID", "DOMAIN", "USUBJID"]
        assert len(spec.label) <= 40
        assert all(len(v.name) <= 8 and len(v.label) <= 40 for v in spec.variables)


def test_shipped_specs_details():
    ms = load_mapping_set()
    dm = ms.spec("dm")
    assert (dm.row_resource, dm.row_select, dm.keys) == ("ResearchSubject", "study_subject", ["STUDYID", "USUBJID"])
    sex = dm.by_name["SEX"]
    assert (sex.algorithm, sex.codelist, sex.map, sex.type, sex.core, sex.origin) == (
        "assign_ct", "SEX", "GENDER", "Char", "Req", "Collected")
    assert set(sex.source) == {"R4", "R5"}  # a single path serves both releases
    assert dm.by_name["RFICDTC"].source["R4"].text == "%consent.dateTime"
    assert dm.by_name["RFICDTC"].source["R5"].text == "%consent.date"
    assert dm.by_name["AGE"].origin == "Derived"
    assert dm.by_name["AGEU"].origin == "Assigned"
    assert ms.spec("ae").supplemental[0].qnam == "AEDISCON"
    assert ms.visits["DAY30"] == {"code": "DAY30", "visitnum": 4, "visit": "DAY 30", "day": 30, "window": [-7, 7]}
    assert ms.study["birth_date"] == "year"


def test_nv_variant_sends_the_mune_data_to_nv():
    ms = load_mapping_set(mune_domain="NV")
    nv = ms.spec("mune")
    assert nv.domain == "NV"
    assert nv.label == "Nervous System Findings"
    assert nv.names == mune("NV")
    assert nv.keys == ["STUDYID", "USUBJID", "NVTESTCD", "NVLOC", "NVLAT", "VISITNUM", "NVDTC"]
    assert nv.sort == ["USUBJID", "NVTESTCD", "NVLOC", "NVLAT", "NVDTC", "VISITNUM"]
    assert nv.by_name["NVSTRESC"].params == {"of": "NVORRES"}
    assert nv.by_name["NVLOBXFL"].params == {"date": "NVDTC", "result": "NVORRES",
                                             "by": ["USUBJID", "NVTESTCD", "NVLOC", "NVLAT"]}
    assert nv.by_name["NVDY"].params == {"date": "NVDTC"}
    # nv.yaml's overrides: NV's labels and CDISC's NV test codelists (sponsor-extended)
    assert nv.by_name["NVTESTCD"].label == "Short Name of Nervous System Test"
    assert (nv.by_name["NVTESTCD"].codelist, nv.by_name["NVTESTCD"].map) == ("NVTESTCD", "NV_TEST")
    assert (nv.by_name["NVTEST"].codelist, nv.by_name["NVTEST"].map) == ("NVTEST", "NV_TEST_NAME")
    assert nv.by_name["NVGRPID"].params == {"by": ["VISITNUM", "NVDTC", "NVLOC", "NVLAT", "NVMETHOD"]}
    assert (nv.row_resource, nv.row_select) == ("Observation", "mune_observation")
    # the other domains are unchanged
    assert [s.domain for s in ms.domains.values()] == ["DM", "EX", "AE", "CM", "DS", "VS", "NV", "SV"]


# --- broken specs ------------------------------------------------------------------------------
@pytest.fixture
def mdir(tmp_path):
    d = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, d)
    return d


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path.name}: the test no longer edits anything"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def load_error(directory, **kw) -> str:
    with pytest.raises(SpecError) as e:
        load_mapping_set(directory, **kw)
    return str(e.value)


def test_the_copy_loads_untouched(mdir):
    assert load_mapping_set(mdir).spec("dm").names == DM


def test_unknown_algorithm(mdir):
    edit(mdir / "dm.yaml", "algorithm: death_flag", "algorithm: death_flagg")
    msg = load_error(mdir)
    assert msg.startswith(f"{mdir / 'dm.yaml'}: DTHFL: unknown algorithm 'death_flagg'; known: ")
    assert "death_flag" in msg.split("known: ")[1].split(", ")


def test_when_collected_only_for_a_permissible_variable(mdir):
    assert load_mapping_set(mdir).spec("ae").by_name["AEDTC"].when_collected
    edit(mdir / "ae.yaml", "name: AEDTC, label: Date/Time of Collection, type: Char, core: Perm",
         "name: AEDTC, label: Date/Time of Collection, type: Char, core: Exp")
    assert "AEDTC: when_collected must be true or false, and true only for a Perm variable" in load_error(mdir)


def test_select_algorithm_is_not_allowed_for_a_variable(mdir):
    edit(mdir / "dm.yaml", "algorithm: death_flag", "algorithm: study_subject")
    assert "DTHFL: 'study_subject' is a select algorithm, not allowed here" in load_error(mdir)


def test_derive_algorithm_is_not_allowed_for_a_supplemental(mdir):
    edit(mdir / "ae.yaml", "algorithm: yes_no", "algorithm: sequence")
    assert "AEDISCON: 'sequence' is a derive algorithm, not allowed here" in load_error(mdir)


def test_missing_source(mdir):
    edit(mdir / "dm.yaml", 'algorithm: iso_datetime,\n     source: "%patient.deceasedDateTime"}',
         "algorithm: iso_datetime}")
    assert load_error(mdir) == f"{mdir / 'dm.yaml'}: DTHDTC: algorithm 'iso_datetime' needs a 'source'"


def test_missing_params(mdir):
    edit(mdir / "dm.yaml", "params: {which: assigned, field: code}", "params: {which: assigned}")
    assert load_error(mdir) == f"{mdir / 'dm.yaml'}: ARMCD: algorithm 'arm' needs params: field"


@pytest.mark.parametrize("bad, fragment", [
    ("%patient..birthDate", "empty step in path '%patient..birthDate'"),
    ("%patient.birthDate.where(x)", "where() takes key = 'value' comparisons"),
    ("%patient.birthDate.exists()", "unknown function exists()"),
    ("%pateint.birthDate", "unknown variable %pateint"),
])
def test_bad_fhir_path(mdir, bad, fragment):
    edit(mdir / "dm.yaml", 'source: "%patient.birthDate"}', f'source: "{bad}"}}')
    msg = load_error(mdir)
    assert msg.startswith(f"{mdir / 'dm.yaml'}: BRTHDTC: ")
    assert fragment in msg


def test_bad_fhir_path_in_a_per_release_source(mdir):
    edit(mdir / "dm.yaml", 'R5: "%consent.date"', 'R5: "%consent.date |"')
    msg = load_error(mdir)
    assert msg.startswith(f"{mdir / 'dm.yaml'}: RFICDTC: ")
    assert "empty step" in msg


def test_unknown_codelist(mdir):
    edit(mdir / "dm.yaml", "codelist: SEX,", "codelist: GENDERS,")
    assert load_error(mdir) == f"{mdir / 'dm.yaml'}: SEX: unknown codelist 'GENDERS'"


def test_unknown_map(mdir):
    edit(mdir / "dm.yaml", "map: GENDER,", "map: GENDRE,")
    assert load_error(mdir) == f"{mdir / 'dm.yaml'}: SEX: unknown map 'GENDRE'"


def test_map_value_not_in_its_codelist(mdir):
    edit(mdir / "codelists.yaml", "http://hl7.org/fhir/administrative-gender|female: F",
         "http://hl7.org/fhir/administrative-gender|female: FEMALE")
    assert load_error(mdir) == f"{mdir / 'dm.yaml'}: SEX: map GENDER yields values not in codelist SEX: FEMALE"


def test_map_used_with_the_wrong_codelist(mdir):
    edit(mdir / "dm.yaml", "codelist: SEX, map: GENDER,", "codelist: SEX, map: AE_SEVERITY,")
    assert load_error(mdir).endswith("SEX: map AE_SEVERITY yields values not in codelist SEX: MILD, MODERATE, SEVERE")


def test_variable_label_over_40_characters(mdir):
    label = "Subject Death Flag As Recorded In The EHR"  # 41
    assert len(label) == 41
    edit(mdir / "dm.yaml", "label: Subject Death Flag,", f"label: {label},")
    assert load_error(mdir) == f"{mdir / 'dm.yaml'}: DTHFL: label longer than 40 characters (41)"


def test_label_of_exactly_40_characters_is_fine(mdir):
    label = "Subject Death Flag As Recorded In The EH"
    edit(mdir / "dm.yaml", "label: Subject Death Flag,", f"label: {label},")
    assert load_mapping_set(mdir).spec("dm").by_name["DTHFL"].label == label


def test_dataset_label_over_40_characters(mdir):
    edit(mdir / "ex.yaml", "label: Exposure\n", "label: Exposure to the study treatment, as administered\n")
    assert load_error(mdir) == f"{mdir / 'ex.yaml'}: dataset label longer than 40 characters (48)"


def test_variable_name_over_8_characters(mdir):
    edit(mdir / "ae.yaml", "name: AELLTCD,", "name: AELLTCODE,")
    assert load_error(mdir) == (f"{mdir / 'ae.yaml'}: AELLTCODE: not a valid XPT v5 variable name "
                                "(A-Z, 0-9, <= 8, starting with a letter)")


def test_variable_name_lower_case(mdir):
    edit(mdir / "ae.yaml", "name: AELLTCD,", "name: aelltcd,")
    assert "aelltcd: not a valid XPT v5 variable name" in load_error(mdir)


def test_hardcoded_value_not_in_its_codelist(mdir):
    edit(mdir / "dm.yaml", "params: {value: YEARS, if: AGE", "params: {value: DECADES, if: AGE")
    assert load_error(mdir) == f"{mdir / 'dm.yaml'}: AGEU: value 'DECADES' is not a term of codelist AGEU"


def test_hardcode_value_not_in_its_codelist(mdir):
    edit(mdir / "ex.yaml", 'params: {value: "INJECTION, SUSPENSION"}', "params: {value: INJECTION}")
    assert load_error(mdir) == f"{mdir / 'ex.yaml'}: EXDOSFRM: value 'INJECTION' is not a term of codelist FRM"


def test_malformed_yaml(mdir):
    edit(mdir / "dm.yaml", "  - {name: DOMAIN,", "  - {name: [DOMAIN,")
    msg = load_error(mdir)
    assert msg.startswith(f"{mdir / 'dm.yaml'}: not valid YAML: ")
    assert "\n" not in msg


def test_yaml_that_is_not_a_mapping(mdir):
    (mdir / "ex.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    assert load_error(mdir) == f"{mdir / 'ex.yaml'}: a spec must be a YAML mapping"


def test_missing_domain_file(mdir):
    (mdir / "ae.yaml").unlink()
    assert load_error(mdir) == f"{mdir / 'study.yaml'}: domain 'ae' names ae.yaml, which does not exist"


def test_missing_mune_variant_file(mdir):
    assert "domain 'mune' names lb.yaml, which does not exist" in load_error(mdir, mune_domain="LB")


def test_param_naming_an_unknown_variable(mdir):
    edit(mdir / "dm.yaml", "params: {of: RFXSTDTC}", "params: {of: RFXSTDT}")
    assert load_error(mdir) == (f"{mdir / 'dm.yaml'}: RFSTDTC: params.of names 'RFXSTDT', "
                                "which is not a variable of DM")


@pytest.mark.parametrize("file, old, new, fragment", [
    ("dm.yaml", "params: {at: RFICDTC}", "params: {at: RFICDT}", "AGE: params.at names 'RFICDT'"),
    ("dm.yaml", "params: {of: [STUDYID, SITEID, SUBJID]", "params: {of: [STUDYID, SITE, SUBJID]",
     "USUBJID: params.of names 'SITE'"),
    ("xm.yaml", "by: [USUBJID, --TESTCD, --LOC, --LAT]", "by: [USUBJID, --TESTCD, --LOCATION, --LAT]",
     "XMLOBXFL: params.by names 'XMLOCATION'"),
])
def test_list_and_at_params_naming_an_unknown_variable(mdir, file, old, new, fragment):
    edit(mdir / file, old, new)
    msg = load_error(mdir)
    assert msg.startswith(f"{mdir / file}: ")
    assert fragment in msg


def test_sort_key_naming_an_unknown_variable(mdir):
    edit(mdir / "ex.yaml", "sort: [USUBJID, EXSTDTC,", "sort: [USUBJID, EXSTDATE,")
    assert load_error(mdir) == f"{mdir / 'ex.yaml'}: sort/keys name 'EXSTDATE', which is not a variable"


def test_variable_defined_twice(mdir):
    edit(mdir / "ae.yaml", "name: AESOCCD,", "name: AESOC,")
    assert load_error(mdir) == f"{mdir / 'ae.yaml'}: variables defined twice: AESOC"


def test_bad_type_and_core(mdir):
    edit(mdir / "ae.yaml", "name: AESEQ, label: Sequence Number, type: Num,",
         "name: AESEQ, label: Sequence Number, type: Integer,")
    assert load_error(mdir) == f"{mdir / 'ae.yaml'}: AESEQ: type must be Char or Num, got 'Integer'"


def test_extends_loop(mdir):
    edit(mdir / "xm.yaml", "domain: XM\n", "extends: nv.yaml\ndomain: XM\n")
    assert "'extends' makes a loop" in load_error(mdir, mune_domain="NV")


@pytest.mark.parametrize("policy", ["year", "full", "omit"])
def test_birth_date_policies_load(mdir, policy):
    edit(mdir / "study.yaml", "birth_date: year", f"birth_date: {policy}")
    assert load_mapping_set(mdir).study["birth_date"] == policy


def test_unknown_birth_date_policy_is_rejected(mdir):
    """A typo in the privacy policy must not fall back to releasing the full birth date."""
    edit(mdir / "study.yaml", "birth_date: year", "birth_date: years")
    assert load_error(mdir) == f"{mdir / 'study.yaml'}: birth_date must be year, full or omit, got 'years'"


def test_malformed_codelists(mdir):
    edit(mdir / "codelists.yaml", "nci_system: http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl\n", "")
    assert load_error(mdir).startswith(f"{mdir / 'codelists.yaml'}: malformed codelist file: KeyError('nci_system')")


# --- suppqual.yaml: the one description of every SUPPxx ------------------------------------------
def test_suppqual_is_loaded_with_the_mapping_set():
    supp = load_mapping_set().suppqual
    assert supp.names == ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM", "QLABEL", "QVAL", "QORIG",
                          "QEVAL"]
    assert supp.carried == supp.names[1:]  # STUDYID is the parent's
    assert supp.label_for("AE") == "Supplemental Qualifiers for AE"
    assert supp.keys == ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "QNAM")  # define.xml's


def test_missing_suppqual(mdir):
    (mdir / "suppqual.yaml").unlink()
    assert load_error(mdir).startswith(f"{mdir / 'suppqual.yaml'}: cannot read")


# --- suppqual.yaml checked as a spec; study.yaml: every key is one the converter reads ------------
@pytest.mark.parametrize("file, old, new, fragment", [
    ("suppqual.yaml", "{name: QORIG, label: Origin, type: Char", "{name: QORIG, label: Origin, type: Text",
     "QORIG: type must be Char or Num, got 'Text'"),
    ("suppqual.yaml", "{name: QEVAL, label: Evaluator, type: Char, core: Exp}",
     "{name: QEVAL, label: Evaluator, type: Char}", "QEVAL: missing 'core'"),
    ("suppqual.yaml", "{name: QEVAL,", "{name: QVAL,", "variables defined twice: QVAL"),
    ("suppqual.yaml", "{name: IDVAR,", "{name: ID_VAR,", "'ID_VAR': not a valid SDTM variable name"),
    ("suppqual.yaml", 'label: "Supplemental Qualifiers for {domain}"', 'label: "Supplemental Qualifiers"',
     "'label' must be a text naming {domain}"),
    ("suppqual.yaml", "keys: [STUDYID, RDOMAIN,", "keys: [STUDYID, DOMAIN,", "'keys' must list variables of the file"),
    ("study.yaml", "birth_date: year\n", "birth_date: year\nage_reference: RFICDTC\n",
     "unknown key 'age_reference' (known: study, domains, masked_domains,"),
    ("study.yaml", "  registry_id: NCT04849065", "  registry: NCT04849065",
     "study: unknown key 'registry' (known: studyid,"),
    ("study.yaml", "{code: DAY30, visitnum: 4,", "{code: DAY30, visit_num: 4,", "visits[3]: unknown key 'visit_num'"),
    ("study.yaml", "tedur: P28D, epoch: SCREENING,", "tedur: P28D, epoch: SCREENING, duration: P28D,",
     "trial_design.elements[0]: unknown key 'duration'"),
    ("study.yaml", "MNC: {elements: [SCRN, MNC, FU], branch:", "MNC: {element: [SCRN, MNC, FU], branch:",
     "trial_design.arms.MNC: unknown key 'element' (known: elements, branch)"),
])
def test_a_broken_entry_is_named_with_its_file(mdir, file, old, new, fragment):
    edit(mdir / file, old, new)
    msg = load_error(mdir)
    assert msg.startswith(f"{mdir / file}: ") and fragment in msg, msg


def test_free_keys_stay_free(mdir):
    """Roles, TS parameter codes and FHIR templates are their readers' to check."""
    edit(mdir / "study.yaml", "    SEXPOP: BOTH\n", "    SEXPOP: BOTH\n    PEDIND: \"N\"\n")
    edit(mdir / "study.yaml", "R5: {resourceType: Encounter, status: completed}",
         "R5: {resourceType: Encounter, status: completed, priority: {text: routine}}")
    assert load_mapping_set(mdir).study["trial_design"]["summary"]["PEDIND"] == "N"


def test_about_patient_role_needs_its_template_in_both_releases(mdir):
    edit(mdir / "dm.yaml", "    age: {R4: subject, R5: subject}", "    age: {R4: subject}")
    assert load_error(mdir) == (f"{mdir / 'dm.yaml'}: reverse: about_patient: age: needs the element naming the "
                                "Patient in R4 and R5, and templates.age in both")


def test_age_observation_code_needs_a_map(mdir):
    edit(mdir / "dm.yaml", "age: {map: AGE_OBSERVATION, ", "age: {")
    assert "rows: age: " in load_error(mdir)
