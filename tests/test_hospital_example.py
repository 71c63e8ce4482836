"""The shipped hospital-style example (examples/tcim-elaii-100-r4-hospital.json, standard FHIR with the
hospital's own codes) converted with its site folder gives the same DM, EX, AE, VS and MUNE datasets as the
sponsor-coded example, cell for cell; without the site folder it does not."""

import pytest
from conftest import EXAMPLE, ROOT

from tcim_interop import to_sdtm
from tcim_interop.errors import NoSubjectError
from tcim_interop.synth import generate
from tcim_interop.synth.generate import bundle
from tcim_interop.synth.hospital import hospital_style

HOSPITAL = ROOT / "examples" / "tcim-elaii-100-r4-hospital.json"
SITE = ROOT / "examples" / "hospital-site"
COMPARED = ("DM", "EX", "AE", "SUPPAE", "VS", "XM")


def test_the_shipped_hospital_example_is_what_synth_writes():
    """`tcim-interop synth --subjects 100 --seed 1 --hospital-site examples/hospital-site` made it."""
    import json

    shipped = json.loads(HOSPITAL.read_text())
    assert shipped == json.loads(json.dumps(bundle(hospital_style(generate(100, seed=1)))))


@pytest.fixture(scope="module")
def hospital_conversion():
    return to_sdtm([HOSPITAL], site=SITE, fast=True)  # the same datasets as a full run (test_fast_mode)


def test_the_hospital_example_gives_the_sponsor_examples_datasets_cell_for_cell(hospital_conversion,
                                                                               example_conversion):
    sponsor = example_conversion[0].datasets
    for name in COMPARED:
        assert hospital_conversion.datasets[name].equals(sponsor[name]), name
    c = hospital_conversion.report.counts()
    assert c["rejected"] == 0 and hospital_conversion.report.to_dict()["unmapped_codes"] == []


def test_without_its_site_folder_the_hospital_example_has_no_subject():
    """Every subject rejected, the reason naming site.yaml: nothing is written, the run says why."""
    with pytest.raises(NoSubjectError, match="give site_id in the site folder's site.yaml"):
        to_sdtm([HOSPITAL], fast=True)
