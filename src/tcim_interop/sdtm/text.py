"""Text rules of XPT v5 and SDTMIG: printable ASCII, and at most 200 bytes a value.

Splitting (SDTMIG 3.4 section 4.5.3.2): the first chunk stays in the variable, the rest goes to
SUPP-- records QNAM = name + 1, 2, ... Chunks break between words, at the last space that keeps
the chunk within the limit, and the space starts the next chunk: the chunks concatenated give back
the text exactly (XPT keeps leading blanks and drops trailing ones). A word longer than the limit is
cut. The limit is counted on the text as it will be written to XPT, that is after ASCII folding.
"""

from __future__ import annotations

import unicodedata

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
    """Chunks of at most `limit` bytes once folded; their concatenation is the text."""
    chunks = []
    while (fits := _fitting(text, limit)) < len(text):  # not xpt_length(text) > limit: linear, not quadratic
        cut = max(fits, 1)
        space = text.rfind(" ", 1, cut + 1)
        while space > 0 and text[space - 1] == " ":  # break before the whole run of blanks: XPT would drop
            space -= 1                                # the ones left at the end of this chunk
        if space > 0:
            cut = space
        chunks.append(text[:cut])
        text = text[cut:]
    chunks.append(text)
    return chunks


def _fitting(text: str, limit: int) -> int:
    """The largest n with xpt_length(text[:n]) <= limit (folding is per character, so monotone);
    len(text) when the whole text fits. Reads only as far as the limit reaches."""
    total, n = 0, 0
    for ch in text:
        w = 1 if " " <= ch <= "~" else xpt_length(ch)
        if total + w > limit:
            break
        total += w
        n += 1
    return n
