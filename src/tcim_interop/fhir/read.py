"""Read FHIR input: JSON bundles of any type, single resources, NDJSON bulk exports, directories.

Every resource found becomes an InputResource that remembers its file and place in it, so that any
finding about it can point there. A file that cannot be parsed at all is an InputError (exit 2, no
output); a bad line of an NDJSON file is one rejected record, and the other lines still convert.

An NDJSON line of a type the caller does not keep (the row resources of the event domains: one
record each, most of a bulk export) becomes a LineResource: its place and the little the run needs
without its JSON; its .data reads the line again. Peak memory then follows the output, not the input.
"""

from __future__ import annotations

import codecs
import json
import os
import sys
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from ..errors import InputError, NotFhirError
from .extensions import SDTM_DATASET, SDTM_RECORD, SDTM_SUPP, is_qualifier
from .version import telling_version

JSON_SUFFIXES = (".json",)
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
XML_SUFFIXES = (".xml",)


class _Located:
    __slots__ = ()
    if TYPE_CHECKING:  # what each subclass has, as a field or a property
        @property
        def file(self) -> str: ...
        @property
        def place(self) -> str: ...

    @property
    def where(self) -> str:
        return f"{self.file}:{self.place}" if self.place else self.file


@dataclass
class InputResource(_Located):
    data: dict
    file: str
    place: str  # "entry[3]", "line 12", "" for a single-resource file
    full_url: str = ""
    version: str = ""  # "R4" / "R5", set by fhir.version
    key: str = field(default="")

    def __post_init__(self) -> None:
        if not self.key:
            self.key = _key(self.data, self.file, self.place)

    # What a LineResource keeps without its dict, read here from the dict.
    @property
    def resource_type(self) -> str:
        return self.data["resourceType"]  # a str: the readers keep no resource without one

    @property
    def told(self) -> str | None:
        return telling_version(self.data)

    @property
    def last_updated(self) -> object:
        return _last_updated(self.data)

    may_carry_sdtm = True  # the dict is at hand: readers of the sdtm-* extensions look for themselves

    @property
    def payload(self) -> dict:
        """What validation reads: the parsed JSON (a LineResource gives its line's bytes)."""
        return self.data

    def loaded(self) -> InputResource:
        return self


@dataclass(slots=True, eq=False)
class LineResource(_Located):
    """An NDJSON line kept as where to read it again: no parsed JSON is held. `.data` parses the line
    anew on each call (no cache, which would bring the memory back): take it once per use."""

    file: str
    line: int
    offset: int  # of the line's bytes in the file, without its line break
    length: int
    key: str
    resource_type: str
    told: str | None  # the release this resource alone tells (fhir.version), read while its dict was there
    last_updated: object  # meta.lastUpdated, for the outputs' creation time
    may_carry_sdtm: bool  # has an sdtm-* extension (made by to-fhir): restore reads those lines again
    version: str = ""
    full_url = ""  # NDJSON references are Type/id: a line has no fullUrl

    @property
    def place(self) -> str:
        return f"line {self.line}"

    @property
    def data(self) -> dict:
        return orjson.loads(self.payload)

    @property
    def payload(self) -> bytes:
        """The line's JSON as it is in the file: what a validation worker parses."""
        # os-level calls: opening a Python file object per read costs more than parsing the line
        fd = os.open(self.file, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            os.lseek(fd, self.offset, os.SEEK_SET)
            return os.read(fd, self.length)
        finally:
            os.close(fd)

    def loaded(self) -> InputResource:
        """The resource with its dict, to hold while one record is built from it."""
        return InputResource(self.data, self.file, self.place, version=self.version, key=self.key)


_OWN_EXTENSIONS = (SDTM_RECORD, SDTM_SUPP, SDTM_DATASET)


def _line_resource(doc: dict, name: str, line: int, offset: int, length: int) -> LineResource:
    ext = doc.get("extension") or []
    # anything but a list of extensions is left for the extension readers to judge, as for a parsed resource
    own = not isinstance(ext, list) or any(isinstance(e, dict) and e.get("url") in _OWN_EXTENSIONS for e in ext) \
        or is_qualifier(doc)  # a SUPPxx record as an Observation: to-sdtm reads it again after restore
    return LineResource(name, line, offset, length, _key(doc, name, f"line {line}"),
                        sys.intern(doc["resourceType"]), telling_version(doc), _last_updated(doc), own)


def _key(doc: dict, file: str, place: str) -> str:
    rtype = doc.get("resourceType", "?")
    rid = doc.get("id")
    return f"{rtype}/{rid}" if rid else f"{rtype}/#{Path(file).name}:{place or 'resource'}"


def _last_updated(doc: dict) -> object:
    meta = doc.get("meta")
    return meta.get("lastUpdated") if isinstance(meta, dict) else None


@dataclass
class UnreadableRecord:
    """A record that could not even be parsed (an NDJSON line that is not a JSON object)."""

    file: str
    place: str
    reason: str

    @property
    def key(self) -> str:
        return f"?/#{Path(self.file).name}:{self.place}"


class _Repeated(dict):
    """An object of the JSON that repeats a key (FHIR JSON forbids it); .repeated: the keys repeated."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    out = _Repeated(obj)
    out.repeated = []
    for k, _ in pairs:
        if k in seen:
            out.repeated.append(k)
        seen.add(k)
    return out


def _parse(raw: bytes) -> tuple[object, bool]:
    """The JSON of raw (orjson.JSONDecodeError if it is none), and whether some object in it may repeat a
    key (then parsed again by json, every pair kept: see _Repeated). orjson silently keeps the last of a
    repeated key, and checking each object would cost as much as the parse: the colons are counted
    instead. Every key has one and strings may hold more; the parsed document written back has the same
    colons less one per key lost, unless the file escaped a colon in a string (\\u003a), which the
    written-back text does not. Equal counts and no such escape: no key was lost."""
    doc = orjson.loads(raw)
    try:
        if b"\\u003" not in raw and raw.count(b":") == orjson.dumps(doc).count(b":"):
            return doc, False
    except orjson.JSONEncodeError:  # nested deeper than orjson writes (254 levels): parsed again
        pass
    try:
        return json.loads(raw, object_pairs_hook=_pairs), True
    except RecursionError:  # deeper than json's recursion allows, yet within orjson's 1024 levels
        raise orjson.JSONDecodeError("nested too deep to look for repeated keys", "", 0) from None


def _repeated_key(node: object) -> str | None:
    """A key repeated in some object of node (parsed by _parse, which marks such objects)."""
    stack = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, _Repeated):
            return x.repeated[0]
        stack.extend(x.values() if isinstance(x, dict) else x if isinstance(x, list) else ())
    return None


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


def read_file(path: Path, keep: Collection[str] | None = None) -> Iterator[InputResource | LineResource | UnreadableRecord]:
    """keep: the resource types an NDJSON line keeps parsed; a line of another type becomes a
    LineResource. None keeps all. Bundles, single resources and XML are one document: always parsed."""
    name = str(path)
    suffix = path.suffix.lower()
    if suffix in NDJSON_SUFFIXES:
        yield from _ndjson(path, name, keep)
        return
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if not raw.strip():
        raise InputError(f"{name}: the file is empty")
    if suffix in XML_SUFFIXES or raw.lstrip()[:1] == b"<":
        from .xml import parse_xml  # lxml is imported only for XML input

        doc: object = parse_xml(raw, name)
    else:
        try:
            doc, repeats = _parse(raw)
        except orjson.JSONDecodeError as e:
            raise InputError(f"{name}: not valid JSON: {e}") from None
        yield from _document(doc, name, repeats=repeats)
        return
    yield from _document(doc, name)


def _ndjson(path: Path, name: str, keep: Collection[str] | None) -> Iterator[InputResource | LineResource | UnreadableRecord]:
    """The file read line by line, never whole: a bulk export's bytes are not all held at once."""
    n, empty, offset = 0, True, 0
    try:
        with path.open("rb") as fh:
            for chunk in fh:  # ends at \n; splitlines also breaks at a lone \r, as on the whole file
                for piece in chunk.splitlines(keepends=True):
                    n += 1
                    if n == 1 and piece.startswith(codecs.BOM_UTF8):
                        # refused whole, as a .json file with a BOM is (orjson refuses it), not as a bad line 1
                        raise InputError(f"{name}: not valid JSON: UTF-8 byte order mark (BOM) is not supported")
                    line = piece.rstrip(b"\r\n")  # a piece ends with one line break at most
                    if line.strip():
                        empty = False
                        yield from _ndjson_line(line, name, n, offset, keep)
                    offset += len(piece)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if empty:
        raise InputError(f"{name}: the file is empty")


def _ndjson_line(line: bytes, name: str, n: int, offset: int,
                 keep: Collection[str] | None) -> Iterator[InputResource | LineResource | UnreadableRecord]:
    place = f"line {n}"
    try:
        doc, repeats = _parse(line)
    except orjson.JSONDecodeError as e:
        yield UnreadableRecord(name, place, f"not valid JSON: {e}")
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str) or not doc["resourceType"]:
        yield UnreadableRecord(name, place, "not a FHIR resource (a JSON object with resourceType)")
        return
    repeats = repeats and _repeated_key(doc) is not None  # else the line may stay unparsed (a LineResource)
    if repeats or keep is None or doc["resourceType"] in keep or doc["resourceType"] == "Bundle":
        yield from _document(doc, name, place, repeats)
    else:
        yield _line_resource(doc, name, n, offset, len(line))


def read_document(doc: dict | list, name: str) -> Iterator[InputResource | UnreadableRecord]:
    """A document given in memory (the Python API): a Bundle or resource as a dict, or a list of
    resources, read as the same JSON in a file would be; `name` stands for the file in every place."""
    if isinstance(doc, list):
        for i, res in enumerate(doc):
            yield from _document(res, name, f"[{i}]")
        return
    yield from _document(doc, name)


def _document(doc: object, name: str, place: str = "",
              repeats: bool = False) -> Iterator[InputResource | UnreadableRecord]:
    """repeats: some object of doc repeats a key (see _parse)."""
    if not isinstance(doc, dict):
        kind = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(doc), "null")
        raise NotFhirError(f"{name}{':' + place if place else ''}",
                           f"a JSON {kind} where a FHIR resource or Bundle was expected")
    rtype = doc.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise NotFhirError(f"{name}{':' + place if place else ''}", "no resourceType: not a FHIR resource")
    if rtype != "Bundle":
        yield _resource(doc, name, place, repeats)
        return
    if isinstance(doc, _Repeated):  # a repeated "entry" would drop resources unseen: refuse the Bundle
        raise InputError(f"{name}{':' + place if place else ''}: the Bundle repeats the key {doc.repeated[0]!r} "
                         "(FHIR JSON forbids repeated keys)")
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
            yield from _document(res, name, where, repeats)
            continue
        if not isinstance(res.get("resourceType"), str) or not res["resourceType"]:
            yield UnreadableRecord(name, where, "entry.resource has no resourceType")
            continue
        if repeats and isinstance(entry, _Repeated):
            yield UnreadableRecord(name, where, f"the entry repeats the key {entry.repeated[0]!r} "
                                                "(FHIR JSON forbids repeated keys)")
            continue
        yield _resource(res, name, where, repeats, str(entry.get("fullUrl") or ""))


def _resource(res: dict, name: str, where: str, repeats: bool,
              full_url: str = "") -> InputResource | UnreadableRecord:
    key = _repeated_key(res) if repeats else None
    if key is not None:
        return UnreadableRecord(name, where or "resource", f"{_key(res, name, where)} repeats the key {key!r} "
                                                           "(FHIR JSON forbids repeated keys)")
    return InputResource(res, name, where, full_url=full_url)
