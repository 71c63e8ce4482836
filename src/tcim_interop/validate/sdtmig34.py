"""SDTMIG 3.4 variable metadata for the datasets the specs in mappings/ do not describe (trial design,
DS, SE, SV, EC, ...) and for the standard core of those they do: per domain, its class and each
variable's name, type (C/N) and core (Req/Exp/Perm), in SDTMIG order. Source: the SDTMIG 3.4 domain
specifications (reference/sdtmig-3.4/domains/*/spec.md). "--" prefixes are written out per domain;
SUPPQUAL is the structure of every SUPPxx.
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple


class StdVariable(NamedTuple):
    name: str
    type: str  # "Char" | "Num"
    core: str  # "Req" | "Exp" | "Perm"


_DOMAINS = {
    "AE": ("EVENTS", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req SPDEVID:C:Perm AESEQ:N:Req AEGRPID:C:Perm AEREFID:C:Perm AESPID:C:Perm AETERM:C:Req AEMODIFY:C:Perm AELLT:C:Exp AELLTCD:N:Exp AEDECOD:C:Req AEPTCD:N:Exp AEHLT:C:Exp AEHLTCD:N:Exp AEHLGT:C:Exp AEHLGTCD:N:Exp AECAT:C:Perm AESCAT:C:Perm AEPRESP:C:Perm AEBODSYS:C:Exp AEBDSYCD:N:Exp AESOC:C:Exp AESOCCD:N:Exp AELOC:C:Perm AESEV:C:Perm AESER:C:Exp AEACN:C:Exp AEACNOTH:C:Perm AEACNDEV:C:Perm AEREL:C:Exp AERLDEV:C:Perm AERELNST:C:Perm AEPATT:C:Perm AEOUT:C:Perm AESCAN:C:Perm AESCONG:C:Perm AESDISAB:C:Perm AESDTH:C:Perm AESHOSP:C:Perm AESLIFE:C:Perm AESOD:C:Perm AESMIE:C:Perm AESINTV:C:Perm AEUNANT:C:Perm AERLPRT:C:Perm AERLPRC:C:Perm AECONTRT:C:Perm AETOXGR:C:Perm TAETORD:N:Perm EPOCH:C:Perm AESTDTC:C:Exp AEENDTC:C:Exp AESTDY:N:Perm AEENDY:N:Perm AEDUR:C:Perm AEENRF:C:Perm AEENRTPT:C:Perm AEENTPT:C:Perm"),
    "CO": ("SPECIAL PURPOSE", "STUDYID:C:Req DOMAIN:C:Req RDOMAIN:C:Perm USUBJID:C:Req COSEQ:N:Req IDVAR:C:Perm IDVARVAL:C:Perm COREF:C:Perm COVAL:C:Req COEVAL:C:Perm COEVALID:C:Perm CODTC:C:Perm CODY:N:Perm"),
    "DM": ("SPECIAL PURPOSE", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req SUBJID:C:Req RFSTDTC:C:Exp RFENDTC:C:Exp RFXSTDTC:C:Exp RFXENDTC:C:Exp RFCSTDTC:C:Perm RFCENDTC:C:Perm RFICDTC:C:Exp RFPENDTC:C:Exp DTHDTC:C:Exp DTHFL:C:Exp SITEID:C:Req INVID:C:Perm INVNAM:C:Perm BRTHDTC:C:Perm AGE:N:Exp AGEU:C:Exp SEX:C:Req RACE:C:Exp ETHNIC:C:Perm ARMCD:C:Exp ARM:C:Exp ACTARMCD:C:Exp ACTARM:C:Exp ARMNRS:C:Exp ACTARMUD:C:Exp COUNTRY:C:Req DMDTC:C:Perm DMDY:N:Perm"),
    "DS": ("EVENTS", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req DSSEQ:N:Req DSGRPID:C:Perm DSREFID:C:Perm DSSPID:C:Perm DSTERM:C:Req DSDECOD:C:Req DSCAT:C:Exp DSSCAT:C:Perm EPOCH:C:Perm DSDTC:C:Perm DSSTDTC:C:Exp DSDY:N:Perm DSSTDY:N:Exp"),
    "EC": ("INTERVENTIONS", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req ECSEQ:N:Req ECGRPID:C:Perm ECREFID:C:Perm ECSPID:C:Perm ECLNKID:C:Perm ECLNKGRP:C:Perm ECTRT:C:Req ECMOOD:C:Perm ECCAT:C:Perm ECSCAT:C:Perm ECPRESP:C:Perm ECOCCUR:C:Perm ECREASOC:C:Perm ECDOSE:N:Exp ECDOSTXT:C:Perm ECDOSU:C:Exp ECDOSFRM:C:Exp ECDOSFRQ:C:Perm ECDOSTOT:N:Perm ECDOSRGM:C:Perm ECROUTE:C:Perm ECLOT:C:Perm ECLOC:C:Perm ECLAT:C:Perm ECDIR:C:Perm ECPORTOT:C:Perm ECFAST:C:Perm ECPSTRG:N:Perm ECPSTRGU:C:Perm ECADJ:C:Perm TAETORD:N:Perm EPOCH:C:Perm ECSTDTC:C:Exp ECENDTC:C:Exp ECSTDY:N:Perm ECENDY:N:Perm ECDUR:C:Perm ECTPT:C:Perm ECTPTNUM:N:Perm ECELTM:C:Perm ECTPTREF:C:Perm ECRFTDTC:C:Perm"),
    "EX": ("INTERVENTIONS", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req EXSEQ:N:Req EXGRPID:C:Perm EXREFID:C:Perm EXSPID:C:Perm EXLNKID:C:Perm EXLNKGRP:C:Perm EXTRT:C:Req EXCAT:C:Perm EXSCAT:C:Perm EXDOSE:N:Exp EXDOSTXT:C:Perm EXDOSU:C:Exp EXDOSFRM:C:Exp EXDOSFRQ:C:Perm EXDOSRGM:C:Perm EXROUTE:C:Perm EXLOT:C:Perm EXLOC:C:Perm EXLAT:C:Perm EXDIR:C:Perm EXFAST:C:Perm EXADJ:C:Perm TAETORD:N:Perm EPOCH:C:Perm EXSTDTC:C:Exp EXENDTC:C:Exp EXSTDY:N:Perm EXENDY:N:Perm EXDUR:C:Perm EXTPT:C:Perm EXTPTNUM:N:Perm EXELTM:C:Perm EXTPTREF:C:Perm EXRFTDTC:C:Perm"),
    "NV": ("FINDINGS", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req FOCID:C:Perm NVSEQ:N:Req NVGRPID:C:Perm NVREFID:C:Perm NVSPID:C:Perm NVLNKID:C:Perm NVLNKGRP:C:Perm NVTESTCD:C:Req NVTEST:C:Req NVCAT:C:Perm NVSCAT:C:Perm NVORRES:C:Exp NVORRESU:C:Perm NVSTRESC:C:Exp NVSTRESN:N:Perm NVSTRESU:C:Perm NVSTAT:C:Perm NVREASND:C:Perm NVLOC:C:Perm NVLAT:C:Perm NVDIR:C:Perm NVMETHOD:C:Perm NVLOBXFL:C:Perm NVBLFL:C:Perm NVDRVFL:C:Perm NVEVAL:C:Perm NVEVALID:C:Perm VISITNUM:N:Exp VISIT:C:Perm VISITDY:N:Perm TAETORD:N:Perm EPOCH:C:Perm NVDTC:C:Exp NVDY:N:Perm NVTPT:C:Perm NVTPTNUM:N:Perm NVELTM:C:Perm NVTPTREF:C:Perm NVRFTDTC:C:Perm"),
    "PR": ("INTERVENTIONS", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req PRSEQ:N:Req PRGRPID:C:Perm PRSPID:C:Perm PRLNKID:C:Perm PRLNKGRP:C:Perm PRTRT:C:Req PRDECOD:C:Perm PRCAT:C:Perm PRSCAT:C:Perm PRPRESP:C:Perm PROCCUR:C:Perm PRINDC:C:Perm PRDOSE:N:Perm PRDOSTXT:C:Perm PRDOSU:C:Perm PRDOSFRM:C:Perm PRDOSFRQ:C:Perm PRDOSRGM:C:Perm PRROUTE:C:Perm PRLOC:C:Perm PRLAT:C:Perm PRDIR:C:Perm PRPORTOT:C:Perm VISITNUM:N:Perm VISIT:C:Perm VISITDY:N:Perm TAETORD:N:Perm EPOCH:C:Perm PRSTDTC:C:Exp PRENDTC:C:Perm PRSTDY:N:Perm PRENDY:N:Perm PRDUR:C:Perm PRTPT:C:Perm PRTPTNUM:N:Perm PRELTM:C:Perm PRTPTREF:C:Perm PRRFTDTC:C:Perm PRSTRTPT:C:Perm PRSTTPT:C:Perm PRENRTPT:C:Perm PRENTPT:C:Perm"),
    "RELREC": ("RELATIONSHIP", "STUDYID:C:Req RDOMAIN:C:Req USUBJID:C:Exp IDVAR:C:Req IDVARVAL:C:Exp RELTYPE:C:Exp RELID:C:Req"),
    "SE": ("SPECIAL PURPOSE", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req SESEQ:N:Req ETCD:C:Req ELEMENT:C:Perm TAETORD:N:Perm EPOCH:C:Perm SESTDTC:C:Req SEENDTC:C:Exp SESTDY:N:Perm SEENDY:N:Perm SEUPDES:C:Perm"),
    "SUPPQUAL": ("RELATIONSHIP", "STUDYID:C:Req RDOMAIN:C:Req USUBJID:C:Req IDVAR:C:Exp IDVARVAL:C:Exp QNAM:C:Req QLABEL:C:Req QVAL:C:Req QORIG:C:Req QEVAL:C:Exp"),
    "SV": ("SPECIAL PURPOSE", "STUDYID:C:Req DOMAIN:C:Req USUBJID:C:Req VISITNUM:N:Req VISIT:C:Perm SVPRESP:C:Exp SVOCCUR:C:Exp SVREASOC:C:Perm SVCNTMOD:C:Perm SVEPCHGI:C:Perm VISITDY:N:Perm SVSTDTC:C:Exp SVENDTC:C:Exp SVSTDY:N:Perm SVENDY:N:Perm SVUPDES:C:Perm"),
    "TA": ("TRIAL DESIGN", "STUDYID:C:Req DOMAIN:C:Req ARMCD:C:Req ARM:C:Req TAETORD:N:Req ETCD:C:Req ELEMENT:C:Perm TABRANCH:C:Exp TATRANS:C:Exp EPOCH:C:Req"),
    "TE": ("TRIAL DESIGN", "STUDYID:C:Req DOMAIN:C:Req ETCD:C:Req ELEMENT:C:Req TESTRL:C:Req TEENRL:C:Perm TEDUR:C:Perm"),
    "TI": ("TRIAL DESIGN", "STUDYID:C:Req DOMAIN:C:Req IETESTCD:C:Req IETEST:C:Req IECAT:C:Req IESCAT:C:Perm TIRL:C:Perm TIVERS:C:Perm"),
    "TS": ("TRIAL DESIGN", "STUDYID:C:Req DOMAIN:C:Req TSSEQ:N:Req TSGRPID:C:Perm TSPARMCD:C:Req TSPARM:C:Req TSVAL:C:Exp TSVALNF:C:Perm TSVALCD:C:Exp TSVCDREF:C:Exp TSVCDVER:C:Exp"),
    "TV": ("TRIAL DESIGN", "STUDYID:C:Req DOMAIN:C:Req VISITNUM:N:Req VISIT:C:Req VISITDY:N:Perm ARMCD:C:Exp ARM:C:Perm TVSTRL:C:Req TVENRL:C:Perm"),
}


@cache
def domain_class(domain: str) -> str | None:
    """"EVENTS", "FINDINGS", "TRIAL DESIGN", ... of a standard domain (SUPPxx: RELATIONSHIP)."""
    entry = _DOMAINS.get("SUPPQUAL" if domain.startswith("SUPP") else domain)
    return entry[0] if entry else None


@cache
def variables(domain: str) -> tuple[StdVariable, ...]:
    """The SDTMIG 3.4 variables of a dataset, in order; () for a domain SDTMIG 3.4 does not define here."""
    entry = _DOMAINS.get("SUPPQUAL" if domain.startswith("SUPP") else domain)
    if entry is None:
        return ()
    out = []
    for item in entry[1].split():
        name, kind, core = item.split(":")
        out.append(StdVariable(name, "Num" if kind == "N" else "Char", core))
    return tuple(out)
