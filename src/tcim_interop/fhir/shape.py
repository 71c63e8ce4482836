"""The shape of FHIR elements (is it a list? what type is it?), read off the fhir.resources models,
so that writing a path such as "event.coding.display" creates lists exactly where FHIR has them."""

from __future__ import annotations

import importlib
import re
from functools import cache

_TYPE = re.compile(r"abc\.(\w+)Type\b")


def _package(version: str) -> str:
    return "fhir.resources.R4B" if version == "R4" else "fhir.resources"


@cache
def _class(version: str, name: str, near_module: str = ""):
    """The model of a type; a backbone element's (ResearchSubjectProgress) is found in the module of
    the resource it belongs to (the longest leading part of its name that is one)."""
    words = re.findall(r"[A-Z][a-z0-9]*", name)
    owners = ["".join(words[:n]).lower() for n in range(len(words), 0, -1)]
    for module in filter(None, (near_module, *(f"{_package(version)}.{o}" for o in owners))):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            cls = None
        if cls is not None:
            return cls
    return None


@cache
def element(version: str, resource_type: str, path: tuple[str, ...]) -> tuple[bool, str | None]:
    """(is_list, type name) of the element at path under the resource type; (False, None) if unknown."""
    cls = _class(version, resource_type)
    is_list, type_name = False, None
    for name in path:
        if cls is None or name not in cls.model_fields:
            return False, None
        text = str(cls.model_fields[name].annotation)
        is_list = "List[" in text or "list[" in text
        m = _TYPE.search(text)
        type_name = m.group(1) if m else None
        cls = _class(version, type_name, cls.__module__) if type_name else None
    return is_list, type_name


@cache
def has_element(version: str, resource_type: str, path: tuple[str, ...]) -> bool:
    """Whether the resource type has the element at path (MedicationStatement has dosage.doseAndRate,
    not MedicationAdministration's dosage.dose)."""
    cls = _class(version, resource_type)
    for name in path:
        if cls is None or name not in cls.model_fields:
            return False
        m = _TYPE.search(str(cls.model_fields[name].annotation))
        cls = _class(version, m.group(1), cls.__module__) if m else None
    return True


# -- the JSON types of a whole resource (to-sdtm --fast) -------------------------------------------
# --fast skips the fhir.resources validation, but every reader of a resource (row algorithms, trial
# design, restore) trusts the JSON types FHIR gives its elements. Checking only those types, against
# the same models, is a fraction of the full validation and leaves no reader a number where it
# expects a list.

_JSON_KIND = {type(None): "null", dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "a boolean"}
# a primitive's kind -> the Python types of its JSON values, and what FHIR has there
_PRIMITIVES = {"string": ((str,), "a string"), "boolean": ((bool,), "a boolean"),
               "integer": ((int, float), "an integer"),  # 5.0 is taken by the full validation, 5.5 is not
               "decimal": ((int, float, str), "a number")}  # so is a decimal written as a string ("40")
_OBJECT = ((dict,), "an object")
_FIELDS: dict[type, dict[str, tuple]] = {}


def _primitive(text: str) -> str:
    if "Decimal()" in text:
        return "decimal"
    if re.search(r"\b(Integer|PositiveInt|UnsignedInt)\(", text):
        return "integer"
    return "boolean" if text.startswith("bool") else "string"


def _fields(cls) -> dict[str, tuple]:
    """JSON name -> (is a list, the Python types its values may have, what FHIR has there, the element's
    class to look into or None, whether a boolean passes for a number of those types)."""
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = {}
        for name, info in cls.model_fields.items():
            if name == "fhir_comments":
                continue
            text = str(info.annotation)
            m = _TYPE.search(text)
            sub = _class_of(cls, m.group(1)) if m else None
            kind = _PRIMITIVES[_primitive(text)] if not m else _OBJECT
            numeric = int in kind[0] and bool not in kind[0]
            fields[info.alias or name] = ("List[" in text or "list[" in text, kind[0], kind[1], sub, numeric)
    return fields


def _class_of(owner, type_name: str):
    """The class of an element's type; None for one not looked into (a contained resource, a primitive's
    extension): only its being an object is checked."""
    if type_name in ("Resource", "FHIRPrimitiveExtension"):
        return None
    version = "R4" if ".R4B." in owner.__module__ else "R5"
    return _class(version, type_name, owner.__module__)


def shape_error(resource: dict, version: str) -> str | None:
    """None when every element of the resource has the JSON type FHIR gives it (array or not, object,
    string, number, boolean), else a one-line reason naming the first element that has not. Elements
    FHIR does not know are left alone: no reader takes them."""
    rtype = resource.get("resourceType")
    cls = _class(version, rtype) if isinstance(rtype, str) else None
    if cls is None:
        return None
    try:
        found = _misfit(resource, cls)
    except RecursionError:
        return f"malformed {version} {rtype}: elements nested too deep"
    if found is None:
        return None
    path, value, what = found
    return f"malformed {version} {rtype}: {rtype}{''.join(path)}: {_JSON_KIND.get(type(value), 'a value')} where FHIR has {what}"


def _misfit(node: dict, cls) -> tuple[list[str], object, str] | None:
    """The first element of the wrong type: (its path, built only on the way out; the value; what FHIR
    has there). Written for speed: it sees every element of every resource of a --fast run."""
    fields = _FIELDS.get(cls) or _fields(cls)
    for key, value in node.items():
        spec = fields.get(key)
        if spec is None or value is None:  # unknown, or null (which the full validation lets through)
            continue
        is_list, types, what, sub, numeric = spec
        found: tuple[list[str], object, str] | None
        if is_list is not (value.__class__ is list):
            return [f".{key}"], value, "an array" if is_list else "a single value"
        for i, item in enumerate(value) if is_list else ((0, value),):
            if item is None:
                if sub is None:  # in a primitive's array or its extensions' (_given), a null marks the
                    continue     # place of a value that has only its extension, or no extension
                found = ([], item, what)  # the readers of an array of elements take each item for one
            elif not isinstance(item, types) or numeric and (item.__class__ is bool or what == "an integer"
                                                           and item.__class__ is float and not item.is_integer()):
                found = ([], item, what)
            elif sub is not None:
                found = _misfit(item, sub)
            else:
                continue
            if found is not None:
                found[0].insert(0, f".{key}[{i}]" if is_list else f".{key}")
                return found
    return None
