"""The import structure of src/tcim_interop, read with `ast` (imports at module level and inside
functions both count: a lazy import is a dependency all the same).

Layers: a module may import only modules of its own layer or lower. A module's layer is that of the
longest name in LAYERS that is it or contains it ("sdtm.define" before "sdtm").

Synth: nothing in the conversion path imports synth (the synthetic data generator); only the command
line does.

Cycles: no two modules import each other, directly or through others, except the cycles of KNOWN_CYCLES,
each with why it is still there; the list may only shrink.
"""

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tcim_interop"

LAYERS = {
    # 0: the vocabulary of a run and files on disk
    "": 0,  # the package's __init__: the version, and its exports imported on first use
    "errors": 0, "json_files": 0, "findings": 0, "atomic": 0, "gc_pause": 0, "progress": 0, "csv_safety": 0,
    "lazy": 0,  # a mapping whose values are made when first read
    "manifest": 0,  # checksums and manifest.json; findings takes its sha256
    # the AE Clinical Research IG's URLs per FHIR release (imports nothing): to-fhir, the conformance
    # package and the synthetic generator name them from this one place
    "fhir.ae_research_ig": 0,
    # 1: the formats: SDTM files (XPT, Dataset-JSON, text, dates) and FHIR (read, write, paths, shapes, server)
    "sdtm": 1, "fhir": 1,
    # 2: the mapping: the specs, the algorithms they name (mapping_spec checks every name against the
    # algorithm registry), the trial design, and define.xml, which describes the datasets by their specs
    "mapping_spec": 2, "mapping": 2, "trial_design": 2, "sdtm.define": 2, "sdtm.define_html": 2,
    # 3: conformance checks of a package, the review report of one; the FHIR conformance resources, built
    # from the specs
    "validate": 3, "review": 3, "fhir.conformance": 3,
    # 4: a run, end to end, and what it writes
    "api": 4, "options": 4, "sdtm_pipeline": 4, "fhir_pipeline": 4, "package_writer": 4, "survey": 4, "output_dir": 4,
    "report_text": 4,
    # 5: the command line
    "cli": 5, "cli_app": 5, "cli_server": 5, "__main__": 5,
    # apart: synthetic input (see SYNTH_USERS)
    "synth": 0,
}
SYNTH_USERS = {"cli", "cli_server", "__main__", "synth"}

KNOWN_CYCLES: list[set[str]] = []


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(name: str, path: Path) -> set[str]:
    """The package's modules that the module imports (a name imported from a package counts as its
    submodule when there is one, else as the package)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1] if package else []
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("tcim_interop"):
                target = node.module.removeprefix("tcim_interop").lstrip(".")
            else:
                continue
            subs = {f"{target}.{a.name}".lstrip(".") for a in node.names} & MODULES.keys()
            found |= subs or ({target} & MODULES.keys())
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("tcim_interop").lstrip(".") for a in node.names
                      if a.name.startswith("tcim_interop")} & MODULES.keys()
    return found - {name}


@functools.cache
def graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports: parsed when a test first asks (not when each xdist
    worker collects the module)."""
    return {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(name: str) -> int:
    keys = [k for k in LAYERS if k == "" and name == "" or k and (name == k or name.startswith(k + "."))]
    assert keys, f"{name or 'the package'} has no layer in LAYERS"
    return LAYERS[max(keys, key=len)]


def _cycles() -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph()[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                out.append(component)

    for v in sorted(graph()):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    assert "fhir.read" in graph()["fhir.index"] and "errors" in graph()["fhir.read"]
    assert "fhir.xml" in graph()["fhir.read"]  # imported inside a function: counted


def test_no_import_cycle_but_the_known_ones():
    cycles = _cycles()
    assert [c for c in cycles if c not in KNOWN_CYCLES] == []
    assert [c for c in KNOWN_CYCLES if c not in cycles] == [], "a known cycle is gone: take it off KNOWN_CYCLES"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_imports_only_its_layer_or_lower(name):
    above = sorted(d for d in graph()[name] if _layer(d) > _layer(name))
    assert above == [], f"{name or 'the package'} (layer {_layer(name)}) imports " + ", ".join(
        f"{d} (layer {_layer(d)})" for d in above)


def test_the_conversion_path_never_imports_synth():
    users = sorted(n for n, deps in graph().items() if any(d == "synth" or d.startswith("synth.") for d in deps))
    assert set(users) <= SYNTH_USERS, users


def _tested_where() -> dict[str, list[str]]:
    """docs/architecture.md's table: source path (a file, or a folder ending in /) -> its test modules."""
    import re

    doc = (SRC.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("## Where each module is tested", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and "`" in cells[0]:
            tests = [t.strip() for t in cells[1].split(",")]
            for path in re.findall(r"`([^`]+)`", cells[0]):
                rows[path] = tests
    return rows


def test_every_module_has_its_tests_named_in_the_architecture_doc():
    rows = _tested_where()
    assert rows, "the table is missing from docs/architecture.md"
    tests = {p.stem for p in (SRC.parents[1] / "tests").glob("test_*.py")}
    assert not {t for ts in rows.values() for t in ts} - tests, "the table names a test module that does not exist"
    unlisted = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if path.name == "__init__.py" or rel in rows:
            continue
        if not any(folder.endswith("/") and rel.startswith(folder) for folder in rows):
            unlisted.append(rel)
    assert unlisted == []
    assert not [p for p in rows if not (SRC / p).exists()], "the table names a source module that does not exist"
