"""Shared by every test module: where the data is, and the conversions many tests read, each run once
per test run (run_once: once for all pytest-xdist workers). Session fixtures are read only: a test that
changes a result or a file works on a copy."""

import fcntl
import functools
import gc
import os
import pickle
import shutil
from pathlib import Path

import pytest

from tcim_interop import json_files
from tcim_interop.errors import InputError
from tcim_interop.gc_pause import paused_gc

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("TCIM_SHARED", ROOT.parent / "shared"))
EXTERNAL = SHARED / "external"
EXAMPLE = ROOT / "examples" / "tcim-elaii-100-r4.json"
MINI = DATA / "mini-r4.json"
# the datasets to-sdtm makes of the shipped example (tests/test_package.py, test_dataset_json.py, ...)
EXAMPLE_DATASETS = {"DM", "SE", "SV", "EX", "AE", "SUPPAE", "CM", "DS", "VS", "XM", "SUPPXM", "RELREC", "TS", "TA", "TE", "TI", "TV"}
PILOT_ZONE = "America/New_York"  # the CDISC pilot ran in the US; its SDTM times carry no zone
PILOT_FILES = ("dm", "ae", "ex", "suppdm", "suppae")  # the CDISC pilot's datasets to-fhir maps
# to-sdtm of what to-fhir wrote, in the shared round trips: validated already (by to-fhir), so --fast
BACK = {"fast": True}


@paused_gc  # the million new objects of the example's bundle: no cycle to collect (gc_pause.py)
def read_json(path: Path):
    """A JSON file's values, read as the converter reads one (json_files, orjson): many tests read the
    example's 15 MB bundle or an output of its size, and json.loads took 3.8% of the suite's time."""
    return json_files.read_json(Path(path), InputError)


MEDPLUM_DIR = ROOT / "tests" / "fhir_server"  # Medplum's packages (npm): the test server and validator


def medplum_missing() -> str | None:
    """Why Medplum cannot run here (node too old or absent, packages not installed), or None."""
    import subprocess

    node = shutil.which("node")
    if not node:
        return "node is not installed"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip().lstrip("v")
    if tuple(map(int, version.split(".")[:2])) < (20, 19):
        return f"node {version} is too old for @medplum 4.5 (needs >= 20.19)"
    if not (MEDPLUM_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return "Medplum's packages are not installed: cd tests/fhir_server && npm install"
    return None


def need_external(*parts: str) -> Path:
    """A path in ../shared/external, or skip: a user's clone has no ../shared."""
    path = EXTERNAL.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/external is only beside the development checkout)")
    return path


@pytest.fixture(scope="session")
def mappings():
    from tcim_interop import load_mapping_set

    return load_mapping_set()


@pytest.fixture
def mini_bundle() -> Path:
    return MINI


@pytest.fixture
def fake(monkeypatch):
    """A FHIR server in memory (tests/fhir_fake.py) holding the resources of tests/data/mini-r4.json, at any
    URL: the pull and push commands reach it, without credentials from the environment."""
    import dataclasses

    from fhir_fake import MINI, FakeServer

    import tcim_interop.cli_server as cli_server
    from tcim_interop.fhir.client import ENV

    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    server = FakeServer(MINI)
    options = cli_server.server_options
    monkeypatch.setattr(cli_server, "server_options",
                        lambda *args: dataclasses.replace(options(*args), transport=server.transport))
    return server


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    """Once a session or module fixture is made, everything alive is frozen (gc.freeze): the cyclic
    collector's full collections walked the shared conversions (millions of objects, alive till the end)
    again and again, 45 s of the suite's CPU; frozen, they are left out of every collection. Reference
    counting still frees what a test drops; a cycle made before the freeze is kept till the worker ends."""
    yield
    if fixturedef.scope != "function":
        gc.freeze()


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session):
    """Collection (every test module imported, every test item made) with the collector paused, its objects
    then frozen as the fixtures' are."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()


def run_once(tmp_path_factory, name: str, compute):
    """compute(folder), run once per test run: the first pytest-xdist worker to ask computes it in a folder
    all workers share and pickles the result; the others wait for it and read it (the same files, the same
    result). Without xdist, the session's own temporary folder."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    folder, done = root / f"once-{name}", root / f"once-{name}.pickle"
    with open(root / f"once-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return pickle.loads(done.read_bytes())
        shutil.rmtree(folder, ignore_errors=True)  # a worker that failed half-way
        folder.mkdir()
        result = compute(folder)
        done.write_bytes(pickle.dumps(result))  # written last: there only when complete
        return result


@pytest.fixture(scope="session")
def mini_conversion(tmp_path_factory):
    """tests/data/mini-r4.json converted: (the to-sdtm result, the package in XPT and Dataset-JSON)."""
    from tcim_interop import to_sdtm

    return run_once(tmp_path_factory, "mini", lambda d: (
        to_sdtm([MINI], d / "sdtm", formats=("xpt", "json")), d / "sdtm"))


@pytest.fixture(scope="session")
def example_conversion(tmp_path_factory):
    """The shipped example converted: (the to-sdtm result, the package in XPT and Dataset-JSON). Where a
    dataset is in both, read_sdtm and to-fhir read the XPT file."""
    from tcim_interop import to_sdtm

    return run_once(tmp_path_factory, "example", lambda d: (
        to_sdtm([EXAMPLE], d / "sdtm", formats=("xpt", "json")), d / "sdtm"))


@pytest.fixture(scope="session")
def example_package(example_conversion) -> Path:
    """The package to-sdtm writes from the shipped example."""
    return example_conversion[1]


@pytest.fixture(scope="session")
def example_fhir(example_package, tmp_path_factory):
    """to-fhir of the example's package (R4, a transaction bundle): (the result, the bundle file)."""
    from tcim_interop import to_fhir

    return run_once(tmp_path_factory, "example-fhir", lambda d: (
        to_fhir(example_package, d / "bundle.json", fhir_version="R4"), d / "bundle.json"))


@pytest.fixture(scope="session")
def example_round_trip(example_package, example_fhir, tmp_path_factory):
    """example_round_trip(version): the example's package to FHIR in that version (to-fhir proving its
    round trip, as a user runs it) and that bundle to SDTM again, run once: (to-fhir result, bundle file,
    to-sdtm result). R4 is example_fhir's bundle. The tests of each domain's round trip share it.
    The way back is --fast (BACK): to-fhir has validated every resource it wrote, and --fast gives the
    datasets of a full run on valid input (test_fast_mode.py); a second validation of 13,774 resources
    would prove nothing more."""
    from tcim_interop import to_fhir, to_sdtm

    def convert(version, d):
        fhir = example_fhir if version == "R4" else (
            to_fhir(example_package, d / "bundle.json", fhir_version=version), d / "bundle.json")
        return (*fhir, to_sdtm([fhir[1]], fhir_version=version, **BACK))

    return once_per_version(tmp_path_factory, "example-back", convert)


@pytest.fixture(scope="session")
def pilot(tmp_path_factory) -> Path:
    """A folder of the CDISC pilot's PILOT_FILES (../shared/external/cdiscpilot01)."""
    src = need_external("cdiscpilot01")
    d = tmp_path_factory.mktemp("pilot")
    for f in PILOT_FILES:
        shutil.copy(src / f"{f}.xpt", d / f"{f}.xpt")
    return d


def once_per_version(tmp_path_factory, name: str, convert):
    """f(version) = convert(version, a folder), run once per FHIR version (run_once) and kept."""
    return functools.cache(lambda version: run_once(tmp_path_factory, f"{name}-{version}",
                                                    lambda d: convert(version, d)))


@pytest.fixture(scope="session")
def pilot_fhir(pilot, tmp_path_factory):
    """pilot_fhir(version): to-fhir of the pilot in that FHIR version, run once: (result, bundle file)."""
    from tcim_interop import to_fhir

    return once_per_version(tmp_path_factory, "pilot-fhir", lambda version, d: (
        to_fhir(pilot, d / "pilot.json", fhir_version=version, timezone=PILOT_ZONE), d / "pilot.json"))


@pytest.fixture(scope="session")
def pilot_round_trip(pilot_fhir, tmp_path_factory):
    """pilot_round_trip(version): to-sdtm (--fast, BACK) of pilot_fhir(version)'s bundle, run once:
    (result, package)."""
    from tcim_interop import to_sdtm

    return once_per_version(tmp_path_factory, "pilot-back", lambda version, d: (
        to_sdtm([pilot_fhir(version)[1]], d / "sdtm", fhir_version=version, **BACK), d / "sdtm"))
