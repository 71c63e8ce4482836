"""The output directory of to-sdtm is one package: replaced whole, or left as it was.

A run builds its package in a staging folder beside `--out` (same parent, so the same file system) and
swaps it in with one directory rename. Files of an earlier run that the new package does not contain
never survive (an unmasked ex.xpt under a masked delivery), and a run that fails or is killed at any
moment leaves the previous package byte for byte as it was:

- Linux: renameat2(RENAME_EXCHANGE) swaps the staging folder and `--out` atomically; the old package,
  now in the staging folder's place, is then removed.
- Elsewhere (or a file system that refuses the exchange): `--out` is renamed aside, then the staging
  folder renamed into place. A run killed between the two renames leaves no `--out` and the old
  package aside; the next run puts it back before anything else.

Beside `--out` live only names of this module's own: while a run lasts, its lock (`.NAME.tcim-lock`)
and staging folder; after a killed run, those and an old package set aside (`.NAME.tcim-*`, removed or
restored by the next run); and `NAME.failed-run-report.json`, the report of the last failed run (a
package never holds the report of a run that did not write it).

A second run into the same `--out` while one is running is refused (an flock on the lock file, released
by the kernel when a run dies, so a killed run never leaves a stale lock). An `--out` holding files the
tool did not write (none of its manifest's) is refused, naming one: a run never deletes a user's files.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
import uuid
from pathlib import Path

from .atomic import umask
from .errors import InputError, OutputError
from .manifest import MANIFEST, read_manifest

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def failed_report_path(out: Path) -> Path:
    return out.parent / f"{out.name}.failed-run-report.json"


class PackageDir:
    """with PackageDir(out) as staging: write the package into `staging`, then call commit()."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.staging: Path | None = None
        self._lock_fd: int | None = None
        self.committed = False

    # -- entering: check, lock, recover, stage -----------------------------------------------------
    def __enter__(self) -> Path:
        out = self.out
        if out.exists() and not out.is_dir():
            raise OutputError(f"{out}: exists and is not a directory")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{out}: cannot create the output directory: {e.strerror or e}") from None
        self._lock()
        try:
            self._recover()
            self._refuse_foreign_files()
            if out.is_dir() and not os.access(out, os.W_OK):
                raise OutputError(f"{out}: the output directory is not writable")
            self.staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tcim-staging-", dir=out.parent))
            os.chmod(self.staging, 0o777 & ~umask())
        except BaseException:
            self._unlock()
            raise
        return self.staging

    def _lock(self) -> None:
        import fcntl  # POSIX; the project's supported platforms (see README) all have it

        path = self._lock_path = self.out.parent / f".{self.out.name}.tcim-lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
        except OSError as e:
            raise OutputError(f"{self.out}: cannot create the output directory: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the holder before us removes the file as it ends: a lock on a file no longer at that path
            # locks nothing, so a run that wins the lock on a removed file stops too
            if os.fstat(fd).st_ino != os.stat(path).st_ino:
                raise OSError
        except OSError:
            os.close(fd)
            raise OutputError(f"{self.out}: another tcim-interop run is writing this package; "
                              "wait for it to end, or choose another --out") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            self._lock_path.unlink(missing_ok=True)  # removed while still held: nothing left beside --out
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _leftovers(self, kind: str) -> list[Path]:
        return sorted(self.out.parent.glob(f".{self.out.name}.tcim-{kind}-*"))

    def _recover(self) -> None:
        """Undo what a killed run left: an old package set aside with no package in place goes back;
        staging folders and old packages are removed."""
        old = self._leftovers("old")
        if old and not self.out.exists():
            os.rename(old[-1], self.out)
            old = old[:-1]
        for p in old + self._leftovers("staging"):
            shutil.rmtree(p, ignore_errors=True)

    def _refuse_foreign_files(self) -> None:
        if not self.out.is_dir():
            return
        present = sorted(p.name for p in self.out.iterdir())
        if not present:
            return
        foreign = [n for n in present if n not in listed_files(self.out)]
        if foreign:
            raise OutputError(f"{self.out}: holds {foreign[0]!r}, which no earlier tcim-interop run wrote "
                              f"(not in its {MANIFEST}); the package replaces the whole directory, so choose "
                              "an empty or new --out")

    # -- committing: the swap ----------------------------------------------------------------------
    def commit(self) -> None:
        assert self.staging is not None
        if not self.out.exists():
            os.rename(self.staging, self.out)
        elif not _exchange(self.staging, self.out):
            aside = self.out.parent / f".{self.out.name}.tcim-old-{uuid.uuid4().hex}"
            os.rename(self.out, aside)  # killed here: no --out, the old package aside; _recover restores it
            os.rename(self.staging, self.out)
            self.staging = aside
        self.committed = True
        failed_report_path(self.out).unlink(missing_ok=True)  # the last run did not fail

    def __exit__(self, *exc) -> None:
        try:
            if self.staging is not None and (self.committed or exc[0] is not None):
                shutil.rmtree(self.staging, ignore_errors=True)  # the old package, or an unfinished one
        finally:
            self._unlock()


def listed_files(out: Path) -> set[str]:
    """The names an earlier run wrote into `out`: its manifest and the outputs the manifest lists
    (none when the manifest is absent or unreadable: then nothing there is known to be the tool's)."""
    try:
        doc = read_manifest(out)
    except InputError:
        return set()
    return {MANIFEST} | {o["path"] for o in doc["outputs"]} if doc else set()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux renameat2); False where that is not available."""
    renameat2 = getattr(_libc(), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this kernel or file system cannot
        return False
    raise OutputError(f"{b}: cannot replace the package: {os.strerror(errno)}")


def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return None
