"""The shipped hospital-style example (examples/tcim-elaii-100-r4-hospital.json, standard FHIR with the
hospital's own codes) converted with its site folder gives the same DM, EX, AE, RELREC, VS and MUNE datasets as
the sponsor-coded example, cell for cell, but for the MedDRA levels a hospital's codings cannot name
(LLT, HLT, HLGT: nothing standard tells them from the PT), which stay empty with a warning each;
without the site folder it gives nothing."""

import pytest
from conftest import ROOT, read_json

from tcim_interop import to_sdtm
from tcim_interop.errors import NoSubjectError
from tcim_interop.synth import generate
from tcim_interop.synth.generate import bundle
from tcim_interop.synth.hospital import hospital_style

HOSPITAL = ROOT / "examples" / "tcim-elaii-100-r4-hospital.json"
SITE = ROOT / "examples" / "hospital-site"
COMPARED = ("DM", "EX", "AE", "SUPPAE", "RELREC", "VS", "XM")
NOT_SENT = ("AELLT", "AELLTCD", "AEHLT", "AEHLTCD", "AEHLGT", "AEHLGTCD")  # the hospital sends PT and SOC only


def test_the_shipped_hospital_example_is_what_synth_writes():
    """`tcim-interop synth --subjects 100 --seed 1 --hospital-site examples/hospital-site` made it."""
    import orjson

    shipped = read_json(HOSPITAL)
    assert shipped == orjson.loads(orjson.dumps(bundle(hospital_style(generate(100, seed=1)))))


@pytest.fixture(scope="module")
def hospital_conversion():
    return to_sdtm([HOSPITAL], site=SITE, fast=True)  # the same datasets as a full run (test_fast_mode)


def test_the_hospital_example_gives_the_sponsor_examples_datasets_cell_for_cell(hospital_conversion,
                                                                               example_conversion):
    sponsor = example_conversion[0].datasets
    for name in COMPARED:
        hospital, ours = hospital_conversion.datasets[name], sponsor[name]
        assert hospital.drop(columns=list(NOT_SENT), errors="ignore").equals(
            ours.drop(columns=list(NOT_SENT), errors="ignore")), name
    ae = hospital_conversion.datasets["AE"]
    assert ae[list(NOT_SENT)].isna().all().all() and sponsor["AE"][list(NOT_SENT)].notna().all().all()
    not_sent = [f.variable for f in hospital_conversion.report.findings if f.code == "DICTIONARY_LEVEL_NOT_SENT"]
    assert sorted(not_sent) == sorted(NOT_SENT)
    c = hospital_conversion.report.counts()
    assert c["rejected"] == 0 and hospital_conversion.report.to_dict()["unmapped_codes"] == []


def test_without_its_site_folder_the_hospital_example_has_no_subject():
    """Every subject rejected, the reason naming site.yaml: nothing is written, the run says why."""
    with pytest.raises(NoSubjectError, match="give site_id in the site folder's site.yaml"):
        to_sdtm([HOSPITAL], fast=True)
