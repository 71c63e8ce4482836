"""The package folder against its manifest.json (manifest.py): every file listed is there with its size
and sha256, and every dataset, define or report in the folder is listed. A package changed after
delivery, or a file slipped into it, is seen before anyone relies on it."""

from __future__ import annotations

from pathlib import PurePath

from ..manifest import MANIFEST, sha256
from .context import Context
from .registry import check

RULE = "TCIM-MANIFEST"
# what a package is made of: datasets (XPT, Dataset-JSON), define.xml/.html, the reports
PACKAGE_SUFFIXES = {".xpt", ".sas7bdat", ".json", ".ndjson", ".xml", ".html", ".csv"}


@check("manifest", RULE)
def manifest(ctx: Context):
    """Each file manifest.json lists exists with the listed size and sha256; every .xpt, .json, .xml,
    .html, .csv in the folder is listed. No manifest.json: one info finding (nothing to verify)."""
    if ctx.directory is None:
        return  # datasets in memory (to-sdtm checks its package before writing the manifest)
    if ctx.manifest is None:
        yield ctx.finding("info", RULE, "MANIFEST_ABSENT",
                          f"the package has no {MANIFEST}: its files cannot be verified by checksum")
        return
    listed = set()
    for entry in ctx.manifest["outputs"]:
        name = entry["path"]
        listed.add(name)
        path = ctx.directory / name
        if PurePath(name).name != name or name in ("", ".", ".."):
            # the manifest only ever names files of the folder: never read a path that leads elsewhere
            yield ctx.finding("error", RULE, "MANIFEST_PATH", f"{MANIFEST} lists {name!r}, not a file of the package",
                              file=name, value=name)
        elif not path.is_file():
            yield ctx.finding("error", RULE, "MANIFEST_MISSING", f"{name} is listed in {MANIFEST} but absent",
                              file=name)
        elif path.stat().st_size != entry["bytes"]:
            size = path.stat().st_size
            yield ctx.finding("error", RULE, "MANIFEST_BYTES", f"{name} has {size} bytes, {MANIFEST} says "
                              f"{entry['bytes']}: changed since it was written", file=name, value=size)
        elif (digest := sha256(path)) != entry["sha256"]:
            yield ctx.finding("error", RULE, "MANIFEST_SHA256", f"{name} has sha256 {digest}, {MANIFEST} says "
                              f"{entry['sha256']}: changed since it was written", file=name, value=digest)
    for path in sorted(ctx.directory.iterdir()):
        if (path.suffix.lower() in PACKAGE_SUFFIXES and path.name not in listed and path.name != MANIFEST
                and not path.name.startswith(".") and path.is_file()):
            yield ctx.finding("error", RULE, "MANIFEST_UNLISTED", f"{path.name} is in the package but not in "
                              f"{MANIFEST}: it cannot be verified", file=path.name)
