"""Controlled terminology (mappings/codelists.yaml): CDISC and sponsor codelists, and the maps from
FHIR codes to submission values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import SpecError
from .concept_maps import Translations


@dataclass(frozen=True)
class Term:
    value: str
    nci_code: str = ""
    decode: str = ""
    sponsor: bool = False


@dataclass
class Codelist:
    name: str  # the key in codelists.yaml, e.g. "SEX"
    title: str
    nci_code: str
    extensible: bool
    sponsor: bool
    terms: list[Term]

    def __post_init__(self) -> None:
        self.by_value = {t.value: t for t in self.terms}
        # NCI code -> submission value (the first term's where two share a code): lookup() runs once per
        # coded cell, so a dict rather than a scan of the terms
        self.by_nci_code: dict[str, str] = {}
        for t in self.terms:
            if t.nci_code:
                self.by_nci_code.setdefault(t.nci_code, t.value)

    def __contains__(self, value: str) -> bool:
        return value in self.by_value


@dataclass
class Codelists:
    nci_system: str
    codelists: dict[str, Codelist]
    maps: dict[str, dict[str, str]]  # map name -> {"system|code": submission value}
    dictionaries: dict[str, dict] = field(default_factory=dict)
    reverse_choice: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # map -> release -> value -> key
    # the ConceptMaps shipped in mappings/conceptmaps/ and the site's (--site): foreign codes -> the study's
    translations: Translations = field(default_factory=Translations)
    meddra_socs: frozenset[str] = frozenset()  # dictionaries.MEDDRA.soc: the system organ class codes

    @classmethod
    def from_yaml(cls, doc: dict, file: str) -> Codelists:
        try:
            lists = {}
            for name, cl in (doc.get("codelists") or {}).items():
                terms = [Term(str(t["value"]), str(t.get("nci_code", "")), str(t.get("decode", "")),
                              bool(t.get("sponsor", False))) for t in cl["terms"]]
                lists[name] = Codelist(name, cl.get("name", name), str(cl.get("nci_code", "")),
                                       bool(cl.get("extensible", False)), bool(cl.get("sponsor", False)), terms)
            raw_maps = doc.get("maps") or {}
            maps = {name: {str(k): str(v) for k, v in (m or {}).items() if k != "_reverse"} for name, m in raw_maps.items()}
            choice = {name: {str(rel): {str(v): str(k) for v, k in pick.items()} for rel, pick in m["_reverse"].items()}
                      for name, m in raw_maps.items() if isinstance(m, dict) and "_reverse" in m}
            dictionaries = dict(doc.get("dictionaries") or {})
            socs = _soc_codes(dictionaries.get("MEDDRA") or {}, file)
            return cls(str(doc["nci_system"]), lists, maps, dictionaries, choice, meddra_socs=socs)
        except (KeyError, TypeError, AttributeError) as e:
            raise SpecError(f"{file}: malformed codelist file: {e!r}") from None

    def lookup(self, codelist: str, map_name: str | None, system: str | None, code: str | None) -> str | None:
        """The submission value for a FHIR code, or None when nothing maps it (never a guess)."""
        if code is None or code == "":
            return None
        hit = self._direct(codelist, map_name, system, code)
        if hit is None:  # a foreign code: the study concepts the ConceptMaps give it, in their order
            for t_system, t_code in self.translations.of(system, code):
                if (hit := self._direct(codelist, map_name, t_system, t_code)) is not None:
                    break
        return hit

    def _direct(self, codelist: str, map_name: str | None, system: str | None, code: str) -> str | None:
        if map_name:
            hit = self.maps[map_name].get(f"{system}|{code}")
            if hit is not None:
                return hit
        cl = self.codelists.get(codelist)
        if cl is not None and system == self.nci_system:
            return cl.by_nci_code.get(code)
        return None

    def unmapped_hint(self, codelist: str, map_name: str | None) -> str:
        """How to make a code that lookup() does not map give a term: the Finding.hint of CT_UNMAPPED."""
        nci = f"code it in the NCI Thesaurus ({self.nci_system}) with the code of a {codelist} term"
        site = "or map the hospital's code to a study concept in a ConceptMap of the site folder (--site)"
        return (f'add "system|code": TERM to maps.{map_name} in mappings/codelists.yaml, {nci}, {site}' if map_name
                else f"{nci}, {site}, or give the variable a map in mappings/codelists.yaml")

    def fhir_coding(self, codelist: str, map_name: str | None, value: str, version: str | None = None) -> dict | None:
        """The canonical FHIR coding for a submission value: the map's choice for the release, else
        the first map key for it, else the NCI Thesaurus code."""
        chosen = self.reverse_choice.get(map_name or "", {}).get(version or "", {}).get(value)
        if chosen:
            system, _, code = chosen.rpartition("|")
            return {"system": system, "code": code}
        if map_name:
            for key, v in self.maps[map_name].items():
                if v == value:
                    system, _, code = key.rpartition("|")
                    return {"system": system, "code": code}
        cl = self.codelists.get(codelist)
        term = cl.by_value.get(value) if cl else None
        if term is not None and term.nci_code:
            return {"system": self.nci_system, "code": term.nci_code, "display": value}
        return None


def _soc_codes(meddra: dict, file: str) -> frozenset[str]:
    """dictionaries.MEDDRA.soc, {8-digit code: name}, as its set of codes."""
    socs = meddra.get("soc") or {}
    if not isinstance(socs, dict):
        raise SpecError(f"{file}: dictionaries.MEDDRA.soc must map MedDRA codes to names, got {socs!r}")
    bad = [str(code) for code, name in socs.items()
           if not re.fullmatch(r"\d{8}", str(code)) or not isinstance(name, str) or not name.strip()]
    if bad:
        raise SpecError(f"{file}: dictionaries.MEDDRA.soc: not an 8-digit MedDRA code with a name: {', '.join(bad)}")
    return frozenset(map(str, socs))
