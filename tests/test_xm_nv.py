"""The MUNE domain both ways: XM (sponsor-defined, the default; define.xml says why) and NV (--mune-domain
NV: CDISC's NV test terms where one exists, sponsor extensions declared as such). --GRPID groups the
results of one recording in both; to-fhir gives every cell back, in R4 and R5."""

import json
import re
import shutil
from copy import deepcopy

import pandas as pd
import pytest
from conftest import MINI, ROOT, SHARED
from lxml import etree

from tcim_interop import load_mapping_set, to_fhir, to_sdtm
from tcim_interop.errors import SpecError
from tcim_interop.findings import Report
from tcim_interop.mapping.derivations import DeriveContext, group_id
from tcim_interop.mapping_spec.model import Variable

TERMINOLOGY = SHARED / "reference" / "sdtmig-3.4" / "terminology"
NS = {"odm": "http://www.cdisc.org/ns/odm/v1.3", "def": "http://www.cdisc.org/ns/def/v2.1"}
MUNE_TEST = "http://tcim-interop.org/fhir/CodeSystem/mune-test"
MUNE_METHOD = "http://tcim-interop.org/fhir/CodeSystem/mune-method"
CMAP_SCAN = (("CMAPAMP", 4.1, "mV"), ("CMAPAREA", 12.5, "mV.ms"), ("D50", 31, "1"))


def bundle() -> dict:
    """The mini example and one CMAP scan recording (amplitude, area, D50 at one muscle, side and time)
    of its first subject, beside that subject's MUNIX recordings."""
    doc = json.loads(MINI.read_text(encoding="utf-8"))
    o1 = next(e["resource"] for e in doc["entry"] if e["resource"].get("id") == "o1")
    for code, value, unit in CMAP_SCAN:
        o = deepcopy(o1)
        o["id"] = f"scan-{code.lower()}"
        o["code"] = {"coding": [{"system": MUNE_TEST, "code": code}]}
        o["method"] = {"coding": [{"system": MUNE_METHOD, "code": "CMAPSCAN"}]}
        o["valueQuantity"] = {"value": value, "system": "http://unitsofmeasure.org", "code": unit}
        o["effectiveDateTime"] = "2021-05-24"
        doc["entry"].append({"fullUrl": f"urn:uuid:{o['id']}", "resource": o})
    return doc


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """{domain: (result, package folder)} of the bundle, to XM and to NV."""
    out = {}
    for domain in ("XM", "NV"):
        folder = tmp_path_factory.mktemp(domain.lower()) / "sdtm"
        out[domain] = to_sdtm([bundle()], folder, mune_domain=domain), folder
    return out


# -- --GRPID: one recording, one group -------------------------------------------------------------

def test_group_id_numbers_the_groups_of_each_subject_in_order():
    frame = pd.DataFrame({"USUBJID": ["A", "A", "A", "B", "A", "B"],
                          "D": ["2021-02", "2021-01", "2021-02", "2021-01", None, "2021-01"],
                          "M": ["X", "X", "Y", "X", "X", "X"]})
    var = Variable("XXGRPID", "Group ID", "Char", "Perm", "group_id", params={"by": ["D", "M"]})
    got = group_id(DeriveContext("XX", frame, {}, Report()), var)
    # A: (null, X) 1, (2021-01, X) 2, (2021-02, X) 3, (2021-02, Y) 4; B has its own 1
    assert got == ["3", "2", "4", "1", "1", "1"]


@pytest.mark.parametrize("domain", ["XM", "NV"])
def test_the_results_of_one_recording_share_a_group(converted, domain):
    xm = converted[domain][0].datasets[domain]
    d = domain
    recording = [f"{d}DTC", f"{d}LOC", f"{d}LAT", f"{d}METHOD", "VISITNUM"]
    for _, rows in xm.groupby("USUBJID"):
        keys = rows[recording].astype(str).agg("|".join, axis=1)
        # one group id per recording and one recording per group id
        assert rows.groupby(keys)[f"{d}GRPID"].nunique().eq(1).all()
        assert keys.groupby(rows[f"{d}GRPID"]).nunique().eq(1).all()
    scan = xm[xm[f"{d}METHOD"] == "CMAP SCAN"]
    assert len(scan) == len(CMAP_SCAN) and scan[f"{d}GRPID"].nunique() == 1
    # the same day and method, but MUNIX on the left and MUSIX on the right: two recordings
    munix = xm[(xm[f"{d}METHOD"] == "MUNIX") & (xm[f"{d}DTC"] == "2021-05-24")].set_index(f"{d}TESTCD")
    assert munix.at["MUNIX", f"{d}LAT"] == "LEFT" and munix.at["MUSIX", f"{d}LAT"] == "RIGHT"
    assert munix[f"{d}GRPID"].nunique() == 2 and not set(scan[f"{d}GRPID"]) & set(munix[f"{d}GRPID"])


# -- NV: CDISC terms where they exist ------------------------------------------------------------------

def test_nv_takes_the_cdisc_term_where_one_exists(converted):
    nv, xm = converted["NV"][0].datasets["NV"], converted["XM"][0].datasets["XM"]
    ms = load_mapping_set(mune_domain="NV")
    terms = ms.codelists.codelists["NVTESTCD"]
    amplitude = nv[nv["NVMETHOD"] == "CMAP SCAN"].set_index("NVSTRESN")
    assert amplitude.at[4.1, "NVTESTCD"] == "PEAKRA" and amplitude.at[4.1, "NVTEST"] == "Peak Response Amplitude"
    assert not terms.by_value["PEAKRA"].sponsor and terms.by_value["PEAKRA"].nci_code == "C156559"
    assert all(terms.by_value[c].sponsor for c in set(nv["NVTESTCD"]) - {"PEAKRA"})
    # the same records as XM otherwise, cell for cell (in another order, and so other --SEQ: PEAKRA sorts
    # after CMAPAREA where CMAPAMP sorted before it)
    def aligned(frame, d):
        frame = frame.drop(columns=["DOMAIN", f"{d}SEQ", f"{d}TESTCD", f"{d}TEST"])
        frame.columns = [c.replace(d, "NV", 1) if c.startswith(d) else c for c in frame.columns]
        return frame.sort_values(["USUBJID", "NVDTC", "NVLAT", "NVMETHOD", "NVORRES"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(aligned(xm, "XM"), aligned(nv, "NV"))


def reference_codelist(code: str) -> dict[str, str]:
    """{submission value: NCI code} of a CDISC codelist in the reference CT."""
    for path in sorted(TERMINOLOGY.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        head = re.search(rf"^## .*\({code}\)\n", text, re.M)
        if head:
            body = text[head.end():].split("\n## ", 1)[0]
            return {m[1].strip(): m[0] for m in re.findall(r"^\| (C\d+) \| ([^|]+) \|", body, re.M)}
    raise AssertionError(f"codelist {code} is not in {TERMINOLOGY}")


@pytest.mark.parametrize("name", ["NVTESTCD", "NVTEST", "METHOD"])
def test_cdisc_terms_are_cdiscs_and_extensions_are_flagged(name):
    if not TERMINOLOGY.is_dir():
        pytest.skip(f"{TERMINOLOGY} is absent (../shared/reference is only beside the development checkout)")
    cl = load_mapping_set(mune_domain="NV").codelists.codelists[name]
    cdisc = reference_codelist(cl.nci_code)
    assert cl.extensible and not cl.sponsor
    for term in cl.terms:
        if term.sponsor:
            assert term.value not in cdisc, f"{term.value} is a CDISC term of {cl.nci_code}: not an extension"
        else:
            assert cdisc.get(term.value) == term.nci_code, term.value
    if name == "METHOD":
        assert cl.by_value["ELECTROMYOGRAPHY"].nci_code == "C38056"
        assert {t.value for t in cl.terms if t.sponsor} == {"MUNIX", "MSCANFIT", "CMAP SCAN"}


# -- define.xml --------------------------------------------------------------------------------------

def define(converted, domain):
    return etree.parse(str(converted[domain][1] / "define.xml"))


def comment_of(doc, oid: str) -> str:
    return doc.find(f".//def:CommentDef[@OID='{oid}']/odm:Description/odm:TranslatedText", NS).text


def test_define_says_why_the_custom_domain(converted):
    doc = define(converted, "XM")
    group = doc.find(".//odm:ItemGroupDef[@Name='XM']", NS)
    assert group.get(f"{{{NS['def']}}}IsNonStandard") == "Yes"
    text = comment_of(doc, group.get(f"{{{NS['def']}}}CommentOID"))
    assert text == " ".join(load_mapping_set().spec("mune").comment.split())
    assert "Sponsor-defined" in text and "C116104" in text and "NV" in text


def test_define_flags_nv_extensions(converted):
    doc = define(converted, "NV")
    group = doc.find(".//odm:ItemGroupDef[@Name='NV']", NS)
    assert group.get(f"{{{NS['def']}}}StandardOID") == "STD.SDTMIG" and group.get(f"{{{NS['def']}}}IsNonStandard") is None
    assert "extensions" in comment_of(doc, group.get(f"{{{NS['def']}}}CommentOID"))
    ms = load_mapping_set(mune_domain="NV")
    nv = converted["NV"][0].metadata["NV"].frame
    for name, var in (("NVTESTCD", "NVTESTCD"), ("NVTEST", "NVTEST"), ("METHOD", "NVMETHOD")):
        cl = doc.find(f".//odm:CodeList[@OID='CL.{name}']", NS)
        assert cl.get(f"{{{NS['def']}}}StandardOID") == "STD.CT", name
        items = {i.get("CodedValue"): i for i in cl if i.get("CodedValue")}
        spec = ms.codelists.codelists[name]
        assert set(items) == set(nv[var].dropna()) - {""}  # the terms the package uses
        for term in (t for t in spec.terms if t.value in items):
            assert items[term.value].get(f"{{{NS['def']}}}ExtendedValue") == ("Yes" if term.sponsor else None), term.value
    peakra = doc.find(".//odm:CodeList[@OID='CL.NVTESTCD']/odm:CodeListItem[@CodedValue='PEAKRA']/odm:Alias", NS)
    assert peakra.get("Name") == "C156559"
    grpid = doc.find(".//odm:ItemGroupDef[@Name='NV']/odm:ItemRef[@ItemOID='IT.NV.NVGRPID']", NS)
    assert grpid.get("MethodOID", "").startswith("MT.GROUP_ID")


# -- both directions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["R4", "R5"])
@pytest.mark.parametrize("domain", ["XM", "NV"])
def test_to_fhir_gives_back_every_cell(converted, domain, version):
    result = converted[domain][0]
    fhir = to_fhir(result.metadata, fhir_version=version)
    assert not fhir.report.errors, [f.line() for f in fhir.report.errors[:3]]
    back = to_sdtm(fhir.resources, fhir_version=version, mune_domain=domain).datasets
    pd.testing.assert_frame_equal(back[domain], result.datasets[domain])
    assert domain in {"XM", "NV"} and ({"XM", "NV"} - {domain}).isdisjoint(back)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_group_id_of_another_sponsor_comes_back(converted, version):
    """An NV package whose NVGRPID is not this converter's numbering: the cells still come back."""
    data = dict(converted["NV"][0].metadata)
    nv = data["NV"]
    frame = nv.frame.copy()
    frame["NVGRPID"] = [f"REC{i // 2}" for i in range(len(frame))]
    data["NV"] = type(nv)(nv.name, nv.label, nv.variables, frame)
    fhir = to_fhir(data, fhir_version=version)
    assert not fhir.report.errors
    assert to_sdtm(fhir.resources, fhir_version=version, mune_domain="NV").datasets["NV"]["NVGRPID"].tolist() == frame["NVGRPID"].tolist()


# -- nv.yaml's overrides ---------------------------------------------------------------------------------

@pytest.fixture
def mdir(tmp_path):
    d = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", d)
    return d


@pytest.mark.parametrize("text, fragment", [
    ("overrides:\n  --NOSUCH: {codelist: NVTESTCD}\n", "overrides: --NOSUCH is no variable of xm.yaml"),
    ("overrides:\n  --TESTCD: {name: NVX}\n", "overrides cannot rename a variable"),
    ("overrides:\n  --TESTCD: PEAKRA\n", "'overrides' must map variable names to the keys they replace"),
])
def test_overrides_are_checked(mdir, text, fragment):
    nv = mdir / "nv.yaml"
    nv.write_text(nv.read_text(encoding="utf-8").split("overrides:")[0] + text, encoding="utf-8")
    with pytest.raises(SpecError) as e:
        load_mapping_set(mdir, mune_domain="NV")
    assert fragment in str(e.value) and "nv.yaml" in str(e.value)


def test_overrides_need_a_parent(mdir):
    xm = mdir / "xm.yaml"
    xm.write_text(xm.read_text(encoding="utf-8") + "overrides:\n  --TESTCD: {codelist: NVTESTCD}\n", encoding="utf-8")
    with pytest.raises(SpecError) as e:
        load_mapping_set(mdir)
    assert "xm.yaml: 'overrides' changes the variables of the spec it extends; there is none" in str(e.value)
