import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
SHARED = Path(os.environ.get("TCIM_SHARED", ROOT.parent / "shared"))
EXTERNAL = SHARED / "external"


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
    return DATA / "mini-r4.json"


@pytest.fixture(scope="session")
def example_package(tmp_path_factory) -> Path:
    """The shipped example converted once per test session: the package to-sdtm writes."""
    from tcim_interop import to_sdtm

    out = tmp_path_factory.mktemp("example-package")
    to_sdtm([ROOT / "examples" / "tcim-elaii-100-r4.json"], out)
    return out
