"""survey: the codes a hospital's FHIR sends, what each becomes, the accounting, and a ConceptMap skeleton
that, once filled in, makes the codes map."""

import json

from conftest import MINI
from test_site import EMG, PHARMACY, hospital_bundle
from typer.testing import CliRunner

from tcim_interop.cli import app
from tcim_interop.mapping_spec.load import load_mapping_set
from tcim_interop.survey import UNMAPPED, survey


def test_survey_of_the_sponsor_coded_bundle_maps_every_study_code(mappings):
    result = survey([MINI], mappings)
    by = {(c.domain, c.variable, c.system.rsplit("/", 1)[-1], c.code): c for c in result.codes}
    assert by[("EX", "EXTRT", "study-product", "BMNC")].term == "BONE MARROW MONONUCLEAR CELLS"
    assert by[("EX", "EXTRT", "study-product", "BMNC")].count == 2
    assert by[("XM", "XMORRESU", "unitsofmeasure.org", "1")].term.startswith("(dimensionless")
    # riluzole is a CM record, which takes what EX does not: its code is surveyed as a possible study product
    assert {(c.domain, c.variable, c.code) for c in result.unmapped()} == {("EX", "EXTRT", "35623")}
    assert result.report.counts()["out_of_scope"] == 0  # the weight is a VS record
    # each Observation is surveyed by the domain that takes it: the weight by VS, the MUNE measures by XM
    assert by[("VS", "VSTESTCD", "loinc.org", "29463-7")].term == "WEIGHT"
    assert by[("VS", "VSORRESU", "unitsofmeasure.org", "kg")].term == "kg"
    assert {c.code for c in result.codes if c.domain == "VS"} == {"29463-7", "kg"}
    assert not [c for c in result.codes if c.domain == "XM" and c.code in ("29463-7", "kg")]
    visits = {c.code: c.term for c in result.codes if (c.domain, c.variable) == ("Encounter", "type")}
    assert visits == {"BASELINE": "BASELINE", "INJECTION": "INJECTION", "DAY30": "DAY 30"}


def test_the_skeleton_filled_in_makes_the_hospital_codes_map(tmp_path, mappings):
    hospital = tmp_path / "hospital.json"
    hospital.write_text(json.dumps(hospital_bundle()))
    out = tmp_path / "survey"
    r = CliRunner().invoke(app, ["survey", str(hospital), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert f"{PHARMACY}|PH-4711 -> {UNMAPPED}" in r.stdout
    doc = json.loads((out / "survey.json").read_text())
    # unmapped pharmacy codes are not study treatment: CM records until the ConceptMaps tell the product
    assert doc["resources"]["by_resource_type"]["MedicationAdministration"]["out_of_scope"] == 0
    skeleton = json.loads((out / "conceptmap-skeleton.json").read_text())
    answers = {"PH-4711": "BMNC", "PH-0815": "PLACEBO", "EMG-MX": "MUNIX", "EMG-MS": "MUSIX"}
    site = tmp_path / "site"
    site.mkdir()
    filled = 0
    for entry in skeleton["entry"]:
        cm = entry["resource"]
        if cm["group"][0]["source"] not in (PHARMACY, EMG):
            continue
        for element in cm["group"][0]["element"]:
            element["target"][0]["code"] = answers[element["code"]]
            filled += 1
        (site / f"{cm['id']}.json").write_text(json.dumps(cm))
    assert filled == 4
    after = survey([hospital], load_mapping_set(site=site))
    assert not [c for c in after.unmapped() if c.system in (PHARMACY, EMG)]
    assert after.report.counts()["by_resource_type"]["MedicationAdministration"]["converted"] == 5  # 4 EX, 1 CM


def test_a_product_named_through_a_medication_is_surveyed_as_sent_in_the_administration(mappings):
    """EXTRT reads `medicationCodeableConcept | medicationReference.resolve().code`: the survey follows the
    reference, to a Medication contained in the administration or in the input, as the conversion does."""
    import copy

    from test_cm import _medication_by_reference

    bundle = copy.deepcopy(json.loads(MINI.read_text()))
    _medication_by_reference(bundle, "ma2", contained=True)
    _medication_by_reference(bundle, "ma3", contained=False)
    _medication_by_reference(bundle, "cm1", contained=True)  # riluzole: a CM record, surveyed as a possible product

    def products(result):
        return {(c.system, c.code, c.term, c.count, c.in_rows) for c in result.codes if c.variable == "EXTRT"}

    assert products(survey([bundle], mappings)) == products(survey([MINI], mappings))
    assert len(products(survey([MINI], mappings))) == 3  # BMNC, PLACEBO and riluzole (UNMAPPED)
