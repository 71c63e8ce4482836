"""The synthetic TCIM-ELAII generator: deterministic, realistic, valid FHIR, and true to the mapping specs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tcim_interop.synth import generate, write_bundle, write_ndjson
from tcim_interop.synth.generate import MUNE_TESTS, MUSCLES, VISITS

ROOT = Path(__file__).resolve().parents[1]
MAPPINGS = ROOT / "mappings"
N = 20
SYS_PRODUCT = "http://tcim-interop.org/fhir/CodeSystem/study-product"
SYS_MUNE_TEST = "http://tcim-interop.org/fhir/CodeSystem/mune-test"
EXT_LATERALITY = "http://tcim-interop.org/fhir/StructureDefinition/laterality"


@pytest.fixture(scope="module", params=["R4", "R5"])
def version(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def trials() -> dict[str, list[dict]]:
    return {v: generate(N, seed=1, fhir_version=v) for v in ("R4", "R5")}


@pytest.fixture(scope="module")
def hundred_r4() -> list[dict]:
    return generate(100, seed=1, fhir_version="R4")


@pytest.fixture(scope="module")
def resources(trials, version) -> list[dict]:
    return trials[version]


def of_type(resources: list[dict], rtype: str) -> list[dict]:
    return [r for r in resources if r["resourceType"] == rtype]


def ref_id(ref: dict) -> str:
    return ref["reference"].split("/", 1)[1]


def subject_of(r: dict) -> str:
    return ref_id(r.get("subject") or r.get("individual"))


def medication(r: dict) -> dict:
    return r.get("medicationCodeableConcept") or r["medication"]["concept"]


def study_product(r: dict) -> str | None:
    coding = medication(r)["coding"][0]
    return coding["code"] if coding["system"] == SYS_PRODUCT else None


def laterality(site: dict) -> str:
    ext = next(e for e in site["extension"] if e["url"] == EXT_LATERALITY)
    return ext["valueCodeableConcept"]["coding"][0]["code"]


def arm_of(rs: dict) -> str | None:
    link = rs.get("actualArm") or rs.get("actualComparisonGroup")
    return {"arm-mnc": "MNC", "arm-placebo": "PLACEBO"}.get(link, link)


def outcome(ae: dict) -> str:
    cc = ae["outcome"] if isinstance(ae["outcome"], dict) else ae["outcome"][0]  # R5: 0..*
    return cc["coding"][0]["code"]


def is_screen_failure(rs: dict) -> bool:
    states = [p["subjectState"]["coding"][0]["code"] for p in rs.get("progress", [])]
    return rs["status"] == "ineligible" or "ineligible" in states


def load_yaml(name: str) -> dict:
    return yaml.safe_load((MAPPINGS / name).read_text(encoding="utf-8"))


# --- Determinism -----------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    paths = [write_bundle(generate(N, seed, "R4"), tmp_path / f"{k}.json") for k, seed in enumerate((3, 3, 4))]
    first, again, other = (p.read_bytes() for p in paths)
    assert first == again
    assert first != other
    for k in range(2):
        write_ndjson(generate(N, 3, "R5"), tmp_path / f"nd{k}")
    assert {p.name: p.read_bytes() for p in (tmp_path / "nd0").iterdir()} == \
           {p.name: p.read_bytes() for p in (tmp_path / "nd1").iterdir()}


def test_same_seed_same_trial_in_r4_and_r5(trials):
    r4, r5 = trials["R4"], trials["R5"]
    assert [(r["resourceType"], r["id"]) for r in r4] == [(r["resourceType"], r["id"]) for r in r5]
    assert of_type(r4, "Patient") == of_type(r5, "Patient")
    assert [o for o in of_type(r4, "Observation")] == [o for o in of_type(r5, "Observation")]
    assert [m["effectiveDateTime"] for m in of_type(r4, "MedicationAdministration")] == \
           [m["occurenceDateTime"] for m in of_type(r5, "MedicationAdministration")]
    assert [(a["event"], a["date"]) for a in of_type(r4, "AdverseEvent")] == \
           [(a["code"], (a.get("occurrencePeriod") or {}).get("start", a.get("occurrenceDateTime")))
            for a in of_type(r5, "AdverseEvent")]


def test_bad_arguments():
    with pytest.raises(ValueError):
        generate(10, fhir_version="R6")
    with pytest.raises(ValueError):
        generate(0)


# --- Trial content ---------------------------------------------------------------------------------
def test_study_and_site(resources, version):
    study, site = of_type(resources, "ResearchStudy")
    assert study["id"] == "tcim-elaii" and site["id"] == "tcim-elaii-site-01"
    assert study["identifier"][0] == {"use": "official", "system": "http://tcim-interop.org/fhir/sid/study",
                                      "value": "TCIM-ELAII"}
    assert {"system": "http://clinicaltrials.gov", "value": "NCT04849065"} in study["identifier"]
    assert site["partOf"] == [{"reference": "ResearchStudy/tcim-elaii"}]
    region = site["location" if version == "R4" else "region"]
    assert region[0]["coding"][0]["code"] == "ES"
    groups = study["arm"] if version == "R4" else study["comparisonGroup"]
    assert [g["name"] for g in groups] == ["MNC", "PLACEBO"]
    if version == "R5":
        assert [g["linkId"] for g in groups] == ["arm-mnc", "arm-placebo"]


def test_arm_split_and_one_screen_failure(resources):
    subjects = of_type(resources, "ResearchSubject")
    assert len(subjects) == N
    failures = [rs for rs in subjects if is_screen_failure(rs)]
    assert len(failures) == 1 and arm_of(failures[0]) is None
    arms = Counter(arm_of(rs) for rs in subjects if not is_screen_failure(rs))
    assert arms == {"MNC": round(0.74 * (N - 1)), "PLACEBO": N - 1 - round(0.74 * (N - 1))}
    assert all(rs["identifier"][0]["value"] == rs["id"][3:] for rs in subjects)


def test_four_injections_cells_on_one_side_only(resources):
    by_subject: dict[str, list[dict]] = {}
    for ma in of_type(resources, "MedicationAdministration"):
        if study_product(ma):
            by_subject.setdefault(subject_of(ma), []).append(ma)
    encounters = {e["id"]: e for e in of_type(resources, "Encounter")}
    muscles = {m.nci_code for m in MUSCLES}
    for rs in of_type(resources, "ResearchSubject"):
        injections = by_subject.get(subject_of(rs), [])
        if is_screen_failure(rs):
            assert injections == []
            continue
        assert len(injections) == 4
        sites = {(ma["dosage"]["site"]["coding"][0]["code"], laterality(ma["dosage"]["site"])) for ma in injections}
        assert sites == {(m, side) for m in muscles for side in ("7771000", "24028007")}
        for ma in injections:
            enc = encounters[ref_id(ma.get("context") or ma.get("encounter"))]
            assert enc["type"][0]["coding"][0]["code"] == "INJECTION"
            assert ma["dosage"]["route"]["coding"][0]["code"] == "78421000"
            assert (ma["dosage"]["dose"]["value"] > 0) == (study_product(ma) == "BMNC")
        cells = [ma for ma in injections if study_product(ma) == "BMNC"]
        if arm_of(rs) == "PLACEBO":
            assert cells == []
        else:
            assert len(cells) == 2
            assert len({ma["dosage"]["site"]["coding"][0]["code"] for ma in cells}) == 2
            assert len({laterality(ma["dosage"]["site"]) for ma in cells}) == 1


def test_screen_failure_has_screening_data_only(resources):
    rs = next(r for r in of_type(resources, "ResearchSubject") if is_screen_failure(r))
    pid = subject_of(rs)
    own = [r for r in resources if r["resourceType"] in ("Encounter", "Observation", "MedicationAdministration",
                                                        "AdverseEvent") and subject_of(r) == pid]
    assert {r["resourceType"] for r in own} == {"Encounter", "Observation"}
    assert [e["type"][0]["coding"][0]["code"] for e in own if e["resourceType"] == "Encounter"] == ["SCREENING"]


def test_one_death_consistent_everywhere(resources, version):
    dead = [p for p in of_type(resources, "Patient") if "deceasedDateTime" in p]
    assert len(dead) == 1
    pid, death = dead[0]["id"], dead[0]["deceasedDateTime"]
    rs = next(r for r in of_type(resources, "ResearchSubject") if subject_of(r) == pid)
    assert rs["period"]["end"] == death
    fatal = [a for a in of_type(resources, "AdverseEvent") if outcome(a) == "fatal"]
    assert len(fatal) == 1 and subject_of(fatal[0]) == pid
    event = fatal[0]["event" if version == "R4" else "code"]
    assert event["text"] == "Insuficiencia respiratoria"
    if version == "R4":
        occurrence = next(e for e in fatal[0]["extension"] if e["url"].endswith("AdverseEvent.occurrence"))
        end = occurrence["valuePeriod"]["end"]
    else:
        end = fatal[0]["occurrencePeriod"]["end"]
    assert end == death
    seriousness = fatal[0]["seriousness"]["coding"][0]["code"]
    assert seriousness == ("SeriousResultsInDeath" if version == "R4" else "serious")
    late = [e for e in of_type(resources, "Encounter") if subject_of(e) == pid
            and (e.get("period") or e.get("actualPeriod"))["start"][:10] > death]
    assert late == []


def test_adverse_events(resources, version):
    events = of_type(resources, "AdverseEvent")
    injections = {ma["id"] for ma in of_type(resources, "MedicationAdministration") if study_product(ma)}
    for ae in events:
        event = ae["event" if version == "R4" else "code"]
        levels = [c["extension"][0]["valueCode"] for c in event["coding"]]
        assert levels == ["LLT", "PT", "HLT", "HLGT", "SOC"]  # the primary path, lowest level first
        codes = {c["extension"][0]["valueCode"]: c["code"] for c in event["coding"]}
        assert codes["LLT"] == codes["PT"] and len({codes[k] for k in ("PT", "HLT", "HLGT", "SOC")}) == 4
        assert {c["system"] for c in event["coding"]} == {"http://terminology.hl7.org/CodeSystem/mdr"}
        suspect = ae["suspectEntity"][0]["instance" if version == "R4" else "instanceReference"]
        assert ref_id(suspect) in injections
        assert ae["study"] == [{"reference": "ResearchStudy/tcim-elaii-site-01"}]
        urls = [e["url"] for e in ae.get("extension", [])]
        serious = ae["seriousness"]["coding"][0]["code"] not in ("Non-serious", "non-serious")
        assert serious == any(u.endswith("/seriousness-criteria") for u in urls)
        if version == "R5":
            assert "severity" not in ae and any(u.endswith("/ae-severity") for u in urls)
    long_terms = [ae for ae in events if len(ae["event" if version == "R4" else "code"]["text"]) > 200]
    assert len(long_terms) == 1


def test_mune_observations(resources):
    mune = [o for o in of_type(resources, "Observation") if o["code"]["coding"][0]["system"] == SYS_MUNE_TEST]
    assert {o["code"]["coding"][0]["code"] for o in mune} == {t.code for t in MUNE_TESTS}
    not_done = [o for o in mune if "dataAbsentReason" in o]
    assert not_done and all("valueQuantity" not in o for o in not_done)
    assert {o["dataAbsentReason"]["text"] for o in not_done} == {"Paciente no colaboró"}
    assert all(o["dataAbsentReason"]["coding"][0]["code"] == "not-performed" for o in not_done)
    assert all("valueQuantity" in o for o in mune if "dataAbsentReason" not in o)
    # a few subjects have their baseline recorded twice, on two dates
    baselines: dict[str, set[str]] = {}
    for o in mune:
        if "-baseline" in o["encounter"]["reference"]:
            baselines.setdefault(subject_of(o), set()).add(o["effectiveDateTime"][:10])
    assert 1 <= sum(len(dates) == 2 for dates in baselines.values()) < N // 2
    others = [o for o in of_type(resources, "Observation") if o not in mune]
    assert others and {o["code"]["coding"][0]["code"] for o in others} == {"29463-7"}


def test_concomitant_medication_is_not_a_study_product(resources):
    conmeds = [ma for ma in of_type(resources, "MedicationAdministration") if not study_product(ma)]
    assert conmeds
    systems = {c["system"] for ma in conmeds for c in medication(ma)["coding"]}
    assert systems <= {"http://www.nlm.nih.gov/research/umls/rxnorm", "http://www.whocc.no/atc"}


def test_personal_data_present_and_accents_survive(tmp_path, resources):
    for p in of_type(resources, "Patient"):
        assert p["name"][0]["family"] and p["telecom"][0]["value"] and p["address"][0]["city"]
        assert p["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    raw = write_bundle(resources, tmp_path / "b.json").read_bytes()
    text = raw.decode("utf-8")
    assert "\\u00" not in text  # written as UTF-8, not escaped
    for word in ("células", "Región de Murcia", "Paciente no colaboró", "Caída accidental"):
        assert word in text


def test_references_resolve(resources):
    ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
    assert len(ids) == len(resources)

    def refs(node):
        if isinstance(node, dict):
            if "reference" in node:
                yield node["reference"]
            for v in node.values():
                yield from refs(v)
        elif isinstance(node, list):
            for v in node:
                yield from refs(v)

    dangling = {ref for r in resources for ref in refs(r)} - ids
    assert dangling == set()


# --- Valid FHIR ------------------------------------------------------------------------------------
def validate_all(resources: list[dict], version: str) -> None:
    import fhir.resources as r5
    import fhir.resources.R4B as r4

    package = r4 if version == "R4" else r5
    for r in resources:
        package.get_fhir_model_class(r["resourceType"]).model_validate(r)


def test_every_resource_validates(resources, version):
    validate_all(resources, version)


def test_hundred_subjects_validate_in_r4(hundred_r4):
    validate_all(hundred_r4, "R4")


# --- Writers ---------------------------------------------------------------------------------------
def test_ndjson_and_bundle_hold_the_same_resources(tmp_path, resources):
    bundle = json.loads(write_bundle(resources, tmp_path / "b.json").read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert all(u.startswith("urn:uuid:") for u in urls) and len(set(urls)) == len(urls)
    assert [e["resource"] for e in bundle["entry"]] == resources
    paths = write_ndjson(resources, tmp_path / "nd")
    assert sorted(p.name for p in paths) == sorted(f"{t}.ndjson" for t in {r["resourceType"] for r in resources})
    for path in paths:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        assert lines == of_type(resources, path.stem)


def test_example_bundle_is_current(tmp_path, hundred_r4):
    example = ROOT / "examples" / "tcim-elaii-100-r4.json"
    assert example.read_bytes() == write_bundle(hundred_r4, tmp_path / "x.json").read_bytes()


# --- The mapping specs are the contract ------------------------------------------------------------
def test_design_matches_study_yaml():
    study, codelists = load_yaml("study.yaml"), load_yaml("codelists.yaml")
    assert [(v["code"], v["visit"], v["day"]) for v in study["visits"]] == [(v.code, v.name, v.day) for v in VISITS]
    loc = {t["value"]: t["nci_code"] for t in codelists["codelists"]["LOC"]["terms"]}
    assert [m.name for m in MUSCLES] == ["TIBIALIS ANTERIOR MUSCLE", "EXTENSOR DIGITORUM BREVIS MUSCLE"]  # study.yaml's comment
    assert all(loc[m.name] == m.nci_code for m in MUSCLES)


ROWS = {  # spec -> which generated resources are its rows
    "ex.yaml": lambda r: r["resourceType"] == "MedicationAdministration" and study_product(r),
    "ae.yaml": lambda r: r["resourceType"] == "AdverseEvent",
    "xm.yaml": lambda r: r["resourceType"] == "Observation" and r["code"]["coding"][0]["system"] == SYS_MUNE_TEST,
    "dm.yaml": lambda r: r["resourceType"] == "ResearchSubject",
}
NEVER_PRESENT = {"RACE", "ETHNIC", "AEACN"}  # a Spanish hospital records no US race; no action taken
# sources only FHIR made from another study's SDTM carries (to-fhir): a USUBJID not so joined, AEDTC
NEVER_PRESENT |= {"USUBJID", "AEDTC"}
# an age Observation (%age): the site sends the birth date, from which AGE is derived; a hospital that
# sends the age as collected, and to-fhir for a package whose BRTHDTC does not give AGE back, send one
NEVER_PRESENT |= {"AGEU", "DMDTC"}


def spec_sources(spec: dict, version: str):
    for var in spec["variables"] + spec.get("supplemental", []):
        source = var.get("source")
        if source:
            yield var, source[version] if isinstance(source, dict) else source


def contexts(by_key: dict[str, dict], row: dict) -> dict:
    """The %variables of a row, as the specs name them (dm.yaml header)."""
    ctx = {None: row}
    if row["resourceType"] == "ResearchSubject":
        site = by_key[row["study"]["reference"]]
        consent = row["consent"][0] if isinstance(row["consent"], list) else row["consent"]
        ctx.update(patient=by_key[(row.get("individual") or row.get("subject"))["reference"]], site=site,
                   study=by_key[site["partOf"][0]["reference"]], consent=by_key[consent["reference"]])
    return ctx


def codes(values: list, var: dict) -> set[str]:
    system = (var.get("params") or {}).get("system")
    return {f"{v.get('system')}|{v['code']}" if isinstance(v, dict) else f"{system}|{v}"
            for v in values if isinstance(v, str) or "code" in v}


@pytest.mark.parametrize("spec_name", sorted(ROWS))
def test_every_spec_source_is_fed_with_codes_the_maps_know(resources, version, spec_name):
    from tcim_interop.fhir.path import compile_path

    spec, maps = load_yaml(spec_name), load_yaml("codelists.yaml")["maps"]
    by_key = {f"{r['resourceType']}/{r['id']}": r for r in resources}
    rows = [contexts(by_key, r) for r in resources if ROWS[spec_name](r)]
    for var, text in spec_sources(spec, version):
        name = var.get("name") or var.get("qnam")
        path = compile_path(text)
        found = [path.values(ctx.get) for ctx in rows]
        assert any(found) != (name in NEVER_PRESENT), f"{spec_name} {name}: {text}"
        if var.get("map") and var.get("algorithm") == "assign_ct":
            dimensionless = {"http://unitsofmeasure.org|1"}
            unknown = {c for vals in found for c in codes(vals, var)} - set(maps[var["map"]]) - dimensionless
            assert not unknown, f"{spec_name} {name}: codes not in map {var['map']}: {unknown}"
