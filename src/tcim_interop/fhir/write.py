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
from array import array
from collections.abc import Iterable, Iterator
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
    the resources' own memory (about 1.2 GB per 1,000 subjects)."""
    ids = {f"{r['resourceType']}/{r['id']}" for r in resources}
    return _framed((entry_text(r, ids, bundle_type) for r in resources), bundle_type)


def entry_text(resource: dict, ids: set[str], bundle_type: str) -> bytes:
    """A Bundle entry as it stands in the file. An entry dumped on its own is indented from column 0;
    inside the bundle it sits two levels down, so each of its lines gets four more blanks (JSON text has
    no raw newline inside a string, so every newline is a line break)."""
    return orjson.dumps(_entry(resource, ids, bundle_type), option=orjson.OPT_INDENT_2).replace(b"\n", b"\n    ")


def _framed(entries: Iterable[bytes], bundle_type: str) -> Iterator[bytes]:
    yield b'{\n  "resourceType": "Bundle",\n  "type": ' + orjson.dumps(bundle_type) + b',\n  "entry": ['
    k = -1
    for k, text in enumerate(entries):
        yield (b",\n    " if k else b"\n    ") + text
    yield b"\n  ]\n}" if k >= 0 else b"]\n}"


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


class Spool:
    """Output made in another order than it is written in (to-fhir builds subject by subject, writes
    dataset by dataset): each resource's text as it is final, with its place, in a temporary file beside
    the output; `write_bundle` and `write_ndjson` then copy the texts in the order of their places.
    Memory holds two numbers and a type per resource, not the resources. Bundle entries are made with
    `ids`, the resources a reference may point at (the study's own, the part's: no reference crosses
    from a subject to another)."""

    def __init__(self, out: Path, ndjson: bool, bundle_type: str):
        self.out, self.ndjson, self.bundle_type = out, ndjson, bundle_type
        try:
            if ndjson and out.exists() and not out.is_dir():
                raise OutputError(f"{out}: exists and is not a directory")
            if not ndjson and out.is_dir():
                raise OutputError(f"{out}: is a directory; give a file name for the bundle")
            out.parent.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(prefix=f".{out.name}.", dir=out.parent)
        except OSError as e:
            raise OutputError(f"{out}: cannot write: {e.strerror or e}") from None
        self._places, self._ends, self._types = array("Q"), array("Q"), array("H")
        self._type_names: dict[str, int] = {}
        self._end = 0

    def add(self, place: int, resource: dict, raw: bytes, ids: set[str]) -> None:
        """raw: orjson.dumps(resource), the NDJSON line."""
        text = raw + b"\n" if self.ndjson else entry_text(resource, ids, self.bundle_type)
        try:
            self._file.write(text)
        except OSError as e:
            raise OutputError(f"{self.out}: cannot write: {e.strerror or e}") from None
        self._end += len(text)
        self._places.append(place)
        self._ends.append(self._end)
        self._types.append(self._type_names.setdefault(resource["resourceType"], len(self._type_names)))

    def close(self) -> None:
        self._file.close()

    def _texts(self, resource_type: str | None = None) -> Iterator[bytes]:
        import numpy as np

        self._file.flush()
        fd = self._file.fileno()
        order = np.frombuffer(self._places, dtype=np.uint64).argsort(kind="stable") if self._places else \
            np.zeros(0, dtype=np.int64)
        if resource_type is not None:
            types = np.frombuffer(self._types, dtype=np.uint16)
            order = order[types[order] == self._type_names[resource_type]]
        for k in order:
            start = self._ends[k - 1] if k else 0
            yield os.pread(fd, self._ends[k] - start, start)

    def write(self) -> list[Path]:
        """The output files, each written whole (atomic.write_atomic)."""
        try:
            if not self.ndjson:
                return [write_atomic(self.out, _framed(self._texts(), self.bundle_type))]
            try:
                self.out.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"{self.out}: cannot write: {e.strerror or e}") from None
            return [write_atomic(self.out / f"{rtype}.ndjson", self._texts(rtype)) for rtype in sorted(self._type_names)]
        finally:
            self.close()
