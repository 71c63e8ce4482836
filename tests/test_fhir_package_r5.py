"""tcim-interop fhir-package --fhir-version R5: the project's conformance resources for FHIR R5 (5.0.0),
valid R5 (fhir.resources' R5 models), their differentials naming elements R5 has, and the example's R5
output declaring the profiles and meeting what their differentials say (cardinalities, patterns, fixed
values, extension slices, required bindings to the package's ValueSets), checked here in Python: Medplum's
validator, which tests/test_fhir_package.py runs on the R4 package, knows R4 only."""

import copy
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tcim_interop import load_mapping_set
from tcim_interop.cli import app
from tcim_interop.fhir.conformance import conformance_resources, profile_url
from tcim_interop.fhir.extensions import MCODE_LATERALITY, read_record
from tcim_interop.fhir.validate import model_class, validation_error

AE_IG = "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/"
BACKPORT = "http://hl7.org/fhir/uv/ae-research-backport-ig/"


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fhir-package-r5")
    result = CliRunner().invoke(app, ["fhir-package", "--out", str(out), "--fhir-version", "r5", "-q"])
    assert result.exit_code == 0, result.output
    return out / "package"


def _resources(folder: Path) -> dict[str, dict]:
    return {f.name: json.loads(f.read_text()) for f in folder.glob("*.json") if f.name not in ("package.json", ".index.json")}


@pytest.fixture(scope="module")
def by_url(package) -> dict[str, dict]:
    return {r["url"]: r for r in _resources(package).values() if "url" in r}


def test_the_manifest_is_an_r5_package_with_its_dependencies(package):
    """R5 core; the R5 AE Clinical Research IG, whose extensions the AE profile slices; mCODE (R4 only,
    no R5 edition), whose laterality extension the profiles slice."""
    manifest = json.loads((package / "package.json").read_text())
    assert manifest["name"] == "tcim-interop.fhir.r5" and manifest["fhirVersions"] == ["5.0.0"]
    assert manifest["dependencies"] == {"hl7.fhir.r5.core": "5.0.0", "hl7.fhir.uv.ae-research-ig": "1.0.1",
                                        "hl7.fhir.us.mcode": "4.0.0"}
    index = json.loads((package / ".index.json").read_text())
    assert {e["filename"] for e in index["files"]} == set(_resources(package))


def test_every_resource_is_valid_r5(package):
    resources = _resources(package)
    assert len(resources) > 20
    assert {n: validation_error(r, "R5") for n, r in resources.items() if validation_error(r, "R5")} == {}
    versions = Counter(r["fhirVersion"] for r in resources.values() if r["resourceType"] == "StructureDefinition")
    assert versions == Counter({"5.0.0": 13})  # 5 extensions, 8 profiles


def test_the_r4_package_is_unchanged_by_the_r5_one(tmp_path):
    """Same canonical URLs in both (one package per release), R4 stays the default."""
    result = CliRunner().invoke(app, ["fhir-package", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    r4 = _resources(tmp_path / "package")
    assert json.loads((tmp_path / "package" / "package.json").read_text())["fhirVersions"] == ["4.0.1"]
    assert {r["fhirVersion"] for r in r4.values() if "fhirVersion" in r} == {"4.0.1"}
    r5 = conformance_resources(load_mapping_set(), fhir="R5")
    assert {r["url"] for r in r4.values() if "url" in r} == {r["url"] for r in r5 if "url" in r}


# -- the differentials' paths exist in R5 ---------------------------------------------------------------
def _field(model, name: str):
    """The model field `name` (name[x]: one of its typed variants), or None."""
    fields = model.model_fields
    if name.endswith("[x]"):
        stem = name[:-3]
        return next((f for k, f in fields.items() if k.startswith(stem) and k[len(stem):][:1].isupper()
                     and not k.endswith("__ext")), None)
    return fields.get(name) or fields.get(name + "_fhir")


def path_error(path: str, version: str) -> str | None:
    """Why `path` (Type.element.element...) is no element of `version`'s FHIR models, or None."""
    parts = path.split(".")
    model = model_class(version, parts[0])
    for i, part in enumerate(parts[1:], 1):
        f = _field(model, part) if model is not None else None
        if f is None:
            return f"{'.'.join(parts[:i + 1])}: no such element in {version}"
        found = re.findall(r"(\w+)Type\b", str(f.annotation))
        model = model_class(version, found[0]) if found else None
    return None


def differential_paths(resources) -> list[str]:
    return sorted({e["path"] for r in resources if r["resourceType"] == "StructureDefinition"
                   for e in r["differential"]["element"]})


def test_every_differential_path_is_an_r5_element(package):
    paths = differential_paths(_resources(package).values())
    assert len(paths) > 40
    assert [e for p in paths if (e := path_error(p, "R5"))] == []


def test_the_path_check_finds_r4_only_elements():
    """The R4 profiles' paths are R4's (R4B models) and some are not R5's: the check above can fail."""
    r4 = differential_paths(conformance_resources(load_mapping_set(), fhir="R4"))
    assert [e for p in r4 if (e := path_error(p, "R4"))] == []
    missing = {p for p in r4 if path_error(p, "R5")}
    assert missing >= {"AdverseEvent.event", "Consent.patient", "Consent.dateTime", "Consent.policy",
                       "MedicationAdministration.medication[x]"}


def test_the_r5_profiles_name_r5_elements_and_the_r5_ae_ig(by_url):
    def elements(rtype, dataset=None):
        return {e["id"]: e for e in by_url[profile_url(rtype, dataset)]["differential"]["element"]}

    ae = elements("AdverseEvent", "AE")
    assert ae["AdverseEvent.code"]["min"] == 1 and "AdverseEvent.code.coding.extension:meddraLevel" in ae
    slices = {e["type"][0]["profile"][0] for i, e in ae.items() if i.startswith("AdverseEvent.extension:")}
    assert {AE_IG + "ae-severity", AE_IG + "seriousness-criteria"} < slices
    assert not any(BACKPORT in json.dumps(e) for e in ae.values())  # the backport IG is R4's
    ma = elements("MedicationAdministration", "EX")
    assert ma["MedicationAdministration.medication.concept"]["min"] == 1
    assert ma["MedicationAdministration.medication"]["binding"]["valueSet"].endswith("/ValueSet/study-product")
    assert ma["MedicationAdministration.dosage.site.extension:laterality"]["type"][0]["profile"] == [MCODE_LATERALITY]
    consent = elements("Consent")
    assert {i for i, e in consent.items() if e.get("min") == 1} >= {"Consent.subject", "Consent.date", "Consent.policyBasis"}
    assert "Consent.scope" not in consent  # R5 has none; R4's template pattern is not carried over


# -- the R5 output against the profiles, in Python ------------------------------------------------------
def _children(node: dict, name: str) -> list:
    keys = [k for k in node if k.startswith(name[:-3]) and k[len(name) - 3:][:1].isupper()] if name.endswith("[x]") else [name]
    out: list = []
    for k in keys:
        v = node.get(k)
        out += v if isinstance(v, list) else [] if v is None else [v]
    return out


def _contains(value, pattern) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_contains(value.get(k), p) for k, p in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(_contains(v, p) for v in value) for p in pattern)
    return value == pattern


class Profile:
    """A StructureDefinition's differential, checked on resources (or extensions) the way a validator
    reads it: each element's cardinality within each of its parents, its pattern and fixed value, a slice
    by the extension url or the pattern that selects it, a required binding to one of the package's
    ValueSets that lists its codes."""

    def __init__(self, sd: dict, value_sets: dict[str, set[str]]):
        self.elements = {e["id"]: e for e in sd["differential"]["element"]}
        self.root = sd["type"]
        self.value_sets = value_sets

    def _slice_filter(self, sid: str):
        e = self.elements[sid]
        url = (e.get("type") or [{}])[0].get("profile", [None])[0] or self.elements.get(f"{sid}.url", {}).get("fixedUri")
        if url:
            return lambda v: isinstance(v, dict) and v.get("url") == url
        pattern = next((v for k, v in e.items() if k.startswith("pattern")), None)
        return lambda v: _contains(v, pattern)

    def step(self, nodes: list, eid: str) -> list:
        """The values of element id `eid`'s last part under `nodes` (a slice selects its own)."""
        name, _, slice_name = eid.rsplit(".", 1)[1].partition(":")
        found = [c for n in nodes if isinstance(n, dict) for c in _children(n, name)]
        if slice_name:
            keep = self._slice_filter(eid)
            found = [c for c in found if keep(c)]
        return found

    def nodes(self, node: dict, eid: str) -> list:
        """The values at element id `eid` under `node` (the root)."""
        found, parts = [node], eid.split(".")
        for i in range(2, len(parts) + 1):
            found = self.step(found, ".".join(parts[:i]))
        return found

    def errors(self, node: dict) -> list[str]:
        out = []
        for eid, e in self.elements.items():
            if "." not in eid:
                continue
            parent, last = eid.rsplit(".", 1)
            for p in self.nodes(node, parent):
                here = self.step([p], eid)
                if len(here) < e.get("min", 0) or (e.get("max", "*") != "*" and len(here) > int(e["max"])):
                    out.append(f"{eid}: {len(here)} not in {e.get('min', 0)}..{e.get('max', '*')}")
                if ":" in last:
                    continue  # a slice's pattern selects, it does not constrain the others
                for k, want in e.items():
                    if k.startswith(("pattern", "fixed")) and not all(
                            _contains(v, want) if k.startswith("pattern") else v == want for v in here):
                        out.append(f"{eid}: not {want}")
                bound = (e.get("binding") or {}).get("valueSet")
                if e.get("binding", {}).get("strength") == "required" and bound in self.value_sets:
                    codes = {c.get("code") for v in here if isinstance(v, dict) for c in v.get("coding", [v])}
                    if codes - self.value_sets[bound]:
                        out.append(f"{eid}: {sorted(codes - self.value_sets[bound])} not in {bound}")
        return out


def _nested_extensions(node, found: list[dict]) -> list[dict]:
    if isinstance(node, dict):
        if "url" in node and ("extension" in node or any(k.startswith("value") for k in node)):
            found.append(node)
        for v in node.values():
            _nested_extensions(v, found)
    elif isinstance(node, list):
        for v in node:
            _nested_extensions(v, found)
    return found


@pytest.fixture(scope="module")
def check(by_url):
    def codes(include: dict) -> set[str] | None:  # a ValueSet's listed codes, or all of a complete CodeSystem's
        if "concept" in include:
            return {c["code"] for c in include["concept"]}
        cs = by_url.get(include["system"], {})
        return {c["code"] for c in cs["concept"]} if cs.get("content") == "complete" else None

    value_sets = {}
    for u, r in by_url.items():
        if r["resourceType"] == "ValueSet" and None not in (found := [codes(i) for i in r["compose"]["include"]]):
            value_sets[u] = set().union(*found)
    profiles = {u: Profile(r, value_sets) for u, r in by_url.items() if r["resourceType"] == "StructureDefinition"}

    def errors(resource: dict, profile: str) -> list[str]:
        """The profile's findings, and those of each extension of the package met at any depth."""
        out = profiles[profile].errors(resource)
        for ext in _nested_extensions(resource, []):
            if ext["url"] in profiles and profiles[ext["url"]].root == "Extension":
                out += [f"{ext['url']}: {e}" for e in profiles[ext["url"]].errors(ext)]
        return out

    return errors


@pytest.fixture(scope="module")
def r5_output(example_round_trip):
    return example_round_trip("R5")[0].resources


def test_the_r5_output_declares_the_profiles_it_conforms_to(r5_output, pilot_fhir):
    """meta.profile as in R4: the study's own resources name their profile (the same URL as R4's); a
    concomitant medication, a vital sign, the Group, another study's resources (the pilot) name none."""
    declared = Counter()
    for r in r5_output:
        records = read_record(r)
        want = profile_url(r["resourceType"], records[0] if records else None)
        assert r.get("meta", {}).get("profile") == ([want] if want else None), (r["resourceType"], records[:1])
        declared[r["resourceType"] if want else "none"] += 1
    assert len(declared) == 9 and declared["none"] >= 99 + 148
    assert not any("profile" in r.get("meta", {}) for r in pilot_fhir("R5")[0].resources)


def test_the_r5_output_meets_the_profiles(r5_output, check, by_url):
    """Every profiled resource of the example's R5 output, every profile met, no finding."""
    met, findings = Counter(), {}
    for r in r5_output:
        for url in r.get("meta", {}).get("profile", []):
            met[url] += 1
            if errs := check(r, url):
                findings.setdefault(url, (r["id"], errs[:3]))
    assert set(met) == {u for u, r in by_url.items() if r.get("kind") == "resource"} and sum(met.values()) > 13_000
    assert findings == {}


def test_the_check_finds_what_it_should(r5_output, check):
    """Output with what the profiles require taken away or wrong must fail, or the empty findings above
    mean nothing."""
    def first(rtype, dataset=None):
        return copy.deepcopy(next(r for r in r5_output if r["resourceType"] == rtype and r.get("meta", {}).get("profile")
                                  and (dataset is None or read_record(r)[0] == dataset)))

    def changed(rtype, change, dataset=None):
        r = first(rtype, dataset)
        change(r)
        return check(r, r["meta"]["profile"][0])

    def two_severities(r):
        sev = next(e for e in r["extension"] if e["url"] == AE_IG + "ae-severity")
        r["extension"].append(copy.deepcopy(sev))

    def wrong_side(r):
        r["bodySite"]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "123456"

    def wrong_row(r):
        next(e for e in r["extension"][0]["extension"] if e["url"] == "row")["url"] = "rows"

    cases = {
        "no consent date": changed("Consent", lambda r: r.pop("date")),
        "no policyBasis": changed("Consent", lambda r: r.pop("policyBasis")),
        "other consent category": changed("Consent", lambda r: r["category"][0]["coding"][0].update(code="00000-0")),
        "medication by reference": changed("MedicationAdministration", lambda r: r.update(
            medication={"reference": {"reference": "Medication/x"}}), "EX"),
        "two severities": changed("AdverseEvent", two_severities),
        "no AE code": changed("AdverseEvent", lambda r: r.pop("code")),
        "no subject identifier": changed("ResearchSubject", lambda r: r.pop("identifier")),
        "no record": changed("Observation", lambda r: r.pop("extension"), "XM"),
        "wrong side": changed("Observation", wrong_side, "XM"),
        "a record without its row": changed("Observation", wrong_row, "XM"),
        "no visit type": changed("Encounter", lambda r: r.pop("type")),
    }
    assert [name for name, errs in cases.items() if not errs] == []


def test_a_shipped_r4_concept_map_becomes_r5(tmp_path):
    """mappings/conceptmaps/ holds R4 ConceptMaps (the specs ship none yet): the R5 package carries each as
    R5 (scopes, relationships), valid R5; the R4 package as it is."""
    ms = copy.deepcopy(load_mapping_set())
    ms.directory = tmp_path
    (tmp_path / "conceptmaps").mkdir()
    r4 = {"resourceType": "ConceptMap", "id": "route", "url": "http://tcim-interop.org/fhir/ConceptMap/route",
          "status": "draft", "sourceUri": "http://example.org/vs/a", "targetCanonical": "http://example.org/vs/b",
          "group": [{"source": "http://example.org/a", "target": "http://snomed.info/sct", "element": [
              {"code": "IM", "target": [{"code": "78421000", "equivalence": "equivalent"}]},
              {"code": "X", "target": [{"code": "1", "equivalence": "wider"}, {"code": "2", "equivalence": "disjoint"}]},
              {"code": "Y", "target": [{"equivalence": "unmatched"}]}]}]}
    (tmp_path / "conceptmaps" / "route.json").write_text(json.dumps(r4))
    as_r4 = next(r for r in conformance_resources(ms, fhir="R4") if r["resourceType"] == "ConceptMap")
    assert as_r4 == r4 and validation_error(as_r4, "R4") is None
    cm = next(r for r in conformance_resources(ms, fhir="R5") if r["resourceType"] == "ConceptMap")
    assert validation_error(cm, "R5") is None and validation_error(r4, "R5") is not None
    assert cm["sourceScopeUri"] == r4["sourceUri"] and cm["targetScopeCanonical"] == r4["targetCanonical"]
    elements = cm["group"][0]["element"]
    targets = [t["relationship"] for el in elements for t in el.get("target", [])]
    assert targets == ["equivalent", "source-is-narrower-than-target", "not-related-to"]
    assert elements[1]["target"][1]["comment"] and elements[2] == {"code": "Y", "noMap": True}
