"""The shape of FHIR elements (is it a list? what type is it?), read off the fhir.resources models,
so that writing a path such as "event.coding.display" creates lists exactly where FHIR has them."""

from __future__ import annotations

import importlib
import re
from functools import lru_cache

_TYPE = re.compile(r"abc\.(\w+)Type\b")


def _package(version: str) -> str:
    return "fhir.resources.R4B" if version == "R4" else "fhir.resources"


@lru_cache(maxsize=None)
def _class(version: str, name: str, near_module: str = ""):
    for module in filter(None, (near_module, f"{_package(version)}.{name.lower()}")):
        try:
            cls = getattr(importlib.import_module(module), name, None)
        except ImportError:
            cls = None
        if cls is not None:
            return cls
    return None


@lru_cache(maxsize=None)
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
