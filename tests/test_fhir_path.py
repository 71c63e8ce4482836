"""fhir/path.py: the FHIRPath subset the specs use, compiled once, evaluated over plain JSON."""

import pytest

from tcim_interop.fhir.path import Alternative, PathSyntaxError, Step, compile_path

PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "birthDate": "1960-05-17",
    "identifier": [
        {"use": "secondary", "system": "urn:mrn", "value": "MRN-9"},
        {"use": "official", "system": "urn:sid", "value": "001"},
        {"use": "official", "system": "urn:other", "value": "002"},
    ],
    "name": [{"given": ["Ana", "Maria"], "family": "Lopez"}, {"given": ["Anita"]}, {"family": "NoGiven"}],
    "extension": [
        {"url": "http://x.org/race", "extension": [{"url": "ombCategory", "valueCoding": {"code": "2106-3"}},
                                                  {"url": "text", "valueString": "White"}]},
        {"url": "http://x.org/other", "valueCode": "other"},
        {"url": "http://x.org/race", "extension": [{"url": "ombCategory", "valueCoding": {"code": "2028-9"}}]},
    ],
}
STUDY = {"resourceType": "ResearchStudy", "identifier": [{"value": "TCIM-ELAII"}]}


def roots_for(resource, **others):
    return lambda var: resource if var is None else others.get(var)


def values(path, resource=PATIENT, **others):
    return compile_path(path).values(roots_for(resource, **others))


# --- parsing -----------------------------------------------------------------------------------
def test_plain_steps_compile_to_one_alternative():
    p = compile_path("name.given")
    assert p.alternatives == (Alternative(None, (Step("name"), Step("given"))),)


def test_alternatives_split_on_first_of_and_union():
    p = compile_path("a.b ?? c | %patient.d")
    assert [[a.var for a in g] for g in p.groups] == [[None], [None, "patient"]]
    assert [a.var for a in p.alternatives] == [None, None, "patient"]
    assert [tuple(s.name for s in a.steps) for a in p.alternatives] == [("a", "b"), ("c",), ("d",)]


def test_variable_prefix_is_parsed_and_listed():
    p = compile_path("%study.identifier.value ?? %patient.birthDate ?? gender")
    assert p.alternatives[0] == Alternative("study", (Step("identifier"), Step("value")))
    assert p.variables == {"study", "patient"}


def test_where_compiles_to_a_filter_step():
    p = compile_path("identifier.where(use='official' and system='urn:sid').value")
    assert p.alternatives[0].steps == (
        Step("identifier"), Step("", "where", (("use", "official"), ("system", "urn:sid"))), Step("value"))


def test_extension_compiles_to_extension_then_url_filter():
    p = compile_path("extension('http://x.org/a.b|c').valueCode")
    # the dot and the bar inside the quoted url split nothing
    assert len(p.alternatives) == 1
    assert p.alternatives[0].steps == (
        Step("extension"), Step("", "where", (("url", "http://x.org/a.b|c"),)), Step("valueCode"))


def test_first_compiles():
    assert compile_path("name.first().given").alternatives[0].steps == (
        Step("name"), Step("", "first"), Step("given"))


def test_whitespace_around_steps_and_bars_is_allowed():
    assert values(" name . given ??  gender ") == ["Ana", "Maria", "Anita"]
    assert values(" name . given |  identifier.value ") == ["Ana", "Maria", "Anita", "MRN-9", "001", "002"]


@pytest.mark.parametrize("text, fragment", [
    ("", "empty path"),
    ("   ", "empty path"),
    ("name..given", "empty step"),
    ("name.", "empty step"),
    (".name", "empty step"),
    ("name | ", "empty step"),
    ("| name", "empty step"),
    ("name ?? ", "empty step"),
    ("?? name", "empty step"),
    ("identifier.where()", "where() takes key = 'value' comparisons"),
    ("identifier.where(use=official)", "where() takes key = 'value' comparisons"),
    ("identifier.where(use='official' and system)", "where() takes key = 'value' comparisons"),
    # the comma is not FHIRPath: the comparisons are joined by "and"
    ("identifier.where(use='official', system='urn:sid')", "where() takes key = 'value' comparisons"),
    ("identifier.where(use='official'", "cannot parse step"),
    ("name.given)", "cannot parse step"),
    ("name given", "cannot parse step"),
    ("1name", "cannot parse step"),
    ("name.exists()", "unknown function exists()"),
    ("name.first(1)", "unknown function first()"),
    ("extension()", "extension() needs a url"),
    ("extension('')", "extension() needs a url"),
    ("%pateint.birthDate", "unknown variable %pateint"),
    ("%.birthDate", "unknown variable %"),
])
def test_syntax_errors_raise_at_compile_time(text, fragment):
    with pytest.raises(PathSyntaxError) as e:
        compile_path(text)
    assert fragment in str(e.value)


def test_syntax_error_names_the_whole_path():
    with pytest.raises(PathSyntaxError, match=r"'code\.coding \| code\.exists\(\)'"):
        compile_path("code.coding | code.exists()")


def test_path_syntax_error_is_a_value_error():
    assert issubclass(PathSyntaxError, ValueError)


# --- evaluation --------------------------------------------------------------------------------
def test_lists_are_flattened_at_every_step():
    assert values("name.given") == ["Ana", "Maria", "Anita"]


def test_missing_elements_and_nulls_give_nothing():
    assert values("name.prefix") == []
    assert values("nosuch.thing") == []
    assert values("a.b", {"a": [None, {"b": None}, {"b": [None, "x"]}]}) == ["x"]


def test_primitive_at_the_root():
    assert values("birthDate") == ["1960-05-17"]


def test_where_keeps_matching_items_only():
    assert values("identifier.where(use='official').value") == ["001", "002"]
    assert values("identifier.where(use='official' and system='urn:other').value") == ["002"]
    assert values("identifier.where(use='usual').value") == []


def test_extension_by_url_then_nested_extension():
    got = values("extension('http://x.org/race').extension('ombCategory').valueCoding.code")
    assert got == ["2106-3", "2028-9"]
    assert values("extension('http://x.org/other').valueCode") == ["other"]
    assert values("extension('http://x.org/none').valueCode") == []


def test_first_takes_one_item():
    assert values("name.first().given") == ["Ana", "Maria"]
    assert values("identifier.first().value") == ["MRN-9"]
    assert values("name.given.first()") == ["Ana"]


def test_first_non_empty_alternative_wins():
    assert values("identifier.where(use='official').value ?? identifier.value") == ["001", "002"]
    assert values("identifier.where(use='usual').value ?? identifier.value") == ["MRN-9", "001", "002"]
    # an alternative that is present but yields only nulls / empty lists does not win
    assert values("a ?? b", {"a": [], "b": "B"}) == ["B"]
    assert values("a ?? b", {"a": [None], "b": "B"}) == ["B"]
    # and the later alternative is not looked at when the first yields
    assert values("a ?? b", {"a": "A", "b": "B"}) == ["A"]
    assert values("a ?? b", {}) == []


def test_bar_is_the_fhirpath_union():
    assert values("a | b", {"a": "A", "b": "B"}) == ["A", "B"]
    assert values("a | b | c", {"a": ["A", "B"], "b": "B", "c": "C"}) == ["A", "B", "C"]  # duplicates removed
    assert values("a | b ?? c", {"c": "C"}) == ["C"]
    assert values("a | b ?? c", {"b": "B", "c": "C"}) == ["B"]


def test_variables_start_at_other_resources():
    assert values("%study.identifier.value", {}, study=STUDY) == ["TCIM-ELAII"]
    # a variable that resolves to nothing skips its alternative
    assert values("%consent.dateTime ?? %patient.birthDate", {}, patient=PATIENT) == ["1960-05-17"]
    # a bare variable is the resource itself
    assert values("%patient", {}, patient=PATIENT) == [PATIENT]


def test_path_first():
    p = compile_path("name.given")
    assert p.first(roots_for(PATIENT)) == "Ana"
    assert compile_path("name.suffix").first(roots_for(PATIENT)) is None


def test_where_on_non_objects_drops_them():
    assert values("a.where(k='v')", {"a": ["v", {"k": "v", "n": 1}, {"k": "w"}]}) == [{"k": "v", "n": 1}]
