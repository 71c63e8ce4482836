"""mappings/translations.yaml: the study's translation table for verbatim text that is not English.

A text is looked up as a data manager reads it: case, accents and spacing aside (name_key), so that the
folded form XPT holds ("Nauseas") finds the same line as the text as sent ("Náuseas"). A text that is in
no line but looks like the table's language (an accented letter, or one of its `markers` words) is
reported UNTRANSLATED by the caller, never passed silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SpecError
from .model import name_key
from .yaml_files import read_yaml

_KEYS = {"language", "markers", "terms"}
_WORD = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class TranslationTable:
    language: str = ""
    terms: dict[str, str] = field(default_factory=dict)  # name_key(original) -> English
    markers: frozenset[str] = frozenset()

    def translate(self, text: str) -> str | None:
        """The English of a text of the table, else None."""
        return self.terms.get(name_key(text))

    def looks_untranslated(self, text: str) -> bool:
        """A text in the table's language, by its letters (accents, ñ, ¿ ¡) or its words (markers)."""
        if any(not ch.isascii() and (ch.isalpha() or ch in "¿¡") for ch in text):
            return True
        return any(w in self.markers for w in _WORD.findall(text.casefold()))


def load_translations(path: Path) -> TranslationTable:
    """The table, checked: known keys, texts on both sides, no original given twice."""
    if not path.is_file():
        return TranslationTable()
    doc = read_yaml(path)
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    terms: dict[str, str] = {}
    for original, english in (doc.get("terms") or {}).items():
        if not isinstance(original, str) or not isinstance(english, str) or not original.strip() or not english.strip():
            raise SpecError(f"{path}: terms: {original!r}: both the original and its English must be texts")
        key = name_key(original)
        if key in terms:
            raise SpecError(f"{path}: terms: {original!r} is given twice (case, accents and spacing aside)")
        terms[key] = " ".join(english.split())
    markers = frozenset(str(m).casefold() for m in doc.get("markers") or [])
    return TranslationTable(str(doc.get("language") or ""), terms, markers)
