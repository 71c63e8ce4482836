"""validate against SDTMIG 3.4 itself, not only the specs of mappings/: Req and Exp variables of every
domain (a missing Req variable an error, a missing Exp one a warning, one finding per dataset and
variable), Req variables never null, and countries as ISO 3166-1 alpha-3. Each test builds its own small
package, so that none depends on what the shipped example holds today."""

import re
from copy import deepcopy

import pandas as pd
import pytest
from conftest import SHARED

from tcim_interop.mapping_spec import sdtmig34
from tcim_interop.mapping_spec.load import load_mapping_set
from tcim_interop.sdtm.dataset import Dataset, VariableMeta
from tcim_interop.validate import validate_datasets

REFERENCE = SHARED / "reference" / "sdtmig-3.4" / "domains"
# every domain the package holds or will hold, and the two others sdtmig34.yaml carries
DOMAINS = ("DM", "DS", "SV", "SE", "EX", "EC", "AE", "RELREC", "CM", "VS", "NV", "SUPPQUAL",
           "TS", "TA", "TE", "TI", "TV", "CO", "PR")
PRESENCE = ["required_variables", "expected_variables", "required_values"]


def dataset(name: str, rows: list[dict], label: str = "") -> Dataset:
    frame = pd.DataFrame(rows)
    variables = [VariableMeta(c, c, "Num" if pd.api.types.is_numeric_dtype(frame[c]) else "Char") for c in frame.columns]
    return Dataset(name, label or name, variables, frame)


def dm(**cells) -> Dataset:
    """One subject's DM with every SDTMIG 3.4 Req and Exp variable."""
    row = {v.name: None for v in sdtmig34.variables("DM") if v.core in ("Req", "Exp")}
    row.update(STUDYID="S1", DOMAIN="DM", USUBJID="S1-001", SUBJID="001", SITEID="01", SEX="F", COUNTRY="ESP",
               ARMNRS="NOT ASSIGNED")
    row.update(cells)
    return dataset("DM", [row])


def of_standard(name: str, drop: tuple[str, ...] = (), **cells) -> Dataset:
    """One record of a standard domain with every SDTMIG 3.4 Req and Exp variable but `drop`."""
    row = {v.name: (1 if v.type == "Num" else "X") for v in sdtmig34.variables(name)
           if v.core in ("Req", "Exp") and v.name not in drop}
    row.update({k: v for k, v in {"STUDYID": "S1", "DOMAIN": name, "USUBJID": "S1-001"}.items() if k in row})
    row.update(cells)
    return dataset(name, [row])


@pytest.fixture(scope="module")
def mappings():
    return load_mapping_set()


def found(findings, code=None):
    return sorted((f.severity, f.rule, f.domain, f.variable) for f in findings if code is None or f.code == code)


# -- the table is SDTMIG 3.4's --------------------------------------------------------------------------

def reference_variables(domain: str) -> tuple[str, list[tuple[str, str, str]]]:
    text = (REFERENCE / domain / "spec.md").read_text(encoding="utf-8")
    klass = re.search(r"Class:\s*([^|]+)", text).group(1).strip().upper().replace("-", " ")
    out = []
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        kind, core = re.search(r"\*\*Type:\*\*\s*(\S+)", block), re.search(r"\*\*Core:\*\*\s*(\S+)", block)
        if kind and core:  # the sections after the variables (Controlled Terminology, ...) have neither
            out.append((block.split("\n", 1)[0].strip(), "Num" if kind.group(1) == "Num" else "Char", core.group(1)))
    return klass, out


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_table_holds_sdtmig_34_for_every_domain(domain):
    if not (REFERENCE / domain / "spec.md").is_file():
        pytest.skip(f"{REFERENCE} is absent (../shared/reference is only beside the development checkout)")
    klass, variables = reference_variables(domain)
    assert variables, domain
    assert sdtmig34.domain_class(domain) == klass
    assert [tuple(v) for v in sdtmig34.variables(domain)] == variables


# -- presence and nulls -------------------------------------------------------------------------------

def test_a_complete_package_has_no_finding(mappings):
    data = {"DM": dm(), "AE": of_standard("AE", AEDECOD="HEADACHE"), "VS": of_standard("VS"), "DS": of_standard("DS")}
    assert found(validate_datasets(data, mappings, checks=PRESENCE)) == []


def test_sdtmig_expected_variables_no_spec_produces_are_looked_for(mappings):
    """ae.yaml and dm.yaml may lack AEHLT or ACTARMUD: SDTMIG 3.4 still expects them."""
    data = {"DM": dm(), "AE": of_standard("AE", drop=("AEHLT", "AEHLGTCD"))}
    data["DM"].frame.pop("ACTARMUD")
    assert found(validate_datasets(data, mappings, checks=PRESENCE)) == [
        ("warning", "CORE-000334/CG0016", "AE", "AEHLGTCD"), ("warning", "CORE-000334/CG0016", "AE", "AEHLT"),
        ("warning", "CORE-000334/CG0016", "DM", "ACTARMUD")]


def test_a_missing_required_variable_is_an_error_once_per_dataset(mappings):
    data = {"DM": dm(), "VS": dataset("VS", [dict(of_standard("VS", drop=("VSTESTCD",)).frame.iloc[0])] * 3)}
    findings = validate_datasets(data, mappings, checks=PRESENCE)
    assert found(findings) == [("error", "CORE-000355/CG0014", "VS", "VSTESTCD")]
    assert findings[0].code == "MISSING_REQUIRED_VARIABLE" and findings[0].row is None


def test_a_domain_without_spec_is_held_to_sdtmig(mappings):
    assert "DS" not in {s.domain for s in mappings.domains.values()}
    data = {"DM": dm(), "DS": of_standard("DS", drop=("DSDECOD", "DSSTDTC"))}
    assert found(validate_datasets(data, mappings, checks=PRESENCE)) == [
        ("error", "CORE-000355/CG0014", "DS", "DSDECOD"), ("warning", "CORE-000334/CG0016", "DS", "DSSTDTC")]


def test_a_null_required_value_is_an_error_per_record(mappings):
    rows = [dict(of_standard("VS").frame.iloc[0]) for _ in range(3)]
    rows[1]["VSTEST"] = ""
    data = {"DM": dm(), "VS": dataset("VS", rows)}
    findings = validate_datasets(data, mappings, checks=PRESENCE)
    assert [(f.severity, f.rule, f.domain, f.row, f.variable) for f in findings] == [
        ("error", "CORE-000356/CG0014", "VS", 2, "VSTEST")]


def test_sdtmig_expected_wins_over_a_weaker_spec_core(mappings):
    ms = deepcopy(mappings)
    ae = next(s for s in ms.domains.values() if s.domain == "AE")
    ae.by_name["AESER"].core = "Perm"  # a spec that calls an SDTMIG Exp variable permissible
    data = {"DM": dm(), "AE": of_standard("AE", drop=("AESER",), AEDECOD="HEADACHE")}
    assert found(validate_datasets(data, ms, checks=PRESENCE)) == [("warning", "CORE-000334/CG0016", "AE", "AESER")]


def test_a_sponsor_domain_is_held_to_its_class(mappings):
    """XM (Findings) has no SDTMIG table: it is held to what every Findings domain of SDTMIG requires."""
    xm = dataset("XM", [{"STUDYID": "S1", "DOMAIN": "XM", "USUBJID": "S1-001", "XMSEQ": 1, "XMTESTCD": "T"}])
    bare = deepcopy(mappings)
    bare.domains = {r: s for r, s in bare.domains.items() if s.domain != "XM"}  # no spec: the class alone
    assert found(validate_datasets({"DM": dm(), "XM": xm}, bare, checks=PRESENCE)) == [
        ("error", "CORE-000355/CG0014", "XM", "XMTEST"), ("warning", "CORE-000334/CG0016", "XM", "VISITNUM"),
        ("warning", "CORE-000334/CG0016", "XM", "XMDTC"), ("warning", "CORE-000334/CG0016", "XM", "XMORRES"),
        ("warning", "CORE-000334/CG0016", "XM", "XMSTRESC")]
    assert {v.name for v in sdtmig34.class_variables("FINDINGS", "XM") if v.core == "Req"} == {
        "STUDYID", "DOMAIN", "USUBJID", "XMSEQ", "XMTESTCD", "XMTEST"}


# -- countries ----------------------------------------------------------------------------------------

def test_country_is_iso_3166_alpha_3(mappings):
    rows = [dict(dm().frame.iloc[0], USUBJID=f"S1-00{i}", COUNTRY=c) for i, c in enumerate(["ESP", "ES", "SPAIN", "XYZ", ""])]
    ts = dataset("TS", [{"STUDYID": "S1", "DOMAIN": "TS", "TSSEQ": 1, "TSPARMCD": "FCNTRY", "TSPARM": "x", "TSVAL": "FRA"},
                        {"STUDYID": "S1", "DOMAIN": "TS", "TSSEQ": 2, "TSPARMCD": "FCNTRY", "TSPARM": "x", "TSVAL": "FR"},
                        {"STUDYID": "S1", "DOMAIN": "TS", "TSSEQ": 1, "TSPARMCD": "TITLE", "TSPARM": "x", "TSVAL": "ABC"}])
    findings = validate_datasets({"DM": dataset("DM", rows), "TS": ts}, mappings, checks=["country_codes"])
    assert [(f.severity, f.code, f.domain, f.row, f.variable, f.value) for f in findings] == [
        ("error", "COUNTRY_NOT_ISO3166", "DM", 2, "COUNTRY", "ES"),
        ("error", "COUNTRY_NOT_ISO3166", "DM", 3, "COUNTRY", "SPAIN"),
        ("error", "COUNTRY_NOT_ISO3166", "DM", 4, "COUNTRY", "XYZ"),
        ("error", "COUNTRY_NOT_ISO3166", "TS", 2, "TSVAL", "FR")]
    assert {f.rule for f in findings} == {"SDTMIG-DM/ISO3166"}


DEFINE = """<?xml version="1.0" encoding="UTF-8"?>
<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3"><Study><MetaDataVersion>
 <ItemGroupDef OID="IG.DM" Name="DM"><ItemRef ItemOID="IT.DM.COUNTRY" OrderNumber="1"/></ItemGroupDef>
 <ItemDef OID="IT.DM.COUNTRY" Name="COUNTRY" DataType="text"><CodeListRef CodeListOID="CL.C"/></ItemDef>
 <CodeList OID="CL.C" Name="Country" DataType="text"><ExternalCodeList Dictionary="{}"/></CodeList>
</MetaDataVersion></Study></ODM>"""


@pytest.mark.parametrize("dictionary, expected", [("ISO 3166", []), ("ISO3166-1", []),
                                                  ("MedDRA", [("warning", "DEFINE_COUNTRY_DICTIONARY", "MedDRA")])])
def test_define_gives_country_the_iso_3166_dictionary(mappings, dictionary, expected):
    findings = validate_datasets({"DM": dm()}, mappings, DEFINE.format(dictionary).encode(), checks=["country_codes"])
    assert [(f.severity, f.code, f.value) for f in findings] == expected
