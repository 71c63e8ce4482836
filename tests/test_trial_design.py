"""Trial design datasets: TS, TA, TE, TI, TV from the ResearchStudy and study.yaml, and back to FHIR."""

import shutil

import pytest
from conftest import PILOT_ZONE, need_external
from lxml import etree
from test_to_fhir import compare_datasets

from tcim_interop import SpecError, load_mapping_set, read_sdtm, to_fhir, to_sdtm
from tcim_interop.sdtm.text import join_text
from tcim_interop.synth import generate, write_bundle

DESIGN = ("TS", "TA", "TE", "TI", "TV")


@pytest.fixture(scope="module")
def trial(tmp_path_factory):
    """A small synthetic trial in R4 and R5, converted to SDTM in memory."""
    out = {}
    for version in ("R4", "R5"):
        path = tmp_path_factory.mktemp("td") / f"trial-{version}.json"
        write_bundle(generate(8, seed=4, fhir_version=version), path)
        out[version] = to_sdtm([path])
    return out


def ts_rows(result) -> dict[tuple[str, int], dict]:
    return {(r["TSPARMCD"], int(r["TSSEQ"])): r for r in result.datasets["TS"].to_dict("records")}


def test_ts_parameters_from_the_research_study_the_data_and_study_yaml(trial):
    ts = ts_rows(trial["R4"])
    dm = trial["R4"].datasets["DM"]

    def cells(parm, seq=1):
        r = ts[(parm, seq)]
        return r["TSVAL"], r["TSVALCD"], r["TSVCDREF"]

    assert cells("TPHASE") == ("PHASE II TRIAL", "C15601", "CDISC CT")
    assert cells("REGID", 1) == ("NCT04849065", "NCT04849065", "ClinicalTrials.gov")
    assert cells("REGID", 2) == ("2019-002302-46", "2019-002302-46", "EudraCT")
    assert cells("SPONSOR")[0] == "Fundación para la Formación e Investigación Sanitarias de la Región de Murcia"
    assert cells("INDIC") == ("Amyotrophic lateral sclerosis", "86044005", "SNOMED")
    assert cells("TINDTP") == ("TREATMENT", "C49656", "CDISC CT")
    assert cells("AGEMIN") == ("P18Y", None, "ISO 8601")
    assert cells("AGEMAX") == ("P70Y", None, "ISO 8601")
    assert cells("TBLIND") == ("DOUBLE BLIND", "C15228", "CDISC CT")
    assert [ts[("TTYPE", n)]["TSVAL"] for n in (1, 2)] == ["EFFICACY", "SAFETY"]
    assert ts[("TTYPE", 1)]["TSVCDVER"] == load_mapping_set().study["ct_version"]
    assert cells("NARMS")[0] == "2"
    assert cells("FCNTRY") == ("ESP", None, "ISO 3166-1 Alpha-3")
    # SSTDTC: the earliest informed consent (CT C69208), ACTSUB: subjects who were not screen failures
    assert cells("SSTDTC")[0] == min(dm["RFICDTC"])[:10]
    assert cells("ACTSUB")[0] == str(int((dm["ARMNRS"].fillna("") != "SCREEN FAILURE").sum()))
    assert cells("PLANSUB")[0] == "100"  # R4 has no element: study.yaml
    for r in ts.values():
        assert r["TSPARM"] and len(r["TSPARM"]) <= 40
        assert (r["TSVAL"] is None) == (r["TSVALNF"] is not None)
    # a null flavor only where the protocol's value is not known: expected parameters study.yaml lacks
    spec, summary = load_mapping_set().trial_design, load_mapping_set().study["trial_design"]["summary"]
    unknown = {p.parmcd: p.null_flavor for p in spec.parameters
               if p.source == "config" and p.null_flavor and p.parmcd not in summary}
    assert unknown  # PCLAS, DOSE, STOPRULE, DCUTDTC, DCUTDESC: not in the public protocol
    assert {k: r["TSVALNF"] for (k, _), r in ts.items() if r["TSVALNF"]} == unknown
    missing = [f.message.split()[0] for f in trial["R4"].report.findings if f.code == "TS_PARAMETER_MISSING"]
    assert sorted(missing) == sorted(unknown)


def test_ts_names_the_product_as_ex_does(trial, mappings):
    ts, ex = ts_rows(trial["R4"]), trial["R4"].datasets["EX"]
    products = {p["ts"]: p["extrt"] for p in mappings.study["products"]}
    assert ts[("TRT", 1)]["TSVAL"] == products["TRT"] and ts[("COMPTRT", 1)]["TSVAL"] == products["COMPTRT"]
    assert set(ex["EXTRT"]) == {products["TRT"], products["COMPTRT"]}
    assert "TRT" not in mappings.study["trial_design"]["summary"]  # one place for the name


def test_ts_parameters_and_names_are_cdisc_ct(trial, mappings):
    codes = mappings.codelists.codelists["TSPARMCD"]
    for (parmcd, _), r in ts_rows(trial["R4"]).items():
        term = codes.by_value[parmcd]
        assert term.nci_code and r["TSPARM"] == term.decode  # C66738 code, C67152 name (same NCI code)
    expected = {"ADAPT", "DCUTDTC", "DCUTDESC", "PCLAS", "CURTRT", "STOPRULE", "RANDQT", "TDIGRP", "OBJSEC",
                "OUTMSSEC", "DOSE", "DOSU", "DOSFRQ"}
    assert expected <= {k for k, _ in ts_rows(trial["R4"])}


def test_every_reference_terminology_in_ts_has_its_version(trial, mappings):
    versions = {**mappings.study["terminology_versions"], "CDISC CT": mappings.study["ct_version"]}
    registries = {"ClinicalTrials.gov", "EudraCT"}  # identifiers, not versioned terminologies
    refs = {}
    for r in ts_rows(trial["R4"]).values():
        if r["TSVCDREF"] and r["TSVCDREF"] not in registries:
            assert r["TSVCDVER"] == versions[r["TSVCDREF"]], r
            refs[r["TSPARMCD"]] = r["TSVCDREF"]
    assert {"CDISC CT", "SNOMED", "ISO 8601", "ISO 3166-1 Alpha-3", "UNII"} == set(refs.values())
    assert (refs["CURTRT"], ts_rows(trial["R4"])[("CURTRT", 1)]["TSVALCD"]) == ("UNII", "7LJ087RS6F")


def test_te_elements_are_contiguous_and_validate_checks_it(trial, mappings):
    from tcim_interop.validate import validate_datasets

    data = {n: trial["R4"].metadata[n] for n in ("TA", "TE")}
    assert not validate_datasets(data, mappings, checks=["te_contiguous"])
    te = data["TE"].frame
    gap = te.copy()
    gap.loc[gap["ETCD"] == "FU", "TESTRL"] = "Study day 5"
    wrong = te.copy()
    wrong.loc[wrong["ETCD"] == "SCRN", "TEDUR"] = "P27D"
    # a follow-up starting on day 5: a gap after both treatment elements, and its span is no longer P359D
    for frame, codes in ((gap, ["TE_DURATION", "TE_NOT_CONTIGUOUS", "TE_NOT_CONTIGUOUS"]), (wrong, ["TE_DURATION"])):
        changed = {**data, "TE": type(data["TE"])("TE", data["TE"].label, data["TE"].variables, frame)}
        found = validate_datasets(changed, mappings, checks=["te_contiguous"])
        assert sorted(f.code for f in found) == codes
        assert all(f.severity == "error" and f.rule == "TCIM-TECONTIG" for f in found)
    # the durations add up to the trial length
    days = sum(int(d[1:-1]) for d in te.set_index("ETCD").loc[["SCRN", "MNC", "FU"], "TEDUR"])
    assert f"P{days}D" == ts_rows(trial["R4"])[("LENGTH", 1)]["TSVAL"]


def test_a_title_over_200_characters_continues_in_tsval1(trial):
    ts = trial["R4"].datasets["TS"]
    english, title = ts[ts["TSPARMCD"] == "TITLE"].to_dict("records")  # TSSEQ 1 its English, 2 as sent
    assert english["TSVAL"].startswith("Phase II") and english["TSVAL1"] is None
    assert "TSVAL1" in ts.columns and list(ts.columns).index("TSVAL1") == list(ts.columns).index("TSVAL") + 1
    assert len(title["TSVAL"].encode()) <= 200
    assert title["TSVAL"] == title["TSVAL"].strip() and title["TSVAL1"] == title["TSVAL1"].strip()  # CORE-000867
    assert join_text([title["TSVAL"], title["TSVAL1"]]).startswith("Ensayo clínico fase II")
    assert join_text([title["TSVAL"], title["TSVAL1"]]).endswith("(TCIM-ELAII)")


def test_ta_arms_match_dm_and_te_elements_match_ta(trial):
    for result in trial.values():
        ta, te, dm = (result.datasets[n] for n in ("TA", "TE", "DM"))
        assert set(dm["ARMCD"].dropna()) <= set(ta["ARMCD"]) == {"MNC", "PLACEBO"}
        assert set(dm["ACTARMCD"].dropna()) <= set(ta["ARMCD"])
        assert ta[["ARMCD", "TAETORD", "ETCD", "EPOCH"]].values.tolist() == [
            ["MNC", 1.0, "SCRN", "SCREENING"], ["MNC", 2.0, "MNC", "TREATMENT"], ["MNC", 3.0, "FU", "FOLLOW-UP"],
            ["PLACEBO", 1.0, "SCRN", "SCREENING"], ["PLACEBO", 2.0, "PBO", "TREATMENT"],
            ["PLACEBO", 3.0, "FU", "FOLLOW-UP"]]
        # the branch is on the last element both arms share (screening)
        assert ta["TABRANCH"].tolist() == ["Randomized to MNC", None, None, "Randomized to PLACEBO", None, None]
        arms = dict(zip(dm["ARMCD"], dm["ARM"]))
        assert all(arms.get(code, arm) == arm for code, arm in zip(ta["ARMCD"], ta["ARM"]))
        assert set(te["ETCD"]) == set(ta["ETCD"])
        assert te["TESTRL"].notna().all()


def test_ti_from_the_eligibility_group_with_long_criteria_shortened(trial, tmp_path):
    ti = trial["R4"].datasets["TI"]
    assert ti["IETESTCD"].tolist() == [f"INCL0{n}" for n in range(1, 6)] + [f"EXCL0{n}" for n in range(1, 5)]
    assert ti["IECAT"].tolist() == ["INCLUSION"] * 5 + ["EXCLUSION"] * 4
    assert all(len(t.encode()) <= 200 for t in ti["IETEST"])
    incl04 = ti[ti["IETESTCD"] == "INCL04"].iloc[0]["IETEST"]
    assert incl04.startswith("Able to understand the study") and not incl04.endswith("allows.")
    assert ti.equals(trial["R5"].datasets["TI"])  # R5 recruitment.eligibility: the same criteria
    # the full text is kept in the study metadata (TI assumption 5): define.xml's comment on IETEST
    src = tmp_path / "in.json"
    write_bundle(generate(3, seed=2), src)
    to_sdtm([src], tmp_path / "out")
    define = etree.parse(str(tmp_path / "out" / "define.xml"))
    texts = [t for t in define.xpath("//*[local-name()='CommentDef']//*[local-name()='TranslatedText']/text()")
             if "INCL04" in t]
    assert len(texts) == 1 and texts[0].rstrip().endswith("as Spanish law on clinical trials allows.")


def test_tv_is_the_visit_schedule_of_study_yaml(trial, mappings):
    tv = trial["R4"].datasets["TV"]
    visits = sorted(mappings.study["visits"], key=lambda v: v["visitnum"])
    assert tv["VISITNUM"].tolist() == [float(v["visitnum"]) for v in visits]
    assert tv["VISIT"].tolist() == [v["visit"] for v in visits]
    assert tv["VISITDY"].tolist() == [float(v["day"]) for v in visits]
    assert tv["TVSTRL"].notna().all()


def test_r4_and_r5_give_the_same_trial_design(trial):
    for name in DESIGN:
        assert trial["R4"].datasets[name].equals(trial["R5"].datasets[name]), name


def test_r5_planned_subjects_come_from_recruitment(tmp_path):
    resources = generate(3, seed=4, fhir_version="R5")
    study = next(r for r in resources if r["resourceType"] == "ResearchStudy" and "recruitment" in r)
    study["recruitment"]["targetNumber"] = 120
    write_bundle(resources, tmp_path / "r5.json")
    assert ts_rows(to_sdtm([tmp_path / "r5.json"]))[("PLANSUB", 1)]["TSVAL"] == "120"


def test_group_and_organization_are_accounted_for(trial):
    counts = trial["R4"].report.counts()
    for kind in ("Group", "Organization"):
        assert counts["by_resource_type"][kind] == {"input": 1, "converted": 1, "rejected": 0, "out_of_scope": 0}


def test_a_missing_required_parameter_gets_a_null_flavor(mini_bundle):
    result = to_sdtm([mini_bundle])  # its ResearchStudy has no phase and no sponsor
    ts = ts_rows(result)
    assert ts[("TPHASE", 1)]["TSVAL"] is None and ts[("TPHASE", 1)]["TSVALNF"] == "NI"
    assert ts[("SPONSOR", 1)]["TSVALNF"] == "NI"
    assert ts[("AGEMAX", 1)]["TSVAL"] == "P70Y"
    missing = {f.message.split()[0] for f in result.report.findings if f.code == "TS_PARAMETER_MISSING"}
    spec, summary = load_mapping_set().trial_design, load_mapping_set().study["trial_design"]["summary"]
    unconfigured = {p.parmcd for p in spec.parameters if p.source == "config" and p.null_flavor and p.parmcd not in summary}
    # no phase, sponsor, purpose (TINDTP), condition (INDIC, TDIGRP) or period end (SENDTC) in its ResearchStudy
    assert missing == {"TPHASE", "SPONSOR", "TINDTP", "INDIC", "TDIGRP", "SENDTC"} | unconfigured
    assert {ts[(p, 1)]["TSVALNF"] for p in missing} <= {"NI", "UNK"}


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_example_trial_design_survives_sdtm_fhir_sdtm(example_package, example_round_trip, version):
    result, _, back = example_round_trip(version)
    study = next(r for r in result.resources if r["resourceType"] == "ResearchStudy" and "partOf" not in r)
    assert study["title"].endswith("(TCIM-ELAII)")
    assert {i["value"] for i in study["identifier"]} >= {"NCT04849065", "2019-002302-46"}
    assert study["phase"]["coding"][0]["code"] == "phase-2"
    assert study["condition"][0]["coding"][0]["code"] == "86044005"
    group = next(r for r in result.resources if r["resourceType"] == "Group")
    assert len(group["characteristic"]) == 9
    ref = study["enrollment"][0] if version == "R4" else study["recruitment"]["eligibility"]
    assert ref["reference"] == f"Group/{group['id']}"
    original = {n: d for n, d in read_sdtm(example_package).items() if n in DESIGN}
    assert set(original) == set(DESIGN)
    compared, equal, diffs = compare_datasets(original, back.metadata)
    assert compared == equal and compared > 500, diffs[:5]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_pilot_trial_design_comes_back_cell_for_cell(tmp_path, version):
    src = need_external("cdiscpilot01")
    pilot = tmp_path / "pilot"
    pilot.mkdir()
    for f in ("dm", "ts", "ta", "te", "ti", "tv"):
        shutil.copy(src / f"{f}.xpt", pilot / f"{f}.xpt")
    result = to_fhir(pilot, tmp_path / "pilot.json", fhir_version=version, timezone=PILOT_ZONE)
    assert not result.report.errors, result.report.errors[:3]
    study = next(r for r in result.resources if r["resourceType"] == "ResearchStudy" and "partOf" not in r)
    assert study["title"].startswith("Safety and Efficacy of the Xanomeline")
    # TA's arms; not the pilot DM's "Scrnfail", the SDTMIG 3.1 arm code of a screen failure, who is in no arm
    assert {a.get("name") for a in study["arm" if version == "R4" else "comparisonGroup"]} == {
        "Pbo", "Xan_Hi", "Xan_Lo"}
    to_sdtm([tmp_path / "pilot.json"], tmp_path / "back", formats=("json",))
    original = {n: d for n, d in read_sdtm(pilot).items() if n in DESIGN}
    compared, equal, diffs = compare_datasets(original, read_sdtm(tmp_path / "back"))
    print(f"pilot trial design {version}: {equal}/{compared} cells equal")
    assert compared == equal == 702, diffs[:5]
    # to-fhir's own figure is true for XPT: the pilot's typographic apostrophes (TS) come back only as
    # Dataset-JSON, and the report says which cells
    everything = read_sdtm(pilot)
    non_ascii = sorted(f"{name} row {i + 1} {col}" for name, ds in everything.items() for col in ds.frame.columns
                       for i, v in enumerate(ds.frame[col]) if isinstance(v, str) and not (v.isascii() and v.isprintable()))
    assert non_ascii, "the pilot's TS holds typographic apostrophes (cp1252 0x92)"
    folds = [f for f in result.report.findings if f.code == "ROUND_TRIP_XPT_FOLDS"]
    assert len(folds) == 1 and folds[0].message.startswith(f"{len(non_ascii)} cell(s)")
    assert all(cell in folds[0].message for cell in non_ascii[:3])
    trip = next(f.message for f in result.report.findings if f.code == "ROUND_TRIP")
    given, total = trip.split("gives back ")[1].split(" cells")[0].split(" of ")
    assert int(total) - int(given) == len(non_ascii) and trip.endswith(f"{total} as Dataset-JSON")


def test_an_unknown_ts_source_is_a_spec_error(tmp_path):
    from tcim_interop.mapping_spec.load import default_mappings_dir

    mdir = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), mdir)
    spec = mdir / "trial_design.yaml"
    spec.write_text(spec.read_text().replace("{parmcd: TITLE, from: title", "{parmcd: TITLE, from: titel"))
    with pytest.raises(SpecError, match="trial_design.yaml: TS parameter 'TITLE': unknown source 'titel'"):
        load_mapping_set(mdir)
