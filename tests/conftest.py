"""Shared by every test module: where the data is, and the conversions many tests read, each run once
per test session. Session fixtures are read only: a test that changes a result or a file works on a copy."""

import functools
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("TCIM_SHARED", ROOT.parent / "shared"))
EXTERNAL = SHARED / "external"
EXAMPLE = ROOT / "examples" / "tcim-elaii-100-r4.json"
MINI = DATA / "mini-r4.json"
PILOT_FILES = ("dm", "ae", "ex", "suppdm", "suppae")  # the CDISC pilot's datasets to-fhir maps


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

    import tcim_interop.cli_server as cli_server
    from fhir_fake import MINI, FakeServer
    from tcim_interop.fhir.client import ENV

    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    server = FakeServer(MINI)
    options = cli_server.server_options
    monkeypatch.setattr(cli_server, "server_options",
                        lambda *args: dataclasses.replace(options(*args), transport=server.transport))
    return server


@pytest.fixture(scope="session")
def mini_conversion(tmp_path_factory):
    """tests/data/mini-r4.json converted: (the to-sdtm result, the package in XPT and Dataset-JSON)."""
    from tcim_interop import to_sdtm

    out = tmp_path_factory.mktemp("mini") / "sdtm"
    return to_sdtm([MINI], out, formats=("xpt", "json")), out


@pytest.fixture(scope="session")
def example_conversion(tmp_path_factory):
    """The shipped example converted: (the to-sdtm result, the package in XPT and Dataset-JSON). Where a
    dataset is in both, read_sdtm and to-fhir read the XPT file."""
    from tcim_interop import to_sdtm

    out = tmp_path_factory.mktemp("example") / "sdtm"
    return to_sdtm([EXAMPLE], out, formats=("xpt", "json")), out


@pytest.fixture(scope="session")
def example_package(example_conversion) -> Path:
    """The package to-sdtm writes from the shipped example."""
    return example_conversion[1]


@pytest.fixture(scope="session")
def example_fhir(example_package, tmp_path_factory):
    """to-fhir of the example's package (R4, a transaction bundle): (the result, the bundle file)."""
    from tcim_interop import to_fhir

    out = tmp_path_factory.mktemp("example-fhir") / "bundle.json"
    return to_fhir(example_package, out, fhir_version="R4"), out


@pytest.fixture(scope="session")
def pilot(tmp_path_factory) -> Path:
    """A folder of the CDISC pilot's PILOT_FILES (../shared/external/cdiscpilot01)."""
    src = need_external("cdiscpilot01")
    d = tmp_path_factory.mktemp("pilot")
    for f in PILOT_FILES:
        shutil.copy(src / f"{f}.xpt", d / f"{f}.xpt")
    return d


def once_per_version(tmp_path_factory, name: str, convert):
    """f(version) = convert(version, a new folder), run once per FHIR version and kept."""
    return functools.cache(lambda version: convert(version, tmp_path_factory.mktemp(f"{name}-{version}")))


@pytest.fixture(scope="session")
def pilot_fhir(pilot, tmp_path_factory):
    """pilot_fhir(version): to-fhir of the pilot in that FHIR version, run once: (result, bundle file)."""
    from tcim_interop import to_fhir

    return once_per_version(tmp_path_factory, "pilot-fhir", lambda version, d: (
        to_fhir(pilot, d / "pilot.json", fhir_version=version), d / "pilot.json"))


@pytest.fixture(scope="session")
def pilot_round_trip(pilot_fhir, tmp_path_factory):
    """pilot_round_trip(version): to-sdtm of pilot_fhir(version)'s bundle, run once: (result, package)."""
    from tcim_interop import to_sdtm

    return once_per_version(tmp_path_factory, "pilot-back", lambda version, d: (
        to_sdtm([pilot_fhir(version)[1]], d / "sdtm", fhir_version=version), d / "sdtm"))
