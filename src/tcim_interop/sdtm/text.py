"""Text rules of XPT v5 and SDTMIG: printable ASCII, and at most 200 bytes a value.

Splitting (SDTMIG 3.4 section 4.5.3.2): the first chunk stays in the variable, the rest goes to
SUPP-- records QNAM = name + 1, 2, ... Chunks break between words, at the last blank that keeps
the chunk within the limit; the blank (or run of blanks) at the break belongs to no chunk, so no
chunk begins or ends with one (CDISC CORE-000867: no leading or trailing space in a value).
join_text puts one blank back between chunks. A word longer than the limit is cut (join_text then
gives it back with a blank inside; splitting that again gives the same chunks, so SDTM -> FHIR ->
SDTM is exact). The limit is counted on the text as it will be written to XPT, after ASCII folding.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

MAX_BYTES = 200


def continuation_qnam(name: str, n: int) -> str:
    """QNAM of the n-th continuation of a variable's text, within 8 characters: AETERM1, AETERM10, AETER100."""
    return f"{name[:8 - len(str(n))]}{n}"


# Typographic punctuation (Word's quotes and dashes, common in protocol text) has a plain ASCII twin
# that keeps the meaning; "?" would not ("Alzheimer’s" -> "Alzheimer's", not "Alzheimer?s").
_PUNCTUATION = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
                              "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
                              "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
                              "\u2212": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " "})


def fold_ascii(text: str) -> str:
    """Diacritics removed ("inyección" -> "inyeccion"), typographic quotes and dashes made plain;
    anything else not printable ASCII -> "?"."""
    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in unicodedata.normalize("NFKD", text.translate(_PUNCTUATION)):
        if unicodedata.combining(ch):
            continue
        out.append(ch if " " <= ch <= "~" else "?")
    return "".join(out)


def key_text(text: str) -> str:
    """An identifier as XPT v5 writes it (folded, trailing blanks dropped), given to every format:
    a USUBJID must be the same string in ae.xpt and ae.json."""
    return fold_ascii(text).rstrip(" ")


def xpt_length(text: str) -> int:
    return len(fold_ascii(text).encode("ascii"))


def split_text(text: str, limit: int = MAX_BYTES) -> list[str]:
    """Chunks of at most `limit` bytes once folded, broken at blanks that no chunk keeps. Linear in
    the text: each chunk is cut from the whole by position (slicing off the rest each time would copy it)."""
    chunks, start = [], 0
    while (end := _fitting(text, start, limit)) < len(text):
        stop = nxt = max(end, start + 1)  # no blank to break at: the word is cut
        space = text.rfind(" ", start + 1, end + 1)  # a blank right after a full chunk will do
        if space > start:
            stop, nxt = space, space + 1
            while stop > start and text[stop - 1] == " ":  # the whole run of blanks is the break
                stop -= 1
            while nxt < len(text) and text[nxt] == " ":
                nxt += 1
            if stop == start:  # the chunk would be blanks only (a text starting with blanks): cut
                stop = nxt = max(end, start + 1)
        chunks.append(text[start:stop])
        start = nxt
    if start < len(text) or not chunks:  # blanks ending the text are the end of no chunk (XPT drops them)
        chunks.append(text[start:])
    return chunks


def join_text(chunks: list[str]) -> str:
    """The text of split_text's chunks: one blank where each break was."""
    return " ".join(chunks)


def _fitting(text: str, start: int, limit: int) -> int:
    """The largest end with xpt_length(text[start:end]) <= limit (folding is per character, so
    monotone); len(text) when the rest fits. Reads only as far as the limit reaches."""
    window = text[start:start + limit]
    if window.isascii():  # every ASCII character folds to one byte
        return start + len(window)
    total, end = 0, start
    while end < len(text):
        total += _char_bytes(text[end])
        if total > limit:
            break
        end += 1
    return end


@lru_cache(maxsize=4096)
def _char_bytes(ch: str) -> int:
    return xpt_length(ch)
