"""Read SDTM datasets (SAS XPORT v5) for to-fhir, refusing what is not what it claims to be.

XPT v8 and SAS7BDAT are recognised by their first bytes and refused by name; a truncated or
unreadable file, a dataset without DOMAIN (or RDOMAIN for SUPPxx), or without the variables every
record needs, is an InputError naming the file.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .dataset import NOT_HELD, TRIAL_DESIGN, Dataset
from .xpt_rows import NAMESTR, Column, Layout, open_rows, pyreadstat_whole, read_whole, variables_of

XPT_V5 = b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"
XPT_V8 = b"HEADER RECORD*******LIBV8   HEADER RECORD!!!!!!!"
SAS7BDAT = bytes.fromhex("000000000000000000000000c2ea8160b31411cfbd92080009c7318c181f1011")
REQUIRED = {"": ("STUDYID", "DOMAIN", "USUBJID"), "SUPP": ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL",
                                                            "QNAM", "QLABEL", "QVAL"),
            "TRIAL": ("STUDYID", "DOMAIN"), "RELREC": ("STUDYID", "RDOMAIN", "USUBJID", "IDVAR", "IDVARVAL", "RELID")}


def discover_sdtm(directory: Path) -> list[Path]:
    if not directory.exists():
        raise InputError(f"{directory}: no such file or directory")
    if directory.is_file():
        return [directory]
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".xpt", ".sas7bdat"))
    # Dataset-JSON beside them (define.xml, run-report.json and manifest.json are not datasets)
    files += sorted(p for p in directory.iterdir() if p.suffix.lower() in (".json", ".ndjson")
                    and p.stem.isalnum() and len(p.stem) <= 8 and p.stem.lower() == p.stem
                    and p.stem not in ("manifest", "define"))
    if not files:
        raise InputError(f"{directory}: no .xpt or Dataset-JSON files")
    return files


def read_package(path: Path, every_file: bool = False, by_range: bool = False
                 ) -> tuple[dict[str, Dataset], dict[str, str]]:
    """The datasets of a package folder (or one file) by name, and the file each was read from. A
    dataset there as .xpt and as Dataset-JSON is read from the XPT (listed first); its Dataset-JSON twin
    is read too only with every_file (validate: a damaged file is an error even where its twin is sound).
    by_range: an XPT dataset's rows are read a range at a time where they can be (read_xpt)."""
    from .dataset_json import read_dataset_json

    datasets: dict[str, Dataset] = {}
    files: dict[str, str] = {}
    for f in discover_sdtm(path):
        if f.suffix.lower() in (".json", ".ndjson"):
            if f.stem.upper() in datasets and not every_file:  # parsed only to be dropped
                continue
            ds = read_dataset_json(f)
        else:
            ds = read_xpt(f, by_range)
        if ds.name not in datasets:
            datasets[ds.name], files[ds.name] = ds, f.name
    define = path / "define.xml"
    for name, versions in (dictionary_versions(define) if path.is_dir() and define.is_file() else {}).items():
        if name in datasets:
            datasets[name].dictionaries = versions
    return datasets, files


_ODM = "{*}"  # ODM 1.3 (Define-XML 2.x) or 1.2 (Define-XML 1.0, the CDISC pilot's)


def dictionary_versions(define: Path) -> dict[str, dict[str, str]]:
    """{dataset: {DICTIONARY: version}}: the external dictionaries (MedDRA ...) define.xml says a dataset's
    variables are coded in (ExternalCodeList Dictionary and Version of the CodeLists its ItemDefs refer
    to), the name in capitals as the specs' `dictionary`. define.xml describes the package and is no
    dataset of it: unreadable, it gives none."""
    from lxml import etree

    try:
        root = etree.parse(str(define), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except (OSError, etree.XMLSyntaxError):
        return {}
    external = {cl.get("OID"): (str(ext.get("Dictionary") or "").upper(), ext.get("Version"))
                for cl in root.iter(f"{_ODM}CodeList") if (ext := cl.find(f"{_ODM}ExternalCodeList")) is not None}
    lists = {item.get("OID"): ref.get("CodeListOID") for item in root.iter(f"{_ODM}ItemDef")
             if (ref := item.find(f"{_ODM}CodeListRef")) is not None}
    out: dict[str, dict[str, str]] = {}
    for group in root.iter(f"{_ODM}ItemGroupDef"):
        for ref in group.iter(f"{_ODM}ItemRef"):
            name, version = external.get(lists.get(ref.get("ItemOID")), ("", None))
            if name and version:
                out.setdefault(str(group.get("Name") or "").upper(), {})[name] = version
    return out


def read_xpt(path: Path, by_range: bool = False) -> Dataset:
    """The dataset of an XPT v5 file, checked. by_range: its rows are read a range at a time when they
    can be (sdtm/xpt_rows.py: to-fhir reads a part of the subjects at a time), else whole."""
    try:
        with path.open("rb") as f:
            head = f.read(80)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if head.startswith(SAS7BDAT[:32]) or path.suffix.lower() == ".sas7bdat":
        raise InputError(f"{path}: a SAS7BDAT file, not SAS XPORT v5; export it as XPT v5")
    if head.startswith(XPT_V8):
        raise InputError(f"{path}: SAS XPORT v8, not v5 (submissions use v5); export it as XPT v5")
    if not head.startswith(XPT_V5):
        raise InputError(f"{path}: not a SAS XPORT v5 file")
    size = path.stat().st_size
    if size % 80:  # XPT v5 is written in 80-byte records, the last one padded
        raise InputError(f"{path}: truncated XPT ({size} bytes is not a whole number of 80-byte records)")
    layout = _check_variables(path)
    try:
        if by_range and (rows := open_rows(path, layout)) is not None:
            frame, meta = None, rows.meta
        else:
            rows = None
            frame, meta = read_whole(path, layout) or pyreadstat_whole(path)
    except Exception as e:  # pyreadstat's ReadstatError for truncated or damaged files
        raise InputError(f"{path}: unreadable XPT (truncated or damaged): {' '.join(str(e).split())}") from None
    name = (meta.table_name or path.stem).upper()
    variables = variables_of(meta)
    required = REQUIRED["SUPP" if name.startswith("SUPP") else "TRIAL" if name in TRIAL_DESIGN
                        else "RELREC" if name == "RELREC" else ""]
    missing = [v for v in required if v not in meta.column_names]
    if missing:
        raise InputError(f"{path}: dataset {name} has no {', '.join(missing)}: not an SDTM dataset")
    for v in variables:
        if v.name in required and v.type != "Char":
            raise InputError(f"{path}: {v.name} must be character, is numeric")
    if frame is None:
        return Dataset(name, meta.file_label or "", variables, NOT_HELD, rows=rows)
    return Dataset(name, meta.file_label or "", variables, frame)


OBS = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"


def _check_variables(path: Path) -> Layout:
    """The variable descriptions (NAMESTR records) of the first member, checked before pyreadstat reads
    the file: it trusts them, and a crafted length (0, or more than a value can hold) gives shifted
    columns or a crash instead of an error. Returns where the rows are and how wide (xpt_rows.Layout)."""
    with path.open("rb") as f:
        head = f.read(800)
        at = head.find(NAMESTR)
        if at < 0 or at % 80:
            raise InputError(f"{path}: damaged XPT: no NAMESTR header record")
        member = head[at - 240:at - 160]  # the member header, three records before: its last digits give the NAMESTR size
        namestr = 136 if member[74:78] == b"0136" else 140
        try:
            count = int(head[at + 54:at + 58])
        except ValueError:
            raise InputError(f"{path}: damaged XPT: the NAMESTR header gives no variable count") from None
        f.seek(at + 80)
        records = f.read(count * namestr)
        end = at + 80 + -(-count * namestr // 80) * 80
        f.seek(end)
        if len(records) < count * namestr or not f.read(80).startswith(OBS):
            raise InputError(f"{path}: damaged XPT: the header counts {count} variables, not what follows it")
    names, position, columns = set(), 0, []
    for k in range(count):
        ns = records[k * namestr:(k + 1) * namestr]
        kind, length, pos = int.from_bytes(ns[0:2], "big"), int.from_bytes(ns[4:6], "big"), int.from_bytes(ns[84:88], "big")
        name = ns[8:16].decode("ascii", "replace").rstrip()
        what = f"{path}: damaged XPT: variable {k + 1} ({name})"
        if kind not in (1, 2):
            raise InputError(f"{what} has type {kind}, neither numeric (1) nor character (2)")
        low, high = (2, 8) if kind == 1 else (1, 200)
        if not low <= length <= high:
            raise InputError(f"{what} has length {length}, not {low} to {high}")
        if pos != position:
            raise InputError(f"{what} starts at byte {pos} of a record, not {position}")
        if name.upper() in names:
            raise InputError(f"{what} repeats a name")
        names.add(name.upper())
        columns.append(Column(name, kind == 2, pos, length))
        position += length
    return Layout(tuple(columns), position, end + 80, namestr)
