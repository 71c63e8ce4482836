"""Write FHIR output: a Bundle (transaction or collection) or bulk-data NDJSON, atomically.

In a Bundle every entry's fullUrl is urn:uuid:<id> and references between entries are rewritten to
those urn:uuid fullUrls, which a FHIR server resolves when it loads a transaction. Transaction entries
PUT Type/id, so loading the same output twice updates rather than duplicates. NDJSON keeps
"Type/id" references (one file per resource type, as a bulk export has them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import orjson

from ..atomic import write_atomic
from ..errors import OutputError

_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def _rewrite_references(node, ids: set[str]):
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                m = _REF.match(v)
                out[k] = f"urn:uuid:{m.group(2)}" if m and v in ids else v
            elif isinstance(v, (dict, list)):  # no call for the leaves, most of a resource
                out[k] = _rewrite_references(v, ids)
            else:
                out[k] = v
        return out
    if isinstance(node, list):
        return [_rewrite_references(x, ids) if isinstance(x, (dict, list)) else x for x in node]
    return node


def _entry(resource: dict, ids: set[str], bundle_type: str) -> dict:
    entry = {"fullUrl": f"urn:uuid:{resource['id']}", "resource": _rewrite_references(resource, ids)}
    if bundle_type in ("transaction", "batch"):
        entry["request"] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
    return entry


def bundle(resources: list[dict], bundle_type: str) -> dict:
    """The Bundle as one dict (what a server is sent); files are written with bundle_chunks."""
    ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
    return {"resourceType": "Bundle", "type": bundle_type, "entry": [_entry(r, ids, bundle_type) for r in resources]}


def bundle_chunks(resources: list[dict], bundle_type: str) -> Iterator[bytes]:
    """orjson.dumps(bundle(resources, bundle_type), option=OPT_INDENT_2), byte for byte, one entry at a
    time: a whole bundle held as rewritten copies of its resources and then as one bytes object is twice
    the resources' own memory (about 1.2 GB per 1,000 subjects). An entry dumped on its own is indented
    from column 0; inside the bundle it sits two levels down, so each of its lines gets four more blanks
    (JSON text has no raw newline inside a string, so every newline is a line break)."""
    ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
    yield b'{\n  "resourceType": "Bundle",\n  "type": ' + orjson.dumps(bundle_type) + b',\n  "entry": ['
    for k, r in enumerate(resources):
        text = orjson.dumps(_entry(r, ids, bundle_type), option=orjson.OPT_INDENT_2)
        yield (b",\n    " if k else b"\n    ") + text.replace(b"\n", b"\n    ")
    yield b"\n  ]\n}" if resources else b"]\n}"


def write_bundle(resources: list[dict], path: Path, bundle_type: str) -> list[Path]:
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name for the bundle")
    return [write_atomic(path, bundle_chunks(resources, bundle_type))]


def write_ndjson(resources: list[dict], directory: Path) -> list[Path]:
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: exists and is not a directory")
    # One pass over the resources per type, each line written as it is made: holding every type's
    # lines until the end would be another copy of the output (1.5 GB at 10,000 subjects).
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"{directory}: cannot write: {e.strerror or e}") from None
    return [write_atomic(directory / f"{rtype}.ndjson",
                         (orjson.dumps(r) + b"\n" for r in resources if r["resourceType"] == rtype))
            for rtype in sorted({r["resourceType"] for r in resources})]
