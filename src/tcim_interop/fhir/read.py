"""Read FHIR input: JSON bundles of any type, single resources, NDJSON bulk exports, directories.

Every resource found becomes an InputResource that remembers its file and place in it, so that any
finding about it can point there. A file that cannot be parsed at all is an InputError (exit 2, no
output); a bad line of an NDJSON file is one rejected record, and the other lines still convert.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from ..errors import InputError

JSON_SUFFIXES = (".json",)
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
XML_SUFFIXES = (".xml",)


class NotFhirError(InputError):
    """A JSON document that is no FHIR resource: an error when named, skipped when met in a directory."""


@dataclass
class InputResource:
    data: dict
    file: str
    place: str  # "entry[3]", "line 12", "" for a single-resource file
    full_url: str = ""
    version: str = ""  # "R4" / "R5", set by fhir.version
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            rtype = self.data.get("resourceType", "?")
            rid = self.data.get("id")
            self.key = f"{rtype}/{rid}" if rid else f"{rtype}/#{Path(self.file).name}:{self.place or 'resource'}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.place}" if self.place else self.file


@dataclass
class UnreadableRecord:
    """A record that could not even be parsed (an NDJSON line that is not a JSON object)."""

    file: str
    place: str
    reason: str

    @property
    def key(self) -> str:
        return f"?/#{Path(self.file).name}:{self.place}"


def discover(paths: Iterable[str | os.PathLike]) -> tuple[list[tuple[Path, bool]], list[Path]]:
    """Input files in a stable order, each with whether it was found in a directory; and the files of
    input directories that are not FHIR by their name."""
    files, skipped = [], []
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                if f.suffix.lower() in JSON_SUFFIXES + NDJSON_SUFFIXES + XML_SUFFIXES:
                    files.append((f, True))
                else:
                    skipped.append(f)
        elif p.exists():
            files.append((p, False))
        else:
            raise InputError(f"{p}: no such file or directory")
    return files, skipped


def read_file(path: Path) -> Iterator[InputResource | UnreadableRecord]:
    name = str(path)
    suffix = path.suffix.lower()
    if suffix in NDJSON_SUFFIXES:
        yield from _ndjson(path, name)
        return
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if not raw.strip():
        raise InputError(f"{name}: the file is empty")
    if suffix in XML_SUFFIXES or raw.lstrip()[:1] == b"<":
        from .xml import parse_xml  # lxml is imported only for XML input

        doc = parse_xml(raw, name)
    else:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise InputError(f"{name}: not valid JSON: {e}") from None
    yield from _document(doc, name)


def _ndjson(path: Path, name: str) -> Iterator[InputResource | UnreadableRecord]:
    """The file read line by line, never whole: a bulk export's bytes are not all held at once."""
    n, empty = 0, True
    try:
        with path.open("rb") as fh:
            for chunk in fh:  # ends at \n; splitlines also breaks at a lone \r, as on the whole file
                for line in chunk.splitlines():
                    n += 1
                    if line.strip():
                        empty = False
                        yield from _ndjson_line(line, name, f"line {n}")
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if empty:
        raise InputError(f"{name}: the file is empty")


def _ndjson_line(line: bytes, name: str, place: str) -> Iterator[InputResource | UnreadableRecord]:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        yield UnreadableRecord(name, place, f"not valid JSON: {e}")
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str) or not doc["resourceType"]:
        yield UnreadableRecord(name, place, "not a FHIR resource (a JSON object with resourceType)")
        return
    yield from _document(doc, name, place)


def _document(doc: object, name: str, place: str = "") -> Iterator[InputResource | UnreadableRecord]:
    if not isinstance(doc, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(doc), "null")
        raise NotFhirError(f"{name}{':' + place if place else ''}: a JSON {kind} where a FHIR resource or Bundle was expected")
    rtype = doc.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise NotFhirError(f"{name}{':' + place if place else ''}: no resourceType: not a FHIR resource")
    if rtype != "Bundle":
        yield InputResource(doc, name, place)
        return
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        raise InputError(f"{name}: Bundle.entry is not an array")
    prefix = f"{place} " if place else ""
    for i, entry in enumerate(entries):
        where = f"{prefix}entry[{i}]"
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            if res is None and isinstance(entry, dict) and (entry.get("request") or entry.get("response")):
                continue  # a transaction entry that only deletes, or a response entry: nothing to convert
            # bdl-5: an entry must hold a resource unless it has a request or response; never drop it silently
            what = "entry is not a JSON object" if not isinstance(entry, dict) else \
                "entry has no resource" if res is None else "entry.resource is not a JSON object"
            yield UnreadableRecord(name, where, what)
            continue
        if res.get("resourceType") == "Bundle":
            yield from _document(res, name, where)
            continue
        if not isinstance(res.get("resourceType"), str) or not res["resourceType"]:
            yield UnreadableRecord(name, where, "entry.resource has no resourceType")
            continue
        yield InputResource(res, name, where, full_url=str(entry.get("fullUrl") or ""))
