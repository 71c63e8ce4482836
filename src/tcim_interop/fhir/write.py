"""Write FHIR output: a Bundle (transaction or collection) or bulk-data NDJSON, atomically.

In a Bundle every entry's fullUrl is urn:uuid:<id> and references between entries are rewritten to
those urn:uuid fullUrls, which a FHIR server resolves when it loads a transaction. Transaction entries
PUT Type/id, so loading the same output twice updates rather than duplicates. NDJSON keeps
"Type/id" references (one file per resource type, as a bulk export has them).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import orjson

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


def bundle(resources: list[dict], bundle_type: str) -> dict:
    ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
    entries = []
    for r in resources:
        entry = {"fullUrl": f"urn:uuid:{r['id']}", "resource": _rewrite_references(r, ids)}
        if bundle_type in ("transaction", "batch"):
            entry["request"] = {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def _atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bundle(resources: list[dict], path: Path, bundle_type: str) -> list[Path]:
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name for the bundle")
    try:
        _atomic(path, orjson.dumps(bundle(resources, bundle_type), option=orjson.OPT_INDENT_2))
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
    return [path]


def write_ndjson(resources: list[dict], directory: Path) -> list[Path]:
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: exists and is not a directory")
    by_type: dict[str, list[bytes]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(orjson.dumps(r))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for rtype in sorted(by_type):
            path = directory / f"{rtype}.ndjson"
            _atomic(path, b"\n".join(by_type[rtype]) + b"\n")
            paths.append(path)
    except OSError as e:
        raise OutputError(f"{directory}: cannot write: {e.strerror or e}") from None
    return paths
