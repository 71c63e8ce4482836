"""The share of SDTM cells to-fhir's output carries only in the project's own extensions (sdtm-record
cells and sdtm-supp records), not in FHIR elements a hospital system reads:

    python3 benchmarks/extension_share.py SDTM_DIR BUNDLE.json

SDTM_DIR is what to-fhir read; BUNDLE.json what it wrote. A SUPPxx record in sdtm-supp travels whole
there, so each of its cells counts; one written as an Observation (mapping/qualifiers.py) does not. Prints
the total and the share per dataset.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tcim_interop import load_mapping_set, read_sdtm
from tcim_interop.fhir.extensions import extension_only_cells


def main(sdtm_dir: str, bundle: str) -> None:
    datasets = read_sdtm(sdtm_dir)
    resources = [e["resource"] for e in json.loads(Path(bundle).read_text(encoding="utf-8"))["entry"]]
    widths = {n: d.frame.shape[1] for n, d in datasets.items() if n.startswith("SUPP")}
    carried = extension_only_cells(widths, resources, load_mapping_set().suppqual.carried)
    total = only = 0
    for name, ds in sorted(datasets.items()):
        cells = ds.frame.size
        here = carried.get(name, 0)
        total, only = total + cells, only + here
        share = f"({here / cells:.1%})" if cells else "(empty)"
        print(f"{name:8} {here:7} of {cells:7} cells only in extensions {share}")
    print(f"total    {only:7} of {total:7} cells only in extensions ({only / total:.1%})")


if __name__ == "__main__":
    main(*sys.argv[1:3])
