"""DM checks: age, death, reference dates against exposure, arms and their null reason, masking."""

from __future__ import annotations

from collections import defaultdict

from ..sdtm.dataset import present
from .context import Context, one_to_one, text
from .registry import check

MASKED = "MASKED"  # ECTRT and ARMNRS (a sponsor extension of the extensible ARMNRS list) of a masked package


@check("age_units", "CORE-000189/CG0665", "CORE-000190/CG0666", "CORE-000310/FB4001")
def age_units(ctx: Context):
    """AGE and AGEU are populated together; AGE is not negative."""
    if not ctx.has("DM", "AGE", "AGEU"):
        return
    for row, rec in ctx.rows("DM"):
        age, ageu = rec.get("AGE"), rec.get("AGEU")
        if present(age) and not present(ageu):
            yield ctx.finding("error", "CORE-000189/CG0665", "AGE_WITHOUT_AGEU", "AGE is populated, AGEU is null",
                              "DM", row=row, variable="AGEU", value=age, record=rec)
        elif present(ageu) and not present(age):
            yield ctx.finding("error", "CORE-000190/CG0666", "AGEU_WITHOUT_AGE", "AGEU is populated, AGE is null",
                              "DM", row=row, variable="AGE", value=ageu, record=rec)
        if isinstance(age, (int, float)) and age < 0:
            yield ctx.finding("error", "CORE-000310/FB4001", "AGE_NEGATIVE", "AGE is negative", "DM", row=row,
                              variable="AGE", value=age, record=rec)


@check("death_flag", "CORE-000006/CG0131", "CORE-000007/CG0435", "CORE-000253/CG0135", "CORE-000254/CG0134")
def death_flag(ctx: Context):
    """DTHFL is Y or null, and Y when DTHDTC is populated or an AE of the subject has AESDTH = Y or
    AEOUT = FATAL."""
    if not ctx.has("DM", "DTHFL"):
        return
    deaths: dict[str, tuple[str, str]] = {}
    for _, rec in ctx.rows("AE") if "AE" in ctx.datasets else ():
        for var, value, rule in (("AESDTH", "Y", "CORE-000253/CG0135"), ("AEOUT", "FATAL", "CORE-000254/CG0134")):
            if text(rec.get(var)) == value:
                deaths.setdefault(text(rec.get("USUBJID")), (f"an AE has {var} = {value}", rule))
    for row, rec in ctx.rows("DM"):
        flag = text(rec.get("DTHFL"))
        if flag not in ("", "Y"):
            yield ctx.finding("error", "CORE-000006/CG0131", "DTHFL_NOT_Y", "DTHFL is neither Y nor null", "DM",
                              row=row, variable="DTHFL", value=flag, record=rec)
        reasons = [(f"DTHDTC is {text(rec.get('DTHDTC'))}", "CORE-000007/CG0435")] if present(rec.get("DTHDTC")) else []
        reasons += [deaths[text(rec.get("USUBJID"))]] if text(rec.get("USUBJID")) in deaths else []
        for why, rule in reasons if flag != "Y" else ():
            yield ctx.finding("error", rule, "DTHFL_MISSING", f"{why} but DTHFL is not Y", "DM", row=row,
                              variable="DTHFL", value=flag, record=rec)


@check("reference_exposure_dates", "CORE-000239/CG0148", "CORE-000238/CG0147")
def reference_exposure_dates(ctx: Context):
    """RFXSTDTC is the subject's earliest --STDTC of exposure and RFXENDTC the latest --STDTC/--ENDTC
    (EX; EC in a masked package, which has no EX)."""
    domain = "EX" if "EX" in ctx.datasets else "EC" if ctx.masked and "EC" in ctx.datasets else None
    if domain is None or not ctx.has("DM", "RFXSTDTC", "RFXENDTC"):
        return
    starts: defaultdict[str, list[str]] = defaultdict(list)
    ends: defaultdict[str, list[str]] = defaultdict(list)
    for _, rec in ctx.rows(domain):
        if domain == "EC" and text(rec.get("ECOCCUR")) == "N":
            continue
        subject = text(rec.get("USUBJID"))
        for var, into in ((f"{domain}STDTC", (starts, ends)), (f"{domain}ENDTC", (ends,))):
            if present(rec.get(var)):
                for bucket in into:
                    bucket[subject].append(text(rec.get(var)))
    for row, rec in ctx.rows("DM"):
        subject = text(rec.get("USUBJID"))
        for var, values, pick, rule in (("RFXSTDTC", starts, min, "CORE-000239/CG0148"),
                                        ("RFXENDTC", ends, max, "CORE-000238/CG0147")):
            if values.get(subject) and text(rec.get(var)) != pick(values[subject]):
                which = "earliest" if pick is min else "latest"
                yield ctx.finding("error", rule, "REFERENCE_EXPOSURE_DATE",
                                  f"{var} is {text(rec.get(var))!r}, the {which} {domain} date is {pick(values[subject])}",
                                  "DM", row=row, variable=var, value=rec.get(var), record=rec)


@check("arm_null_reason", "CORE-000045/CG0517", "CORE-000223/CG0513", "CORE-000121/CG0520")
def arm_null_reason(ctx: Context):
    """ARMNRS is populated if and only if ARMCD or ACTARMCD is null."""
    if not ctx.has("DM", "ARMCD", "ACTARMCD"):
        return
    has_nrs = ctx.has("DM", "ARMNRS")
    for row, rec in ctx.rows("DM"):
        reason = text(rec.get("ARMNRS")) if has_nrs else ""
        arm, actual = present(rec.get("ARMCD")), present(rec.get("ACTARMCD"))
        if not arm and not reason:
            yield ctx.finding("error", "CORE-000045/CG0517", "ARMNRS_MISSING", "ARMCD is null and ARMNRS is not given",
                              "DM", row=row, variable="ARMNRS", record=rec)
        elif not actual and not reason:
            yield ctx.finding("error", "CORE-000223/CG0513", "ARMNRS_MISSING",
                              "ACTARMCD is null and ARMNRS is not given", "DM", row=row, variable="ARMNRS", record=rec)
        elif arm and actual and reason:
            yield ctx.finding("error", "CORE-000121/CG0520", "ARMNRS_WITH_ARMS",
                              "ARMNRS is populated but ARMCD and ACTARMCD are both populated", "DM", row=row,
                              variable="ARMNRS", value=reason, record=rec)


@check("arm_codes", "CORE-000119/CG0521", "CORE-000120/CG0522", "CORE-000010/CG0153", "CORE-000185/CG0123",
       "CORE-000318/FB0902", "CORE-000791/FB0903")
def arm_codes(ctx: Context):
    """ARM/ACTARM have their codes, codes are at most 20 characters, and code and description go one to
    one (DM, TA, TV)."""
    for name in ("DM", "TA", "TV"):
        if name not in ctx.datasets:
            continue
        cols = ctx.datasets[name].frame.columns
        pairs = [(c, d, rule_null, rule_len, rule_1to1)
                 for c, d, rule_null, rule_len, rule_1to1 in (
                     ("ARMCD", "ARM", "CORE-000119/CG0521", "CORE-000010/CG0153", "CORE-000318/FB0902"),
                     ("ACTARMCD", "ACTARM", "CORE-000120/CG0522", "CORE-000185/CG0123", "CORE-000791/FB0903"))
                 if c in cols]
        for code, label, rule_null, rule_len, rule_1to1 in pairs:
            for row, rec in ctx.rows(name):
                cd, desc = text(rec.get(code)), text(rec.get(label))
                if desc and not cd:
                    yield ctx.finding("error", rule_null, "ARM_WITHOUT_CODE", f"{label} is populated, {code} is null",
                                      name, row=row, variable=code, value=desc, record=rec)
                if len(cd) > 20:
                    yield ctx.finding("error", rule_len, "ARMCD_TOO_LONG", f"{code} is more than 20 characters",
                                      name, row=row, variable=code, value=cd, record=rec)
            if label in cols:
                yield from one_to_one(ctx, name, code, label, rule_1to1, "ARM_NOT_ONE_TO_ONE")


@check("arms_in_ta", "CORE-000210/CG0516", "CORE-000208/CG0512")
def arms_in_ta(ctx: Context):
    """DM's ARMCD and ACTARMCD are arms of TA (when there is no TA, one finding says they could not be
    checked)."""
    if not ctx.has("DM", "ARMCD"):
        return
    if "TA" not in ctx.datasets:
        yield ctx.finding("warning", "CORE-000210/CG0516", "NO_TA",
                          "the package has no TA dataset: DM's ARMCD and ACTARMCD cannot be checked against the "
                          "trial arms", "DM", variable="ARMCD")
        return
    arms = {text(r.get("ARMCD")) for _, r in ctx.rows("TA")} if ctx.has("TA", "ARMCD") else set()
    for row, rec in ctx.rows("DM"):
        for var, rule in (("ARMCD", "CORE-000210/CG0516"), ("ACTARMCD", "CORE-000208/CG0512")):
            value = text(rec.get(var))
            if value and value not in arms:
                yield ctx.finding("error", rule, "ARM_NOT_IN_TA", f"{var} {value!r} is not an ARMCD of TA", "DM",
                                  row=row, variable=var, value=value, record=rec)


@check("masking", "TCIM-MASK")
def masking(ctx: Context):
    """A masked package (manifest option masked) has no EX, and its DM arms are null with ARMNRS =
    MASKED; an unmasked package uses MASKED nowhere (ECTRT, ARMNRS)."""
    if ctx.masked and "EX" in ctx.datasets:
        yield ctx.finding("error", "TCIM-MASK", "MASKED_WITH_EX",
                          "a masked package has an EX dataset: the treatment is unblinded", "EX")
    for name, var in (("DM", "ARMNRS"), ("EC", "ECTRT")):
        for row, rec in ctx.rows(name) if ctx.has(name, var) else ():
            if ctx.masked and name == "DM" and present(rec.get("ARMCD")):
                yield ctx.finding("error", "TCIM-MASK", "MASKED_ARM_SHOWN",
                                  "a masked package shows the subject's arm", name, row=row, variable="ARMCD",
                                  value=rec.get("ARMCD"), record=rec)
            elif not ctx.masked and text(rec.get(var)) == MASKED:
                yield ctx.finding("error", "TCIM-MASK", "MASKED_VALUE_UNMASKED",
                                  f"{var} = MASKED in a package that is not masked (manifest.json options)", name,
                                  row=row, variable=var, value=MASKED, record=rec)


ISO3166 = "ISO3166"  # the codelists.yaml dictionary of country codes (dm.yaml COUNTRY)


@check("country_codes", "SDTMIG-DM/ISO3166")
def country_codes(ctx: Context):
    """A country is an ISO 3166-1 alpha-3 code (pycountry's table): DM's COUNTRY in any package
    (SDTMIG 3.4 DM), every variable whose spec names the ISO3166 dictionary, TS's FCNTRY values; and
    define.xml, when it gives COUNTRY a dictionary, names ISO 3166. No CORE rule checks the values."""
    import pycountry

    def alpha3(value: str) -> bool:
        return len(value) == 3 and pycountry.countries.get(alpha_3=value) is not None

    targets = {("DM", "COUNTRY")} | {(n, v.name) for n, s in ctx.specs.items() for v in s.variables
                                     if ISO3166 in (v.codelist, v.dictionary)}
    for name, var in sorted(targets):
        if ctx.has(name, var):
            for row, rec, value in ctx.failing(name, var, alpha3):
                yield ctx.finding("error", "SDTMIG-DM/ISO3166", "COUNTRY_NOT_ISO3166",
                                  f"{value!r} is not an ISO 3166-1 alpha-3 country code", name, row=row,
                                  variable=var, value=value, record=rec)
    if ctx.has("TS", "TSPARMCD", "TSVAL"):
        for row, rec in ctx.rows("TS"):
            value = text(rec.get("TSVAL"))
            if text(rec.get("TSPARMCD")) == "FCNTRY" and value and not alpha3(value):
                yield ctx.finding("error", "SDTMIG-DM/ISO3166", "COUNTRY_NOT_ISO3166",
                                  f"FCNTRY {value!r} is not an ISO 3166-1 alpha-3 country code", "TS", row=row,
                                  variable="TSVAL", value=value, record=rec)
    dictionary = _define_country_dictionary(ctx.define_xml) if ctx.define_xml else None
    if dictionary is not None and "3166" not in dictionary:
        yield ctx.finding("warning", "SDTMIG-DM/ISO3166", "DEFINE_COUNTRY_DICTIONARY",
                          f"define.xml gives COUNTRY the dictionary {dictionary!r}, not ISO 3166", "DM",
                          variable="COUNTRY", value=dictionary, file="define.xml")


def _define_country_dictionary(define_xml: bytes) -> str | None:
    """The ExternalCodeList Dictionary that define.xml gives DM.COUNTRY; None when it gives none (or
    cannot be read: define_datasets reports that)."""
    from lxml import etree

    try:
        root = etree.fromstring(define_xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return None
    items = {el.get("OID"): el for el in root.iter("{*}ItemDef")}
    lists = {el.get("OID"): el for el in root.iter("{*}CodeList")}
    for group in root.iter("{*}ItemGroupDef"):
        if (group.get("Name") or "").upper() != "DM":
            continue
        for ref in group.iter("{*}ItemRef"):
            item = items.get(ref.get("ItemOID"))
            if item is None or item.get("Name") != "COUNTRY":
                continue
            cl_ref = next(item.iter("{*}CodeListRef"), None)
            cl = lists.get(cl_ref.get("CodeListOID")) if cl_ref is not None else None
            external = next(cl.iter("{*}ExternalCodeList"), None) if cl is not None else None
            return external.get("Dictionary") or "" if external is not None else None
    return None
