"""The specs' paths against fhirpathpy, the reference Python FHIRPath engine: on the example data (R4, the
sponsor's and the hospital's) and a synthetic R5 trial, every variable's path gives the values fhirpathpy
gives for the same expression, with "??" (first of, the project's own) spelled as FHIRPath's
iif((a).exists(), a, b). So a path without "??" is plain FHIRPath, and "|" is FHIRPath's union."""

import json
from decimal import Decimal

import pytest
from conftest import EXAMPLE, ROOT, read_json

from tcim_interop.fhir.path import VARIABLES, _split_top, compile_path
from tcim_interop.fhir.read import InputResource
from tcim_interop.findings import Report
from tcim_interop.mapping import engine
from tcim_interop.mapping_spec.load import load_mapping_set
from tcim_interop.synth import generate

fhirpathpy = pytest.importorskip("fhirpathpy", reason="fhirpathpy (the test extra) is not installed")

ROWS_PER_DOMAIN = 60  # spread over each domain's records: every shape the data has, in a few seconds


def as_fhirpath(text: str) -> str:
    """a ?? b ?? c -> iif((a).exists(), a, iif((b).exists(), b, c))"""
    first, *rest = [p.strip() for p in _split_top(text, "??")]
    return first if not rest else f"iif(({first}).exists(), {first}, {as_fhirpath(' ?? '.join(rest))})"


def without_resolve(text: str) -> str:
    """fhirpathpy has no resolve(): the ?? operands and | alternatives that use it are left out on both
    sides (the example data has no BodyStructure or Medication; tests/test_site.py and test_cm.py test them)."""
    operands = (" | ".join(a.strip() for a in _split_top(p, "|") if "resolve()" not in a) for p in _split_top(text, "??"))
    return " ?? ".join(p for p in operands if p)


def _rows(resources: list[dict], version: str, mappings, site=None):
    inputs = [InputResource(r, "x", str(i), version=version) for i, r in enumerate(resources)]
    ms = load_mapping_set(site=site) if site else mappings
    by_domain: dict = {}
    for spec, row in engine.rows_with_context(inputs, ms, Report()):
        by_domain.setdefault(spec.domain, []).append((spec, row))
    for rows in by_domain.values():
        yield from rows[:: max(1, len(rows) // ROWS_PER_DOMAIN)]


def _cases(mappings):
    sponsor = [e["resource"] for e in read_json(EXAMPLE)["entry"]]
    hospital = [e["resource"] for e in read_json(ROOT / "examples" / "tcim-elaii-100-r4-hospital.json")["entry"]]
    yield from _rows(sponsor, "R4", mappings)
    yield from _rows(hospital, "R4", mappings, site=ROOT / "examples" / "hospital-site")
    yield from _rows(generate(12, seed=3, fhir_version="R5"), "R5", mappings)


def test_every_spec_path_gives_what_fhirpathpy_gives(mappings):
    compiled: dict = {}
    compared = 0
    paths = set()
    for spec, row in _cases(mappings):
        context = {v: (row.root(v) or {}) for v in VARIABLES}
        for var in [*spec.variables, *spec.supplemental]:
            path = var.path(row.version)
            if path is None:
                continue
            text = without_resolve(path.text)
            ours = compile_path(text).values(row.root)
            expression = as_fhirpath(text)
            if expression not in compiled:
                compiled[expression] = fhirpathpy.compile(expression, None)
            theirs = compiled[expression](row.resource.data, context)
            assert _plain(theirs) == _plain(ours), (
                spec.domain, var.name if hasattr(var, "name") else var.qnam, row.resource.key, path.text)
            compared += 1
            paths.add(path.text)
    assert compared > 5_000 and len(paths) > 50, (compared, len(paths))


def _plain(values):
    """JSON values as both engines' lists hold them: fhirpathpy reads a JSON decimal as a Decimal."""
    return json.loads(json.dumps(values, default=lambda v: float(v) if isinstance(v, Decimal) else str(v)))


def test_first_of_is_spelled_as_iif():
    assert as_fhirpath("a ?? b.c ?? %patient.d") == "iif((a).exists(), a, iif((b.c).exists(), b.c, %patient.d))"
    assert as_fhirpath("a | b") == "a | b"
