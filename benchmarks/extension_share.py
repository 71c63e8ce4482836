"""The share of SDTM cells to-fhir's output carries only in the project's own extensions (sdtm-record
cells and sdtm-supp records), not in FHIR elements a hospital system reads:

    python3 benchmarks/extension_share.py SDTM_DIR BUNDLE.json

SDTM_DIR is what to-fhir read; BUNDLE.json what it wrote. A SUPPxx record travels whole in sdtm-supp, so
each of its cells counts. Prints the total and the share per dataset.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from tcim_interop import read_sdtm
from tcim_interop.fhir.extensions import read_records


def carried_cells(resources: list[dict]) -> Counter:
    """dataset -> cells that only the sdtm-record extensions hold."""
    carried: Counter = Counter()
    for r in resources:
        for dataset, _row, cells in read_records(r):
            carried[dataset] += len(cells)
    return carried


def main(sdtm_dir: str, bundle: str) -> None:
    datasets = read_sdtm(sdtm_dir)
    resources = [e["resource"] for e in json.loads(Path(bundle).read_text(encoding="utf-8"))["entry"]]
    carried = carried_cells(resources)
    total = only = 0
    for name, ds in sorted(datasets.items()):
        cells = ds.frame.size
        here = cells if name.startswith("SUPP") else carried.get(name, 0)
        total, only = total + cells, only + here
        share = f"({here / cells:.1%})" if cells else "(empty)"
        print(f"{name:8} {here:7} of {cells:7} cells only in extensions {share}")
    print(f"total    {only:7} of {total:7} cells only in extensions ({only / total:.1%})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
