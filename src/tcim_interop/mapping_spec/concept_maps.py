"""FHIR ConceptMaps: how codes the study does not code in (a hospital's pharmacy, EMG or visit codes, a
terminology such as SNOMED CT) become the study's concepts.

A map is read in its R4 form (target.equivalence) or its R5 form (target.relationship). Only targets
that mean at least what the source means are used: R4 equivalent, equal, wider, subsumes; R5
equivalent, source-is-narrower-than-target. A narrower, inexact or merely related target would put a
study concept on a record that may not be it; such targets, unmatched/disjoint ones and noMap
elements give no translation, and the code stays unmapped (reported, never guessed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError
from ..json_files import read_json

USABLE = {"equivalent", "equal", "wider", "subsumes",  # R4 ConceptMapEquivalence
          "source-is-narrower-than-target"}  # R5 ConceptMapRelationship (and its "equivalent")
KNOWN = USABLE | {"relatedto", "narrower", "specializes", "inexact", "unmatched", "disjoint",
                  "related-to", "source-is-broader-than-target", "not-related-to"}


@dataclass
class Translations:
    """source "system|code" -> the study's "system|code" it stands for, in the maps' order."""

    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)  # source key -> the map that gave it (file#id)
    files: list[str] = field(default_factory=list)  # the ConceptMap files read

    def add(self, source: str, target: str, origin: str) -> None:
        if target not in self.targets.get(source, ()):
            self.targets[source] = self.targets.get(source, ()) + (target,)
            self.origin.setdefault(source, origin)

    def of(self, system: str | None, code: str) -> list[tuple[str, str]]:
        """(system, code) of each study concept a foreign code stands for, in the maps' order."""
        return [(t_system, t_code) for t_system, _, t_code in
                (target.rpartition("|") for target in self.targets.get(f"{system}|{code}", ()))]

    def extend(self, other: Translations) -> None:
        for source, targets in other.targets.items():
            for target in targets:
                self.add(source, target, other.origin[source])
        self.files += other.files


def read_concept_maps(paths: list[Path], into: Translations | None = None) -> Translations:
    """Every ConceptMap of these JSON files (a ConceptMap, or a Bundle of them)."""
    out = into or Translations()
    for path in paths:
        doc = read_json(path, SpecError)
        maps = [e.get("resource") for e in doc.get("entry") or [] if isinstance(e, dict)] \
            if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" else [doc]
        for cm in maps:
            if not isinstance(cm, dict) or cm.get("resourceType") != "ConceptMap":
                kind = cm.get("resourceType") if isinstance(cm, dict) else type(cm).__name__
                raise SpecError(f"{path}: a {kind}, not a ConceptMap (a site folder holds ConceptMaps and site.yaml)")
            _read_one(cm, f"{path.name}#{cm.get('id') or cm.get('url') or '?'}", out)
        out.files.append(str(path))
    return out


def _read_one(cm: dict, where: str, out: Translations) -> None:
    groups = cm.get("group")
    if not isinstance(groups, list) or not groups:
        raise SpecError(f"{where}: no group: a ConceptMap says which codes map to which in its groups")
    for g, group in enumerate(groups):
        if not isinstance(group, dict) or not group.get("source") or not group.get("target"):
            raise SpecError(f"{where}: group[{g}] needs source and target (the code systems mapped from and to)")
        source_system, target_system = _canonical(group["source"]), _canonical(group["target"])
        for e, element in enumerate(group.get("element") or []):
            at = f"{where}: group[{g}].element[{e}]"
            if not isinstance(element, dict) or not element.get("code"):
                raise SpecError(f"{at}: no code")
            if element.get("noMap"):
                continue
            for t, target in enumerate(element.get("target") or []):
                if not isinstance(target, dict):
                    raise SpecError(f"{at}.target[{t}]: not an object")
                kind = target.get("relationship", target.get("equivalence"))
                if kind not in KNOWN:
                    raise SpecError(f"{at}.target[{t}]: equivalence (R4) or relationship (R5) must be one of "
                                    f"{', '.join(sorted(KNOWN))}, not {kind!r}")
                if kind in USABLE and target.get("code"):
                    out.add(f"{source_system}|{element['code']}", f"{target_system}|{target['code']}", where)


def _canonical(url: str) -> str:
    """A code system's canonical URL without its |version."""
    return str(url).split("|", 1)[0]


def concept_map(map_id: str, source: str, target: str, codes: Iterable[tuple[str, str, str]],
                status: str = "active") -> dict:
    """An R4 ConceptMap of one group, each (code, target code, comment) mapped "equivalent" (what a site
    folder holds; an empty target code maps nothing, an empty comment is left out)."""
    return {"resourceType": "ConceptMap", "id": map_id, "status": status, "group": [{
        "source": source, "target": target,
        "element": [{"code": code, "target": [{"code": to, "equivalence": "equivalent", **({"comment": note} if note else {})}]}
                    for code, to, note in codes]}]}
