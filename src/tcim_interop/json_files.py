"""A JSON file read whole, every failure one line naming the file, as the caller's kind of error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson

from .errors import TcimError


def read_json(path: Path, error: type[TcimError]) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    except orjson.JSONDecodeError as e:
        raise error(f"{path}: not valid JSON: {e}") from None


def dump_json(doc: Any) -> str:
    """The project's JSON reports as people read them: indented, UTF-8 text as is, a final newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
