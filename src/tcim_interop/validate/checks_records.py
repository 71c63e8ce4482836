"""Record-level checks across domains: identity (DM, USUBJID, STUDYID, DOMAIN, --SEQ) and timing
(study days, start before end)."""

from __future__ import annotations

from collections import Counter

from ..sdtm.dataset import present
from ..sdtm.dates import complete_date, study_day
from .context import Context, text, unique
from .registry import check


@check("dm_present", "CORE-000581/CG0368")
def dm_present(ctx: Context):
    """The package has a DM dataset."""
    if "DM" not in ctx.datasets:
        yield ctx.finding("error", "CORE-000581/CG0368", "NO_DM", "the package has no DM dataset")


@check("dm_one_record_per_subject", "CORE-000351/CG0151")
def dm_one_record_per_subject(ctx: Context):
    """DM has one record per subject: USUBJID is unique in DM."""
    if ctx.has("DM", "USUBJID"):
        yield from unique(ctx, "DM", ("USUBJID",), "CORE-000351/CG0151", "DM_DUPLICATE_SUBJECT")


@check("usubjid_in_dm", "CORE-000201/CG0029")
def usubjid_in_dm(ctx: Context):
    """Every USUBJID of every dataset is a subject of DM."""
    if "DM" not in ctx.datasets:
        return
    for name in ctx.subject_datasets():
        if name == "DM":
            continue
        for row, rec, usubjid in ctx.failing(name, "USUBJID", ctx.dm.__contains__):
            yield ctx.finding("error", "CORE-000201/CG0029", "USUBJID_NOT_IN_DM",
                              f"USUBJID {usubjid} is not in DM", name, row=row, variable="USUBJID",
                              value=usubjid, record=rec)


@check("studyid_consistent", "CORE-000172/CG0409")
def studyid_consistent(ctx: Context):
    """STUDYID is the same in every record of every dataset (DM's)."""
    studyids = Counter(text(r.get("STUDYID")) for _, r in ctx.rows("DM")) if ctx.has("DM", "STUDYID") else Counter()
    if not studyids:
        return
    expected = studyids.most_common(1)[0][0]
    for name, ds in ctx.datasets.items():
        if "STUDYID" not in ds.frame.columns:
            continue
        for row, rec, value in ctx.failing(name, "STUDYID", expected.__eq__):
            yield ctx.finding("error", "CORE-000172/CG0409", "STUDYID_MISMATCH",
                              f"STUDYID {value!r} is not DM's {expected!r}", name, row=row,
                              variable="STUDYID", value=value, record=rec)


@check("domain_value", "CORE-000598/CG0413", "CORE-000180/CG0308")
def domain_value(ctx: Context):
    """DOMAIN is the two-character code the dataset name begins with (RDOMAIN for a SUPPxx, checked there)."""
    for name, ds in ctx.datasets.items():
        if "DOMAIN" not in ds.frame.columns or ctx.is_supp(name):
            continue
        for row, rec in ctx.rows(name):
            value = text(rec.get("DOMAIN"))
            if value and len(value) != 2:
                yield ctx.finding("error", "CORE-000180/CG0308", "DOMAIN_LENGTH",
                                  f"DOMAIN {value!r} is not two characters", name, row=row, variable="DOMAIN",
                                  value=value, record=rec)
            elif value and not name.startswith(value):
                yield ctx.finding("error", "CORE-000598/CG0413", "DOMAIN_NOT_DATASET",
                                  f"dataset {name} does not begin with its DOMAIN {value!r}", name, row=row,
                                  variable="DOMAIN", value=value, record=rec)


@check("seq_unique", "CORE-000750")
def seq_unique(ctx: Context):
    """--SEQ is unique per subject within a dataset (TS's TSSEQ is per parameter, checked in TS)."""
    for name in ctx.subject_datasets():
        seq = f"{ctx.prefix(name)}SEQ"
        if not ctx.prefix(name) or seq not in ctx.datasets[name].frame.columns:
            continue
        yield from unique(ctx, name, ("USUBJID", seq), "CORE-000750", "SEQ_NOT_UNIQUE")


# --DY variable <- its date, and the rule that a --DY from an incomplete date breaks
_DAY_PAIRS = (("DTC", "DY", "CORE-000354/CG0007"), ("STDTC", "STDY", "CORE-000138/CG0221"),
              ("ENDTC", "ENDY", "CORE-000139/CG0223"))


@check("study_days", "CORE-000529/CG0006", "CORE-000354/CG0007", "CORE-000138/CG0221", "CORE-000139/CG0223",
       "CORE-000853/FB1602")
def study_days(ctx: Context):
    """--DY, --STDY, --ENDY = date - RFSTDTC + 1 on or after RFSTDTC, date - RFSTDTC before it (no day 0),
    computed from complete dates only: null when either date is partial, populated when both are complete."""
    if not ctx.dm:
        return
    for name in ctx.subject_datasets():
        p, cols = ctx.prefix(name), ctx.datasets[name].frame.columns
        pairs = [(p + d, p + y, rule) for d, y, rule in _DAY_PAIRS if p and p + d in cols and p + y in cols]
        for row, rec in ctx.rows(name) if pairs else ():
            reference = ctx.dm.get(text(rec.get("USUBJID")), {}).get("RFSTDTC")
            for dtc, dy, partial_rule in pairs:
                expected = study_day(text(rec.get(dtc)), text(reference))
                actual = rec.get(dy)
                if expected is None and present(actual):
                    yield ctx.finding("error", partial_rule, "STUDY_DAY_FROM_PARTIAL",
                                      f"{dy} is {text(actual)} but {dtc} {text(rec.get(dtc))!r} or RFSTDTC "
                                      f"{text(reference)!r} is not a complete date", name, row=row, variable=dy,
                                      value=actual, record=rec)
                elif expected is not None and not present(actual):
                    yield ctx.finding("warning", "CORE-000853/FB1602", "STUDY_DAY_MISSING",
                                      f"{dy} is null; {dtc} and RFSTDTC give day {expected}", name, row=row,
                                      variable=dy, record=rec)
                elif expected is not None and _number(actual) != expected:
                    yield ctx.finding("error", "CORE-000529/CG0006", "STUDY_DAY",
                                      f"{dy} is {text(actual)}; {dtc} {text(rec.get(dtc))} and RFSTDTC "
                                      f"{text(reference)} give {expected}", name, row=row, variable=dy,
                                      value=actual, record=rec)


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@check("start_before_end", "CORE-000718/FB3209", "CORE-000711/FB3404", "CORE-000714/FB3408")
def start_before_end(ctx: Context):
    """--STDTC <= --ENDTC (and in DM RFSTDTC <= RFENDTC, RFXSTDTC <= RFXENDTC), compared at the
    precision both values have."""
    for name, ds in ctx.datasets.items():
        p = ctx.prefix(name)
        pairs = [(p + "STDTC", p + "ENDTC", "CORE-000718/FB3209")] if p else []
        if name == "DM":
            pairs = [("RFSTDTC", "RFENDTC", "CORE-000711/FB3404"), ("RFXSTDTC", "RFXENDTC", "CORE-000714/FB3408")]
        pairs = [x for x in pairs if x[0] in ds.frame.columns and x[1] in ds.frame.columns]
        for row, rec in ctx.rows(name) if pairs else ():
            for start, end, rule in pairs:
                a, b = text(rec.get(start)), text(rec.get(end))
                if a and b and _before(b, a):
                    yield ctx.finding("error", rule, "END_BEFORE_START", f"{end} {b} is before {start} {a}",
                                      name, row=row, variable=end, value=b, record=rec)


def _before(a: str, b: str) -> bool:
    """Whether ISO 8601 value a is before b at their common precision (unknown components, "-",
    and intervals are not compared)."""
    if "/" in a + b or "--" in a + b or "-T" in a + b:
        return False
    n = min(len(a), len(b))
    if n >= 10 and (complete_date(a) is None or complete_date(b) is None):
        return False
    return a[:n] < b[:n]
