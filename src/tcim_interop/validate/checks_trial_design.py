"""Trial design checks: TS, TA, TE, TV and EPOCH against TA. Each runs only when its datasets exist."""

from __future__ import annotations

import re

from ..sdtm.dataset import present
from ..sdtm.dates import day_offset
from .context import Context, one_to_one, text, unique
from .registry import check

# Parameters a submission's TS is expected to carry (FDA Study Data Technical Conformance Guide, TS
# section, and its validator rules; SSTDTC tells the agency which standards apply). SDTMIG leaves the
# list to the recipient. A parameter that does not apply is written with TSVALNF (NA), not left out.
TS_PARAMETERS = ("SSTDTC", "SDTIGVER", "TITLE", "TPHASE", "TTYPE", "TBLIND", "TCNTRL", "PLANSUB", "SEXPOP",
                 "AGEMIN", "AGEMAX", "INDIC", "REGID", "SPONSOR", "ADDON", "ADAPT", "DCUTDTC", "DCUTDESC",
                 "PCLAS", "CURTRT", "STOPRULE", "RANDQT", "TDIGRP", "OBJPRIM", "OBJSEC", "OUTMSPRI", "OUTMSSEC",
                 "DOSE", "DOSU", "DOSFRQ", "TRT", "STYPE", "INTMODEL", "INTTYPE", "RANDOM", "ROUTE", "HLTSUBJI",
                 "LENGTH", "ACTSUB", "NARMS", "FCNTRY", "SENDTC", "TINDTP", "SDTMVER")
_ISO_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_STUDY_DAY = re.compile(r"\bstudy day (-?\d+)\b", re.IGNORECASE)
_DAYS = re.compile(r"^P(\d+)D$")


@check("ts_values", "CORE-000583", "TCIM-TSVCDREF", "CORE-000505/CG0285")
def ts_values(ctx: Context):
    """Each TS record has TSVAL or TSVALNF, not both; TSVALCD comes with TSVCDREF; SSTDTC is an ISO 8601 date."""
    if not ctx.has("TS", "TSPARMCD"):
        return
    for row, rec in ctx.rows("TS"):
        val, nf = present(rec.get("TSVAL")), present(rec.get("TSVALNF"))
        if val == nf:
            yield ctx.finding("error", "CORE-000583", "TS_VALUE_OR_NULL_FLAVOR",
                              "TSVAL and TSVALNF are both " + ("populated" if val else "null"), "TS", row=row,
                              variable="TSVAL", value=rec.get("TSVAL"))
        if present(rec.get("TSVALCD")) and not present(rec.get("TSVCDREF")):
            yield ctx.finding("error", "TCIM-TSVCDREF", "TS_CODE_WITHOUT_REFERENCE",
                              "TSVALCD is populated, TSVCDREF (its terminology) is null", "TS", row=row,
                              variable="TSVCDREF", value=rec.get("TSVALCD"))
        if text(rec.get("TSPARMCD")) == "SSTDTC" and val and not _ISO_DATE.match(text(rec.get("TSVAL"))):
            yield ctx.finding("error", "CORE-000505/CG0285", "TS_SSTDTC", "SSTDTC is not an ISO 8601 date", "TS",
                              row=row, variable="TSVAL", value=rec.get("TSVAL"))


@check("ts_parameters", "CORE-000154/CG0268", "CORE-000179/CG0307", "CORE-000147/CG0257", "CORE-000148/CG0258",
       "TCIM-TSPARM")
def ts_parameters(ctx: Context):
    """TSSEQ is unique within TSPARMCD, TSPARMCD and TSPARM go one to one (<= 8 and <= 40 characters), and
    the parameters a submission is expected to carry are there."""
    if not ctx.has("TS", "TSPARMCD"):
        return
    if ctx.has("TS", "TSSEQ"):
        yield from unique(ctx, "TS", ("TSPARMCD", "TSSEQ"), "CORE-000154/CG0268", "TS_SEQ_NOT_UNIQUE")
    if ctx.has("TS", "TSPARM"):
        yield from one_to_one(ctx, "TS", "TSPARMCD", "TSPARM", "CORE-000179/CG0307", "TS_PARM_NOT_ONE_TO_ONE")
    for row, rec in ctx.rows("TS"):
        for var, most, rule in (("TSPARMCD", 8, "CORE-000147/CG0257"), ("TSPARM", 40, "CORE-000148/CG0258")):
            if len(text(rec.get(var))) > most:
                yield ctx.finding("error", rule, "TS_PARM_LENGTH", f"{var} is more than {most} characters", "TS",
                                  row=row, variable=var, value=rec.get(var))
    have = {text(r.get("TSPARMCD")) for _, r in ctx.rows("TS")}
    missing = [p for p in TS_PARAMETERS if p not in have]
    if missing:
        yield ctx.finding("warning", "TCIM-TSPARM", "TS_PARAMETER_MISSING",
                          f"TS has no record for {', '.join(missing)}", "TS", variable="TSPARMCD")


@check("ta_elements", "CORE-000173/CG0414", "CORE-000144/CG0247", "CORE-000132/CG0154", "CORE-000534/CG0248")
def ta_elements(ctx: Context):
    """TA's ETCD are elements of TE, TAETORD is an integer unique within an arm, ETCD and ELEMENT go one
    to one."""
    if ctx.has("TA", "ARMCD", "TAETORD"):
        yield from unique(ctx, "TA", ("ARMCD", "TAETORD"), "CORE-000144/CG0247", "TA_ORDER_NOT_UNIQUE")
        for row, rec in ctx.rows("TA"):
            order = rec.get("TAETORD")
            if present(order) and not (isinstance(order, (int, float)) and float(order).is_integer()):
                yield ctx.finding("error", "CORE-000534/CG0248", "TA_ORDER_NOT_INTEGER", "TAETORD is not an integer",
                                  "TA", row=row, variable="TAETORD", value=order)
    for name in ("TA", "TE"):
        if ctx.has(name, "ETCD", "ELEMENT"):
            yield from one_to_one(ctx, name, "ETCD", "ELEMENT", "CORE-000132/CG0154", "ELEMENT_NOT_ONE_TO_ONE")
    if ctx.has("TA", "ETCD") and ctx.has("TE", "ETCD"):
        elements = {text(r.get("ETCD")) for _, r in ctx.rows("TE")}
        for row, rec in ctx.rows("TA"):
            etcd = text(rec.get("ETCD"))
            if etcd and etcd != "UNPLAN" and etcd not in elements:
                yield ctx.finding("error", "CORE-000173/CG0414", "ETCD_NOT_IN_TE", f"ETCD {etcd!r} is not an element of TE",
                                  "TA", row=row, variable="ETCD", value=etcd)


@check("te_end_rule", "CORE-000027/CG0328")
def te_end_rule(ctx: Context):
    """Each element of TE has an end rule (TEENRL) or a duration (TEDUR)."""
    if "TE" not in ctx.datasets:
        return
    for row, rec in ctx.rows("TE"):
        if not present(rec.get("TEENRL")) and not present(rec.get("TEDUR")):
            yield ctx.finding("error", "CORE-000027/CG0328", "TE_NO_END", "neither TEENRL nor TEDUR is given", "TE",
                              row=row, variable="TEENRL", value=rec.get("ETCD"))


def _element_days(rec: dict) -> tuple[int | None, int | None, int | None]:
    """(first, last, duration) of an element in calendar days from study day 1: the study days its
    rules name ("... study day -28"), its TEDUR in days (PnD); None where not told."""
    days = [_STUDY_DAY.search(text(rec.get(v))) for v in ("TESTRL", "TEENRL")]
    first, last = (day_offset(int(m.group(1))) if m else None for m in days)
    dur = _DAYS.match(text(rec.get("TEDUR")))
    return first, last, int(dur.group(1)) if dur else None


@check("te_contiguous", "TCIM-TECONTIG")
def te_contiguous(ctx: Context):
    """The elements of an arm follow one another: each starts the day after the one before it ends
    (rules naming study days: "study day 2"), and TEDUR is the span of those days. Elements whose rules
    name no study day are not checked (another sponsor's TE)."""
    if not ctx.has("TE", "ETCD") or not ctx.has("TA", "ARMCD", "TAETORD", "ETCD"):
        return
    te = {text(r.get("ETCD")): (row, r) for row, r in ctx.rows("TE")}
    for row, rec in te.values():
        first, last, dur = _element_days(rec)
        if first is not None and last is not None and dur is not None and last - first + 1 != dur:
            yield ctx.finding("error", "TCIM-TECONTIG", "TE_DURATION", f"TEDUR {rec.get('TEDUR')} is not the "
                              f"{last - first + 1} day(s) from TESTRL to TEENRL", "TE", row=row, variable="TEDUR",
                              value=rec.get("TEDUR"))
    arms: dict[str, list[tuple[float, str]]] = {}
    for _, rec in ctx.rows("TA"):
        arms.setdefault(text(rec.get("ARMCD")), []).append((float(rec.get("TAETORD") or 0), text(rec.get("ETCD"))))
    done = set()
    for arm, elements in arms.items():
        seq = [etcd for _, etcd in sorted(elements)]
        for before, after in zip(seq, seq[1:], strict=False):
            if (before, after) in done or before not in te or after not in te:
                continue
            done.add((before, after))
            first, last, dur = _element_days(te[before][1])
            end = last if last is not None else first + dur - 1 if first is not None and dur else None
            start = _element_days(te[after][1])[0]
            if end is not None and start is not None and start != end + 1:
                yield ctx.finding("error", "TCIM-TECONTIG", "TE_NOT_CONTIGUOUS",
                                  f"element {after} starts {'after a gap' if start > end + 1 else 'before'} the end of "
                                  f"{before} (arm {arm}): TESTRL should be the day after {before}'s TEENRL", "TE",
                                  row=te[after][0], variable="TESTRL", value=te[after][1].get("TESTRL"))


@check("tv_visits", "CORE-000361/CG0035", "CORE-000155/CG0293", "TCIM-TVKEY")
def tv_visits(ctx: Context):
    """VISITNUM is unique per arm in TV, VISIT and VISITNUM go one to one, and TV's ARMCD are arms of TA."""
    if not ctx.has("TV", "VISITNUM"):
        return
    arm = ("ARMCD",) if ctx.has("TV", "ARMCD") else ()
    yield from unique(ctx, "TV", arm + ("VISITNUM",), "TCIM-TVKEY", "TV_VISITNUM_NOT_UNIQUE")
    if ctx.has("TV", "VISIT"):
        yield from one_to_one(ctx, "TV", "VISITNUM", "VISIT", "CORE-000361/CG0035", "VISIT_NOT_ONE_TO_ONE")
    if arm and ctx.has("TA", "ARMCD"):
        arms = {text(r.get("ARMCD")) for _, r in ctx.rows("TA")}
        for row, rec in ctx.rows("TV"):
            value = text(rec.get("ARMCD"))
            if value and value not in arms:
                yield ctx.finding("error", "CORE-000155/CG0293", "ARM_NOT_IN_TA", f"ARMCD {value!r} is not an arm of TA",
                                  "TV", row=row, variable="ARMCD", value=value)


@check("epoch_in_ta", "CORE-000271/CG0009")
def epoch_in_ta(ctx: Context):
    """An EPOCH value of any dataset is an epoch of TA."""
    if not ctx.has("TA", "EPOCH"):
        return
    epochs = {text(r.get("EPOCH")) for _, r in ctx.rows("TA")}
    for name, ds in ctx.datasets.items():
        if name == "TA" or "EPOCH" not in ds.frame.columns:
            continue
        for row, rec in ctx.rows(name):
            value = text(rec.get("EPOCH"))
            if value and value not in epochs:
                yield ctx.finding("error", "CORE-000271/CG0009", "EPOCH_NOT_IN_TA", f"EPOCH {value!r} is not an epoch of TA",
                                  name, row=row, variable="EPOCH", value=value, record=rec)
