"""The review report: one self-contained HTML page (subject flow, the MUNE readout, safety, data
completeness, the run's accounting) built from an SDTM package alone.

    review_report(package_dir) -> str          the page
    write_review_report(package_dir, out)      written to a file (the same bytes for the same package)

Both take the package's datasets as read_package gives them, when the caller holds them (to-sdtm).

data.py computes, svg.py draws, html.py assembles.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..atomic import write_atomic
from ..sdtm.dataset import Dataset
from .data import read
from .html import render


def review_report(package_dir: Path, datasets: Mapping[str, Dataset] | None = None) -> str:
    return render(read(Path(package_dir), datasets))


def write_review_report(package_dir: Path, out: Path, datasets: Mapping[str, Dataset] | None = None) -> Path:
    write_atomic(Path(out), review_report(package_dir, datasets))
    return Path(out)
