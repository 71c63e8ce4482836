"""AE checks: seriousness and its criteria."""

from __future__ import annotations

from .context import Context, text
from .registry import check

# the seriousness criteria flags of SDTMIG 3.4 AE (AESCAN and AESOD are from earlier versions; a
# package that still has them is read with them)
CRITERIA = ("AESCAN", "AESCONG", "AESDISAB", "AESDTH", "AESHOSP", "AESLIFE", "AESOD", "AESMIE")


@check("serious_criteria", "CORE-000022/CG0041", "CORE-000266/CG0042")
def serious_criteria(ctx: Context):
    """AESER = Y if and only if at least one seriousness criterion flag is Y."""
    if not ctx.has("AE", "AESER"):
        return
    flags = [c for c in CRITERIA if c in ctx.datasets["AE"].frame.columns]
    if not flags:
        return
    for row, rec in ctx.rows("AE"):
        serious = text(rec.get("AESER"))
        criteria = [c for c in flags if text(rec.get(c)) == "Y"]
        if criteria and serious != "Y":
            yield ctx.finding("error", "CORE-000022/CG0041", "SERIOUS_CRITERION_NOT_SERIOUS",
                              f"{', '.join(criteria)} = Y but AESER is {serious or 'null'}", "AE", row=row,
                              variable="AESER", value=serious, record=rec)
        elif serious == "Y" and not criteria:
            yield ctx.finding("error", "CORE-000266/CG0042", "SERIOUS_WITHOUT_CRITERION",
                              f"AESER = Y but no criterion ({', '.join(flags)}) is Y", "AE", row=row,
                              variable="AESER", value=serious, record=rec)
