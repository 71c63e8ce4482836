"""YAML files of the specs: parsed safely, fast, and any failure a SpecError naming the file."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import yaml

from ..errors import SpecError

# libyaml's parser when PyYAML was built with it (5x faster; the same constructors and resolvers)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    """The document, a fresh copy for each caller (the loader edits what it reads)."""
    return pickle.loads(_parsed(text))


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> bytes:
    # A process that loads the same specs again (an integration converting message after message, the
    # test suite) parses each text once: 0.13 s for the specs, against 1 ms to unpickle a copy.
    return pickle.dumps(yaml.load(text, Loader=_LOADER))


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
