"""RELREC (SDTMIG 3.4 section 8.2): an adverse event whose suspectEntity references a study administration
is related to that administration's EX record; an injection-site event takes its AELOC/AELAT from it.
Both directions: to-fhir writes the suspectEntity reference from RELREC, and gives RELREC back cell for cell.
Built on tests/data/mini-r4.json (administrations ma1..ma4 of subject p1, cm1 a concomitant medication)
and small synthetic trials."""

import copy
import json

import pytest
from conftest import MINI

from tcim_interop import load_mapping_set, to_fhir, to_sdtm
from tcim_interop.errors import SpecError
from tcim_interop.synth import generate

MDR = "http://terminology.hl7.org/CodeSystem/mdr"
LEVEL = "http://tcim-interop.org/fhir/StructureDefinition/meddra-level"
SER = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"
INJECTION_SITE_PAIN = [("PT", "10022086", "Injection site pain"), ("SOC", "10018065", "General disorders")]
HEADACHE = [("PT", "10019211", "Headache"), ("SOC", "10029205", "Nervous system disorders")]
RELREC_COLUMNS = ["STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "RELTYPE", "RELID"]


def event(aid: str, suspects: list[str], codings=HEADACHE, **more) -> dict:
    """An R4 AdverseEvent of mini-r4.json's subject p1, suspected of these resources (references)."""
    return {"resourceType": "AdverseEvent", "id": aid, "actuality": "actual", "subject": {"reference": "Patient/p1"},
            "date": "2021-06-10", "event": {"text": aid, "coding": [
                {"extension": [{"url": LEVEL, "valueCode": lv}], "system": MDR, "code": c, "display": d}
                for lv, c, d in codings]},
            "seriousness": {"coding": [{"system": SER, "code": "Non-serious"}]},
            "suspectEntity": [{"instance": {"reference": s}} for s in suspects], **more}


def convert(*resources: dict, **options):
    bundle = json.loads(MINI.read_text(encoding="utf-8"))
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "AdverseEvent"]
    bundle["entry"] += [{"resource": copy.deepcopy(r)} for r in resources]
    return to_sdtm([bundle], fast=True, **options)


def record(result, domain: str, key: str) -> dict:
    ds = result.metadata[domain]
    row = ds.frame.iloc[ds.sources.index(key)].to_dict()
    return {k: (None if v != v else v) for k, v in row.items()}  # NaN -> None


def relations(result, usubjid: str = "TCIM-ELAII-01-001") -> dict[str, set[tuple[str, str]]]:
    """A subject's relationships: RELID -> its members (RDOMAIN, IDVARVAL); every IDVAR is the member's --SEQ."""
    out: dict[str, set[tuple[str, str]]] = {}
    for r in result.datasets["RELREC"].to_dict("records"):
        assert r["IDVAR"] == f"{r['RDOMAIN']}SEQ" and not r["RELTYPE"]
        if r["USUBJID"] == usubjid:
            out.setdefault(r["RELID"], set()).add((r["RDOMAIN"], r["IDVARVAL"]))
    return out


def seq(result, domain: str, key: str) -> str:
    return f"{int(record(result, domain, key)[f'{domain}SEQ'])}"


def test_an_event_is_related_to_the_ex_record_of_the_administration_it_references():
    result = convert(event("ae-x", ["MedicationAdministration/ma2"]))
    ae, ex = seq(result, "AE", "AdverseEvent/ae-x"), seq(result, "EX", "MedicationAdministration/ma2")
    assert relations(result) == {f"AE{ae}": {("AE", ae), ("EX", ex)}}
    relrec = result.datasets["RELREC"]
    assert list(relrec.columns) == RELREC_COLUMNS
    assert relrec["USUBJID"].tolist() == [record(result, "AE", "AdverseEvent/ae-x")["USUBJID"]] * 2
    assert relrec["RDOMAIN"].tolist() == ["AE", "EX"]  # the relationship's own record first


def test_references_to_anything_but_a_study_administration_relate_nothing():
    """A concomitant medication (a CM record), a resource not in the input, or no reference at all."""
    result = convert(event("ae-cm", ["MedicationAdministration/cm1"]), event("ae-gone", ["MedicationAdministration/x"]),
                     event("ae-none", []))
    assert "RELREC" not in result.datasets
    assert len(result.datasets["AE"]) == 3


def test_two_suspects_make_one_relationship_of_three_records():
    result = convert(event("ae-2", ["MedicationAdministration/ma1", "MedicationAdministration/ma3"]))
    ae = seq(result, "AE", "AdverseEvent/ae-2")
    assert relations(result) == {f"AE{ae}": {("AE", ae), ("EX", seq(result, "EX", "MedicationAdministration/ma1")),
                                             ("EX", seq(result, "EX", "MedicationAdministration/ma3"))}}


def test_an_injection_site_event_takes_the_location_and_side_of_its_administration():
    result = convert(event("ae-site", ["MedicationAdministration/ma2"], INJECTION_SITE_PAIN),
                     event("ae-head", ["MedicationAdministration/ma2"]))
    ex = record(result, "EX", "MedicationAdministration/ma2")
    site = record(result, "AE", "AdverseEvent/ae-site")
    assert (site["AELOC"], site["AELAT"]) == (ex["EXLOC"], ex["EXLAT"]) == ("TIBIALIS ANTERIOR MUSCLE", "RIGHT")
    head = record(result, "AE", "AdverseEvent/ae-head")  # related too, but not an injection-site event
    assert (head["AELOC"], head["AELAT"]) == (None, None)


def test_an_injection_site_event_is_told_by_its_hlt_too():
    codings = [("PT", "10022061", "Injection site erythema X"), ("HLT", "10022097", "Injection site reactions"),
               ("SOC", "10018065", "General disorders")]
    result = convert(event("ae-hlt", ["MedicationAdministration/ma3"], codings))
    ae = record(result, "AE", "AdverseEvent/ae-hlt")
    assert (ae["AELOC"], ae["AELAT"], ae["AEHLTCD"]) == ("EXTENSOR DIGITORUM BREVIS MUSCLE", "LEFT", 10022097)


def test_suspects_that_disagree_give_no_location_but_their_common_side():
    result = convert(event("ae-2", ["MedicationAdministration/ma1", "MedicationAdministration/ma3"],
                           INJECTION_SITE_PAIN))
    ae = record(result, "AE", "AdverseEvent/ae-2")
    assert (ae["AELOC"], ae["AELAT"]) == (None, "LEFT")  # tibialis and extensor, both on the left


def test_the_synthetic_trial_relates_every_event_to_its_suspect_injection_r5():
    resources = generate(6, seed=3, fhir_version="R5")
    result = to_sdtm([resources], fast=True, fhir_version="R5")
    events = [r for r in resources if r["resourceType"] == "AdverseEvent"]
    assert events
    relids = set()
    for e in events:
        suspect = e["suspectEntity"][0]["instanceReference"]["reference"]
        usubjid = record(result, "AE", f"AdverseEvent/{e['id']}")["USUBJID"]
        ae = seq(result, "AE", f"AdverseEvent/{e['id']}")
        assert relations(result, usubjid)[f"AE{ae}"] == {("AE", ae), ("EX", seq(result, "EX", suspect))}
        relids.add((usubjid, f"AE{ae}"))
    assert len(result.datasets["RELREC"]) == 2 * len(relids) == 2 * len(events)


def test_a_masked_delivery_relates_the_events_to_ec():
    result = convert(event("ae-x", ["MedicationAdministration/ma2"]), masked=True)
    ae, ec = seq(result, "AE", "AdverseEvent/ae-x"), seq(result, "EC", "MedicationAdministration/ma2")
    assert relations(result) == {f"AE{ae}": {("AE", ae), ("EC", ec)}}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_to_fhir_writes_the_reference_and_gives_relrec_back(version):
    """to-fhir builds EX before AE and references the related EX record's MedicationAdministration
    (R4 suspectEntity.instance, R5 instanceReference); to-sdtm of its output gives RELREC back."""
    resources = generate(8, seed=5, fhir_version=version)
    sdtm = to_sdtm([resources], fast=True, fhir_version=version)
    fhir = to_fhir(sdtm.metadata, fhir_version=version)
    assert not fhir.report.errors
    made = {r["meta"]["source"]: f"{r['resourceType']}/{r['id']}" for r in fhir.resources if "source" in r.get("meta", {})}
    ae, ex = sdtm.datasets["AE"], sdtm.datasets["EX"]
    ex_row = {(u, s): i for i, (u, s) in enumerate(zip(ex["USUBJID"], ex["EXSEQ"], strict=True))}
    wanted: dict[str, set[str]] = {}  # the AE resource -> the EX resources RELREC relates it to
    for (usubjid, _), group in sdtm.datasets["RELREC"].groupby(["USUBJID", "RELID"]):
        (aeseq,) = group.loc[group["RDOMAIN"] == "AE", "IDVARVAL"].astype(float)
        i = next(i for i, (u, s) in enumerate(zip(ae["USUBJID"], ae["AESEQ"], strict=True)) if (u, s) == (usubjid, aeseq))
        wanted[made[f"tcim-interop:sdtm/ae.xpt#row={i + 1}"]] = {
            made[f"tcim-interop:sdtm/ex.xpt#row={ex_row[usubjid, float(x)] + 1}"]
            for x in group.loc[group["RDOMAIN"] == "EX", "IDVARVAL"]}
    element = "instance" if version == "R4" else "instanceReference"
    written = {f"AdverseEvent/{r['id']}": {s[element]["reference"] for s in r["suspectEntity"]}
               for r in fhir.resources if r["resourceType"] == "AdverseEvent"}
    assert wanted and written == wanted
    back = to_sdtm([fhir.resources], fast=True, fhir_version=version)
    assert back.datasets["RELREC"].equals(sdtm.datasets["RELREC"])
    assert back.datasets["AE"][["AELOC", "AELAT"]].equals(ae[["AELOC", "AELAT"]])


def test_an_event_without_relation_names_the_treatment_in_words_only():
    """FHIR requires what an event is suspected of; with no RELREC record, no administration is made up."""
    sdtm = convert(event("ae-none", [], suspectEntity=[{"instance": {"display": "x"}, "causality": [{
        "assessment": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adverse-event-causality-assess",
                                   "code": "Possible"}]}}]}]))
    fhir = to_fhir(sdtm.metadata)
    ae = next(r for r in fhir.resources if r["resourceType"] == "AdverseEvent")
    assert ae["suspectEntity"][0]["instance"] == {"display": "study treatment"}
    assert not fhir.report.errors


def test_relrec_in_define_and_dataset_json(example_conversion):
    result, package = example_conversion
    define = (package / "define.xml").read_text(encoding="utf-8")
    assert 'OID="IG.RELREC"' in define and 'Domain="RELREC"' in define
    assert '<ExternalCodeList Dictionary="MedDRA" Version="26.0"' in define  # the codings' Coding.version
    doc = json.loads((package / "relrec.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in doc["columns"]] == RELREC_COLUMNS
    assert len(doc["rows"]) == len(result.datasets["RELREC"]) == 2 * len(result.datasets["AE"])


def test_relrec_entries_are_checked_when_the_specs_load(tmp_path):
    import shutil

    from conftest import ROOT

    shutil.copytree(ROOT / "mappings", tmp_path / "m")
    ae = tmp_path / "m" / "ae.yaml"
    text = ae.read_text()
    ae.write_text(text.replace("- {role: ex, source:", "- {role: exposure, source:"))
    with pytest.raises(SpecError, match="role 'exposure' is not a domain role"):
        load_mapping_set(tmp_path / "m")
    ae.write_text(text.replace('AEHLTCD: ["10022097"]', 'AEXXX: ["10022097"]'))
    with pytest.raises(SpecError, match="params.when names 'AEXXX'"):
        load_mapping_set(tmp_path / "m")
    ae.write_text(text)
    (tmp_path / "m" / "relrec.yaml").unlink()
    with pytest.raises(SpecError, match="relrec.yaml: missing"):
        load_mapping_set(tmp_path / "m")


def test_a_relrec_the_references_do_not_give_back_rides_on_the_study():
    """RELIDs of another convention and a relation no relrec: entry makes (AE to CM) come back cell for cell."""
    import dataclasses

    import pandas as pd

    sdtm = convert(event("ae-x", ["MedicationAdministration/ma2"]))
    datasets = dict(sdtm.metadata)
    theirs = datasets["RELREC"].frame.copy()
    theirs["RELID"] = "1"
    cm = datasets["CM"].frame
    extra = {**theirs.iloc[0].to_dict(), "RDOMAIN": "CM", "IDVAR": "CMSEQ", "IDVARVAL": f"{int(cm['CMSEQ'][0])}"}
    theirs = pd.concat([theirs, pd.DataFrame([extra], dtype="object")], ignore_index=True)
    datasets["RELREC"] = dataclasses.replace(datasets["RELREC"], frame=theirs)
    fhir = to_fhir(datasets)
    assert not fhir.report.errors
    back = to_sdtm([fhir.resources], fast=True)
    assert back.datasets["RELREC"].equals(theirs)
    ours = to_fhir(sdtm.metadata)  # the references give it back: nothing carried
    study = next(r for r in ours.resources if r["resourceType"] == "ResearchStudy" and "partOf" not in r)
    assert not [e for e in study["extension"] if any(s.get("valueString") == "RELREC" for s in e.get("extension", []))]
