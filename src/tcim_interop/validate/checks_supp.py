"""SUPPxx checks: each record points at an existing parent record, once per QNAM."""

from __future__ import annotations

import re

from .context import Context, text, unique
from .registry import check

_QNAM = re.compile(r"^[A-Z_][A-Z0-9_]{0,7}$")


def _supps(ctx: Context) -> list[str]:
    return [n for n in ctx.datasets if ctx.is_supp(n) and ctx.has(n, "RDOMAIN")]


@check("supp_rdomain", "CORE-000538/CG0334", "CORE-000457/CG0373")
def supp_rdomain(ctx: Context):
    """RDOMAIN is the domain the SUPPxx is named after, and that dataset is in the package."""
    for name in _supps(ctx):
        for row, rec in ctx.rows(name):
            rdomain = text(rec.get("RDOMAIN"))
            if rdomain != name[4:]:
                yield ctx.finding("error", "CORE-000538/CG0334", "SUPP_RDOMAIN_NAME",
                                  f"RDOMAIN {rdomain!r} is not {name[4:]!r}, the domain {name} is named after", name,
                                  row=row, variable="RDOMAIN", value=rdomain, record=rec)
            elif rdomain not in ctx.datasets:
                yield ctx.finding("error", "CORE-000457/CG0373", "SUPP_NO_PARENT_DATASET",
                                  f"RDOMAIN {rdomain} is not a dataset of the package", name, row=row,
                                  variable="RDOMAIN", value=rdomain, record=rec)


@check("supp_idvar", "CORE-000134/CG0203", "CORE-000135/CG0204", "CORE-000218/CG0465", "CORE-000712/CG0370")
def supp_idvar(ctx: Context):
    """IDVAR is given (except for DM) and is a variable of RDOMAIN; IDVAR and IDVARVAL are given together."""
    for name in _supps(ctx):
        for row, rec in ctx.rows(name):
            rdomain, idvar, idvarval = (text(rec.get(v)) for v in ("RDOMAIN", "IDVAR", "IDVARVAL"))
            if not idvar and rdomain != "DM":
                yield ctx.finding("error", "CORE-000134/CG0203", "SUPP_NO_IDVAR", f"IDVAR is null for RDOMAIN {rdomain}",
                                  name, row=row, variable="IDVAR", record=rec)
            if idvar and not idvarval:
                yield ctx.finding("error", "CORE-000135/CG0204", "SUPP_NO_IDVARVAL", f"IDVAR is {idvar}, IDVARVAL is null",
                                  name, row=row, variable="IDVARVAL", record=rec)
            if idvarval and not idvar:
                yield ctx.finding("error", "CORE-000218/CG0465", "SUPP_NO_IDVAR", "IDVARVAL is populated, IDVAR is null",
                                  name, row=row, variable="IDVAR", value=idvarval, record=rec)
            if idvar and rdomain in ctx.datasets and idvar not in ctx.datasets[rdomain].frame.columns:
                yield ctx.finding("error", "CORE-000712/CG0370", "SUPP_IDVAR_UNKNOWN",
                                  f"IDVAR {idvar} is not a variable of {rdomain}", name, row=row, variable="IDVAR",
                                  value=idvar, record=rec)


@check("supp_parent_record", "CORE-000206/CG0371")
def supp_parent_record(ctx: Context):
    """The subject (and IDVAR = IDVARVAL, when given) identifies an existing record of RDOMAIN."""
    keys: dict[tuple[str, str], set] = {}
    for name in _supps(ctx):
        for row, rec in ctx.rows(name):
            rdomain, idvar, idvarval = (text(rec.get(v)) for v in ("RDOMAIN", "IDVAR", "IDVARVAL"))
            if rdomain not in ctx.datasets or (idvar and idvar not in ctx.datasets[rdomain].frame.columns):
                continue  # reported by supp_rdomain / supp_idvar
            if (rdomain, idvar) not in keys:
                keys[(rdomain, idvar)] = {(text(r.get("USUBJID")), text(r.get(idvar)) if idvar else "")
                                          for _, r in ctx.rows(rdomain)}
            if (text(rec.get("USUBJID")), idvarval if idvar else "") not in keys[(rdomain, idvar)]:
                where = f"{idvar} = {idvarval}" if idvar else "the subject"
                yield ctx.finding("error", "CORE-000206/CG0371", "SUPP_NO_PARENT",
                                  f"no {rdomain} record has USUBJID {text(rec.get('USUBJID'))} and {where}", name,
                                  row=row, variable="IDVARVAL" if idvar else "USUBJID", value=idvarval, record=rec)


@check("supp_qnam", "CORE-000203/CG0411", "CORE-000221/CG0417", "CORE-000222/CG0416")
def supp_qnam(ctx: Context):
    """QNAM is a valid name, unique per parent record; QLABEL is at most 40 characters."""
    for name in _supps(ctx):
        yield from unique(ctx, name, ("USUBJID", "RDOMAIN", "IDVAR", "IDVARVAL", "QNAM"), "CORE-000203/CG0411",
                          "SUPP_QNAM_NOT_UNIQUE")
        for row, rec in ctx.rows(name):
            qnam, qlabel = text(rec.get("QNAM")), text(rec.get("QLABEL"))
            if qnam and not _QNAM.match(qnam):
                yield ctx.finding("error", "CORE-000221/CG0417", "SUPP_QNAM_NAME",
                                  "QNAM is not <= 8 upper-case letters, digits or _, not starting with a digit", name,
                                  row=row, variable="QNAM", value=qnam, record=rec)
            if len(qlabel) > 40:
                yield ctx.finding("error", "CORE-000222/CG0416", "SUPP_QLABEL_LENGTH", "QLABEL is more than 40 characters",
                                  name, row=row, variable="QLABEL", value=qlabel, record=rec)
