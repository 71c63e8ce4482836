"""Text rules of XPT v5 and SDTMIG: printable ASCII, and at most 200 bytes a value.

Splitting (SDTMIG 3.4 section 4.5.3.2): the first chunk stays in the variable, the rest goes to
SUPP-- records QNAM = name + 1, 2, ... Chunks break between words, at the last space that keeps
the chunk within the limit, and the space starts the next chunk: the chunks concatenated give back
the text exactly (XPT keeps leading blanks and drops trailing ones). A word longer than the limit is
cut. The limit is counted on the text as it will be written to XPT, that is after ASCII folding.
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
    """Chunks of at most `limit` bytes once folded; their concatenation is the text. Linear in the
    text: each chunk is cut from the whole by position (slicing off the rest each time would copy it)."""
    chunks, start = [], 0
    while (end := _fitting(text, start, limit)) < len(text):
        cut = max(end, start + 1)
        space = text.rfind(" ", start + 1, cut + 1)
        while space > start and text[space - 1] == " ":  # break before the whole run of blanks: XPT would
            space -= 1                                    # drop the ones left at the end of this chunk
        if space > start:
            cut = space
        chunks.append(text[start:cut])
        start = cut
    chunks.append(text[start:])
    return chunks


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
