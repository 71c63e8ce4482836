"""The study's translation table (mappings/translations.yaml): Spanish verbatim text -> English in AETERM,
--REASND and TS TITLE, the text as sent kept in SUPPxx (TS: a second TITLE record), an untranslated
Spanish text a warning, and to-fhir giving the original back."""

import json
import shutil

import pytest
from conftest import MINI, ROOT

from tcim_interop import SpecError, load_mapping_set, to_fhir, to_sdtm
from tcim_interop.mapping_spec.verbatim import TranslationTable, load_translations
from tcim_interop.sdtm.text import join_text
from tcim_interop.synth import generate, write_bundle

LONG = ("Caída accidental en el domicilio al levantarse de madrugada para ir al baño, atribuida a la debilidad "
        "de la dorsiflexión del pie derecho (pie caído), con traumatismo en la rodilla derecha, herida "
        "inciso-contusa pretibial que precisó sutura en urgencias y hematoma en el muslo, sin pérdida de "
        "conocimiento ni traumatismo craneoencefálico.")


def _doc() -> dict:
    return json.loads(MINI.read_text(encoding="utf-8"))


def _res(doc: dict, rid: str) -> dict:
    return next(e["resource"] for e in doc["entry"] if e["resource"]["id"] == rid)


def _supp(result, name: str) -> dict[tuple[str, str], str]:
    frame = result.datasets[name]
    return {(r["IDVARVAL"], r["QNAM"]): r["QVAL"] for r in frame.to_dict("records")}


@pytest.fixture(scope="module")
def table() -> TranslationTable:
    return load_mapping_set().verbatim


def test_the_table_reads_text_as_a_data_manager_does(table):
    assert table.translate("Náuseas") == "Nausea"
    assert table.translate("NAUSEAS") == table.translate(" nauseas ") == "Nausea"  # XPT's folded form too
    assert table.translate("Nausea") is None  # English is no key
    assert table.looks_untranslated("Mareo tras la inyección") and table.looks_untranslated("Mareo con vómitos")
    assert table.looks_untranslated("Vértigo")  # an accented letter
    assert not table.looks_untranslated("Dizziness after the injection")


def test_a_bad_table_is_refused(tmp_path):
    path = tmp_path / "translations.yaml"
    path.write_text("terms: {Náuseas: Nausea, NAUSEAS: Sickness}\n", encoding="utf-8")
    with pytest.raises(SpecError, match="given twice"):
        load_translations(path)
    path.write_text("langauge: es\n", encoding="utf-8")
    with pytest.raises(SpecError, match="unknown key"):
        load_translations(path)
    path.write_text("terms: {Cefalea: ''}\n", encoding="utf-8")
    with pytest.raises(SpecError, match="must be texts"):
        load_translations(path)
    assert load_translations(tmp_path / "absent.yaml").translate("Cefalea") is None


def test_a_translate_entry_names_a_valid_qualifier(tmp_path):
    shutil.copytree(ROOT / "mappings", tmp_path / "m")
    ae = tmp_path / "m" / "ae.yaml"
    ae.write_text(ae.read_text(encoding="utf-8").replace("qnam: AETERMO,", "qnam: AETERM_ORIGINAL,"), encoding="utf-8")
    with pytest.raises(SpecError, match="AETERM_ORIGINAL"):
        load_mapping_set(tmp_path / "m")
    ae.write_text(ae.read_text(encoding="utf-8").replace("qnam: AETERM_ORIGINAL,", "qnam: AEDISCON,"), encoding="utf-8")
    with pytest.raises(SpecError, match="given twice"):
        load_mapping_set(tmp_path / "m")


def test_english_in_the_variable_the_text_as_sent_in_supp():
    result = to_sdtm([_doc()])
    ae = result.datasets["AE"].set_index("AESPID", drop=False)
    assert ae.loc["AE-001-01", "AETERM"] == "Pain at the injection site"
    supp = _supp(result, "SUPPAE")
    seq = str(int(ae.loc["AE-001-01", "AESEQ"]))
    assert supp[(seq, "AETERMO")] == "Dolor en el lugar de inyección"
    assert set(result.datasets["AE"]["AETERM"]) == {"Pain at the injection site", "Aspiration pneumonia"}
    xm = result.datasets["XM"]
    done = xm[xm["XMREASND"].notna()]
    assert set(done["XMREASND"]) == {"Patient did not cooperate"}
    originals = {q: v for (_, q), v in _supp(result, "SUPPXM").items()}
    assert originals == {"XMREASOR": "Paciente no colaboró"}
    assert not [f for f in result.report.findings if f.code == "UNTRANSLATED"]


def test_an_untranslated_spanish_text_is_a_warning_not_silence():
    doc = _doc()
    _res(doc, "ae1")["event"]["text"] = "Mareo tras la inyección"
    _res(doc, "ae2")["event"]["text"] = "Dizziness"  # English: no finding
    result = to_sdtm([doc])
    assert set(result.datasets["AE"]["AETERM"]) == {"Mareo tras la inyección", "Dizziness"}  # as sent
    found = [f for f in result.report.findings if f.code == "UNTRANSLATED"]
    assert [(f.severity, f.variable, f.value) for f in found] == [("warning", "AETERM", "Mareo tras la inyección")]
    assert "AETERMO" not in set(result.datasets.get("SUPPAE", {"QNAM": []})["QNAM"])


def test_a_long_original_continues_in_supp_without_blanks_at_the_breaks():
    doc = _doc()
    _res(doc, "ae1")["event"]["text"] = LONG
    result = to_sdtm([doc])
    ae = result.datasets["AE"].set_index("AESPID")
    seq = str(int(ae.loc["AE-001-01", "AESEQ"]))
    supp = _supp(result, "SUPPAE")
    assert ae.loc["AE-001-01", "AETERM"].startswith("Accidental fall at home")
    parts = [supp[(seq, "AETERMO")], supp[(seq, "AETERMO1")]]
    assert join_text(parts) == LONG and all(p == p.strip() and len(p) <= 200 for p in parts)
    english = [ae.loc["AE-001-01", "AETERM"], supp[(seq, "AETERM1")]]
    assert join_text(english) == load_mapping_set().verbatim.translate(LONG)


@pytest.mark.parametrize("fmt", ["xpt", "json"])
def test_to_fhir_gives_the_original_back_cell_for_cell(tmp_path, fmt):
    src = tmp_path / "in.json"
    resources = generate(6, seed=5)
    ae = next(r for r in resources if r["resourceType"] == "AdverseEvent")
    ae["event"]["text"] = LONG
    write_bundle(resources, src)
    sdtm = tmp_path / "sdtm"
    to_sdtm([src], sdtm, formats=(fmt,))
    for version in ("R4", "R5"):
        back = to_fhir(sdtm, tmp_path / f"{version}.json", fhir_version=version)  # proves the round trip
        assert not back.report.errors, back.report.errors[:3]
        texts = {(r.get("event") or r.get("code") or {}).get("text") for r in back.resources
                 if r["resourceType"] == "AdverseEvent"}
        sent = {(r.get("event") or {}).get("text") for r in resources if r["resourceType"] == "AdverseEvent"}
        if fmt == "json":  # Dataset-JSON keeps the accents: the very text the site sent
            assert texts == sent
        else:  # XPT holds ASCII: the folded original, never the English
            from tcim_interop.sdtm.text import fold_ascii
            assert texts == {fold_ascii(t) for t in sent}
        study = next(r for r in back.resources if r["resourceType"] == "ResearchStudy" and "partOf" not in r)
        assert study["title"].startswith("Ensayo cl")
