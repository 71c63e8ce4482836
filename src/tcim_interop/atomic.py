"""The one way output files are written: whole, or not at all.

The bytes go to a temporary file beside the target, which is then renamed over it: a run that fails
(a full disk, an interrupt) leaves the previous file or none, never a partial one. The temporary file
is made with mkstemp (a unique name, so two runs writing into the same folder do not collide) and then
given the mode any file the user writes would have: mkstemp's 0600 would hide the output from the
user's group.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import OutputError


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes | str | Iterable[bytes]) -> Path:
    """Write data (bytes, text as UTF-8, or chunks of bytes written as they come) to path; an OSError
    becomes an OutputError naming the file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb", buffering=1 << 20) as f:
            if isinstance(data, str):
                data = data.encode("utf-8")
            for chunk in (data,) if isinstance(data, bytes) else data:
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write: {e.strerror or e}") from None
        raise
    return path
