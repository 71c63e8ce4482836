"""tcim-interop fhir-package: the project's R4 conformance resources as a FHIR NPM package, built from
the specs, valid FHIR (fhir.resources R4B and Medplum's validator), and describing what to-fhir writes:
the example's R4 output validates against the profiles with Medplum (tests/fhir_server/profiles.js
makes the snapshots Medplum needs from the package's differentials).

The Medplum tests need node >= 20.19 and `cd tests/fhir_server && npm install`; without them they skip."""

import copy
import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import MEDPLUM_DIR, medplum_missing
from typer.testing import CliRunner

from tcim_interop import __version__, load_mapping_set
from tcim_interop.cli import app
from tcim_interop.fhir.conformance import conformance_resources, profile_url
from tcim_interop.fhir.conformance.extension_defs import read_on
from tcim_interop.fhir.extensions import (
    LATERALITY,
    MCODE_LATERALITY,
    SDTM_DATASET,
    SDTM_RECORD,
    SDTM_SUPP,
    read_record,
)
from tcim_interop.fhir.validate import validation_error

ROOT = Path(__file__).resolve().parents[1]
PROJECT_URL = re.compile(r"http://tcim-interop\.org/fhir/(?:StructureDefinition|CodeSystem)/[a-z0-9-]+")


@pytest.fixture(scope="module")
def ms():
    return load_mapping_set()


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fhir-package")
    result = CliRunner().invoke(app, ["fhir-package", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out


def _resources(package: Path) -> dict[str, dict]:
    folder = package / "package"
    return {f.name: json.loads(f.read_text()) for f in folder.glob("*.json") if f.name not in ("package.json", ".index.json")}


def by_url(package: Path) -> dict[str, dict]:
    return {r["url"]: r for r in _resources(package).values() if "url" in r}


def test_the_manifest_names_the_package_and_its_dependencies(package):
    """R4 core, mCODE (STU4), whose laterality extension the profiles slice, and the AE Clinical Research
    IG's R4 backport, whose extensions the AE profile slices."""
    manifest = json.loads((package / "package" / "package.json").read_text())
    assert manifest["name"] == "tcim-interop.fhir" and manifest["version"] == __version__
    assert manifest["fhirVersions"] == ["4.0.1"]
    assert manifest["dependencies"] == {"hl7.fhir.r4.core": "4.0.1", "hl7.fhir.us.mcode": "4.0.0",
                                        "hl7.fhir.uv.ae-research-backport-ig": "1.0.1"}


def test_the_ae_profile_slices_the_backport_ig_s_extensions(package):
    """R4's AdverseEvent has no element for the seriousness criteria and the discontinuation: the R4
    backport's extensions (severity is R4's own element: no slice); never the R5 IG's URLs."""
    elements = {e["id"]: e for e in by_url(package)[profile_url("AdverseEvent", "AE")]["differential"]["element"]}
    slices = {e["type"][0]["profile"][0]: (e["min"], e["max"]) for i, e in elements.items()
              if i.startswith("AdverseEvent.extension:") and i.count(":") == 1 and "." not in i.split(":")[1]}
    backport = "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/"
    assert {u: m for u, m in slices.items() if "ae-research" in u} == {
        backport + "seriousness-criteria": (0, "*"), backport + "caused-subject-to-discontinue-study": (0, "1")}
    assert "/uv/ae-research-ig/" not in json.dumps(elements)


def test_the_index_lists_every_resource_file_as_it_is(package):
    folder = package / "package"
    index = json.loads((folder / ".index.json").read_text())
    files = {f.name for f in folder.glob("*.json")} - {"package.json", ".index.json"}
    assert index["index-version"] == 1 and {e["filename"] for e in index["files"]} == files
    for entry in index["files"]:
        resource = json.loads((folder / entry["filename"]).read_text())
        assert entry["filename"] == f"{resource['resourceType']}-{resource['id']}.json"
        assert {k: v for k, v in entry.items() if k != "filename"} == {k: resource[k] for k in entry if k != "filename"}


def test_every_resource_is_valid_r4(package):
    resources = _resources(package)
    assert len(resources) > 20
    assert {n: validation_error(r, "R4") for n, r in resources.items() if validation_error(r, "R4")} == {}


def _written_urls() -> set[str]:
    """The project's canonical URLs the code and the specs name (written out, or the constants of
    fhir/extensions.py that build them)."""
    found: set[str] = {SDTM_RECORD, SDTM_SUPP, SDTM_DATASET, LATERALITY}
    for f in [*(ROOT / "src").rglob("*.py"), *(ROOT / "mappings").glob("*.yaml")]:
        if "conformance" not in f.parts:
            found |= set(PROJECT_URL.findall(f.read_text(encoding="utf-8")))
    return found


def test_every_canonical_url_the_code_writes_is_defined(package):
    urls = _written_urls()
    assert {u.rsplit("/", 1)[-1] for u in urls} >= {"sdtm-record", "sdtm-supp", "sdtm-dataset", "laterality",
                                                    "meddra-level", "study-product", "mune-test", "visit"}
    assert urls - set(by_url(package)) == set()


def test_the_example_output_uses_only_defined_urls(package, example_fhir):
    text = example_fhir[1].read_text()
    used = set(PROJECT_URL.findall(text))
    assert len(used) >= 8 and used - set(by_url(package)) == set()


def test_code_systems_hold_the_codes_of_the_specs(package, ms):
    urls = by_url(package)
    mune = urls["http://tcim-interop.org/fhir/CodeSystem/mune-test"]
    names = {k.rpartition("|")[2]: v for k, v in ms.codelists.maps["MUNE_TEST_NAME"].items()}
    assert {c["code"]: c["display"] for c in mune["concept"]} == names and mune["count"] == len(names)
    visit = urls[ms.study["visit_system"]]
    assert [(c["code"], c["display"]) for c in visit["concept"]] == [(v["code"], v["visit"]) for v in ms.study["visits"]]
    product = urls["http://tcim-interop.org/fhir/CodeSystem/study-product"]
    bmnc = next(c for c in product["concept"] if c["code"] == "BMNC")
    assert "células mononucleares de médula ósea" in {d["value"] for d in bmnc["designation"]}


def test_a_changed_spec_changes_the_package(ms):
    """Built from the specs, not a copy: a visit added to study.yaml is a concept of the visit system."""
    changed = copy.deepcopy(ms)
    changed.study["visits"].append({"code": "DAY720", "visitnum": 8, "visit": "DAY 720", "day": 720})
    changed.codelists.maps["MUNE_METHOD"]["http://tcim-interop.org/fhir/CodeSystem/mune-method|NEW"] = "NEW METHOD"
    urls = {r["url"]: r for r in conformance_resources(changed) if "url" in r}
    assert urls[ms.study["visit_system"]]["concept"][-1]["code"] == "DAY720"
    assert {"code": "NEW", "display": "NEW METHOD"} in urls["http://tcim-interop.org/fhir/CodeSystem/mune-method"]["concept"]


def test_extension_contexts_come_from_the_specs(package, ms):
    assert read_on(ms, LATERALITY) == ["MedicationAdministration.dosage.site", "Observation.bodySite"]
    urls = by_url(package)
    record = urls["http://tcim-interop.org/fhir/StructureDefinition/sdtm-record"]
    contexts = {c["expression"] for c in record["context"]}
    assert contexts == {t for s in ms.domains.values() for t in s.row_resources} | {"ResearchStudy"}
    assert "MedicationStatement" in contexts  # CM's records that are not one administration
    supp = urls["http://tcim-interop.org/fhir/StructureDefinition/sdtm-supp"]
    subs = [e["sliceName"] for e in supp["differential"]["element"] if e["id"].count(":") == 1 and "sliceName" in e]
    assert subs == ["row", *ms.suppqual.carried]


def test_the_profiles_slice_mcode_laterality_and_the_own_one_is_retired(package):
    """The side is mCODE's published extension (not redefined here: no package file has its url); the
    project's own laterality extension stays defined, retired, for the files written before."""
    urls = by_url(package)
    assert MCODE_LATERALITY not in urls and urls[LATERALITY]["status"] == "retired"
    for rtype, at in (("MedicationAdministration", "MedicationAdministration.dosage.site"),
                      ("Observation", "Observation.bodySite")):
        elements = {e["id"]: e for e in urls[profile_url(rtype, {"Observation": "XM"}.get(rtype, "EX"))]
                    ["differential"]["element"]}
        assert elements[f"{at}.extension:laterality"]["type"] == [{"code": "Extension", "profile": [MCODE_LATERALITY]}]
        assert elements[f"{at}.extension:laterality.value[x]"]["binding"]["valueSet"] == urls[
            "http://tcim-interop.org/fhir/ValueSet/laterality"]["url"]
        assert not any(LATERALITY in json.dumps(e) for e in elements.values())


def test_profile_url_names_a_profile_of_the_package(package):
    urls = by_url(package)
    for rtype in ("ResearchStudy", "ResearchSubject", "Patient", "MedicationAdministration", "AdverseEvent",
                  "Observation", "Encounter", "Consent"):
        url = profile_url(rtype, {"MedicationAdministration": "EX", "Observation": "XM"}.get(rtype))
        assert url in urls and urls[url]["type"] == rtype and urls[url]["derivation"] == "constraint"
        assert urls[url]["baseDefinition"] == f"http://hl7.org/fhir/StructureDefinition/{rtype}"
    assert profile_url("MedicationAdministration", "CM") is None and profile_url("Group") is None
    assert profile_url("Observation", "VS") is None  # a vital sign is no MUNE result


# -- Medplum ------------------------------------------------------------------------------------------
def medplum(package: Path, items: list[dict] | None, tmp_path: Path) -> dict:
    reason = medplum_missing()
    if reason:
        pytest.skip(reason)
    args = ["node", str(MEDPLUM_DIR / "profiles.js"), str(package)]
    if items is not None:
        f = tmp_path / "items.ndjson"
        f.write_text("".join(json.dumps(i) + "\n" for i in items))
        args.append(str(f))
    p = subprocess.run(args, capture_output=True, text=True, cwd=MEDPLUM_DIR, timeout=1800)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


def errors(result: dict) -> list[dict]:
    return [i for i in result["issues"] if i["severity"] in ("error", "fatal")]


def test_medplum_accepts_every_resource_of_the_package(package, tmp_path):
    result = medplum(package, None, tmp_path)
    assert result["resources"] == len(_resources(package))
    assert errors(result) == []


def _item(resource: dict, dataset: str | None = None) -> dict:
    return {"profile": profile_url(resource["resourceType"], dataset), "resource": resource}


def test_the_profiles_find_what_they_should(package, example_fhir, tmp_path):
    """Output with what to-fhir always writes taken away, or an extension's value wrong, must fail, or the
    0 below means nothing. The last three are what profiles.js checks beside Medplum."""
    resources = example_fhir[0].resources

    def profile(r):  # a resource with no record (a Patient, a subject's age Observation): by its type alone
        record = read_record(r)
        return profile_url(r["resourceType"], record[0] if record else None)

    def changed(rtype, change):
        r = copy.deepcopy(next(r for r in resources if r["resourceType"] == rtype and profile(r) is not None))
        url = profile(r)
        change(r)
        return {"profile": url, "resource": r}

    def wrong_row(r):
        r["extension"][0]["extension"][1] = {"url": "row", "valueString": "first"}

    def wrong_side(r):
        r["bodySite"]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "123456"

    items = [changed("Observation", lambda r: r.update(extension=[{"url": "http://example.org/x", "valueString": "x"}])),
             changed("Encounter", lambda r: r.pop("type")),
             changed("Consent", lambda r: r["category"][0]["coding"][0].update(code="00000-0")),
             changed("Observation", lambda r: r.pop("extension")),
             changed("Observation", wrong_row),
             changed("Observation", wrong_side)]
    result = medplum(package, items, tmp_path)
    assert result["invalid"] == len(items), result["issues"]


def test_the_example_output_conforms_to_the_profiles(package, example_fhir, tmp_path):
    """Every profiled resource of the example's R4 output, but one MUNE result in ten (11,910 results of
    one shape: all of them take Medplum about 6 s more; TCIM_FULL_PROFILE_CHECK=1 checks every one)."""
    every = os.environ.get("TCIM_FULL_PROFILE_CHECK") == "1"
    items, mune = [], 0
    for r in example_fhir[0].resources:
        record = read_record(r)
        url = profile_url(r["resourceType"], record[0] if record else None)
        if url and r["resourceType"] == "Observation":
            mune += 1
            if mune % 10 and not every:
                continue
        if url:
            items.append({"profile": url, "resource": r})
    counts = Counter(i["profile"].rsplit("/", 1)[-1] for i in items)
    assert len(counts) == 8, counts  # every profile is met
    result = medplum(package, items, tmp_path)
    assert result["resources"] == len(items) > (13_000 if every else 2_000) and result["extensions"] > len(items)
    assert errors(result) == [] and result["invalid"] == 0


def test_the_output_declares_the_profiles_it_conforms_to(example_fhir, pilot_fhir):
    """meta.profile: the study's own R4 resources name the profile the package publishes for them; a
    concomitant medication, a vital sign, another study's resources (the pilot) name none."""
    declared = Counter()
    for r in example_fhir[0].resources:
        records = read_record(r)
        want = profile_url(r["resourceType"], records[0] if records else None)
        assert r.get("meta", {}).get("profile") == ([want] if want else None), (r["resourceType"], records[:1])
        declared[r["resourceType"] if want else "none"] += 1
    assert len(declared) == 9 and declared["none"] >= 99 + 148  # CM administrations, vital signs, the Group
    assert not any("profile" in r.get("meta", {}) for r in pilot_fhir("R4")[0].resources)
