"""YAML files of the specs: parsed safely, fast, and any failure a SpecError naming the file."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import SpecError

# libyaml's parser when PyYAML was built with it (5x faster; the same constructors and resolvers)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    return yaml.load(text, Loader=_LOADER)


def read_yaml(path: Path) -> dict:
    """A YAML mapping, or a SpecError naming the file."""
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(doc, dict):
        raise SpecError(f"{path}: a spec must be a YAML mapping")
    return doc
