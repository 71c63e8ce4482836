"""A corpus of bad inputs for `tcim-interop to-sdtm`, each built from tests/data/mini-r4.json (2 subjects,
23 resources) or written by hand, run through the command line as a user would run it.

For every case: the exit code is the documented one (0 when only some resources are bad and the rest
convert; 1 only with --strict or when an XPT v5 rule would be broken; 2 for unreadable input, usage and
output problems); an error is one line naming the file (and the resource or line when known), never a
traceback; a failed run leaves no .xpt file. When the run completes, the run report's accounting adds
up (input = converted + rejected + out_of_scope, per resource type too), each bad resource is named among
the rejected with its reason and an error finding, and the same input with --strict exits 1 writing no
dataset. docs/bad-input.md tabulates what each case produces.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyreadstat
import pytest
from conftest import DATA
from typer.testing import CliRunner

from tcim_interop.cli import app
from tcim_interop.sdtm.text import MAX_BYTES, fold_ascii, join_text

runner = CliRunner()
MINI = json.loads((DATA / "mini-r4.json").read_text(encoding="utf-8"))
N_MINI = len(MINI["entry"])  # 23
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
AS_ROOT = pytest.mark.skipif(ROOT_USER, reason="running as root: root reads and writes whatever the mode bits say")
SUMMARY = re.compile(r"resources: (\d+) read = (\d+) converted \+ (\d+) rejected \+ (\d+) out of scope")
RESOURCE_TYPE = re.compile(r"^(\?|[A-Z][A-Za-z]*)$")


def _xml_ready() -> bool:
    """FHIR XML input is being written by someone else: its cases are xfail until it reads XML."""
    try:
        from tcim_interop.fhir.xml import parse_xml

        parse_xml(b'<Patient xmlns="http://hl7.org/fhir"><id value="p"/></Patient>', "probe.xml")
    except Exception as e:  # noqa: BLE001 - any failure means: not ready
        return "not supported yet" not in str(e)
    return True


XML = () if _xml_ready() else (pytest.mark.xfail(strict=False, reason="XML input being added"),)


# --- building inputs ------------------------------------------------------------------------------
def mini() -> dict:
    return copy.deepcopy(MINI)


def res(doc: dict, rid: str) -> dict:
    return next(e["resource"] for e in doc["entry"] if e["resource"].get("id") == rid)


def place(rid: str) -> str:
    return next(f"entry[{i}]" for i, e in enumerate(MINI["entry"]) if e["resource"].get("id") == rid)


def bundle(mutate: Callable[[dict], object], name: str = "in.json") -> Callable[[Path], list[Path]]:
    """mini-r4.json changed by mutate(doc) (in place), written as ASCII JSON (json escapes what is not)."""

    def build(d: Path) -> list[Path]:
        doc = mini()
        mutate(doc)
        f = d / name
        f.write_text(json.dumps(doc), encoding="ascii")
        return [f]

    return build


def raw(content: bytes | Callable[[], bytes], name: str = "in.json") -> Callable[[Path], list[Path]]:
    def build(d: Path) -> list[Path]:
        f = d / name
        f.write_bytes(content() if callable(content) else content)
        return [f]

    return build


def mini_text(replace: tuple[str, str] | None = None) -> bytes:
    text = json.dumps(MINI)
    if replace:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    return text.encode("utf-8")


def ndjson(edit: Callable[[list[str]], None]) -> Callable[[Path], list[Path]]:
    """mini-r4.json as bulk-data NDJSON (one resource a line, in entry order), lines changed by edit."""

    def build(d: Path) -> list[Path]:
        lines = [json.dumps(e["resource"]) for e in MINI["entry"]]
        edit(lines)
        f = d / "export.ndjson"
        f.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return [f]

    return build


def setter(rid: str, path: str, value) -> Callable[[dict], None]:
    """Set resource rid's element at dotted path (list items by index) to value."""

    def mutate(doc: dict) -> None:
        node = res(doc, rid)
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        node[keys[-1]] = value

    return mutate


def deleter(rid: str, *keys: str) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        for k in keys:
            del res(doc, rid)[k]

    return mutate


def nested_extension(depth: int) -> dict:
    ext = {"url": "http://example.org/leaf", "valueString": "x"}
    for i in range(depth):
        ext = {"url": f"http://example.org/level{i}", "extension": [ext]}
    return ext


HUGE_TERM = ("Dolor muscular intenso en el lugar de la inyeccion " * 20_000)[:1_000_000 - 1] + "x"


# --- checks on what a completed run wrote -----------------------------------------------------------
def xpt(out: Path, name: str):
    df, _ = pyreadstat.read_xport(str(out / f"{name}.xpt"))
    return df


def column_of(out: Path, dataset: str, var: str, where: tuple[str, str] | None = None) -> list:
    df = xpt(out, dataset)
    if where:
        df = df[df[where[0]] == where[1]]
    return list(df[var])


def expect_values(dataset: str, var: str, values: list, where: tuple[str, str] | None = None):
    def check(out: Path, report: dict) -> None:
        assert column_of(out, dataset, var, where) == values

    return check


def expect_missing(dataset: str, var: str, where: tuple[str, str]):
    """A numeric variable left empty (a study day of a partial date)."""

    def check(out: Path, report: dict) -> None:
        (value,) = column_of(out, dataset, var, where)
        assert value != value  # NaN: missing

    return check


def expect_term(text: str):
    """The AE's verbatim term reaches AETERM as printable ASCII (folded), and the change is reported."""

    def check(out: Path, report: dict) -> None:
        (term,) = column_of(out, "ae", "AETERM", ("AESPID", "AE-001-01"))
        assert term == fold_ascii(text).rstrip()
        assert term.isascii() and term.isprintable()
        folded = [f for f in report["findings"] if f["code"] == "ASCII_FOLDED" and f["source"] == "AdverseEvent/ae1"]
        assert folded and folded[0]["value"] == text

    return check


def check_huge(out: Path, report: dict) -> None:
    (term,) = column_of(out, "ae", "AETERM", ("AESPID", "AE-001-01"))
    supp = xpt(out, "suppae")
    parts = supp[supp["QNAM"].str.match(r"^AET[A-Z]*\d+$")]
    assert len(parts) > 4000
    assert all(len(q.encode("ascii")) <= 200 for q in supp["QVAL"])
    assert all(len(q) <= 8 for q in supp["QNAM"]), "QNAM longer than 8 characters"
    assert all(len(q) <= 40 for q in supp["QLABEL"]), "QLABEL longer than 40 characters"
    assert len(set(parts["QNAM"])) == len(parts)
    chunks = sorted(parts.itertuples(), key=lambda r: int(re.search(r"\d+$", r.QNAM).group()))
    assert len(term.encode()) <= MAX_BYTES
    assert join_text([term, *(r.QVAL for r in chunks)]) == HUGE_TERM  # one blank at each break


def check_armnrs(values: list[str]):
    def check(out: Path, report: dict) -> None:
        dm = xpt(out, "dm")
        assert list(dm["ARMNRS"]) == values
        assert all(not a or not b for a, b, n in zip(dm["ARMCD"], dm["ACTARMCD"], dm["ARMNRS"]) if n)

    return check


def check_finding(code: str, source: str, severity: str = "warning"):
    def check(out: Path, report: dict) -> None:
        assert any(f["code"] == code and f["source"] == source and f["severity"] == severity
                   for f in report["findings"]), f"no {severity} {code} for {source}"

    return check


def check_skipped(*names: str):
    def check(out: Path, report: dict) -> None:
        skipped = {Path(f["file"]).name for f in report["findings"] if f["code"] == "NOT_FHIR_FILE"}
        assert skipped == set(names)

    return check


def both(*checks):
    def check(out: Path, report: dict) -> None:
        for c in checks:
            c(out, report)

    return check


# --- the corpus -----------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    build: Callable[[Path], list[Path]]
    exit: int
    message: str = ""  # a fragment of the one-line error (exit != 0)
    where: tuple[str, ...] = ()  # what else the error line names: resource, line, entry
    names: str = "input"  # what the error line must name: "input" (first input), "out", or ""
    args: tuple[str, ...] = ()
    inputs: int | None = None  # resources read (exit 0)
    rejected: dict[str, str] = field(default_factory=dict)  # disposition resource -> reason fragment
    out_of_scope: dict[str, str] = field(default_factory=dict)  # resource type -> a reason of its counted group
    check: Callable[[Path, dict], None] | None = None
    out: Callable[[Path], Path] | None = None  # the --out directory, if not <tmp>/out
    marks: tuple = ()


def _out_parent_is_file(d: Path) -> Path:
    (d / "taken").write_text("x")
    return d / "taken" / "sdtm"


def _out_is_file(d: Path) -> Path:
    (d / "taken").write_text("x")
    return d / "taken"


def _out_read_only(d: Path) -> Path:
    out = d / "ro"
    out.mkdir()
    out.chmod(0o555)
    return out


def _unreadable(d: Path) -> list[Path]:
    f = d / "in.json"
    f.write_text(json.dumps(MINI))
    f.chmod(0o000)
    return [f]


def _directory(*extra: tuple[str, str], with_bundle: bool = True) -> Callable[[Path], list[Path]]:
    def build(d: Path) -> list[Path]:
        src = d / "export"
        src.mkdir()
        if with_bundle:
            (src / "bundle.json").write_text(json.dumps(MINI))
        for name, text in extra:
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_text(text)
        return [src]

    return build


def _missing(d: Path) -> list[Path]:
    return [d / "nope.json"]


def _dup(change: Callable[[dict], None] | None = None, full_url: str | None = None):
    def mutate(doc: dict) -> None:
        e = copy.deepcopy(doc["entry"][21])
        if change:
            change(e["resource"])
        if full_url:
            e["fullUrl"] = full_url
        doc["entry"].append(e)

    return mutate


def _ndjson_insert(*lines: tuple[int, str]):
    def edit(ls: list[str]) -> None:
        for i, text in sorted(lines, reverse=True):
            ls.insert(i, text)

    return edit


def _ndjson_replace(i: int, old: str, new: str):
    def edit(ls: list[str]) -> None:
        assert old in ls[i]
        ls[i] = ls[i].replace(old, new, 1)

    return edit


def _bom(build: Callable[[Path], list[Path]]) -> Callable[[Path], list[Path]]:
    def with_bom(d: Path) -> list[Path]:
        files = build(d)
        files[0].write_bytes(b"\xef\xbb\xbf" + files[0].read_bytes())
        return files

    return with_bom


def _repeat(text: str, again: str, lines: bool = False) -> Callable[[Path], list[Path]]:
    """mini-r4.json (or its NDJSON) with `again` (`"key": value`) written after the first `text`: orjson
    would keep only the last of the two."""
    if lines:
        return ndjson(lambda ls: ls.__setitem__(21, _once(ls[21], text, f"{text}, {again}")))
    return raw(lambda: mini_text((text, f"{text}, {again}")))


def _once(line: str, old: str, new: str) -> str:
    assert old in line
    return line.replace(old, new, 1)


def _entry(i: int, value) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        doc["entry"][i] = value

    return mutate


def _set_doc(key: str, value) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        doc[key] = value

    return mutate


def _r4_event_as_r5(doc: dict) -> None:
    res(doc, "ae1")["code"] = {"text": "Dolor"}  # an R5-only element beside R4's event


INVALID = "invalid R4 "
ME = "MedicationAdministration"
P1_CASCADE = {  # everything of subject 001 when its Patient is rejected
    "ResearchSubject/rs1": "Patient (Patient/p1) is not in the input",
    **{f"{ME}/ma{i}": "'Patient/p1', which is not in the input" for i in range(1, 5)},
    **{f"Observation/o{i}": "'Patient/p1', which is not in the input" for i in range(1, 5)},
    "AdverseEvent/ae1": "'Patient/p1', which is not in the input",
    "AdverseEvent/ae2": "'Patient/p1', which is not in the input",
}
XML_PATIENT = b'<Patient xmlns="http://hl7.org/fhir"><id value="px"/><gender value="male"/></Patient>'

CASES = [
    # -- not JSON, or not the JSON expected: the whole file is refused (exit 2) -------------------------
    Case("json-truncated", raw(lambda: mini_text()[:5000]), 2, "not valid JSON"),
    Case("json-trailing-garbage", raw(lambda: mini_text() + b"}"), 2, "not valid JSON"),
    Case("json-utf16", raw(lambda: json.dumps(MINI).encode("utf-16")), 2, "not valid JSON"),
    Case("json-array-of-resources", raw(lambda: json.dumps([e["resource"] for e in MINI["entry"]]).encode()), 2,
         "a JSON array where a FHIR resource or Bundle was expected"),
    Case("json-string", raw(b'"Bundle"'), 2, "a JSON string where a FHIR resource or Bundle was expected"),
    Case("json-number", raw(b"42"), 2, "a JSON number where a FHIR resource or Bundle was expected"),
    Case("json-null", raw(b"null"), 2, "a JSON null where a FHIR resource or Bundle was expected"),
    Case("json-no-resourceType", raw(b'{"id": "x", "entry": []}'), 2, "no resourceType: not a FHIR resource"),
    Case("json-0-bytes", raw(b""), 2, "the file is empty"),
    Case("json-whitespace-only", raw(b" \n\t\n"), 2, "the file is empty"),
    Case("json-NaN", raw(lambda: mini_text(('"value": 40', '"value": NaN'))), 2, "not valid JSON"),
    Case("json-1e400", raw(lambda: mini_text(('"value": 40', '"value": 1e400'))), 2, "not valid JSON: number is infinity"),
    Case("json-nested-100000-arrays", raw(b"[" * 100_000 + b"]" * 100_000), 2, "not valid JSON: depth limit exceeded"),
    Case("json-nested-100000-objects", raw(b'{"resourceType": "Patient", "id": "x", "extension": '
                                           + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}"),
         2, "not valid JSON: depth limit exceeded"),
    Case("json-utf8-bom", raw(lambda: b"\xef\xbb\xbf" + mini_text()), 2,
         "not valid JSON: UTF-8 byte order mark (BOM) is not supported"),
    Case("ndjson-utf8-bom", _bom(ndjson(lambda lines: None)), 2,
         "not valid JSON: UTF-8 byte order mark (BOM) is not supported"),
    Case("bundle-repeats-entry", raw(lambda: mini_text(('"entry": [', '"entry": [], "entry": ['))), 2,
         "the Bundle repeats the key 'entry' (FHIR JSON forbids repeated keys)"),
    Case("json-lone-surrogate-in-term", bundle(setter("ae1", "event.text", "dolor \ud800 de cabeza")), 2,
         "not valid JSON: no low surrogate"),
    Case("bundle-entry-not-array", bundle(_set_doc("entry", "x")), 2, "Bundle.entry is not an array"),
    Case("missing-input-file", _missing, 2, "no such file or directory"),
    Case("unreadable-file-chmod-000", _unreadable, 2, "cannot read: Permission denied", marks=(AS_ROOT,)),
    Case("named-json-not-fhir", raw(b'{"name": "left-pad", "version": "1.0.0"}', "package.json"), 2,
         "no resourceType: not a FHIR resource"),
    Case("named-csv", raw(b"USUBJID,AETERM\n001,Cefalea\n", "ae.csv"), 2, "not valid JSON"),

    # -- the output location (exit 2, nothing written) ------------------------------------------------
    Case("out-is-a-file", raw(mini_text), 2, "exists and is not a directory", names="out", out=_out_is_file),
    Case("out-parent-is-a-file", raw(mini_text), 2, "cannot create the output directory", names="out",
         out=_out_parent_is_file),
    Case("out-not-writable-chmod-555", raw(mini_text), 2, "the output directory is not writable", names="out",
         out=_out_read_only, marks=(AS_ROOT,)),

    # -- resource types and Bundle entries -------------------------------------------------------------
    # no subject converted: no delivery (exit 2, the accounting in the failed run's report)
    Case("wrong-resourceType-of-bundle", bundle(_set_doc("resourceType", "Bundel")), 2,
         "no subject converted (no DM record): of 1 input resource(s), 0 converted, 0 rejected, 1 out of scope"),
    Case("unknown-resourceType", bundle(setter("ae1", "resourceType", "AdverseEvents")), 0, inputs=N_MINI,
         out_of_scope={"AdverseEvents": "AdverseEvents is not mapped to SDTM"}),
    Case("resourceType-not-a-string", bundle(setter("ae1", "resourceType", 5)), 0, inputs=N_MINI,
         rejected={"?/#in.json:" + place("ae1"): "entry.resource has no resourceType"}),
    Case("entry-without-resource", bundle(_entry(21, {"fullUrl": "urn:uuid:00000000-0000-0000-0000-000000000021"})),
         0, inputs=N_MINI, rejected={"?/#in.json:entry[21]": "entry has no resource"}),
    Case("entry-not-an-object", bundle(_entry(20, 5)), 0, inputs=N_MINI,
         rejected={"?/#in.json:entry[20]": "entry is not a JSON object"}),
    Case("entry-resource-a-string", bundle(_entry(20, {"resource": "Observation/wt"})), 0, inputs=N_MINI,
         rejected={"?/#in.json:entry[20]": "entry.resource is not a JSON object"}),
    Case("transaction-delete-entry", bundle(_entry(21, {"request": {"method": "DELETE", "url": "AdverseEvent/ae1"}})),
         0, inputs=N_MINI - 1, check=expect_values("ae", "AESEQ", [1.0])),
    Case("resource-without-id", bundle(deleter("ae1", "id")), 0, inputs=N_MINI,
         check=expect_values("ae", "AETERM", ["Pain at the injection site"], ("AESPID", "AE-001-01"))),
    Case("id-a-number", bundle(setter("ae1", "id", 7)), 0, inputs=N_MINI,
         rejected={"AdverseEvent/7": INVALID + "AdverseEvent: id: Input should be a valid string"}),

    # -- wrong value types: the resource is rejected, the rest converts --------------------------------
    Case("number-for-string-gender", bundle(setter("p1", "gender", 5)), 0, inputs=N_MINI,
         rejected={"Patient/p1": INVALID + "Patient: gender: Input should be a valid string", **P1_CASCADE}),
    Case("number-for-string-identifier", bundle(setter("ae1", "identifier.value", 12345)), 0, inputs=N_MINI,
         rejected={"AdverseEvent/ae1": "identifier.value: Input should be a valid string"}),
    Case("string-for-array", bundle(setter("ae1", "study", "ResearchStudy/site01")), 0, inputs=N_MINI,
         rejected={"AdverseEvent/ae1": "study: Input should be a valid list"}),
    Case("object-for-code", bundle(setter("ma1", "status", {"code": "completed"})), 0, inputs=N_MINI,
         rejected={f"{ME}/ma1": "status: Input should be a valid string"}),
    Case("boolean-for-date", bundle(setter("ae1", "date", True)), 0, inputs=N_MINI,
         rejected={"AdverseEvent/ae1": "date: Input should be a valid datetime"}),
    Case("string-for-decimal-dose", bundle(setter("ma1", "dosage.dose.value", "40")), 0, inputs=N_MINI,
         check=expect_values("ex", "EXDOSE", [40.0, 0.0, 40.0, 0.0])),

    # -- dates --------------------------------------------------------------------------------------------
    Case("date-2021-02-30", bundle(setter("ae1", "date", "2021-02-30")), 0, inputs=N_MINI,
         rejected={"AdverseEvent/ae1": "date: Input should be a valid datetime or date, day value is outside"}),
    Case("date-2021-13", bundle(setter("ae1", "date", "2021-13")), 0, inputs=N_MINI,
         rejected={"AdverseEvent/ae1": "date: DateTime value string does not match"}),
    Case("date-yesterday", bundle(setter("ae1", "date", "yesterday")), 0, inputs=N_MINI,
         rejected={"AdverseEvent/ae1": "date: DateTime value string does not match"}),
    Case("birthDate-1961-02-30", bundle(setter("p1", "birthDate", "1961-02-30")), 0, inputs=N_MINI,
         rejected={"Patient/p1": "birthDate: Input should be a valid date", **P1_CASCADE}),
    Case("date-partial-month", bundle(setter("ae1", "date", "2021-06")), 0, inputs=N_MINI,
         check=both(expect_values("ae", "AESTDTC", ["2021-06"], ("AESPID", "AE-001-01")),
                    expect_missing("ae", "AESTDY", ("AESPID", "AE-001-01")))),
    Case("date-partial-year", bundle(setter("ma2", "effectiveDateTime", "2021")), 0, inputs=N_MINI,
         check=both(expect_values("ex", "EXSTDTC", ["2021"], ("EXSTDTC", "2021")),
                    expect_missing("ex", "EXSTDY", ("EXSTDTC", "2021")))),
    Case("tz-east-just-after-midnight", bundle(setter("ma1", "effectiveDateTime", "2021-06-01T00:30:00+02:00")), 0,
         inputs=N_MINI, check=both(expect_values("ex", "EXSTDTC", ["2021-06-01T00:30:00"], ("EXSEQ", 1.0)),
                                   expect_values("dm", "RFSTDTC", ["2021-06-01T00:30:00", ""]))),
    Case("tz-west-just-before-midnight", bundle(setter("o2", "effectiveDateTime", "2021-05-24T23:45:00-05:00")), 0,
         inputs=N_MINI, check=both(expect_values("xm", "XMDTC", ["2021-05-24T23:45:00"], ("XMSEQ", 2.0)),
                                   expect_values("xm", "XMDY", [-8.0], ("XMSEQ", 2.0)))),
    Case("tz-plus-14-after-midnight", bundle(setter("ae1", "date", "2021-06-02T00:15:00+14:00")), 0,
         inputs=N_MINI, check=both(expect_values("ae", "AESTDTC", ["2021-06-02T00:15:00"], ("AESPID", "AE-001-01")),
                                   expect_values("ae", "AESTDY", [2.0], ("AESPID", "AE-001-01")))),
    Case("tz-utc-midnight", bundle(setter("ae2", "date", "2021-05-30T00:00:00Z")), 0, inputs=N_MINI,
         check=expect_values("ae", "AESTDTC", ["2021-05-30T00:00:00"], ("AESEQ", 1.0))),

    # -- references and identity --------------------------------------------------------------------------
    Case("ref-missing-patient", bundle(setter("ma1", "subject", {"reference": "Patient/nope"})), 0, inputs=N_MINI,
         rejected={f"{ME}/ma1": "subject references 'Patient/nope', which is not in the input"}),
    Case("ref-missing-site-study", bundle(setter("rs1", "study", {"reference": "ResearchStudy/nope"})), 0,
         inputs=N_MINI, rejected={"ResearchSubject/rs1": "study references 'ResearchStudy/nope'"},
         out_of_scope={"AdverseEvent": "its Patient is not a subject of a study in the input"}),
    Case("ref-missing-encounter", bundle(setter("o2", "encounter", {"reference": "Encounter/nope"})), 0,
         inputs=N_MINI, check=both(check_finding("BROKEN_REFERENCE", "Observation/o2"),
                                   expect_values("xm", "VISIT", [""], ("XMSEQ", 2.0)))),
    Case("duplicate-id-identical", bundle(_dup()), 0, inputs=N_MINI + 1,
         rejected={"AdverseEvent/ae1#dup@": "duplicate id (identical) of the resource at"}),
    Case("duplicate-id-different-content", bundle(_dup(lambda r: r.update(date="2021-06-03"))), 0,
         inputs=N_MINI + 1, rejected={"AdverseEvent/ae1#dup@": "duplicate id (different content)"}),
    Case("same-id-other-server", bundle(_dup(full_url="https://other.example/fhir/AdverseEvent/ae1")), 0,
         inputs=N_MINI + 1, check=expect_values("ae", "AESEQ", [1.0, 2.0, 3.0])),

    # -- subjects and releases --------------------------------------------------------------------------
    Case("subject-without-arm-not-treated", bundle(setter("rs2", "status", "on-study")), 0, inputs=N_MINI,
         check=check_armnrs(["", "NOT ASSIGNED"])),
    Case("subject-without-arm-but-treated", bundle(deleter("rs1", "assignedArm", "actualArm")), 0, inputs=N_MINI,
         check=check_armnrs(["NOT ASSIGNED", "SCREEN FAILURE"])),
    Case("subject-assigned-not-treated-arm", bundle(deleter("rs1", "actualArm")), 0, inputs=N_MINI,
         check=check_armnrs(["ASSIGNED, NOT TREATED", "SCREEN FAILURE"])),
    Case("r4-declared-as-r5", raw(mini_text), 2, "no subject converted (no DM record): of 23 input resource(s), "
         "0 converted, 16 rejected, 7 out of scope; first: error: ", args=("--fhir-version", "R5")),
    Case("r4-and-r5-elements-mixed", bundle(_r4_event_as_r5), 0, inputs=N_MINI,
         rejected={"AdverseEvent/ae1": INVALID + "AdverseEvent: code: Extra inputs are not permitted"}),

    # -- text: huge and Unicode verbatim terms ----------------------------------------------------------
    Case("aeterm-1MB", bundle(setter("ae1", "event.text", HUGE_TERM)), 0, inputs=N_MINI, check=check_huge),
    Case("unicode-accents", bundle(setter("ae1", "event.text", "Cefalea leve tras inyección, pingüino")), 0,
         inputs=N_MINI, check=expect_term("Cefalea leve tras inyección, pingüino")),
    Case("unicode-cjk", bundle(setter("ae1", "event.text", "注射部位の痛み")), 0, inputs=N_MINI,
         check=expect_term("注射部位の痛み")),
    Case("unicode-emoji", bundle(setter("ae1", "event.text", "fiebre 🤒 y dolor 💉")), 0, inputs=N_MINI,
         check=expect_term("fiebre 🤒 y dolor 💉")),
    Case("unicode-right-to-left", bundle(setter("ae1", "event.text", "\u202eألم في موقع الحقن")), 0, inputs=N_MINI,
         check=expect_term("\u202eألم في موقع الحقن")),
    Case("unicode-nul-byte", bundle(setter("ae1", "event.text", "dolor\u0000de cabeza")), 0, inputs=N_MINI,
         check=expect_term("dolor\u0000de cabeza")),
    Case("unicode-combining-marks", bundle(setter("ae1", "event.text", "inyecci\u006f\u0301n")), 0, inputs=N_MINI,
         check=expect_term("inyecci\u006f\u0301n")),

    # -- numbers --------------------------------------------------------------------------------------------
    Case("dose-negative", bundle(setter("ma1", "dosage.dose.value", -40)), 0, inputs=N_MINI,
         check=expect_values("ex", "EXDOSE", [-40.0], ("EXSEQ", 1.0))),
    Case("result-1e300", bundle(setter("o1", "valueQuantity.value", 1e300)), 1,
         "XPT v5 constraint violation", where=("Observation/o1", "XMSTRESN", "cannot be stored in XPT v5"), names="out"),
    Case("result-1e-300", bundle(setter("o1", "valueQuantity.value", 1e-300)), 1,
         "XPT v5 constraint violation", where=("Observation/o1", "XMSTRESN"), names="out"),
    Case("extension-nested-200-deep", bundle(lambda d: res(d, "ae1")["extension"].append(nested_extension(200))), 0,
         inputs=N_MINI, rejected={"AdverseEvent/ae1": "invalid R4 AdverseEvent"}),

    # -- a key repeated in an object (FHIR JSON forbids it; orjson would keep the last): the resource is rejected
    Case("repeated-key-in-resource", _repeat('"actuality": "actual"', '"actuality": "potential"'), 0, inputs=N_MINI,
         rejected={f"?/#in.json:{place('ae1')}": "AdverseEvent/ae1 repeats the key 'actuality'"}),
    Case("repeated-key-deep-in-resource", _repeat('"code": "10022086"', '"code": "10000000"'), 0, inputs=N_MINI,
         rejected={f"?/#in.json:{place('ae1')}": "AdverseEvent/ae1 repeats the key 'code'"}),
    Case("repeated-key-behind-escaped-colon",  # \u003a: a colon the count of colons cannot see
         _repeat('"actuality": "actual"', '"actuality": "potential", "note": "a\\u003a b"'), 0, inputs=N_MINI,
         rejected={f"?/#in.json:{place('ae1')}": "repeats the key 'actuality'"}),
    Case("repeated-key-in-entry", raw(lambda: mini_text(('"resource": {"resourceType": "AdverseEvent", "id": "ae1"',
                                                         '"fullUrl": "urn:a", "fullUrl": "urn:b", "resource": '
                                                         '{"resourceType": "AdverseEvent", "id": "ae1"'))), 0,
         inputs=N_MINI, rejected={f"?/#in.json:{place('ae1')}": "the entry repeats the key 'fullUrl'"}),
    Case("repeated-key-single-resource",
         raw(lambda: json.dumps(res(mini(), "p1")).replace('"gender": "male"', '"gender": "male", "gender": "female"').encode()),
         2, "0 converted, 1 rejected, 0 out of scope; first: error: ", where=("Patient/p1 repeats the key 'gender'",)),
    Case("repeated-key-ndjson-line", _repeat('"actuality": "actual"', '"actuality": "potential"', lines=True), 0,
         inputs=N_MINI, rejected={"?/#export.ndjson:line 22": "AdverseEvent/ae1 repeats the key 'actuality'"}),
    # -- NDJSON: a bad line is one rejected record ---------------------------------------------------------
    Case("ndjson-bad-lines", ndjson(_ndjson_insert((5, '{"resourceType": "Patient", "id": '), (9, "[1, 2]"),
                                                   (12, '{"no": "resourceType"}'))), 0, inputs=N_MINI + 3,
         rejected={"?/#export.ndjson:line 6": "not valid JSON", "?/#export.ndjson:line 11": "not a FHIR resource",
                   "?/#export.ndjson:line 15": "not a FHIR resource"}),
    Case("ndjson-NaN-line", ndjson(_ndjson_replace(21, '"date": "2021-06-02"', '"date": NaN')), 0, inputs=N_MINI,
         rejected={"?/#export.ndjson:line 22": "not valid JSON"}),
    Case("ndjson-1e400-line", ndjson(_ndjson_replace(11, '"value": 40', '"value": 1e400')), 0, inputs=N_MINI,
         rejected={"?/#export.ndjson:line 12": "not valid JSON: number is infinity"}),
    Case("ndjson-lone-surrogate-line", ndjson(_ndjson_replace(21, '"Dolor', '"\\ud800Dolor')), 0, inputs=N_MINI,
         rejected={"?/#export.ndjson:line 22": "surrogate"}),
    Case("ndjson-resourceType-number-line", ndjson(_ndjson_insert((23, '{"resourceType": 5, "id": "x"}'))), 0,
         inputs=N_MINI + 1, rejected={"?/#export.ndjson:line 24": "not a FHIR resource"}),
    Case("ndjson-deep-line", ndjson(_ndjson_insert((23, "[" * 5000 + "]" * 5000))), 0, inputs=N_MINI + 1,
         rejected={"?/#export.ndjson:line 24": "depth limit exceeded"}),

    # -- directories --------------------------------------------------------------------------------------
    Case("directory-with-unrelated-files", _directory(("README", "Export of 2021-06"), ("ae.csv", "a,b\n1,2\n"),
                                                      ("package.json", '{"name": "x"}'), ("sub/list.json", "[1, 2]"),
                                                      ("notes.txt", "")), 0, inputs=N_MINI,
         check=check_skipped("README", "ae.csv", "package.json", "list.json", "notes.txt")),
    Case("directory-without-fhir-files", _directory(("README", "x"), ("ae.csv", "a\n"), with_bundle=False), 2,
         "no FHIR input files (.json, .ndjson, .xml) found in"),

    # -- FHIR XML -----------------------------------------------------------------------------------------
    Case("xml-truncated", raw(XML_PATIENT[:40], "in.xml"), 2, "not well-formed XML", marks=XML),
    Case("xml-doctype-entity", raw(b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x "y">]>' + XML_PATIENT, "in.xml"), 2,
         "DOCTYPE not allowed", marks=XML),
    Case("xml-not-fhir-root", raw(b"<html><body/></html>", "in.xml"), 2, "not a FHIR resource", marks=XML),
    Case("xml-nested-200-deep", raw(b'<Patient xmlns="http://hl7.org/fhir">' + b"<extension>" * 200
                                    + b"</extension>" * 200 + b"</Patient>", "in.xml"), 2, "nested deeper than",
         marks=XML),
    Case("xml-lone-patient", raw(XML_PATIENT, "in.xml"), 2, "0 converted, 0 rejected, 1 out of scope", marks=XML),
]


# --- running a case --------------------------------------------------------------------------------
def invoke(inputs: list[Path], out: Path, args: tuple[str, ...] = ()):
    # --report-paths: the cases look their records up by file name (the default labels: test_privacy.py)
    r = runner.invoke(app, ["to-sdtm", *map(str, inputs), "--out", str(out), "--report-paths", *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r


def assert_one_line_error(r, case: Case, named: str) -> None:
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    line = lines[0]
    assert line.startswith("error: "), line
    assert case.message in line, line
    if named:
        assert named in line, f"{named!r} not named in {line!r}"
    for w in case.where:
        assert w in line, f"{w!r} not named in {line!r}"


def assert_no_dataset(out: Path) -> None:
    if out.is_dir():
        assert not list(out.rglob("*.xpt")), "partial output"
        assert not list(out.glob(".tcim-*")), "temporary files left behind"


def assert_accounting(report: dict, output: str) -> None:
    c = report["resources"]
    assert c["input"] == c["converted"] + c["rejected"] + c["out_of_scope"]
    assert sum(n["input"] for n in c["by_resource_type"].values()) == c["input"]
    for rtype, n in c["by_resource_type"].items():
        assert RESOURCE_TYPE.match(rtype), f"resource type {rtype!r} in the accounting"
        assert n["input"] == n["converted"] + n["rejected"] + n["out_of_scope"], rtype
    m = SUMMARY.search(output)
    assert m and tuple(map(int, m.groups())) == (c["input"], c["converted"], c["rejected"], c["out_of_scope"])
    # every rejection is explained, and backed by an error finding naming the resource or its place
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    for d in report["not_converted"]:
        assert d["reason"], d
        if d["outcome"] == "rejected":
            base = d["resource"].split("#dup@")[0]
            assert any(f["source"] == base or f["file"] == d["file"] for f in errors), f"no error finding for {d}"


def _disposition(report: dict, key: str, outcome: str) -> dict:
    hits = [d for d in report["not_converted"] if d["outcome"] == outcome
            and (d["resource"] == key or (key.endswith("#dup@") and d["resource"].startswith(key)))]
    assert hits, f"{key} not {outcome}: {[d['resource'] for d in report['not_converted']]}"
    return hits[0]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case: Case, tmp_path):
    inputs = case.build(tmp_path)
    out = case.out(tmp_path) if case.out else tmp_path / "out"
    try:
        r = invoke(inputs, out, case.args)
    finally:
        for p in [*inputs, out]:
            if p.exists() and not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
    assert r.exit_code == case.exit, r.output
    if case.exit != 0:
        named = {"input": str(inputs[0]), "out": str(out), "": ""}[case.names]
        assert_one_line_error(r, case, named)
        assert_no_dataset(out)
        return

    report = json.loads((out / "run-report.json").read_text(encoding="utf-8"))
    assert_accounting(report, r.output)
    if case.inputs is not None:
        assert report["resources"]["input"] == case.inputs
    for key, reason in case.rejected.items():
        d = _disposition(report, key, "rejected")
        assert reason in d["reason"], d
    for rtype, reason in case.out_of_scope.items():  # counted per type and reason, never listed by id
        assert any(g["resource_type"] == rtype and reason in g["reason"] and g["count"] > 0
                   for g in report["out_of_scope"]), report["out_of_scope"]
    if not case.rejected:
        assert report["resources"]["rejected"] == 0, report["not_converted"]
    for name, n in report["records_per_domain"].items():
        assert (out / f"{name.lower()}.xpt").is_file() == (n > 0), name
    if case.check:
        case.check(out, report)

    if report["resources"]["rejected"]:
        # a rejected resource is an error finding: --strict refuses the run, writes no dataset, names it
        strict_out = tmp_path / "strict"
        s = invoke(inputs, strict_out, (*case.args, "--strict"))
        assert s.exit_code == 1, s.output
        first = next(f for f in report["findings"] if f["severity"] == "error")
        line = s.output.strip()
        assert "\n" not in line and line.startswith("error: ") and "nothing written" in line, line
        assert first["file"] in line and first["source"] in line, line
        assert_no_dataset(strict_out)


def test_the_corpus_is_large_and_its_ids_unique():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
