"""Validate resources with fhir.resources: its R4B package for R4, its root package for R5.

The release is imported explicitly here and nowhere else, so that what "the root" means next year
cannot change what we validate against.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def model_class(version: str, resource_type: str):
    if version == "R4":
        from fhir.resources.R4B import get_fhir_model_class
    else:
        from fhir.resources import get_fhir_model_class
    try:
        return get_fhir_model_class(resource_type)
    except (KeyError, ValueError, AttributeError):
        return None


def validation_error(resource: dict, version: str) -> str | None:
    """None when the resource is valid in its release, else a one-line reason."""
    cls = model_class(version, resource.get("resourceType", ""))
    if cls is None:
        return f"unknown {version} resource type {resource.get('resourceType')!r}"
    from pydantic import ValidationError

    try:
        cls.model_validate(resource)
    except ValidationError as e:
        errs = e.errors()
        first = errs[0]
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "__root__")
        msg = str(first.get("msg", "")).replace("Value error, ", "")
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        return f"invalid {version} {resource.get('resourceType')}: {loc or '(resource)'}: {_short(msg)}{more}"
    except (TypeError, ValueError, RecursionError) as e:
        return f"invalid {version} {resource.get('resourceType')}: {_short(str(e))}"
    return None


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
