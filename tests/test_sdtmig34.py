"""mapping_spec/sdtmig34.yaml: SDTMIG 3.4's variables, shipped with the code and checked when read."""

import pytest

from tcim_interop.errors import SpecError
from tcim_interop.mapping_spec import sdtmig34
from tcim_interop.mapping_spec.load import load_mapping_set


def test_the_shipped_table_loads():
    assert sdtmig34.domain_class("TS") == "TRIAL DESIGN" and sdtmig34.domain_class("XX") is None
    assert sdtmig34.variables("DM")[:3] == (("STUDYID", "Char", "Req"), ("DOMAIN", "Char", "Req"),
                                            ("USUBJID", "Char", "Req"))
    assert ("AESEQ", "Num", "Req") in sdtmig34.variables("AE") and sdtmig34.variables("XX") == ()


def test_suppxx_is_the_one_structure_of_suppqual_yaml():
    assert sdtmig34.domain_class("SUPPAE") == "RELATIONSHIP"
    assert [v.name for v in sdtmig34.variables("SUPPAE")] == load_mapping_set().suppqual.names


@pytest.mark.parametrize("old, new, fragment", [
    ("      - [AESEQ, Num, Req]", "      - [AESEQ, Number, Req]", "AE: AESEQ: type must be Char or Num, got 'Number'"),
    ("      - [AESEQ, Num, Req]", "      - [AESEQ, Num, Required]", "AE: AESEQ: core must be Req, Exp or Perm"),
    ("      - [AESEQ, Num, Req]", "      - [AESEQUENCE, Num, Req]", "AE: 'AESEQUENCE': not a valid SDTM variable name"),
    ("      - [AESEQ, Num, Req]", "      - [AETERM, Char, Req]", "AE: variables defined twice: AETERM"),
    ("      - [AESEQ, Num, Req]", "      - [AESEQ, Num]", "AE: 'variables' must be a list of [name, type, core]"),
    ("    class: EVENTS\n", "    class: EVENT\n", "AE: class 'EVENT' is none of TRIAL DESIGN"),
    ("domains:\n", "domain:\n", "needs 'classes' (a list) and 'domains'"),
    ("  AE:\n", "  A_E:\n", "A_E: not a domain code"),
])
def test_a_broken_table_names_the_file_and_entry(tmp_path, old, new, fragment):
    path = tmp_path / "sdtmig34.yaml"
    text = sdtmig34.DATA.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(SpecError) as e:
        sdtmig34.standard(path)
    assert str(e.value).startswith(f"{path}: ") and fragment in str(e.value), str(e.value)
