"""The AE Clinical Research IG's extensions per FHIR release (fhir/ae_research_ig.py): R4 output (to-fhir,
the synthetic generator) writes the R4 backport IG's URLs, R5 output the R5 IG's; the specs read the
backport's first in R4, and R4 input under either URL family gives the same SDTM."""

import copy
import json
import re

import pytest
from conftest import read_json

from tcim_interop import load_mapping_set, to_sdtm
from tcim_interop.fhir.ae_research_ig import (
    DISCONTINUED,
    SERIOUSNESS_CRITERIA,
    SEVERITY,
    ae_ig_dependency,
    ae_ig_url,
)
from tcim_interop.synth import generate

R5_IG = "http://hl7.org/fhir/uv/ae-research-ig/StructureDefinition/"
BACKPORT = "http://hl7.org/fhir/uv/ae-research-backport-ig/StructureDefinition/"
FAMILY = {"R4": BACKPORT, "R5": R5_IG}
OTHER = {"R4": R5_IG, "R5": BACKPORT}
IG_EXTENSION = re.compile(r"extension\('(" + re.escape(R5_IG) + "|" + re.escape(BACKPORT) + r")([\w-]+)'\)")


def test_each_release_has_its_ig_s_urls():
    assert ae_ig_url("R4", SERIOUSNESS_CRITERIA) == BACKPORT + "seriousness-criteria"
    assert ae_ig_url("R4", DISCONTINUED) == BACKPORT + "caused-subject-to-discontinue-study"
    assert ae_ig_url("R5", SERIOUSNESS_CRITERIA) == R5_IG + "seriousness-criteria"
    assert ae_ig_url("R5", SEVERITY) == R5_IG + "ae-severity"
    assert ae_ig_dependency("R4") == {"hl7.fhir.uv.ae-research-backport-ig": "1.0.1"}
    assert ae_ig_dependency("R5") == {"hl7.fhir.uv.ae-research-ig": "1.0.1"}


def test_r4_has_no_severity_extension():
    """R4's AdverseEvent has `severity`; the backport IG defines no ae-severity."""
    with pytest.raises(ValueError, match="ae-research-backport-ig.*'ae-severity'"):
        ae_ig_url("R4", SEVERITY)


def _ig_paths(ms, version):
    """(where, the first alternative's IG extension) of every spec path whose first alternative reads one:
    where to-fhir writes."""
    for name, spec in ms.domains.items():
        sources = [(v.name, v.source) for v in spec.variables] + [(q.qnam, q.source) for q in spec.supplemental]
        for criteria in [spec.rows, *(s.criteria for s in spec.sources)]:
            sources += [(f"rows.{p}", by_version) for p, by_version in criteria.paths.items()]
        for where, source in sources:
            path = source.get(version)
            first = IG_EXTENSION.match(path.text.split("??")[0].strip()) if path is not None else None
            if first:
                yield f"{name}.{where}", first.group(1) + first.group(2)


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_the_specs_write_where_the_module_says(version):
    """to-fhir writes at a path's first alternative: for each IG extension it is the release's URL."""
    ms = load_mapping_set()
    found = dict(_ig_paths(ms, version))
    assert {"ae.AEDISCON", "ae.AESHOSP", "ae.AESDTH", "ds.rows.discontinued"} <= set(found)
    for where, url in found.items():
        assert url == ae_ig_url(version, url.rpartition("/")[2]), where


def _ig_urls(resources) -> list[str]:
    return re.findall(r'"(http://hl7\.org/fhir/uv/ae-research[\w-]*/StructureDefinition/[\w-]+)"', json.dumps(resources))


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_the_generator_sends_the_release_s_urls(version):
    resources = generate(5, seed=1, fhir_version=version)
    urls = _ig_urls(resources)
    assert {u.rpartition("/")[2] for u in urls} >= {"seriousness-criteria", "caused-subject-to-discontinue-study"}
    assert all(u.startswith(FAMILY[version]) for u in urls) and not any(OTHER[version] in u for u in urls)


def _events(bundle_file):
    bundle = read_json(bundle_file)
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "AdverseEvent"]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_to_fhir_writes_the_release_s_urls(example_round_trip, example_package, version):
    """Every serious event has its criteria, every AEDISCON its discontinuation extension, under the
    release's IG; the other family appears nowhere in the output."""
    _result, bundle_file, _back = example_round_trip(version)
    assert OTHER[version] not in bundle_file.read_text()
    events = _events(bundle_file)
    criteria = {e["id"] for e in events if any(x["url"] == ae_ig_url(version, SERIOUSNESS_CRITERIA)
                                               for x in e.get("extension", []))}
    discontinued = [x["valueBoolean"] for e in events for x in e.get("extension", [])
                    if x["url"] == ae_ig_url(version, DISCONTINUED)]
    import pyreadstat

    ae, _ = pyreadstat.read_xport(str(example_package / "ae.xpt"))
    suppae, _ = pyreadstat.read_xport(str(example_package / "suppae.xpt"))
    discon = suppae[suppae["QNAM"] == "AEDISCON"]["QVAL"]
    assert len(criteria) == (ae["AESER"] == "Y").sum() > 0
    assert sorted(discontinued) == sorted(v == "Y" for v in discon) and discontinued


def _as_r5_ig(resources):
    """The same R4 resources with the R5 IG's URLs where the generator writes the backport's."""
    out = copy.deepcopy(resources)
    for r in out:
        for ext in r.get("extension", []):
            ext["url"] = ext["url"].replace(BACKPORT, R5_IG)
    return out


def _criteria_in_extensions_only(resources):
    """R4's seriousness code says "Serious" only: the criteria are those of the IG's extension."""
    for r in resources:
        for c in (r.get("seriousness") or {}).get("coding", []):
            c["code"] = "Serious" if c["code"] != "Non-serious" else c["code"]
    return resources


def test_r4_input_under_either_family_gives_the_same_sdtm():
    resources = _criteria_in_extensions_only(generate(5, seed=1))
    moved = _as_r5_ig(resources)
    assert _ig_urls(moved) and all(u.startswith(R5_IG) for u in _ig_urls(moved))
    backport, r5_ig = to_sdtm(resources, fast=True), to_sdtm(moved, fast=True)
    assert set(backport.datasets) == set(r5_ig.datasets) >= {"AE", "SUPPAE", "DS"}
    for name, df in backport.datasets.items():
        assert df.equals(r5_ig.datasets[name]), name
    supp = backport.datasets["SUPPAE"]  # the extensions were read (DS's discontinuation reading: test_ds.py)
    assert set(supp[supp["QNAM"] == "AEDISCON"]["QVAL"]) == {"Y", "N"}
    assert (backport.datasets["AE"][["AESHOSP", "AESDTH", "AESLIFE", "AESMIE"]] == "Y").any().any()
