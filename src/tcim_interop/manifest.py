"""manifest.json: what a delivery is made of, so that a regulator can re-verify it by checksum.

Lists every output file with its sha256 and size, every input file with its sha256 (by a neutral label), the tool's version,
and the specs' version (a sha256 over every file of mappings/, in name order): the same inputs, options
and specs give the same outputs, byte for byte, and therefore the same manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .atomic import write_atomic
from .errors import InputError
from .json_files import dump_json

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def specs_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(directory).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def write_manifest(out: Path, outputs: list[Path], inputs: list[dict], mappings_dir: Path, options: dict) -> Path:
    """inputs: Report.inputs(), each input file's label, sha256 and size (its path only when asked)."""
    from . import __version__

    doc = {
        "tool": {"name": "tcim-interop", "version": __version__},
        "specs": {"directory": mappings_dir.name, "sha256": specs_digest(mappings_dir)},
        "options": options,
        "inputs": inputs,
        "outputs": [{"path": p.name, "sha256": sha256(p), "bytes": p.stat().st_size} for p in sorted(outputs)],
    }
    return write_atomic(out / MANIFEST, dump_json(doc))


def read_manifest(directory: Path) -> dict | None:
    """The package's manifest.json, or None when it has none; one that cannot be read, or whose
    `outputs` is not a list of {path, sha256, bytes}, is an InputError."""
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: not a readable manifest: {e}") from None
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("path"), str) and isinstance(o.get("sha256"), str)
            and type(o.get("bytes")) is int for o in outputs):
        raise InputError(f"{path}: not a readable manifest: outputs must be a list of {{path, sha256, bytes}}")
    return doc
