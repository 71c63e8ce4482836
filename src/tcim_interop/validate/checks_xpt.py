"""SAS XPORT v5 constraints, through the same checks the writer runs (sdtm/xpt.py) before writing."""

from __future__ import annotations

import pandas as pd

from ..findings import Report
from ..sdtm import xpt
from ..sdtm.dataset import Dataset, with_text_columns
from .context import Context, text
from .registry import check

# the writer's finding codes -> the rule each breaks (dataset-level name/label: SDTMIG 4.1.5 / FDA TCG)
_RULES = {("XPT_NAME", True): "CORE-000182/CG0310", ("XPT_NAME", False): "CORE-000293/CG0205",
          ("XPT_LABEL", True): "CORE-000019/CG0311", ("XPT_LABEL", False): "TCIM-XPT"}


@check("xpt_constraints", "CORE-000182/CG0310", "CORE-000019/CG0311", "CORE-000293/CG0205", "TCIM-XPT")
def xpt_constraints(ctx: Context):
    """XPT v5: dataset and variable names <= 8 characters (A-Z, 0-9, _ , starting with a letter), labels
    <= 40, character values <= 200 bytes of printable ASCII, numbers IBM-representable; the file is
    named after the dataset in lower case. Dataset-JSON files (UTF-8) are held to the names only."""
    for name, ds in ctx.datasets.items():
        file = ctx.files.get(name, "")
        if file and file.rsplit(".", 1)[0] != name.lower():
            yield ctx.finding("error", "TCIM-XPT", "XPT_FILE_NAME", f"file {file} is not named {name.lower()}.*",
                              name, value=file)
        report = Report()
        xpt.check(Dataset(name, ds.label, ds.variables, ds.frame), _as_written(ds), report)
        for f in report.findings:
            if file and not file.lower().endswith(".xpt") and f.code != "XPT_NAME":
                continue  # Dataset-JSON holds UTF-8 text of any length
            yield ctx.finding(f.severity, _RULES.get((f.code, bool(f.variable)), "TCIM-XPT"), f.code, f.message, name,
                              row=f.row, variable=f.variable, value=f.value or None,
                              record=ctx.records(name)[f.row - 1] if f.row else None)


def _as_written(ds: Dataset) -> pd.DataFrame:
    """The frame with text cells as text ("" for null), as xpt.check reads them."""
    frame = ds.frame
    return with_text_columns(frame, {v.name: [x if isinstance(x, str) else text(x) for x in frame[v.name].tolist()]
                                     for v in ds.variables if v.type == "Char" and v.name in frame.columns})
