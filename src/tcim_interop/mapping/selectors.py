"""Which resources make rows of a domain, and the resources each row draws on.

A selector returns a Row with its context (%patient, %site, ...) resolved, or a Skip that says why
the resource makes no row: out of scope (concomitant medication, an observation neither MUNE nor a vital sign, a patient
in no study) or rejected (a reference to a resource that is not in the input).
"""

from __future__ import annotations

from ..fhir.extensions import read_record
from ..fhir.read import LineResource
from ..mapping_spec.model import DomainSpec, RowCriteria
from .context import Row, RunContext, Skip, resolve_from
from .registry import algorithm
from .row_algorithms import product_of


def _subject_context(resource, run: RunContext, domain: str, subject_ref) -> Row | Skip:
    """For event/intervention/finding rows: the Patient, then the study subject enrolled with it."""
    if not subject_ref:
        return Skip("rejected", f"{resource.resource_type}.subject is missing")
    patient = run.index.resolve(subject_ref)
    ref = subject_ref.get("reference") if isinstance(subject_ref, dict) else subject_ref
    if patient is None:
        return Skip("rejected", f"subject references {ref!r}, which is not in the input")
    if patient.resource_type != "Patient":
        return Skip("out_of_scope", f"subject is a {patient.resource_type}, not a Patient")
    subjects = run.subjects_by_patient.get(patient.key)
    if not subjects:
        # no id in the reason: out-of-scope resources are counted by reason, and this one is no study's
        return Skip("out_of_scope", "its Patient is not a subject of a study in the input")
    row = Row(resource, run, domain, refs=dict(subjects[0].refs), subject_row=subjects[0])
    row.refs["subject"] = subjects[0].resource
    return row


@algorithm("study_subject", "select", optional=("age",))
def study_subject(resource, run: RunContext, spec: DomainSpec) -> Row | Skip:
    """DM rows: a ResearchSubject, its Patient, site study, overall study (site.partOf) and Consent; with
    `age` (a code map), %age: the subject's age as an Observation about its Patient (subject_observation)."""
    data, index = resource.data, run.index
    pref = data.get("individual") if resource.version == "R4" else data.get("subject")
    patient = index.resolve(pref, "Patient")
    if patient is None:
        return Skip("rejected", f"the subject's Patient ({_ref(pref)}) is not in the input")
    site = index.resolve(data.get("study"), "ResearchStudy")
    if site is None:
        return Skip("rejected", f"study references {_ref(data.get('study'))!r}, which is not in the input")
    overall = index.resolve(site.data.get("partOf", [None])[0] if site.data.get("partOf") else None, "ResearchStudy")
    site_id = run.mappings.site.site_id if run.mappings.site is not None else None
    if overall is None and not site.data.get("partOf") and site_id:
        # a hospital's single ResearchStudy, no site studies: the study is its own, SITEID from site.yaml
        overall, site = site, None
    elif overall is None:
        return Skip("rejected", f"{site.key} is not a site study: it has no partOf naming the overall study, "
                                "so SITEID cannot be set (a single study with no site studies: give site_id "
                                "in the site folder's site.yaml, --site)")
    consents = data.get("consent")
    consent_ref = consents[0] if isinstance(consents, list) and consents else consents
    consent = index.resolve(consent_ref, "Consent") if consent_ref else None
    refs = {"patient": patient, "site": site, "study": overall, "consent": consent}
    if (age := spec.rows.deciders.get("age")) is not None:
        refs["age"] = subject_observation(run, "age", age, patient.key)
    return Row(resource, run, spec.domain, refs=refs)


NOT_RECORDED = ("entered-in-error", "cancelled")  # an Observation's status that records no value


def subject_observation(run: RunContext, name: str, decider, patient: str):
    """The Observation about the Patient (key `patient`) whose code the decider's map knows (directly or
    through the ConceptMaps), the earliest by its effective date (then input order; undated last), parsed;
    None when there is none. The input's Observations are grouped by Patient once per run (run.memo)."""
    found = run.memo.get(f"observations.{name}")
    if found is None:
        found = run.memo[f"observations.{name}"] = _observations_by_patient(run, decider)
    hits = found.get(patient)
    return min(hits, key=lambda h: h[:2])[2].loaded() if hits else None


def _observations_by_patient(run: RunContext, decider) -> dict[str, list]:
    """Patient key -> (undated?, effective date, Observation) of the Observations the decider's code selects.
    An NDJSON line that holds none of the codes that can select one is not parsed (most of them: MUNE)."""
    codelists = run.mappings.codelists
    codes = _selecting_codes(codelists, decider)
    out: dict[str, list] = {}
    for res in run.index.of_type("Observation"):
        if isinstance(res, LineResource) and codes is not None and not any(c in res.payload for c in codes):
            continue
        data = res.data
        path = decider.path(res.version)
        if data.get("status") in NOT_RECORDED or path is None or not any(
                codelists.lookup(decider.codelist or "", decider.map, c.get("system"), c.get("code")) is not None
                for c in path.values(lambda v, d=data: d if v is None else None) if isinstance(c, dict)):
            continue
        patient = run.index.resolve(data.get("subject"), "Patient")
        if patient is not None:
            when = data.get("effectiveDateTime") or (data.get("effectivePeriod") or {}).get("start") \
                or data.get("effectiveInstant")
            out.setdefault(patient.key, []).append((not isinstance(when, str), str(when or ""), res))
    return out


def _selecting_codes(codelists, decider) -> list[bytes] | None:
    """The codes, as JSON strings, of which a resource must hold one for the decider to select it: its
    map's, its codelist's NCI codes, and the foreign codes the ConceptMaps translate to one of them.
    None when one would not be written as it is in JSON (an escape): then every resource is read."""
    keys = set(codelists.maps.get(decider.map) or {})
    cl = codelists.codelists.get(decider.codelist or "")
    keys |= {f"{codelists.nci_system}|{t.nci_code}" for t in (cl.terms if cl else ()) if t.nci_code}
    keys |= {source for source, targets in codelists.translations.targets.items() if keys & set(targets)}
    codes = {k.rpartition("|")[2] for k in keys}
    if not all(c.isascii() and c.isprintable() and '"' not in c and "\\" not in c and "/" not in c for c in codes):
        return None
    return [f'"{c}"'.encode() for c in sorted(codes)]


def out_of_scope(resource, criteria: RowCriteria) -> Skip | None:
    """A spec's rows.out_of_scope rules for the resource's type: the first whose element has one of its values."""
    for rule in criteria.out_of_scope:
        if not rule.applies_to(resource.resource_type):
            continue
        value = resource.data.get(rule.element)
        if isinstance(value, str) and value in rule.values:
            return Skip("out_of_scope", f"{rule.element} {value!r}" + (f": {rule.reason}" if rule.reason else ""))
    return None


@algorithm("study_treatment", "select", params=("product",), optional=("study_link",), paths=("study_link",))
def study_treatment(resource, run: RunContext, spec: DomainSpec) -> Row | Skip:
    """EX rows: administrations of a study product that took place. Study treatment is what the
    `product` variable's map (through the ConceptMaps) or a study product's name recognises, or what
    `study_link` (the core workflow-researchStudy extension) ties to a study in the input; a study
    administration whose product cannot be told is rejected, anything else is concomitant medication
    (deferred: the CM domain takes it when the study's domains have one)."""
    if (skip := _treatment_decision(resource, run, spec)) is not None:
        return skip
    if (skip := out_of_scope(resource, spec.rows)) is not None:
        return skip
    return _subject_context(resource, run, spec.domain, resource.data.get("subject"))


NOT_STUDY_PRODUCT = "not a study product: concomitant medication (CM is not produced)"


def _treatment_decision(resource, run: RunContext, spec: DomainSpec) -> Skip | None:
    """None when the administration is study treatment for the exposure spec `spec` (EX, or EC when
    masked); else why not. The one decision EX and CM both follow, so that they never disagree."""
    if _study_product(resource, run, spec) or _from_sdtm(resource, spec.domain):
        return None
    link = spec.rows.path("study_link", resource.version)
    refs = link.values(_roots(resource)) if link else []
    studies = [run.index.resolve(r, "ResearchStudy") for r in refs]
    if not refs:
        return Skip("out_of_scope", NOT_STUDY_PRODUCT, defer=True)
    if not any(studies):
        return Skip("out_of_scope", "its workflow-researchStudy extension names no study of the input")
    return Skip("rejected", f"given in the study (workflow-researchStudy) but its product is not told: no "
                            f"coding the {spec.rows.deciders['product'].map} map or the site's ConceptMaps know, and no text that "
                            "is a study product's name or synonym (study.yaml products)")


def _study_product(resource, run: RunContext, spec: DomainSpec) -> bool:
    """Whether the resource's medication is a study product, as the `product` variable of the exposure
    spec `spec` tells one (its map, the ConceptMaps, study.yaml products' names)."""
    product_var = spec.rows.deciders["product"]
    concept = product_var.path(resource.version)
    if concept is None:
        return False
    # resolve(): the Medication a reference names (in the input, or contained); the row reading it counts it used
    concepts = concept.values(_roots(resource), lambda ref: resolve_from(resource.data, run.index, ref)[0])
    return product_of(concepts, run.mappings, product_var) is not None


EXPOSURE_ROLE = "ex"  # study.yaml domains: the role whose spec tells study treatment (EX; EC when masked)


@algorithm("other_medication", "select")
def other_medication(resource, run: RunContext, spec: DomainSpec) -> Row | Skip:
    """CM rows: the administrations the exposure role's spec (`ex`: EX, or EC when masked) does not take
    as study treatment, by the same decision (_treatment_decision), and the statements (a type the
    exposure spec does not read) of a medication that is not a study product, given to a study subject,
    unless the spec's out_of_scope rules say otherwise (entered in error, not done, not taken). Study
    treatment, and what that decision rejects or puts out of scope, is never CM."""
    exposure = run.mappings.domains.get(EXPOSURE_ROLE)
    if exposure is not None and resource.resource_type not in exposure.resource_types:
        # a MedicationStatement: what the subject takes, reported; study treatment is EX's from its
        # administrations, and a study link says only that the statement was collected in the study
        if _study_product(resource, run, exposure):
            return Skip("out_of_scope", f"a statement of study treatment ({exposure.domain} records its administrations)")
    elif exposure is not None:
        decision = _treatment_decision(resource, run, exposure)
        if decision is None:
            return Skip("out_of_scope", f"study treatment ({exposure.domain}), not concomitant medication")
        if not decision.defer:
            return decision
    if (skip := out_of_scope(resource, spec.rows)) is not None:
        return skip
    return _subject_context(resource, run, spec.domain, resource.data.get("subject"))


@algorithm("study_subject_event", "select", optional=("condition",), paths=("condition",))
def study_subject_event(resource, run: RunContext, spec: DomainSpec) -> Row | Skip:
    """AE rows: adverse events of a study subject, unless the spec's out_of_scope rules say otherwise
    (a potential event, an entry in error). %condition: the first Condition of the input that the
    `condition` references name (R4 resultingCondition, R5 resultingEffect), where a hospital may code
    the event; it counts as used by the record."""
    if (skip := out_of_scope(resource, spec.rows)) is not None:
        return skip
    row = _subject_context(resource, run, spec.domain, resource.data.get("subject"))
    path = spec.rows.path("condition", resource.version)
    if isinstance(row, Row) and path is not None:
        refs = path.values(_roots(resource))
        found = (run.index.resolve(r, "Condition") for r in refs)
        condition = next((c for c in found if c is not None), None)
        row.refs["condition"] = condition
        if condition is not None:
            run.used.add(condition.key)
        elif missing := [_ref(r) for r in refs if run.index.resolve(r) is None]:
            row.finding("warning", "BROKEN_REFERENCE", f"its resulting condition {missing[0]!r} is not in the input",
                        value=missing[0], hint="add the Condition to the input: its code is read when the event "
                        "itself carries no MedDRA coding")
    return row


@algorithm("mune_observation", "select", params=("test",))
def mune_observation(resource, run: RunContext, spec: DomainSpec) -> Row | Skip:
    """MUNE rows: Observations whose code the `test` variable's map knows (directly or through the
    ConceptMaps), about a study subject."""
    return _coded_observation(resource, run, spec, "a MUNE measure")


@algorithm("vital_sign_observation", "select", params=("test",))
def vital_sign_observation(resource, run: RunContext, spec: DomainSpec) -> Row | Skip:
    """VS rows: Observations whose code the `test` variable's map knows (a LOINC vital sign, directly or
    through the ConceptMaps), about a study subject. What VS takes, MUNE never sees (and the other way
    round): an Observation is one record at most."""
    return _coded_observation(resource, run, spec, "a vital sign")


def _coded_observation(resource, run: RunContext, spec: DomainSpec, what: str) -> Row | Skip:
    """An Observation whose code the `test` decider's map knows, or one to-fhir made from this domain."""
    test = spec.rows.deciders["test"]
    codelists = run.mappings.codelists
    codings = (resource.data.get("code") or {}).get("coding") or []
    if not _from_sdtm(resource, spec.domain) and not any(
            codelists.lookup(test.codelist or "", test.map, c.get("system"), c.get("code")) is not None
            for c in codings if isinstance(c, dict)):
        # passed on: a later domain of Observations (MUNE after VS) may know the code
        return Skip("out_of_scope", f"not {what} (code not in the {test.map} map, directly or through a ConceptMap)",
                    defer=True)
    if (skip := out_of_scope(resource, spec.rows)) is not None:
        return skip
    return _subject_context(resource, run, spec.domain, resource.data.get("subject"))


@algorithm("study_visit", "select")
def study_visit(resource, run: RunContext, spec: DomainSpec) -> Row | Skip:
    """SV rows: the Encounters of a study subject that are study visits: those whose type codes a visit
    of study.yaml (directly or through a ConceptMap), and those a record of another domain points at
    (SDTMIG 3.4 SV assumption 6: data collected there make the encounter a visit). A hospital's other
    encounters are out of scope. Runs after the domains whose records point at Encounters (SV is listed
    last in study.yaml domains), unless the spec's out_of_scope rules say otherwise (cancelled, planned)."""
    if (skip := out_of_scope(resource, spec.rows)) is not None:
        return skip
    mappings = run.mappings
    coded = any(mappings.visit_of(c.get("system"), c.get("code")) is not None
                for t in resource.data.get("type") or [] if isinstance(t, dict)
                for c in t.get("coding") or [] if isinstance(c, dict))
    if not (coded or resource.key in run.used or resource.key in run.visits.pointed_at
            or _from_sdtm(resource, spec.domain)):
        return Skip("out_of_scope", "not a study visit: no visit code, and no record of the study points at it")
    return _subject_context(resource, run, spec.domain, resource.data.get("subject"))


def _roots(resource):
    return lambda var: resource.data if var is None else None


def _from_sdtm(resource, domain: str) -> bool:
    """Made by to-fhir from this domain's dataset: in scope whatever its codes (another study's
    treatment or tests)."""
    record = read_record(resource.data)
    return record is not None and record[0] == domain


def _ref(ref) -> str:
    return ref.get("reference", "") if isinstance(ref, dict) else str(ref or "")
