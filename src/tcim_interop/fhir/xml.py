"""FHIR XML input (R4 and R5), read safely with lxml and turned into exactly the dict that the JSON
form of the same resource gives (https://hl7.org/fhir/R4/xml.html, json.html), so XML and JSON of
the same data make the same SDTM.

Safety, since the files come across a hospital boundary:
  * a document with a DOCTYPE is refused before lxml sees it (and again after parsing, should an
    exotic encoding hide it from the first look): no DTD, no entity, so no billion laughs and no
    external entity (file://, http://) can ever be expanded or fetched;
  * the parser itself is built with resolve_entities=False, no_network=True, load_dtd=False,
    dtd_validation=False, huge_tree=False (libxml2's limits stay on: a text node or attribute value
    over 10 MB, e.g. a huge base64 attachment, is refused as not well-formed);
  * inputs over MAX_BYTES and elements nested deeper than MAX_DEPTH are refused;
  * every failure is an InputError of one line naming the file (and the line, where there is one).

The conversion:
  * the root element (namespace http://hl7.org/fhir) names the resourceType; a root outside that
    namespace is no FHIR document (NotFhirError: skipped when met in a directory);
  * a primitive's `value` attribute becomes a JSON string, number (integer, positiveInt,
    unsignedInt; decimal: an int when the text is integral, else a float, just as a JSON parser
    reads the same text) or boolean by the element's FHIR type (integer64 stays a string, as in
    R5 JSON); a value that is not valid for its type is kept as the string it is, so validation
    reports it; the primitive's `id` attribute and `extension` children go to `_name`, lists of
    primitives get null-aligned `name`/`_name` arrays;
  * `id` attributes of complex elements and the `url` attribute of extensions become properties;
  * elements become arrays where the model (fhir.resources, R4B for R4 as in shape.py) says the
    element repeats, even for one occurrence; an element the model does not know (or repeated
    where the model allows one) is kept as read, an array if repeated, for validation to report;
  * contained resources, Bundle.entry.resource (any element holding a resource element) are
    unwrapped: `<resource><Patient>..</Patient></resource>` gives {"resourceType": "Patient", ..};
  * the XHTML `div` is kept as its serialized string (namespace declarations not used inside it
    dropped); XML comments and processing instructions are dropped elsewhere.

Which release: the XML does not say. Each resource (the root, each contained and each entry
resource) is decided on its own: version.telling_version on the names of its elements first; when
they tell nothing, the release whose models know every element of the resource (nested resources
not counted), trying first the release of the enclosing resource, or for the root the release most
resources in the document tell (R4 when none tells). When both releases miss an element, the one
that misses fewer wins. sdtm_pipeline.read_inputs later re-tells the release from the dict as for JSON.
"""

from __future__ import annotations

import codecs
import copy
import math
import re
from collections import Counter
from functools import cache, lru_cache

from lxml import etree

from ..errors import InputError, NotFhirError
from .shape import _TYPE, _class
from .version import telling_version

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
MAX_BYTES = 200 * 1024 * 1024
MAX_DEPTH = 100
_EXTENSIONS = ("extension", "modifierExtension")
_RESOURCE_NAME = re.compile(r"[A-Z][A-Za-z0-9]{0,63}")
_PROLOG = re.compile(rb"(?:\s|<\?.*?\?>|<!--.*?-->)*", re.S)
_PROLOG_TEXT = re.compile(r"(?:\s|<\?.*?\?>|<!--.*?-->)*", re.S)
_INTEGER = re.compile(r"[-+]?[0-9]{1,32}")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,63})(\.[0-9]+)?([eE][-+]?[0-9]{1,4})?")
_LINE_SUFFIX = re.compile(r",? line \d+, column \d+\s*$")
_TOO_DEEP = etree.XPath("/*" * (MAX_DEPTH + 1) + "[1]")  # the first element below MAX_DEPTH levels
_RESOURCES = etree.XPath("//*[namespace-uri() = $ns and contains($upper, substring(local-name(), 1, 1))]",
                         smart_strings=False).__call__


def parse_xml(raw: bytes, name: str) -> dict:
    """The JSON-form dict of the FHIR resource or Bundle in the XML document `raw` (file `name`)."""
    if len(raw) > MAX_BYTES:
        raise InputError(f"{name}: XML input of {len(raw):,} bytes is over the limit of {MAX_BYTES:,} bytes; split it")
    if _has_doctype(raw):
        raise InputError(f"{name}: DOCTYPE not allowed in FHIR XML (no DTDs or entities are accepted)")
    root = _parse(raw, name)
    ns, local = _qname(root)
    if ns != FHIR_NS:
        where = f"in namespace {ns}" if ns else "in no namespace"
        raise NotFhirError(name, f"root element <{local}> is {where}, not {FHIR_NS}: not a FHIR resource")
    if not _RESOURCE_NAME.fullmatch(local):
        raise NotFhirError(name, f"root element <{local}> is no FHIR resource type: not a FHIR resource")
    try:
        return _Converter(name).resource(root, _document_release(root))
    except InputError:
        raise
    except Exception as e:  # a boundary: never a traceback for what a file holds
        raise InputError(f"{name}: cannot convert the FHIR XML: {type(e).__name__}: {e}".splitlines()[0]) from None


# --- reading the XML safely -----------------------------------------------------------------------

def _has_doctype(raw: bytes) -> bool:
    """Whether the prolog (before the root element) holds a DOCTYPE."""
    head = raw[:4]
    encoding = None
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        encoding = "utf-32"
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif len(head) == 4 and b"\x00" in head:  # no BOM: guess UTF-16/32 and its byte order by the zeros
        zeros = (head[0] == 0, head[1] == 0, head[2] == 0, head[3] == 0)
        encoding = {(False, True, True, True): "utf-32-le", (True, True, True, False): "utf-32-be",
                    (False, True, False, True): "utf-16-le", (True, False, True, False): "utf-16-be"}.get(zeros)
    if encoding:
        text = raw.decode(encoding, errors="replace").lstrip("\ufeff")
        prolog = _PROLOG_TEXT.match(text)
        assert prolog is not None  # the pattern matches the empty string
        rest = text[prolog.end():][:9].encode("ascii", errors="replace")
    else:
        body = raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw
        prolog_bytes = _PROLOG.match(body)
        assert prolog_bytes is not None  # the pattern matches the empty string
        rest = body[prolog_bytes.end():][:9]
    return rest.upper() == b"<!DOCTYPE"


def _parse(raw: bytes, name: str):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                             huge_tree=False, remove_pis=True)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as e:
        msg = _LINE_SUFFIX.sub("", str(e.msg or e)).replace("\n", " ").strip()
        if "Excessive depth" in msg:
            raise InputError(f"{name}: line {e.lineno}: XML nested deeper than {MAX_DEPTH} levels; refused") from None
        if "entity" in msg.lower():  # never echo what an entity points at
            msg = "an entity reference (entities are not allowed)"
        line = f"line {e.lineno}: " if e.lineno else ""
        raise InputError(f"{name}: {line}not well-formed XML: {msg}") from None
    except (ValueError, LookupError) as e:
        raise InputError(f"{name}: not readable as XML: {e}".splitlines()[0]) from None
    if root is None:
        raise InputError(f"{name}: not well-formed XML: no root element")
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise InputError(f"{name}: DOCTYPE not allowed in FHIR XML (no DTDs or entities are accepted)")
    too_deep = _TOO_DEEP(root)
    if too_deep:
        raise InputError(f"{name}: line {too_deep[0].sourceline}: XML nested deeper than {MAX_DEPTH} levels; refused")
    return root


def _qname(el) -> tuple[str | None, str]:
    return _split(el.tag)


@lru_cache(maxsize=4096)
def _split(tag: str) -> tuple[str | None, str]:
    if tag[:1] == "{":
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def _elements(el):
    return el.iterchildren(etree.Element)  # elements only: no comments, no entity references


# --- the models: what each element is ---------------------------------------------------------------

@cache
def _fields(cls) -> dict:
    return {(f.alias or n): f for n, f in cls.model_fields.items() if not n.endswith("__ext") and n != "fhir_comments"}


@lru_cache(maxsize=65536)  # names come from the input: bounded
def _field(version: str, cls, name: str) -> tuple[bool, str, object] | None:
    """(is_list, kind, class of a complex type) of element `name` of cls; None if cls has no such element.
    kind: complex, resource, xhtml, boolean, integer, decimal, string."""
    if name in _EXTENSIONS:
        return True, "complex", _class(version, "Extension")
    f = _fields(cls).get(name) if cls is not None else None
    if f is None:
        return None
    text = str(f.annotation)
    is_list = "List[" in text or "list[" in text
    m = _TYPE.search(text)
    if m:
        if m.group(1) == "Resource":
            return is_list, "resource", None
        return is_list, "complex", _class(version, m.group(1), cls.__module__)
    if "Xhtml" in text:
        kind = "xhtml"
    elif "Integer64" in text:
        kind = "string"  # R5 integer64 is a JSON string
    elif re.search(r"\bbool\b", text):
        kind = "boolean"
    elif "Decimal" in text:
        kind = "decimal"
    elif re.search(r"\bint\b", text):
        kind = "integer"
    else:
        kind = "string"
    return is_list, kind, None


def _resource_class(version: str, rtype: str):
    return _class(version, rtype) if _RESOURCE_NAME.fullmatch(rtype) else None


def _typed(text: str, kind: str):
    if kind == "boolean":
        return {"true": True, "false": False}.get(text, text)
    try:
        if kind == "integer" and _INTEGER.fullmatch(text):
            return int(text)
        if kind == "decimal":
            m = _DECIMAL.fullmatch(text)
            if m:
                if not (m.group(1) or m.group(2)):
                    return int(text)
                value = float(text)
                return value if math.isfinite(value) else text
    except ValueError:
        pass
    return text


# --- which release ------------------------------------------------------------------------------

def _told(el) -> str | None:
    names = Counter(_qname(c)[1] for c in _elements(el))
    pseudo: dict = {"resourceType": _qname(el)[1], **{k: True for k in names}}
    if pseudo["resourceType"] == "Encounter" and names.get("class", 0) > 1:
        pseudo["class"] = []
    return telling_version(pseudo)


def _document_release(root) -> str:
    """The release most resources of the document tell, R4 when none does."""
    votes = Counter(filter(None, map(_told, _RESOURCES(root, ns=FHIR_NS, upper="ABCDEFGHIJKLMNOPQRSTUVWXYZ"))))
    return "R5" if votes["R5"] > votes["R4"] else "R4"


def _misses(el, version: str, cls) -> int:
    """How many elements under el (nested resources not counted) the release's models do not take."""
    n = 0
    seen = set()
    element_cls = None
    for c in _elements(el):
        ns, key = _qname(c)
        if ns != FHIR_NS:
            continue
        again = key in seen
        seen.add(key)
        info = _field(version, cls, key)
        if info is None:
            n += 1
            continue
        is_list, kind, sub = info
        if kind in ("resource", "xhtml"):
            continue
        if kind == "complex":
            if c.get("value") is not None:
                n += 1
            n += _misses(c, version, sub)
        else:
            element_cls = element_cls or _class(version, "Element")
            n += _misses(c, version, element_cls)
        if again and not is_list:
            n += 1
    return n


# --- the conversion -----------------------------------------------------------------------------

class _Converter:
    def __init__(self, name: str):
        self.name = name

    def resource(self, el, hint: str) -> dict:
        rtype = _qname(el)[1]
        version = _told(el)
        if not version:
            tried = []
            for v in (hint, "R5" if hint == "R4" else "R4"):
                cls = _resource_class(v, rtype)
                n = _misses(el, v, cls) if cls is not None else math.inf
                tried.append((n, v))
                if n == 0:
                    break
            version = min(tried, key=lambda t: t[0])[1]  # a tie keeps the hint
        out = {"resourceType": rtype}
        self.children(out, el, version, _resource_class(version, rtype))
        return out

    def children(self, out: dict, el, version: str, cls) -> None:
        groups: dict[str, list] = {}
        for c in _elements(el):
            ns, key = _qname(c)
            if ns not in (FHIR_NS, XHTML_NS):
                where = f"in namespace {ns}" if ns else "in no namespace"
                raise InputError(f"{self.name}: line {c.sourceline}: element <{key}> is {where}, not {FHIR_NS}")
            groups.setdefault(key, []).append(c)
        for key, items in groups.items():
            info = _field(version, cls, key)
            is_list, kind, sub = info if info else (False, None, None)
            many = is_list or len(items) > 1
            first = items[0]
            if kind == "xhtml" or _qname(first)[0] == XHTML_NS:
                values: list = [self.xhtml(c) for c in items]
            elif kind == "resource" or (kind is None and any(_qname(g)[1][:1].isupper() for g in _elements(first))):
                values = [self.wrapped(c, version) for c in items]
            elif (kind is not None and kind != "complex") or (kind is None and first.get("value") is not None):
                self.primitives(out, key, items, kind or "string", many, version)
                continue
            else:
                values = [self.complex(c, version, sub) for c in items]
            out[key] = values if many else values[0]

    def complex(self, el, version: str, cls) -> dict:
        out = {}
        if el.get("id") is not None:
            out["id"] = el.get("id")
        if el.get("url") is not None and _qname(el)[1] in _EXTENSIONS:
            out["url"] = el.get("url")
        if len(el):
            self.children(out, el, version, cls)
        return out

    def primitives(self, out: dict, key: str, items: list, kind: str, many: bool, version: str) -> None:
        values, extras = [], []
        for c in items:
            text = c.get("value")
            values.append(None if text is None else _typed(text, kind))
            extra = {}
            if c.get("id") is not None:
                extra["id"] = c.get("id")
            if len(c):
                self.children(extra, c, version, _class(version, "Element"))
            extras.append(extra or None)
        if many:
            if any(v is not None for v in values):
                out[key] = values
            if any(extras):
                out["_" + key] = extras
        else:
            if values[0] is not None:
                out[key] = values[0]
            if extras[0]:
                out["_" + key] = extras[0]

    def wrapped(self, el, version: str) -> dict:
        inner = list(_elements(el))
        if not inner:
            return {}
        ns, rtype = _qname(inner[0])
        if len(inner) > 1 or ns != FHIR_NS or not _RESOURCE_NAME.fullmatch(rtype):
            raise InputError(f"{self.name}: line {el.sourceline}: <{_qname(el)[1]}> must hold exactly one resource "
                             "element (such as <Patient>)")
        return self.resource(inner[0], version)

    @staticmethod
    def xhtml(el) -> str:
        div = copy.deepcopy(el)
        div.tail = None
        etree.cleanup_namespaces(div)
        return etree.tostring(div, encoding="unicode", with_tail=False)
