"""Hospital FHIR through a site folder (--site): ConceptMaps from the hospital's codes to the study's
concepts (R4 and R5 forms), the core workflow-researchStudy extension, study products told by name, and
row selection declared in the specs (checked when they load)."""

import copy
import json
import shutil

import pytest
from conftest import MINI, ROOT, need_external
from typer.testing import CliRunner

from tcim_interop import to_sdtm
from tcim_interop.cli import app
from tcim_interop.errors import NoSubjectError, SpecError
from tcim_interop.mapping_spec.load import load_mapping_set
from tcim_interop.mapping_spec.site import load_site

PHARMACY = "http://hospital.example.org/fhir/CodeSystem/pharmacy"
EMG = "http://hospital.example.org/fhir/CodeSystem/emg-tests"
PRODUCT = "http://tcim-interop.org/fhir/CodeSystem/study-product"
MUNE = "http://tcim-interop.org/fhir/CodeSystem/mune-test"
STUDY_EXT = "http://hl7.org/fhir/StructureDefinition/workflow-researchStudy"


def concept_map(source: str, target: str, pairs: list[tuple[str, str, str]], r5: bool = False) -> dict:
    """A ConceptMap in its R4 (equivalence) or R5 (relationship) form."""
    key = "relationship" if r5 else "equivalence"
    return {"resourceType": "ConceptMap", "id": f"cm-{len(pairs)}", "status": "active", "group": [{
        "source": source, "target": target,
        "element": [{"code": s, "target": [{"code": t, key: k}]} for s, t, k in pairs]}]}


def hospital_bundle() -> dict:
    """The mini bundle as a hospital would code it: pharmacy codes on the study administrations, EMG
    codes on the MUNE observations."""
    doc = json.loads(MINI.read_text())
    for e in doc["entry"]:
        r = e["resource"]
        for c in (r.get("medicationCodeableConcept") or {}).get("coding", []):
            if c["system"] == PRODUCT:
                c.update(system=PHARMACY, code={"BMNC": "PH-4711", "PLACEBO": "PH-0815"}[c["code"]])
        for c in (r.get("code") or {}).get("coding", []) if r["resourceType"] == "Observation" else []:
            if c["system"] == MUNE:
                c.update(system=EMG, code={"MUNIX": "EMG-MX", "MUSIX": "EMG-MS"}[c["code"]])
    return doc


def site_folder(tmp_path, maps: list[dict], site_yaml: str | None = None):
    folder = tmp_path / "site"
    folder.mkdir()
    for i, m in enumerate(maps):
        (folder / f"map{i}.json").write_text(json.dumps(m), encoding="utf-8")
    if site_yaml is not None:
        (folder / "site.yaml").write_text(site_yaml, encoding="utf-8")
    return folder


@pytest.mark.parametrize("r5", [False, True], ids=["R4 equivalence", "R5 relationship"])
def test_hospital_codes_convert_through_the_site_concept_maps(tmp_path, mini_conversion, r5):
    sponsor = mini_conversion[0].datasets
    hospital = hospital_bundle()
    without = to_sdtm([hospital], fast=True)
    assert "EX" not in without.datasets or len(without.datasets["EX"]) == 0
    wide = "source-is-narrower-than-target" if r5 else "wider"
    site = site_folder(tmp_path, [
        concept_map(PHARMACY, PRODUCT, [("PH-4711", "BMNC", "equivalent"), ("PH-0815", "PLACEBO", wide)], r5),
        concept_map(EMG, MUNE, [("EMG-MX", "MUNIX", "equivalent"), ("EMG-MS", "MUSIX", "equivalent")], r5)])
    result = to_sdtm([hospital], fast=True, site=site)
    for name in ("DM", "EX", "XM"):
        got, want = result.datasets[name], sponsor[name]
        assert got.equals(want), name
    assert result.report.counts()["rejected"] == 0


def test_a_target_narrower_than_its_source_is_not_used(tmp_path):
    """A hospital code mapped to a narrower study concept may not be it: no translation, so not study
    treatment: those administrations are CM records (concomitant medication), none is EX."""
    site = site_folder(tmp_path, [concept_map(PHARMACY, PRODUCT, [("PH-4711", "BMNC", "narrower"),
                                                                   ("PH-0815", "PLACEBO", "equivalent")])])
    result = to_sdtm([hospital_bundle()], fast=True, site=site)
    assert list(result.datasets["EX"]["EXTRT"]) == ["PLACEBO", "PLACEBO"]
    reasons = {d.reason for d in result.report.dispositions if d.outcome == "out_of_scope"
               and d.resource.startswith("MedicationAdministration/")}
    assert reasons == set()
    administrations = [d for d in result.report.dispositions if d.resource.startswith("MedicationAdministration/")]
    assert all(d.outcome == "converted" for d in administrations)
    assert len(result.datasets["EX"]) + len(result.datasets["CM"]) == len(administrations)
    assert set(result.metadata["EX"].sources).isdisjoint(result.metadata["CM"].sources)


def _administrations(doc: dict) -> list[dict]:
    return [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "MedicationAdministration"]


@pytest.mark.parametrize("text, extrt", [
    ("Células mononucleares de médula ósea", "BONE MARROW MONONUCLEAR CELLS"),
    ("  PLACEBO (VEHICULO) ", "PLACEBO"),
])
def test_a_study_administration_with_a_text_only_product_is_told_by_its_name(text, extrt):
    doc = json.loads(MINI.read_text())
    ma = _administrations(doc)[0]
    ma["medicationCodeableConcept"] = {"text": text}
    ma["extension"] = [{"url": STUDY_EXT, "valueReference": {"reference": "ResearchStudy/site01"}}]
    result = to_sdtm([doc], fast=True)
    ex = result.metadata["EX"]
    assert ex.frame.at[ex.sources.index(f"MedicationAdministration/{ma['id']}"), "EXTRT"] == extrt


def test_a_study_administration_whose_product_cannot_be_told_is_rejected_never_concomitant():
    doc = json.loads(MINI.read_text())
    ma = _administrations(doc)[0]
    ma["medicationCodeableConcept"] = {"coding": [{"system": PHARMACY, "code": "PH-9999"}], "text": "cells"}
    ma["extension"] = [{"url": STUDY_EXT, "valueReference": {"reference": "ResearchStudy/study"}}]
    other = copy.deepcopy(ma)
    other.update(id="ma-other", extension=[{"url": STUDY_EXT, "valueReference": {"reference": "ResearchStudy/x"}}])
    doc["entry"].append({"resource": other})
    result = to_sdtm([doc], fast=True)
    outcome = {d.resource: (d.outcome, d.reason) for d in result.report.dispositions}
    assert outcome[f"MedicationAdministration/{ma['id']}"][0] == "rejected"
    assert "workflow-researchStudy" in outcome[f"MedicationAdministration/{ma['id']}"][1]
    assert outcome["MedicationAdministration/ma-other"] == (
        "out_of_scope", "its workflow-researchStudy extension names no study of the input")
    assert any(f.code == "REJECTED" and f.source == f"MedicationAdministration/{ma['id']}" for f in result.report.findings)


def test_site_folder_errors_name_the_file(tmp_path):
    bad = site_folder(tmp_path, [{"resourceType": "ValueSet", "id": "vs"}])
    with pytest.raises(SpecError, match=r"map0\.json: a ValueSet, not a ConceptMap"):
        load_site(bad)
    shutil.rmtree(bad)
    bad = site_folder(tmp_path, [concept_map(PHARMACY, PRODUCT, [("PH-1", "BMNC", "roughly")])])
    with pytest.raises(SpecError, match=r"map0\.json#cm-1: group\[0\]\.element\[0\]\.target\[0\]: equivalence"):
        load_site(bad)
    shutil.rmtree(bad)
    bad = site_folder(tmp_path, [], "site_id: '01'\ntimezone_typo: x\n")
    with pytest.raises(SpecError, match="site.yaml: unknown key 'timezone_typo'"):
        load_site(bad)
    (bad / "notes.txt").write_text("x")
    (bad / "site.yaml").write_text("site_id: '01'\n")
    with pytest.raises(SpecError, match=r"notes\.txt: not a site file"):
        load_site(bad)


def test_cli_site_error_is_one_line_and_writes_nothing(tmp_path):
    site = site_folder(tmp_path, [{"resourceType": "ConceptMap", "id": "x"}])
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["to-sdtm", str(MINI), "--out", str(out), "--site", str(site), "-q"])
    assert r.exit_code == 2 and r.stderr.strip().count("\n") == 0
    assert "map0.json#x: no group" in r.stderr and not out.exists()


def _specs(tmp_path, edit):
    folder = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", folder)
    edit(folder)
    return folder


@pytest.mark.parametrize("old, new, message", [
    ("map: STUDY_PRODUCT,", "map: STUDY_PRODUCT_RENAMED,", "unknown map 'STUDY_PRODUCT_RENAMED'"),
    ("product: EXTRT", "product: EXDOSE", "product: 'EXDOSE' must name a variable of EX with a map"),
    ("select: study_treatment", "select: study_treatmnet", "unknown selector 'study_treatmnet'"),
    ("  product: EXTRT", "  products: EXTRT", "'products' is not a param of selector study_treatment"),
    ("    - {element: status, values: [entered-in-error, not-done",
     "    - {element: status, value: [entered-in-error, not-done", r"out_of_scope\[0\] must be"),
])
def test_row_selection_is_checked_when_the_specs_load(tmp_path, old, new, message):
    def edit(folder):
        text = (folder / "ex.yaml").read_text()
        assert old in text
        (folder / "ex.yaml").write_text(text.replace(old, new, 1))
    with pytest.raises(SpecError, match=message):
        load_mapping_set(_specs(tmp_path, edit))


def test_a_product_name_given_to_two_products_is_refused(tmp_path):
    def edit(folder):
        text = (folder / "study.yaml").read_text()
        (folder / "study.yaml").write_text(text.replace("names: [placebo (vehicle),", "names: [bmnc, placebo (vehicle),"))
    with pytest.raises(SpecError, match="(?i)the name 'bmnc' is given to two products"):
        load_mapping_set(_specs(tmp_path, edit))


def test_a_single_study_without_site_studies_takes_siteid_from_site_yaml(tmp_path, mini_conversion):
    doc = json.loads(MINI.read_text())
    doc["entry"] = [e for e in doc["entry"] if e["resource"].get("id") != "site01"]
    for e in doc["entry"]:
        if e["resource"]["resourceType"] == "ResearchSubject":
            e["resource"]["study"] = {"reference": "ResearchStudy/study"}
    with pytest.raises(NoSubjectError) as no_subject:  # every subject rejected: no DM record
        to_sdtm([doc], fast=True)
    rejected = {d.reason for d in no_subject.value.report.dispositions if d.outcome == "rejected"}
    assert any("give site_id in the site folder's site.yaml" in r for r in rejected)
    result = to_sdtm([doc], fast=True, site=site_folder(tmp_path, [], "site_id: '01'\n"))
    keys = ["STUDYID", "SITEID", "SUBJID", "USUBJID"]
    assert result.datasets["DM"][keys].equals(mini_conversion[0].datasets["DM"][keys])
    assert len(result.datasets["EX"]) == len(mini_conversion[0].datasets["EX"])


@pytest.mark.parametrize("version, files, patient, subjid", [
    ("R4", ["ResearchSubject-example.json", "ResearchStudy-example.json", "Patient-example.json"], None, "123"),
    # R5's example names its study and subject by bare id, and its Patient is not among the examples
    ("R5", ["ResearchSubject-example-crossover-placebo-to-drug.json", "ResearchStudy-example-ctgov-study-record.json"],
     {"resourceType": "Patient", "id": "cfsb1676546565857", "gender": "female"}, "ecsr45"),
])
def test_hl7_research_subject_examples_convert_with_a_site_yaml(tmp_path, version, files, patient, subjid):
    folder = need_external("fhir-examples", version.lower())
    resources = [json.loads((folder / f).read_text()) for f in files] + ([patient] if patient else [])
    study = next(r for r in resources if r["resourceType"] == "ResearchStudy")
    with pytest.raises(NoSubjectError, match="no DM record"):  # no site study, and the site not told
        to_sdtm(resources, fast=True, fhir_version=version)
    site = site_folder(tmp_path, [], f"site_id: '01'\nstudy: ResearchStudy/{study['id']}\n")
    dm = to_sdtm(resources, fast=True, fhir_version=version, site=site).datasets["DM"]
    assert dm[["STUDYID", "SITEID", "SUBJID", "USUBJID"]].values.tolist() == [
        ["TCIM-ELAII", "01", subjid, f"TCIM-ELAII-01-{subjid}"]]


def test_a_study_known_by_the_trials_registry_id_takes_the_configured_studyid(tmp_path):
    doc = json.loads(MINI.read_text())
    study = next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "study")
    study["identifier"] = [{"use": "official", "system": "http://hospital.example.org/studies", "value": "EC-2021-17"},
                           {"system": "http://clinicaltrials.gov", "value": "NCT04849065"}]
    dm = to_sdtm([doc], fast=True).datasets["DM"]
    assert set(dm["STUDYID"]) == {"TCIM-ELAII"}
    study["identifier"] = study["identifier"][:1]  # another study: its own identifier, as before
    assert set(to_sdtm([doc], fast=True).datasets["DM"]["STUDYID"]) == {"EC-2021-17"}


def test_laterality_as_a_snomed_qualifier_among_the_body_site_codings(mini_conversion):
    """No laterality extension: the side is the SNOMED CT qualifier coding (7771000 left, 24028007 right)
    sent in the same CodeableConcept as the muscle, for EX and for the MUNE domain."""
    doc = json.loads(MINI.read_text())
    for e in doc["entry"]:
        r = e["resource"]
        site = (r.get("dosage") or {}).get("site") or r.get("bodySite")
        if site:
            side = site.pop("extension")[0]["valueCodeableConcept"]["coding"][0]
            site["coding"].insert(0, {"system": "http://snomed.info/sct", "code": side["code"]})
    result = to_sdtm([doc], fast=True)
    sponsor = mini_conversion[0].datasets
    for name, cols in (("EX", ["EXLOC", "EXLAT"]), ("XM", ["XMLOC", "XMLAT"])):
        assert result.datasets[name][cols].equals(sponsor[name][cols]), name
        assert sponsor[name][cols[1]].notna().all()
    assert not [f for f in result.report.findings if f.code == "CT_UNMAPPED"]


def test_unmapped_codes_are_counted_in_the_run_report_and_a_concept_map_clears_them(tmp_path):
    local = "http://hospital.example.org/fhir/CodeSystem/routes"
    doc = json.loads(MINI.read_text())
    for ma in _administrations(doc):
        if (ma.get("dosage") or {}).get("route"):
            ma["dosage"]["route"] = {"coding": [{"system": local, "code": "RT-IM"}]}
    report = to_sdtm([doc], fast=True).report
    assert report.to_dict()["unmapped_codes"] == [
        {"domain": "EX", "variable": "EXROUTE", "codes": f"{local}|RT-IM", "count": 4}]
    from tcim_interop.report_text import summary
    assert f"4 x EX.EXROUTE: {local}|RT-IM" in summary(report)
    site = site_folder(tmp_path, [concept_map(local, "http://snomed.info/sct", [("RT-IM", "78421000", "equivalent")])])
    result = to_sdtm([doc], fast=True, site=site)
    assert result.report.to_dict()["unmapped_codes"] == []
    assert set(result.datasets["EX"]["EXROUTE"]) == {"INTRAMUSCULAR"}


def _body_structure(version: str) -> dict:
    muscle = {"coding": [{"system": "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl", "code": "C117874"}]}
    left = {"coding": [{"system": "http://snomed.info/sct", "code": "7771000", "display": "Left"}]}
    if version == "R4":
        return {"resourceType": "BodyStructure", "id": "bs1", "patient": {"reference": "Patient/p1"},
                "location": muscle, "locationQualifier": [left]}
    return {"resourceType": "BodyStructure", "id": "bs1", "patient": {"reference": "Patient/p1"},
            "includedStructure": [{"structure": muscle, "laterality": left}]}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_muscle_and_side_from_a_referenced_body_structure(version):
    """R4: the core bodySite extension's BodyStructure (location, locationQualifier); R5: Observation.bodyStructure
    (includedStructure.structure, .laterality). The BodyStructure counts as converted: it feeds a record."""
    if version == "R4":
        doc = json.loads(MINI.read_text())
        resources = [e["resource"] for e in doc["entry"]]
    else:
        from tcim_interop.synth import generate
        resources = generate(2, seed=5, fhir_version="R5")
    obs = next(r for r in resources if r["resourceType"] == "Observation" and r.get("bodySite"))
    patient = obs["subject"]["reference"]
    structure = _body_structure(version)
    structure["patient"] = {"reference": patient}
    if version == "R4":
        obs["bodySite"] = {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/bodySite",
                                          "valueReference": {"reference": "BodyStructure/bs1"}}]}
    else:
        del obs["bodySite"]
        obs["bodyStructure"] = {"reference": "BodyStructure/bs1"}
    result = to_sdtm(resources + [structure], fast=True, fhir_version=version)
    mune = next(n for n in ("XM", "NV") if n in result.datasets)
    ds = result.metadata[mune]
    row = ds.sources.index(f"Observation/{obs['id']}")
    assert (ds.frame.at[row, f"{mune}LOC"], ds.frame.at[row, f"{mune}LAT"]) == ("TIBIALIS ANTERIOR MUSCLE", "LEFT")
    outcome = {d.resource: d.outcome for d in result.report.dispositions}
    assert outcome["BodyStructure/bs1"] == "converted"


def test_synthea_bundles_of_no_study_end_out_of_scope_with_reasons():
    files = sorted(need_external("synthea").glob("*.json"))[:3]
    with pytest.raises(NoSubjectError) as no_subject:
        to_sdtm(files, fast=True)
    report = no_subject.value.report
    c = report.counts()
    assert c["input"] > 100 and c["out_of_scope"] == c["input"] and c["rejected"] == 0
    assert all(d.reason for d in report.dispositions)
