"""Validation by known shapes: fhir.resources builds a model object for every element of a resource
(about 0.6 ms a resource), while a study's thousands of resources come in a few dozen shapes (the
example's 13,774 to-fhir resources in 28).

A resource's shape is its keys in order, the JSON type of each value, the length of each list of
objects, and its resourceType. The first resource of a shape is validated whole by fhir.resources;
when it is valid, the shape is remembered with, for each leaf (a primitive value, or a list of them),
the pydantic validator of its element, made from the model field fhir.resources declares for it. A
later resource of that shape is valid when each of its leaves passes its element's validator: the
model-level rules of fhir.resources (no unknown element, required elements present, one value[x], no
null in a list of elements, a primitive's extension) look at the shape alone, so they held for the
first. A leaf that fails, or a shape not seen, sends the resource to fhir.resources whole: an invalid
resource always gets fhir.resources' own reason; only valid ones take the short way.
tests/test_known_shapes.py checks that both give the same verdict on mutated resources.

Shapes whose elements hold whole resources (contained, Bundle.entry.resource) are validated whole
every time: the model of such an element depends on the value's resourceType.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

MAX_SHAPES = 4096  # a hospital's input may vary more than ours; past this, new shapes are validated whole

_END = object()  # closes an object in a shape's tokens
_shapes: dict[tuple, tuple[Callable[[Any], Any], ...] | None] = {}  # shape -> leaf validators (None: whole)


class Shape:
    """A resource's shape (a hashable key) and its leaves, in the order the key lists them."""
    __slots__ = ("key", "leaves")

    def __init__(self, resource: dict, version: str):
        tokens: list = [version]
        self.leaves: list = []
        _walk(resource, tokens, self.leaves)
        self.key = tuple(tokens)

    def passes(self) -> bool:
        """A valid shape seen before, and every leaf valid for its element."""
        checks = _shapes.get(self.key)
        if checks is None:
            return False
        try:
            for check, leaf in zip(checks, self.leaves, strict=True):
                check(leaf)
        except Exception:  # noqa: BLE001 - any failure sends the resource to the whole validation, which decides
            return False
        return True

    def learn(self, resource: dict, model: type) -> None:
        """Remember the shape of a resource fhir.resources has just found valid (model: its class)."""
        if self.key in _shapes or len(_shapes) >= MAX_SHAPES:
            return
        checks: list[Callable[[Any], Any]] = []
        _shapes[self.key] = tuple(checks) if _leaf_checks(model, resource, checks) else None


def _objects(value: Any) -> bool:
    """A non-empty list of objects: walked item by item (any other list is one leaf)."""
    return type(value) is list and bool(value) and all(type(item) is dict for item in value)


def _names_model(key: str, value: Any) -> bool:
    """The resourceType: part of the shape (it chooses the model), not a leaf."""
    return key == "resourceType" and type(value) is str


def _walk(node: dict, tokens: list, leaves: list) -> None:
    for key, value in node.items():
        tokens.append(key)
        if type(value) is dict:
            tokens.append(dict)
            _walk(value, tokens, leaves)
            tokens.append(_END)
        elif _objects(value):
            tokens.append(len(value))
            for item in value:
                _walk(item, tokens, leaves)
                tokens.append(_END)
        elif _names_model(key, value):
            tokens.append(value)
        else:
            tokens.append(type(value))
            leaves.append(value)


def _leaf_checks(model: Any, node: dict, checks: list) -> bool:
    """The validators of node's leaves, in _walk's order, added to checks (node: valid for model); False
    when the shape cannot be checked leaf by leaf, and its resources are validated whole."""
    fields = _fields(model)
    for key, value in node.items():
        if _names_model(key, value):
            continue
        if key not in fields:
            return False
        element, model_of_element = _element(fields[key].annotation)
        if element == "resource":  # its model is the resourceType's
            return False
        if type(value) is dict or _objects(value):
            if element == "primitive" or not all(_leaf_checks(model_of_element, item, checks)
                                                 for item in (value if type(value) is list else [value])):
                return False
        elif element == "complex" and value is not None:
            return False  # an element's model given something else (a list with nulls, say)
        else:
            checks.append(_field_check(model, key))
    return True


@cache
def _fields(model: Any) -> dict:
    """The model's fields by their JSON name."""
    return {(info.alias or name): info for name, info in model.model_fields.items()}


@cache
def _field_check(model: Any, key: str) -> Callable[[Any], Any]:
    """pydantic's validator of one field, as the model declares it (its type and its constraints)."""
    from pydantic import TypeAdapter

    return TypeAdapter(_fields(model)[key].rebuild_annotation()).validate_python


def _element(annotation: Any) -> tuple[str, Any]:
    """What a field holds (its list's items): ("primitive", None), ("complex", the element's model) or
    ("resource", None)."""
    from fhir_core.types import FhirBase, FhirElementOrResourceBase

    annotation = _required(annotation)
    if typing.get_origin(annotation) is list:
        annotation = _required(typing.get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        if issubclass(annotation, FhirElementOrResourceBase):
            return "resource", None
        return "complex", annotation.get_model_klass()
    return "primitive", None


def _required(annotation: Any) -> Any:
    """X of Optional[X] (X | None)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _required(args[0])
    return annotation
