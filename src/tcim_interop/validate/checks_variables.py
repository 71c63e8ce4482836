"""Variable-level checks, driven by the metadata of each dataset: core status, codelists, ISO 8601."""

from __future__ import annotations

import re

from ..sdtm.dataset import present
from .context import Context
from .registry import check

# ISO 8601 as SDTMIG 4.4 uses it in --DTC: a right-truncated date-time, or one with missing components
# written as "-" (2004---15, 2004-12-15T-:15); an interval "start/end" of two such values
_PART = r"(\d{4}|-)(-(\d{2}|-)(-(\d{2}|-)(T(\d{2}|-)(:(\d{2}|-)(:\d{2}(\.\d+)?)?)?)?)?)?"
_DTC = re.compile(rf"^{_PART}(Z|[+-]\d{{2}}:\d{{2}})?$")


def _absent(ctx: Context, core: str, severity: str, rule: str, code: str, what: str):
    """One finding per dataset and variable of the given core in the dataset's metadata (the spec's and
    SDTMIG 3.4's) that the dataset does not have."""
    for name, ds in ctx.datasets.items():
        for var in ctx.variable_metadata(name):
            if var.core == core and var.name not in ds.frame.columns:
                yield ctx.finding(severity, rule, code, f"{what} variable {var.name} is not in the dataset", name,
                                  variable=var.name)


@check("required_variables", "CORE-000355/CG0014")
def required_variables(ctx: Context):
    """Every Req variable of the dataset's metadata (spec and SDTMIG 3.4) is present."""
    return _absent(ctx, "Req", "error", "CORE-000355/CG0014", "MISSING_REQUIRED_VARIABLE", "required")


@check("required_values", "CORE-000356/CG0014")
def required_values(ctx: Context):
    """A Req variable is never null."""
    for name, ds in ctx.datasets.items():
        required = [v.name for v in ctx.variable_metadata(name) if v.core == "Req" and v.name in ds.frame.columns]
        # column-wise, one tolist() each (pandas' isna and comparisons cost more on a small dataset than
        # the loop); only the records that hold a null are visited (a clean package has none)
        null = [(i, var) for var in required for i, x in enumerate(ds.frame[var].tolist()) if not present(x)]
        records = ctx.records(name) if null else []
        for i, var in sorted(null, key=lambda iv: (iv[0], required.index(iv[1]))):
            yield ctx.finding("error", "CORE-000356/CG0014", "NULL_REQUIRED_VALUE",
                              f"required variable {var} is null", name, row=int(i) + 1, variable=var, record=records[i])


@check("expected_variables", "CORE-000334/CG0016")
def expected_variables(ctx: Context):
    """Every Exp variable of the dataset's metadata is present (it may be null). A warning, not an error
    (docs/decisions.md): the records are complete without it, but a reviewer asks why it is absent."""
    return _absent(ctx, "Exp", "warning", "CORE-000334/CG0016", "MISSING_EXPECTED_VARIABLE", "expected")


@check("controlled_terminology", "SDTMIG-4.3/CT")
def controlled_terminology(ctx: Context):
    """A value of a variable with a codelist in the spec is a term of it: outside a non-extensible
    list an error, outside an extensible one a warning (a sponsor extension must be declared).
    In another study's package only the non-extensible CDISC lists apply, and a value outside them
    is a warning (codelists.yaml holds the terms this trial uses, not every CDISC term)."""
    for name in ctx.datasets:
        spec = ctx.specs.get(name)
        for var in spec.variables if spec is not None else ():
            cl = ctx.codelist_of(name, var.name)
            # codelists.yaml lists the terms this trial uses: in another study's package a value outside
            # an extensible list may be any CDISC term, and sponsor lists are this trial's own
            if cl is None or var.name not in ctx.datasets[name].frame.columns or \
                    (not ctx.own_study and (cl.sponsor or cl.extensible)):
                continue
            error = not cl.extensible and ctx.own_study
            for row, rec, value in ctx.failing(name, var.name, cl.__contains__):
                kind = "extensible" if cl.extensible else "non-extensible"
                yield ctx.finding("error" if error else "warning", "SDTMIG-4.3/CT", "CT_VALUE",
                                  f"{value!r} is not a term of the {kind} codelist {cl.name} ({cl.nci_code or 'sponsor'})",
                                  name, row=row, variable=var.name, value=value, record=rec)


@check("iso8601_dates", "CORE-000547")
def iso8601_dates(ctx: Context):
    """Every --DTC value is ISO 8601 (SDTMIG 4.4.2): a date-time right-truncated or with "-" for a
    missing component, or an interval of two such values; the calendar date exists."""
    for name, ds in ctx.datasets.items():
        for var in [c for c in ds.frame.columns if c.endswith("DTC")]:
            for row, rec, value in ctx.failing(name, var, lambda v: all(_valid_dtc(part) for part in v.split("/"))):
                yield ctx.finding("error", "CORE-000547", "ISO8601", f"{value!r} is not an ISO 8601 date/time",
                                  name, row=row, variable=var, value=value, record=rec)


def _valid_dtc(value: str) -> bool:
    from ..sdtm.dates import complete_date

    m = _DTC.match(value)
    if not m:
        return False
    month, day, hour, minute = (m.group(i) for i in (3, 5, 7, 9))
    if month not in (None, "-") and not 1 <= int(month) <= 12 or hour not in (None, "-") and int(hour) > 23 \
            or minute not in (None, "-") and int(minute) > 59:
        return False
    return day in (None, "-") or "-" in (m.group(1), month) or complete_date(value) is not None
