"""sdtm/text.py: ASCII folding for XPT v5, and splitting of text longer than 200 bytes."""

import signal
from contextlib import contextmanager

import pytest
from hypothesis import given, settings, strategies as st

from tcim_interop.sdtm.text import MAX_BYTES, fold_ascii, join_text, split_text, xpt_length


# --- fold_ascii --------------------------------------------------------------------------------
@pytest.mark.parametrize("text, folded", [
    ("Cefalea leve tras inyección", "Cefalea leve tras inyeccion"),
    ("Dolor en el músculo tibial anterior", "Dolor en el musculo tibial anterior"),
    ("ÁÉÍÓÚ áéíóú", "AEIOU aeiou"),
    ("España, año, niño, Ñandú", "Espana, ano, nino, Nandu"),
    ("pingüino, Güell, ÜBER", "pinguino, Guell, UBER"),
    ("Ça va, àèìòù", "Ca va, aeiou"),
    ("頭痛", "??"),
    ("fiebre 🤒", "fiebre ?"),
    ("ß", "?"),
    ("a\tb\nc", "a?b?c"),
    ("e\u0301", "e"),  # decomposed accent
    ("Alzheimer\u2019s \u201cmild\u201d \u2013 moderate", "Alzheimer's \"mild\" - moderate"),  # typographic
    ("10\u00a0mg", "10 mg"),
])
def test_fold_ascii(text, folded):
    assert fold_ascii(text) == folded


@pytest.mark.parametrize("text", ["", "Plain ASCII text, 100% (ok) ~!", "   leading and trailing   "])
def test_fold_ascii_leaves_printable_ascii_unchanged(text):
    assert fold_ascii(text) == text


def test_xpt_length_counts_bytes_after_folding():
    assert xpt_length("inyección") == 9
    assert xpt_length("頭痛") == 2
    assert xpt_length("e\u0301") == 1
    assert len("inyección".encode()) == 10  # what it would be unfolded


# --- split_text --------------------------------------------------------------------------------
def check_chunks(text, chunks, limit=MAX_BYTES):
    """Within the limit, no blank at either end of a chunk (CORE-000867), and one blank between chunks
    gives back the text (its blanks at a break made one)."""
    assert "".join(join_text(chunks).split(" ")) == "".join(text.split(" "))
    assert all(xpt_length(c) <= limit for c in chunks)
    assert all(chunks)
    assert not any(c != c.strip(" ") for c in chunks[1:])
    assert not any(c.endswith(" ") for c in chunks[:-1])


def test_short_text_is_one_chunk():
    assert split_text("Cefalea leve") == ["Cefalea leve"]
    assert split_text("") == [""]
    assert split_text("x" * 200) == ["x" * 200]


def test_breaks_at_the_last_space_and_no_chunk_keeps_it():
    text = ("word " * 100).strip()  # 499 characters
    chunks = split_text(text)
    check_chunks(text, chunks)
    assert [len(c) for c in chunks] == [199, 199, 99]
    assert chunks[0] == ("word " * 40)[:-1]
    assert all(c.startswith("word") and c.endswith("word") for c in chunks)
    assert join_text(chunks) == text


def test_space_right_after_a_full_chunk_is_used():
    text = "a" * 200 + " " + "b" * 50
    assert split_text(text) == ["a" * 200, "b" * 50]
    assert join_text(split_text(text)) == text


def test_a_long_word_with_no_space_is_cut_and_splits_again_the_same_once_joined():
    text = "x" * 450
    chunks = split_text(text)
    assert chunks == ["x" * 200, "x" * 200, "x" * 50]
    assert split_text(join_text(chunks)) == chunks  # SDTM -> FHIR -> SDTM is exact


def test_a_long_word_after_a_short_one_breaks_at_the_space_then_is_cut():
    text = "ab " + "x" * 450
    assert split_text(text) == ["ab", "x" * 200, "x" * 200, "x" * 50]


def test_a_leading_space_is_not_a_break_point():
    text = " " + "x" * 300
    assert split_text(text) == [" " + "x" * 199, "x" * 101]


def test_blanks_ending_the_text_make_no_empty_chunk():
    assert split_text("a" * 200 + "   ") == ["a" * 200]


def test_accented_text_is_measured_after_folding():
    # 200 characters, 220 UTF-8 bytes, 200 bytes once folded: it fits
    text = "ñ" * 20 + "a" * 180
    assert len(text.encode("utf-8")) == 220
    assert split_text(text) == [text]
    # 201 folded bytes: it does not
    text = "á" * 101 + " " + "é" * 99
    chunks = split_text(text)
    assert chunks == ["á" * 101, "é" * 99]


def test_decomposed_accents_do_not_count():
    text = "e\u0301" * 200  # 400 code points, 200 bytes folded
    assert split_text(text) == [text]


def test_a_run_of_blanks_at_a_break_is_the_break():
    text = "a" * 198 + "   " + "b" * 10
    chunks = split_text(text)
    check_chunks(text, chunks)
    assert chunks == ["a" * 198, "b" * 10]
    text = ("palabra  " * 60).strip()
    chunks = split_text(text)
    check_chunks(text, chunks)


@contextmanager
def time_limit(seconds):
    def fail(signum, frame):
        raise TimeoutError(f"split_text did not terminate within {seconds}s")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("abcxyz   .,-ñáéüÑ")),
        st.sampled_from(["\u0301", "頭", "🤒", "\t", "ﬁ", "…"]),
        st.characters(codec="utf-8"),
    ),
    max_size=900,
)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT)
def test_property_split_text_round_trips_within_the_limit(text):
    with time_limit(5):
        chunks = split_text(text)
    assert all(xpt_length(c) <= MAX_BYTES for c in chunks)
    assert all(chunks) or chunks == [""]
    # no chunk ends in a blank (XPT would drop it), no continuation begins with one (CORE-000867)
    assert not any(c.endswith(" ") for c in chunks[:-1])
    assert not any(c.startswith(" ") for c in chunks[1:])
    # every character but the blanks at the breaks comes back, in order
    assert "".join(join_text(chunks).split(" ")) == "".join(text.split(" "))
    assert split_text(join_text(chunks)) == chunks


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab ñé")), max_size=200), limit=st.integers(1, 20))
def test_property_split_text_small_limits(text, limit):
    with time_limit(5):
        chunks = split_text(text, limit)
    assert "".join(join_text(chunks).split(" ")) == "".join(text.split(" "))
    assert all(xpt_length(c) <= limit for c in chunks)


@pytest.mark.parametrize("spaced", [True, False], ids=["words", "one-word"])
def test_split_text_of_20_mb_is_whole_and_within_the_limit(spaced):
    """A 20 MB verbatim term, with spaces and without: the split is linear, about 0.1 s here (cutting
    the rest off the text at each chunk made it quadratic: about 50 s, growing with the square). The alarm,
    a hundred times the time needed, fails that, not a slow machine."""
    word = "dolor-en-el-lugar-de-inyeccion " if spaced else "dolorenellugardeinyeccion"
    text = (word * (20_000_000 // len(word) + 1))[:20_000_000]
    with time_limit(20):
        chunks = split_text(text)
    assert (join_text(chunks) if spaced else "".join(chunks)) == text.rstrip(" ")
    assert all(len(c.encode("ascii")) <= MAX_BYTES for c in chunks)
    assert len(chunks) >= 100_000
    if not spaced:
        assert {len(c) for c in chunks[:-1]} == {MAX_BYTES}


def test_split_text_of_4_mb_not_ascii():
    """Measured after folding, character by character: about 1 s for 4 MB, 4 s for 20 MB."""
    text = ("inyección dolorosa " * 220_000)[:4_000_000]
    with time_limit(120):
        chunks = split_text(text)
    assert join_text(chunks) == text.rstrip(" ")
    assert max(xpt_length(c) for c in chunks) <= MAX_BYTES


def test_a_long_verbatim_term_comes_back_whole_from_ae_and_suppae(tmp_path):
    """A 300 KB AETERM: 1,500 continuation records, each QNAM with its own ItemDef in define.xml, and
    AETERM + AETERM1 + AETERM2 + ... is the verbatim text again (the define is built from the SUPP table
    in one pass: a filter per QNAM made a 20 MB term take hours)."""
    import json

    import pyreadstat
    from conftest import DATA
    from lxml import etree

    from tcim_interop import to_sdtm
    from tcim_interop.mapping.engine import continuation_qnam

    doc = json.loads((DATA / "mini-r4.json").read_text(encoding="utf-8"))
    term = ("dolor en el lugar de inyeccion " * 10_000)[:300_000]
    next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == "ae1")["event"]["text"] = term
    (tmp_path / "in.json").write_text(json.dumps(doc), encoding="utf-8")
    to_sdtm([tmp_path / "in.json"], tmp_path / "sdtm")
    ae, _ = pyreadstat.read_xport(str(tmp_path / "sdtm" / "ae.xpt"))
    supp, _ = pyreadstat.read_xport(str(tmp_path / "sdtm" / "suppae.xpt"))
    first = ae.loc[ae["AESPID"] == "AE-001-01"].iloc[0]
    rest = supp[(supp["IDVARVAL"] == str(int(first["AESEQ"]))) & supp["QNAM"].str.startswith("AETE")]
    n = len(rest)
    assert n >= 1_500
    by_qnam = dict(zip(rest["QNAM"], rest["QVAL"]))
    # no chunk keeps the blank it broke at: one blank between chunks gives the text back
    rebuilt = join_text([first["AETERM"], *(by_qnam[continuation_qnam("AETERM", k)] for k in range(1, n + 1))])
    assert not any(v != v.strip() for v in by_qnam.values())
    assert rebuilt == term.rstrip()
    define = etree.parse(str(tmp_path / "sdtm" / "define.xml"))
    oids = set(define.xpath("//*[local-name()='ItemDef']/@OID"))
    assert {f"IT.SUPPAE.QVAL.{continuation_qnam('AETERM', k)}" for k in range(1, n + 1)} <= oids
