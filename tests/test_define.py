"""Define-XML 2.1: the example's define against CDISC's XSD (and a broken one failing it), every
dataset and variable in order with its length, NCI codes, value-level metadata for each MUNE test and
each QNAM; and its HTML view rendered by a real browser (headless Chromium)."""

import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from conftest import DATA, EXTERNAL, need_external
from lxml import etree

from tcim_interop import SpecError, load_mapping_set, to_sdtm
from tcim_interop.sdtm.dataset import Dataset
from tcim_interop.sdtm.dataset_json import text_length
from tcim_interop.sdtm.define import build_define, dataset_keys, define_oids, schema_path, validate_define
from tcim_interop.sdtm.define_html import define_html
from tcim_interop.trial_design import TRIAL_DESIGN

NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1",
      "xlink": "http://www.w3.org/1999/xlink"}
CREATED = datetime(2022, 7, 1, 10, 0, 0)
CHROMIUM = Path("/usr/bin/chromium")


def make_define(ms, datasets: dict[str, Dataset]) -> bytes:
    return build_define(ms, datasets, study_name="TCIM-ELAII", created=CREATED,
                        dataset_files={n: f"{d.file_stem}.xpt" for n, d in datasets.items()})


@pytest.fixture(scope="module")
def example(example_conversion) -> dict[str, Dataset]:
    return example_conversion[0].metadata


@pytest.fixture(scope="module")
def define(example, mappings) -> bytes:
    return make_define(mappings, example)


@pytest.fixture(scope="module")
def doc(define):
    return etree.fromstring(define)


def xsd(shared_only: bool = False) -> Path:
    """CDISC's XSD in ../shared; elsewhere odmlib's copy of it (the same files), unless shared_only."""
    path = EXTERNAL / "define-xml-2.1" / "schema" / "define" / "2.1" / "define2-1-0.xsd"
    if path.exists() or shared_only:
        return need_external("define-xml-2.1", "schema", "define", "2.1", "define2-1-0.xsd")
    pytest.importorskip("odmlib", reason="neither ../shared nor odmlib provides the Define-XML 2.1 XSD")
    return schema_path()


def test_the_example_define_validates_against_the_xsd(define):
    assert validate_define(define, xsd(shared_only=True)) == []


def test_define_asks_for_the_cdisc_stylesheet_before_the_root(define):
    """A reviewer's browser renders define.xml through CDISC's define2-1.xsl when the file names it, as
    CDISC's own Define-XML 2.1 examples do: the processing instruction precedes the ODM element."""
    tree = etree.fromstring(define).getroottree()
    pis = [n for n in tree.getroot().itersiblings(preceding=True) if isinstance(n, etree._ProcessingInstruction)]
    assert [(pi.target, pi.get("type"), pi.get("href")) for pi in pis] == [("xml-stylesheet", "text/xsl", "define2-1.xsl")]


def test_odmlibs_copy_of_the_xsd_agrees(define):
    pytest.importorskip("odmlib", reason="odmlib (a dependency) ships the XSD used when ../shared is absent")
    assert validate_define(define) == []


def test_a_broken_define_fails_validation(doc):
    broken = etree.fromstring(etree.tostring(doc))
    del broken.attrib[f"{{{NS['def']}}}Context"]  # required on ODM
    item = broken.find(".//odm:ItemDef", NS)
    del item.attrib["DataType"]  # required on ItemDef
    errors = validate_define(etree.tostring(broken), xsd())
    assert any("Context" in e for e in errors) and any("DataType" in e for e in errors)


def test_header_standards_and_oids(doc):
    assert doc.get("FileType") == "Snapshot" and doc.get(f"{{{NS['def']}}}Context") == "Submission"
    assert doc.get("CreationDateTime") == "2022-07-01T10:00:00"
    study_oid, mdv_oid = define_oids("TCIM-ELAII")
    assert doc.find("odm:Study", NS).get("OID") == study_oid
    assert doc.find("odm:Study/odm:MetaDataVersion", NS).get("OID") == mdv_oid
    standards = {s.get("Name"): s for s in doc.findall(".//def:Standard", NS)}
    assert standards["SDTMIG"].get("Version") == "3.4"
    assert standards["CDISC/NCI"].get("PublishingSet") == "SDTM" and standards["CDISC/NCI"].get("Version")


def test_every_dataset_and_variable_in_order_with_types_and_lengths(doc, example, mappings):
    items = {i.get("OID"): i for i in doc.findall(".//odm:ItemDef", NS)}
    methods = {m.get("OID") for m in doc.findall(".//odm:MethodDef", NS)}
    groups = {g.get("Name"): g for g in doc.findall(".//odm:ItemGroupDef", NS)}
    assert set(groups) == set(example)
    specs = {s.domain: s for s in mappings.domains.values()}
    for name, ds in example.items():
        g = groups[name]
        refs = g.findall("odm:ItemRef", NS)
        assert [r.get("ItemOID") for r in refs] == [f"IT.{name}.{v.name}" for v in ds.variables]
        assert [r.get("OrderNumber") for r in refs] == [str(n) for n in range(1, len(refs) + 1)]
        assert g.find("def:leaf", NS).get(f"{{{NS['xlink']}}}href") == f"{name.lower()}.xpt"
        assert g.find("def:Class", NS).get("Name") == (specs[name].klass if name in specs else
                                                            "TRIAL DESIGN" if name in TRIAL_DESIGN else
                                                            "SPECIAL PURPOSE" if name == "SE" else "RELATIONSHIP")
        for ref, var in zip(refs, ds.variables):
            item = items[ref.get("ItemOID")]
            assert item.get("Name") == var.name and ref.get("Mandatory") == ("Yes" if var.core == "Req" else "No")
            if item.get("DataType") == "text":
                assert int(item.get("Length")) == text_length(ds.frame[var.name])
            if ref.get("MethodOID"):
                assert ref.get("MethodOID") in methods
        keyed = sorted((int(r.get("KeySequence")), r.get("ItemOID")) for r in refs if r.get("KeySequence"))
        assert [oid for _, oid in keyed] == [f"IT.{name}.{k}" for k in dataset_keys(mappings, name)]
        if name in specs:
            assert dataset_keys(mappings, name) == specs[name].keys
            derived = [v.name for v in specs[name].variables if v.origin == "Derived"]
            assert all(r.get("MethodOID") for r in refs if r.get("ItemOID").split(".")[-1] in derived)
    types = {oid: i.get("DataType") for oid, i in items.items()}
    assert types["IT.AE.AESEQ"] == types["IT.DM.AGE"] == types["IT.XM.XMDY"] == "integer"
    assert types["IT.XM.XMSTRESN"] == "float" and types["IT.XM.XMDTC"] == "datetime" and types["IT.AE.AESTDTC"] == "date"
    assert groups["XM"].get(f"{{{NS['def']}}}IsNonStandard") == "Yes"
    assert groups["SUPPAE"].get("Domain") == "AE"
    origin = items["IT.AE.AETERM"].find("def:Origin", NS)
    assert origin.get("Type") == "Collected" and origin.get("Source") == "Investigator"
    assert "event.text" in "".join(origin.itertext())


def test_codelists_carry_nci_codes_sponsor_terms_and_dictionaries(doc):
    cls = {c.get("OID"): c for c in doc.findall(".//odm:CodeList", NS)}

    def alias(el):
        return [a.get("Name") for a in el.findall("odm:Alias", NS) if a.get("Context") == "nci:ExtCodeID"]

    sex = cls["CL.SEX"]
    assert alias(sex) == ["C66731"]
    male = sex.find("odm:CodeListItem[@CodedValue='M']", NS)
    assert alias(male) == ["C20197"] and "Male" in "".join(male.find("odm:Decode", NS).itertext())
    ta = cls["CL.LOC"].find("odm:EnumeratedItem[@CodedValue='TIBIALIS ANTERIOR MUSCLE']", NS)
    assert alias(ta) == ["C117874"]
    area = cls["CL.UNIT"].find("odm:CodeListItem[@CodedValue='mV.ms']", NS)
    assert area.get(f"{{{NS['def']}}}ExtendedValue") == "Yes" and alias(area) == []
    sponsor = cls["CL.MUNETC"]
    assert sponsor.get(f"{{{NS['def']}}}StandardOID") is None and not sponsor.findall(".//odm:Alias", NS)
    assert cls["CL.MEDDRA"].find("odm:ExternalCodeList", NS).get("Dictionary") == "MedDRA"
    assert cls["CL.ISO3166"].find("odm:ExternalCodeList", NS).get("Dictionary") == "ISO 3166"
    refs = {r.get("CodeListOID") for r in doc.findall(".//odm:CodeListRef", NS)}
    assert refs == set(cls)  # every codelist is used, every reference resolves


def _where(doc, oid):
    rc = doc.find(f".//def:WhereClauseDef[@OID='{oid}']/odm:RangeCheck", NS)
    return rc.get(f"{{{NS['def']}}}ItemOID"), rc.get("Comparator"), [v.text for v in rc.findall("odm:CheckValue", NS)]


def _terms(cl) -> list[str]:
    return [i.get("CodedValue") for i in cl.findall("odm:CodeListItem", NS) + cl.findall("odm:EnumeratedItem", NS)]


def test_codelists_list_the_terms_the_package_uses(doc, example):
    """A reviewer reads the terms used, not the whole CT codelist: each codelist holds exactly the values
    of the variables that reference it (all its terms only when none is used, as a codelist cannot be
    empty), so an unmasked package shows no MASKED."""
    cls = {c.get("OID"): c for c in doc.findall(".//odm:CodeList", NS)}
    items = {i.get("OID"): i for i in doc.findall(".//odm:ItemDef", NS)}
    used: dict[str, set] = {}
    for oid, item in items.items():
        ref = item.find("odm:CodeListRef", NS)
        parts = oid.split(".")
        if ref is None or len(parts) != 3 or parts[1] not in example:  # value-level items: their own test
            continue
        column = example[parts[1]].frame[parts[2]]
        used.setdefault(ref.get("CodeListOID"), set()).update(
            str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in column if v == v and v not in ("", None))
    checked = 0
    for oid, values in used.items():
        if cls[oid].find("odm:ExternalCodeList", NS) is not None or not values:
            continue
        assert set(_terms(cls[oid])) == values, oid
        checked += 1
    assert checked >= 10
    assert _terms(cls["CL.ARMNRS"]) == ["SCREEN FAILURE"]
    assert not any("MASKED" in _terms(c) for c in cls.values())


def test_methods_read_as_sentences(doc, example):
    methods = {m.get("OID"): "".join(m.find("odm:Description", NS).itertext()).strip()
               for m in doc.findall(".//odm:MethodDef", NS)}
    assert methods and not any("params." in t or "Parameters:" in t for t in methods.values()), methods
    aestdy = next(t for t in methods.values() if t.startswith("AESTDY "))
    assert aestdy.startswith("AESTDY is the study day of AESTDTC: the days from DM.RFSTDTC")
    assert methods["MT.CONCAT.STUDYID"] == 'USUBJID is STUDYID, SITEID and SUBJID joined by "-".'
    seq = [t for t in methods.values() if "numbers each subject's records" in t]
    seq_vars = sorted(f"{n}SEQ" for n, d in example.items() if f"{n}SEQ" in d.frame.columns and n not in TRIAL_DESIGN)
    assert len(seq_vars) >= 4 and sorted(t.split()[0] for t in seq) == seq_vars  # one per variable it names


def test_origins_in_define_xmls_vocabulary(doc):
    items = {i.get("OID"): i for i in doc.findall(".//odm:ItemDef", NS)}

    def origin(oid):
        return items[oid].find("def:Origin", NS).get("Type")

    assert origin("IT.AE.AEDECOD") == origin("IT.AE.AEBODSYS") == "Assigned"  # MedDRA coding
    assert "FHIR AdverseEvent" in "".join(items["IT.AE.AEDECOD"].find("def:Origin", NS).itertext())
    assert {origin(o) for o in items if o.split(".")[1] in TRIAL_DESIGN and o.count(".") == 2} == {"Protocol"}
    assert origin("IT.AE.AETERM") == "Collected" and origin("IT.AE.AESTDY") == "Derived"


def test_value_level_metadata_for_each_mune_test(doc, example):
    codes = sorted(set(example["XM"].frame["XMTESTCD"].dropna()))
    assert codes == ["CMAPAMP", "CMAPAREA", "D50", "MUNE", "MUNIX", "MUSIX"]
    items = {i.get("OID"): i for i in doc.findall(".//odm:ItemDef", NS)}
    for var in ("XMORRES", "XMSTRESN"):
        assert items[f"IT.XM.{var}"].find("def:ValueListRef", NS).get("ValueListOID") == f"VL.XM.{var}"
        refs = doc.findall(f".//def:ValueListDef[@OID='VL.XM.{var}']/odm:ItemRef", NS)
        assert sorted(r.get("ItemOID") for r in refs) == [f"IT.XM.{var}.{c}" for c in codes]
        for ref in refs:
            code = ref.get("ItemOID").rsplit(".", 1)[1]
            wc = ref.find("def:WhereClauseRef", NS).get("WhereClauseOID")
            assert _where(doc, wc) == ("IT.XM.XMTESTCD", "EQ", [code])
            assert items[ref.get("ItemOID")].get("DataType") in ("integer", "float")
    musix = "".join(items["IT.XM.XMSTRESN.MUSIX"].find("odm:Description", NS).itertext())
    assert "uV" in musix and items["IT.XM.XMORRES.CMAPAMP"].get("DataType") == "float"


def test_supp_value_level_metadata_per_qnam(doc, example):
    qnams = sorted(set(example["SUPPAE"].frame["QNAM"]))
    refs = doc.findall(".//def:ValueListDef[@OID='VL.SUPPAE.QVAL']/odm:ItemRef", NS)
    assert sorted(r.get("ItemOID") for r in refs) == [f"IT.SUPPAE.QVAL.{q}" for q in qnams]
    assert _where(doc, "WC.SUPPAE.QNAM.AEDISCON") == ("IT.SUPPAE.QNAM", "EQ", ["AEDISCON"])
    discon = doc.find(".//odm:ItemDef[@OID='IT.SUPPAE.QVAL.AEDISCON']", NS)
    assert discon.find("odm:CodeListRef", NS).get("CodeListOID") == "CL.NY"
    assert discon.find("def:Origin", NS).get("Type") == "Collected"


def test_nv_on_request_gets_the_same_value_level_metadata():
    ms = load_mapping_set(mune_domain="NV")
    datasets = to_sdtm([DATA / "mini-r4.json"], mappings=ms).metadata
    define = make_define(ms, datasets)
    assert validate_define(define, xsd()) == []
    doc = etree.fromstring(define)
    assert doc.find(".//def:ValueListDef[@OID='VL.NV.NVORRES']", NS) is not None
    assert doc.find(".//odm:ItemGroupDef[@Name='NV']", NS).get(f"{{{NS['def']}}}StandardOID") == "STD.SDTMIG"


def test_same_input_same_bytes(define, example, mappings):
    assert make_define(mappings, example) == define


def test_a_dataset_no_spec_describes_is_refused(example, mappings):
    odd = Dataset("QS", "Questionnaires", example["DM"].variables, example["DM"].frame)
    with pytest.raises(SpecError, match="QS"):
        make_define(mappings, {"QS": odd})


def test_html_view_is_self_contained(define):
    page = define_html(define)
    assert "<script" not in page and "<link" not in page and "<img" not in page
    for anchor in ('id="IG.XM"', 'id="VL.XM.XMORRES"', 'id="CL.SEX"', 'href="#CL.SEX"', 'id="MT.SEQUENCE"'):
        assert anchor in page


def test_html_view_renders_in_chromium(define, tmp_path):
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium; .ci/run installs it)")
    page = tmp_path / "define.html"
    page.write_text(define_html(define), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([str(CHROMIUM), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=180, check=True).stdout
    for text in ("DM", "EX", "AE", "XM", "SUPPAE", "Unique Subject Identifier", "Motor Unit Number Estimation",
                 "CMAP Amplitude", "C66731"):
        assert text in dom, text
    png = tmp_path / "define.png"
    subprocess.run([str(CHROMIUM), *flags, f"--screenshot={png}", "--window-size=1280,2000", page.as_uri()],
                   capture_output=True, timeout=180, check=True)
    assert png.exists() and png.stat().st_size > 10_000  # a blank page compresses to a few hundred bytes


def test_empty_datasets_are_described_as_having_no_data(mappings):
    datasets = to_sdtm([DATA / "mini-r4.json"], mappings=mappings).metadata
    for name in ("XM", "SUPPAE", "SUPPXM"):  # every dataset with value-level metadata
        datasets[name].frame = datasets[name].frame.iloc[0:0]
    define = make_define(mappings, datasets)
    assert validate_define(define, xsd()) == []
    doc = etree.fromstring(define)
    xm = doc.find(".//odm:ItemGroupDef[@Name='XM']", NS)
    assert xm.get(f"{{{NS['def']}}}HasNoData") == "Yes" and xm.find("def:leaf", NS) is None
    assert doc.find(".//def:ValueListDef", NS) is None
