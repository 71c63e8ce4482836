"""mapping/derivations.py: whole columns computed from the datasets once every row exists."""

import math

import pandas as pd
import pytest

from tcim_interop.findings import Report
from tcim_interop.mapping import algorithms
from tcim_interop.mapping.derivations import DeriveContext
from tcim_interop.mapping_spec.load import load_mapping_set


@pytest.fixture(scope="module")
def ms():
    return load_mapping_set()


def frame_of(columns):
    """Text columns as the engine builds them: object dtype, None kept as None."""
    return pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})


def ctx(domain, frame, **datasets):
    frame = frame_of(frame)
    return DeriveContext(domain, frame, {domain: frame, **{k: frame_of(v) for k, v in datasets.items()}}, Report())


def derive(ms, role, name, data):
    v = ms.spec(role).by_name[name]
    algo = algorithms.get(v.algorithm)
    assert algo.kind == "derive"
    return algo.fn(data, v)


def test_every_derivation_is_registered():
    assert algorithms.known("derive") == ["baseline_flag", "copy", "epoch", "first_exposure", "flag_if", "from_related",
                                        "group_id", "last_exposure", "numeric", "participation_end", "reference_end",
                                        "sequence", "study_day"]



def test_from_related_takes_the_related_records_value_for_the_records_it_is_for(ms):
    """AELOC: EXLOC of the related EX record, for injection-site events (HLT code, or a PT "Injection site *")."""
    data = ctx("AE", {"USUBJID": ["A"] * 5, "AEHLTCD": [10022097.0, None, None, None, 10022097.0],
                      "AEDECOD": [None, "Injection site pain", "Headache", "injection site swelling", None]},
               EX={"USUBJID": ["A", "A", "A"], "EXLOC": ["TIBIALIS ANTERIOR MUSCLE", "EXTENSOR DIGITORUM BREVIS MUSCLE",
                                                         "TIBIALIS ANTERIOR MUSCLE"]})
    data.related = {"ex": ("EX", [[0], [1], [0], [], [0, 1]])}
    assert derive(ms, "ae", "AELOC", data) == ["TIBIALIS ANTERIOR MUSCLE", "EXTENSOR DIGITORUM BREVIS MUSCLE",
                                               None,  # not an injection-site event
                                               None,  # related to no record
                                               None]  # related to two that disagree
    data.related = {"ex": ("EX", [[0], [0, 2], [], [], []])}  # two records that agree
    assert derive(ms, "ae", "AELOC", data)[:2] == ["TIBIALIS ANTERIOR MUSCLE"] * 2



def test_flag_if_marks_the_planned_visits(ms):
    data = ctx("SV", {"USUBJID": ["A", "A", "A"], "VISITDY": [-7.0, None, 30.0]})
    assert derive(ms, "sv", "SVPRESP", data) == ["Y", None, "Y"]
    assert derive(ms, "sv", "SVOCCUR", data) == ["Y", None, "Y"]


def test_epoch_reads_the_subjects_elements(ms):
    se = {"USUBJID": ["A", "A", "B"], "SESTDTC": ["2021-06-02", "2021-05-01", "2021-05-01"],
          "SEENDTC": ["2021-07-01", "2021-06-02", "2021-05-20"], "EPOCH": ["FOLLOW-UP", "SCREENING", "SCREENING"]}
    data = ctx("AE", {"USUBJID": ["A", "A", "B", "C"], "AESTDTC": ["2021-05-15", "2021-06-10", "2021-06-10", "2021-06-10"]},
               SE=se)
    # elements in date order whatever the row order; after B's last element, and C without any: empty
    assert derive(ms, "ae", "EPOCH", data) == ["SCREENING", "FOLLOW-UP", None, None]


def test_sequence_counts_per_subject_in_frame_order(ms):
    data = ctx("AE", {"USUBJID": ["A", "A", "B", "A", "B", "C"]})
    assert derive(ms, "ae", "AESEQ", data) == [1.0, 2.0, 1.0, 3.0, 2.0, 1.0]
    assert derive(ms, "ae", "AESEQ", ctx("AE", {"USUBJID": []})) == []


def test_study_day_from_dm_rfstdtc(ms):
    dm = {"USUBJID": ["A", "B", "C"], "RFSTDTC": ["2021-06-14", "2021-06-20T10:00", None]}
    data = ctx("AE", {"USUBJID": ["A", "A", "A", "B", "B", "C", "D"],
                      "AESTDTC": ["2021-06-14", "2021-06-13", "2021-07-14T08:00", "2021-06-19", "2021-06",
                                  "2021-06-14", "2021-06-14"]}, DM=dm)
    assert derive(ms, "ae", "AESTDY", data) == [1.0, -1.0, 31.0, -1.0, None, None, None]


def test_study_day_without_dm(ms):
    data = ctx("AE", {"USUBJID": ["A"], "AESTDTC": ["2021-06-14"]})
    assert derive(ms, "ae", "AESTDY", data) == [None]


def test_study_day_uses_the_param_date(ms):
    dm = {"USUBJID": ["A"], "RFSTDTC": ["2021-06-14"]}
    data = ctx("AE", {"USUBJID": ["A"], "AESTDTC": ["2021-06-14"], "AEENDTC": ["2021-06-20"]}, DM=dm)
    assert derive(ms, "ae", "AEENDY", data) == [7.0]


def test_first_and_last_exposure(ms):
    ex = {"USUBJID": ["A", "A", "A", "B", "B"],
          "EXSTDTC": ["2021-06-15T10:00", "2021-06-14T09:30", None, "2021-07-01", float("nan")],
          "EXENDTC": ["2021-06-15T10:30", "2021-06-14T09:45", "2021-06-16", "2021-07-01", None]}
    data = ctx("DM", {"USUBJID": ["A", "B", "C"]}, EX=ex)
    assert derive(ms, "dm", "RFXSTDTC", data) == ["2021-06-14T09:30", "2021-07-01", None]
    assert derive(ms, "dm", "RFXENDTC", data) == ["2021-06-16", "2021-07-01", None]


def test_exposure_without_ex(ms):
    data = ctx("DM", {"USUBJID": ["A"]})
    assert derive(ms, "dm", "RFXSTDTC", data) == [None]
    data = ctx("DM", {"USUBJID": ["A"]}, EX={"USUBJID": [], "EXSTDTC": []})
    assert derive(ms, "dm", "RFXSTDTC", data) == [None]


def test_copy(ms):
    data = ctx("DM", {"USUBJID": ["A", "B"], "RFXSTDTC": ["2021-06-14T09:30", None]})
    assert derive(ms, "dm", "RFSTDTC", data) == ["2021-06-14T09:30", None]


def test_numeric(ms):
    data = ctx("XM", {"USUBJID": ["A"] * 6, "XMSTRESC": ["45", "4.25", "<10", None, "", "-3"]})
    assert derive(ms, "mune", "XMSTRESN", data) == [45.0, 4.25, None, None, None, -3.0]


def test_numeric_nan_input_is_none(ms):
    data = ctx("XM", {"USUBJID": ["A", "A"], "XMSTRESC": [float("nan"), "7"]})
    assert derive(ms, "mune", "XMSTRESN", data) == [None, 7.0]


# --- baseline flag -----------------------------------------------------------------------------
def mune(rows):
    cols = ["USUBJID", "XMTESTCD", "XMLOC", "XMLAT", "XMDTC", "XMORRES"]
    return {c: [r[i] for r in rows] for i, c in enumerate(cols)}


TA = "TIBIALIS ANTERIOR MUSCLE"
EDB = "EXTENSOR DIGITORUM BREVIS MUSCLE"


def test_baseline_is_the_last_result_before_first_exposure(ms):
    dm = {"USUBJID": ["A"], "RFXSTDTC": ["2021-06-14T10:00"]}
    rows = [
        ("A", "MUNIX", TA, "LEFT", "2021-05-20", "80"),
        ("A", "MUNIX", TA, "LEFT", "2021-06-07", "78"),      # <- last before exposure
        ("A", "MUNIX", TA, "LEFT", "2021-07-14", "70"),
        ("A", "MUNIX", TA, "LEFT", "2021-06-14T10:30", "77"),  # same day, after the injection time
    ]
    data = ctx("XM", mune(rows), DM=dm)
    assert derive(ms, "mune", "XMLOBXFL", data) == [None, "Y", None, None]


def test_baseline_same_day_date_only_counts_as_before(ms):
    dm = {"USUBJID": ["A", "B"], "RFXSTDTC": ["2021-06-14T10:00", "2021-06-14"]}
    rows = [
        ("A", "MUNIX", TA, "LEFT", "2021-06-07", "78"),
        ("A", "MUNIX", TA, "LEFT", "2021-06-14", "76"),        # date only, injection day: before
        ("B", "MUNIX", TA, "LEFT", "2021-06-07", "78"),
        ("B", "MUNIX", TA, "LEFT", "2021-06-14T08:00", "76"),  # time vs date-only reference: by date
        ("B", "MUNIX", TA, "LEFT", "2021-06-15", "75"),
    ]
    data = ctx("XM", mune(rows), DM=dm)
    assert derive(ms, "mune", "XMLOBXFL", data) == [None, "Y", None, "Y", None]


def test_baseline_times_on_both_compare_by_time(ms):
    dm = {"USUBJID": ["A"], "RFXSTDTC": ["2021-06-14T10:00"]}
    rows = [("A", "MUNIX", TA, "LEFT", "2021-06-14T09:59", "78"), ("A", "MUNIX", TA, "LEFT", "2021-06-14T10:00", "76")]
    data = ctx("XM", mune(rows), DM=dm)
    assert derive(ms, "mune", "XMLOBXFL", data) == ["Y", None]


def test_baseline_skips_a_missing_result(ms):
    dm = {"USUBJID": ["A"], "RFXSTDTC": ["2021-06-14"]}
    rows = [
        ("A", "MUNIX", TA, "LEFT", "2021-06-01", "80"),   # <- last one with a result
        ("A", "MUNIX", TA, "LEFT", "2021-06-07", None),   # not done
        ("A", "MUNIX", TA, "LEFT", "2021-06-10", ""),
    ]
    data = ctx("XM", mune(rows), DM=dm)
    assert derive(ms, "mune", "XMLOBXFL", data) == ["Y", None, None]


def test_baseline_skips_partial_and_missing_dates(ms):
    dm = {"USUBJID": ["A"], "RFXSTDTC": ["2021-06-14"]}
    rows = [("A", "MUNIX", TA, "LEFT", "2021-06-01", "80"), ("A", "MUNIX", TA, "LEFT", "2021-06", "79"),
            ("A", "MUNIX", TA, "LEFT", None, "78")]
    data = ctx("XM", mune(rows), DM=dm)
    assert derive(ms, "mune", "XMLOBXFL", data) == ["Y", None, None]


def test_baseline_per_test_location_and_side(ms):
    dm = {"USUBJID": ["A", "B"], "RFXSTDTC": ["2021-06-14", "2021-06-20"]}
    rows = [
        ("A", "MUNIX", TA, "LEFT", "2021-06-01", "80"),
        ("A", "MUNIX", TA, "LEFT", "2021-06-07", "78"),    # Y
        ("A", "MUNIX", TA, "RIGHT", "2021-06-01", "90"),   # Y (other side)
        ("A", "MUNIX", EDB, "LEFT", "2021-06-02", "20"),   # Y (other muscle)
        ("A", "MUSIX", TA, "LEFT", "2021-06-03", "55"),    # Y (other test)
        ("A", "MUSIX", TA, "LEFT", "2021-06-20", "50"),
        ("B", "MUNIX", TA, "LEFT", "2021-06-19", "60"),    # Y (other subject, later reference)
    ]
    data = ctx("XM", mune(rows), DM=dm)
    assert derive(ms, "mune", "XMLOBXFL", data) == [None, "Y", "Y", "Y", "Y", None, "Y"]


def test_baseline_without_exposure_flags_nothing(ms):
    dm = {"USUBJID": ["A", "B"], "RFXSTDTC": [None, float("nan")]}
    rows = [("A", "MUNIX", TA, "LEFT", "2021-06-01", "80"), ("B", "MUNIX", TA, "LEFT", "2021-06-01", "80"),
            ("C", "MUNIX", TA, "LEFT", "2021-06-01", "80")]
    data = ctx("XM", mune(rows), DM=dm)
    assert derive(ms, "mune", "XMLOBXFL", data) == [None, None, None]


def test_baseline_same_date_twice_flags_one(ms):
    dm = {"USUBJID": ["A"], "RFXSTDTC": ["2021-06-14"]}
    rows = [("A", "MUNIX", TA, "LEFT", "2021-06-07", "78"), ("A", "MUNIX", TA, "LEFT", "2021-06-07", "79")]
    data = ctx("XM", mune(rows), DM=dm)
    flags = derive(ms, "mune", "XMLOBXFL", data)
    assert flags.count("Y") == 1
    assert flags == [None, "Y"]  # the later record in sort order


def test_dm_column(ms):
    data = ctx("AE", {"USUBJID": ["A"]}, DM={"USUBJID": ["A", "B"], "RFSTDTC": ["2021-06-14", None]})
    assert data.dm_column("RFSTDTC") == {"A": "2021-06-14", "B": None}
    assert data.dm_column("NOSUCH") == {}
    assert ctx("AE", {"USUBJID": ["A"]}).dm_column("RFSTDTC") == {}
    assert not any(isinstance(v, float) and math.isnan(v) for v in data.dm_column("RFSTDTC").values())


def test_a_derivation_runs_after_the_variables_its_params_name():
    """Every param naming a variable (by included) orders the derivations; unit, read by to-fhir only, does not."""
    from tcim_interop.mapping.engine import in_dependency_order
    from tcim_interop.mapping_spec.model import DomainSpec, Variable

    def var(name, algorithm, **params):
        return Variable(name, name, "Char", "Perm", algorithm, params=params)

    variables = [var("XXLOBXFL", "baseline_flag", date="XXDTC", result="XXORRES", by=["XXKEY"]),
                 var("XXSTRESC", "copy", of="XXORRES", unit="XXORRESU"),
                 var("XXKEY", "copy", of="XXDTC"), var("XXDTC", "sequence"), var("XXORRES", "sequence"),
                 var("XXORRESU", "sequence")]
    spec = DomainSpec("XX", "", "", "", [], "Observation", "observation", [], variables, [], "xx.yaml")
    assert [v.name for v in in_dependency_order(spec, "derive")] == \
        ["XXDTC", "XXORRES", "XXKEY", "XXLOBXFL", "XXSTRESC", "XXORRESU"]
