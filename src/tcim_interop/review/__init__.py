"""The review report: one self-contained HTML page (subject flow, the MUNE readout, safety, data
completeness, the run's accounting) built from an SDTM package alone.

    review_report(package_dir) -> str          the page
    write_review_report(package_dir, out)      written to a file (the same bytes for the same package)

data.py computes, svg.py draws, html.py assembles.
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import write_atomic
from .data import read
from .html import render


def review_report(package_dir: Path) -> str:
    return render(read(Path(package_dir)))


def write_review_report(package_dir: Path, out: Path) -> Path:
    write_atomic(Path(out), review_report(package_dir))
    return Path(out)
