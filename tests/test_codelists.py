"""spec/codelists.py: FHIR code -> submission value, and back."""

import pytest

from tcim_interop.errors import SpecError
from tcim_interop.mapping_spec.codelists import Codelists
from tcim_interop.mapping_spec.load import load_mapping_set

NCI = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
GENDER = "http://hl7.org/fhir/administrative-gender"
SER = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"


@pytest.fixture(scope="module")
def cl():
    return load_mapping_set().codelists


def test_nci_system(cl):
    assert cl.nci_system == NCI


def test_lookup_via_map(cl):
    assert cl.lookup("SEX", "GENDER", GENDER, "female") == "F"
    assert cl.lookup("SEX", "GENDER", GENDER, "male") == "M"
    assert cl.lookup("AESEV", "AE_SEVERITY", "http://terminology.hl7.org/CodeSystem/adverse-event-severity",
                     "moderate") == "MODERATE"
    assert cl.lookup("NY", "SERIOUSNESS", SER, "SeriousResultsInDeath") == "Y"
    assert cl.lookup("NY", "SERIOUSNESS", SER, "non-serious") == "N"


def test_lookup_needs_the_system_too(cl):
    assert cl.lookup("SEX", "GENDER", "http://other.org/gender", "female") is None
    assert cl.lookup("SEX", "GENDER", None, "female") is None


def test_lookup_of_an_nci_coding_without_a_map_entry(cl):
    assert cl.lookup("LOC", None, NCI, "C117874") == "TIBIALIS ANTERIOR MUSCLE"
    # with a map that does not list it, the codelist's NCI codes still apply
    assert cl.lookup("SEX", "GENDER", NCI, "C16576") == "F"
    assert cl.lookup("ARMNRS", None, NCI, "C49628") == "SCREEN FAILURE"


def test_nci_code_of_another_codelist_or_system_is_not_a_match(cl):
    assert cl.lookup("LOC", None, NCI, "C16576") is None  # Female, not a location
    assert cl.lookup("LOC", None, "http://snomed.info/sct", "C117874") is None


def test_unknown_code_gives_none(cl):
    assert cl.lookup("SEX", "GENDER", GENDER, "other") is None
    assert cl.lookup("SEX", "GENDER", NCI, "C99999") is None
    assert cl.lookup("SEX", "GENDER", GENDER, None) is None
    assert cl.lookup("NOSUCHLIST", None, NCI, "C16576") is None


def test_map_wins_over_nci_codes(cl):
    # a map may send an NCI code somewhere other than its codelist term: the map says what it means
    assert cl.lookup("NY", "CRIT_DEATH", NCI, "C48275") == "Y"
    assert cl.lookup("NY", None, NCI, "C48275") is None


def test_fhir_coding_gives_the_first_listed_key(cl):
    assert cl.fhir_coding("NY", "SERIOUSNESS", "Y") == {"system": SER, "code": "serious"}
    assert cl.fhir_coding("NY", "SERIOUSNESS", "N") == {"system": SER, "code": "non-serious"}
    assert cl.fhir_coding("ROUTE", "ROUTE", "INTRAMUSCULAR") == {"system": "http://snomed.info/sct",
                                                                 "code": "78421000"}
    assert cl.fhir_coding("RACE", "RACE_OMB", "NOT REPORTED") == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "ASKU"}
    assert cl.fhir_coding("UNIT", "UCUM", "10^6 Therapeutic Cells") == {"system": "http://unitsofmeasure.org",
                                                                       "code": "10*6{cells}"}


def test_fhir_coding_falls_back_to_nci(cl):
    assert cl.fhir_coding("SEX", None, "F") == {"system": NCI, "code": "C16576", "display": "F"}
    assert cl.fhir_coding("LOC", None, "TIBIALIS ANTERIOR MUSCLE") == {
        "system": NCI, "code": "C117874", "display": "TIBIALIS ANTERIOR MUSCLE"}
    # in the map's codelist but not in the map: NCI
    assert cl.fhir_coding("SEX", "GENDER", "UNDIFFERENTIATED") == {
        "system": NCI, "code": "C45908", "display": "UNDIFFERENTIATED"}


def test_fhir_coding_of_a_sponsor_term_without_map_is_none(cl):
    assert cl.fhir_coding("AEREL", None, "PROBABLE") is None
    assert cl.fhir_coding("SEX", None, "X") is None


def test_round_trip_of_every_map_value(cl):
    for name, m in cl.maps.items():
        for value in set(m.values()):
            coding = cl.fhir_coding("", name, value)
            assert cl.lookup("", name, coding["system"], coding["code"]) == value, (name, value)


def test_codelist_terms():
    doc = {"nci_system": NCI,
           "codelists": {"YN": {"name": "Yes No", "nci_code": "C1", "extensible": False, "terms": [
               {"value": "Y", "nci_code": "C49488", "decode": "Yes"}, {"value": "MAYBE", "sponsor": True}]}},
           "maps": {"M": {"s|yes": "Y", "s|oui": "Y"}}}
    cl = Codelists.from_yaml(doc, "x.yaml")
    yn = cl.codelists["YN"]
    assert "Y" in yn and "MAYBE" in yn and "N" not in yn
    assert yn.by_value["MAYBE"].sponsor is True and yn.by_value["Y"].decode == "Yes"
    assert cl.fhir_coding("YN", "M", "Y") == {"system": "s", "code": "yes"}
    assert cl.lookup("YN", "M", "s", "oui") == "Y"


def test_malformed_codelist_file():
    with pytest.raises(SpecError, match=r"^x\.yaml: malformed codelist file: KeyError\('terms'\)"):
        Codelists.from_yaml({"nci_system": NCI, "codelists": {"YN": {"name": "x"}}}, "x.yaml")
