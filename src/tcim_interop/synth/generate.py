"""Synthetic FHIR R4/R5 data for TCIM-ELAII (NCT04849065): a realistic but entirely invented trial.

Two passes keep the releases in step. `_draw_trial` makes every random choice once, into plain
dataclasses (subjects, visits, injections, MUNE measures, adverse events); the `_render_*` functions
then write those facts in the requested release without drawing anything. The same seed therefore
describes the same trial in R4 and R5, and the same arguments always give the same bytes (one
random.Random, no clock, no uuid4, a fixed construction order).

Names, phone numbers, addresses and medical record numbers are invented but present on purpose: they
let tests prove that no direct identifier ever reaches an SDTM file.

The codes and systems are those of mappings/*.yaml; the study design (visits, injected muscles)
mirrors mappings/study.yaml, and tests/test_synth.py checks that the two agree.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ..fhir.ae_research_ig import DISCONTINUED, SERIOUSNESS_CRITERIA, SEVERITY, ae_ig_url
from ..gc_pause import paused_gc

VERSIONS = ("R4", "R5")

# --- Code systems and identifier namespaces (as named in mappings/*.yaml) ---------------------------
TCIM = "http://tcim-interop.org/fhir"
SID_STUDY, SID_SITE, SID_SUBJECT, SID_AE = (f"{TCIM}/sid/{k}" for k in ("study", "site", "subject", "ae"))
SID_MRN = f"{TCIM}/sid/hospital-mrn"  # invented: the hospital's own record-number namespace
SYS_VISIT = f"{TCIM}/CodeSystem/visit"
SYS_PRODUCT = f"{TCIM}/CodeSystem/study-product"
SYS_MUNE_TEST = f"{TCIM}/CodeSystem/mune-test"
SYS_MUNE_METHOD = f"{TCIM}/CodeSystem/mune-method"
EXT_LATERALITY = f"{TCIM}/StructureDefinition/laterality"
EXT_MEDDRA_LEVEL = f"{TCIM}/StructureDefinition/meddra-level"
EXT_AE_OCCURRENCE = "http://hl7.org/fhir/5.0/StructureDefinition/extension-AdverseEvent.occurrence"
THO = "http://terminology.hl7.org/CodeSystem/"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
MEDDRA = THO + "mdr"
MEDDRA_VERSION = "26.0"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"

STUDY_ID, SITE_STUDY_ID = "tcim-elaii", "tcim-elaii-site-01"
ARM_LINK = {"MNC": "arm-mnc", "PLACEBO": "arm-placebo"}  # R5 comparisonGroup.linkId per arm name
ARMS = {
    "MNC": ("Autologous bone marrow mononuclear cells, one side; placebo contralateral", "experimental"),
    "PLACEBO": ("Placebo both sides", "placebo-comparator"),
}
SPONSOR_ID, CRITERIA_ID = "ffis-murcia", "tcim-elaii-eligibility"
SYS_CRITERION = f"{TCIM}/CodeSystem/ie-criterion"
ELIGIBILITY = (  # invented from the public summary of the trial; INCL04 is longer than IETEST can hold
    ("INCL01", "Men and women aged 18 to 70 years."),
    ("INCL02", "Definite or probable amyotrophic lateral sclerosis by the revised El Escorial criteria of "
               "the World Federation of Neurology."),
    ("INCL03", "Foot dorsiflexion strength of 3 to 5 on the Medical Research Council scale in both legs."),
    ("INCL04", "Able to understand the study and to give written informed consent or, when the disease "
               "prevents writing, consent given orally before an impartial witness and signed by a legal "
               "representative on the patient's behalf, as Spanish law on clinical trials allows."),
    ("INCL05", "Forced vital capacity of at least 50% of the predicted value."),
    ("EXCL01", "Pregnancy or breastfeeding."),
    ("EXCL02", "Invasive or non-invasive ventilation, or gastrostomy."),
    ("EXCL03", "Another neurological, haematological or oncological disease that could interfere with the "
               "bone marrow aspiration or the assessments."),
    ("EXCL04", "Participation in another interventional clinical trial in the previous 3 months."),
)
PLANNED_SUBJECTS = 100  # the protocol's, whatever the size of the synthetic corpus
MNC_SHARE = 0.74  # 74 of 100 patients in the MNC arm (BRIEF)


# --- Study design (mirrors mappings/study.yaml) --------------------------------------------------------
@dataclass(frozen=True)
class VisitDef:
    code: str
    name: str
    day: int  # planned study day (injection = day 1, no day 0)
    window: int  # +- days allowed around the planned day
    minutes: int  # how long the visit lasts


VISITS = (
    VisitDef("SCREENING", "SCREENING", -28, 0, 90),
    VisitDef("BASELINE", "BASELINE", -7, 2, 120),
    VisitDef("INJECTION", "INJECTION", 1, 0, 300),  # marrow aspiration, cell processing, injection
    VisitDef("DAY30", "DAY 30", 30, 3, 90),
    VisitDef("DAY90", "DAY 90", 90, 7, 90),
    VisitDef("DAY180", "DAY 180", 180, 14, 90),
    VisitDef("DAY360", "DAY 360", 360, 14, 90),
)
VISIT_BY_CODE = {v.code: v for v in VISITS}
MUNE_VISITS = ("BASELINE", "DAY30", "DAY90", "DAY180", "DAY360")


@dataclass(frozen=True)
class Muscle:
    name: str  # CDISC LOC submission value
    nci_code: str
    key: str  # short id part
    cells: tuple[float, float]  # BMNC dose range per muscle, 10^6 cells (a bigger muscle takes more)
    munix: tuple[float, float]  # MUNIX range at baseline in ALS
    cmap: tuple[float, float]  # CMAP amplitude range at baseline, mV


MUSCLES = (
    Muscle("TIBIALIS ANTERIOR MUSCLE", "C117874", "ta", (30.0, 60.0), (40.0, 150.0), (2.5, 8.0)),
    Muscle("EXTENSOR DIGITORUM BREVIS MUSCLE", "C163514", "edb", (15.0, 35.0), (25.0, 90.0), (2.0, 6.0)),
)
SIDES = ("LEFT", "RIGHT")
LATERALITY = {"LEFT": ("7771000", "Left"), "RIGHT": ("24028007", "Right")}
SITES = tuple((side, muscle) for side in SIDES for muscle in MUSCLES)  # order of injections and recordings


@dataclass(frozen=True)
class MuneTest:
    code: str
    display: str
    unit: str  # UCUM code; "1" = dimensionless (no human-readable unit written)
    method: str


MUNE_TESTS = (
    MuneTest("MUNIX", "Motor Unit Number Index", "1", "MUNIX"),
    MuneTest("MUSIX", "Motor Unit Size Index", "uV", "MUNIX"),
    MuneTest("CMAPAMP", "CMAP Amplitude", "mV", "CMAPSCAN"),
    MuneTest("CMAPAREA", "CMAP Area", "mV.ms", "CMAPSCAN"),
    MuneTest("D50", "CMAP Scan D50 Index", "1", "CMAPSCAN"),
    MuneTest("MUNE", "MScanFit Motor Unit Number Estimate", "1", "MSCANFIT"),
)
MUNE_METHODS = {
    "MUNIX": "Motor unit number index method (Nandedkar)",
    "CMAPSCAN": "Stimulus-response CMAP scan",
    "MSCANFIT": "MScanFit CMAP scan model fitting",
}
PRODUCTS = {"BMNC": "Autologous bone marrow mononuclear cells", "PLACEBO": "Placebo (vehicle)"}

# Yearly relative loss of motor units: the placebo-treated side declines faster (the hoped-for effect).
DECLINE_PLACEBO, DECLINE_CELLS = 0.40, 0.22
NOT_DONE_SHARE = 0.01  # of MUNE recordings (all tests of one method at one muscle, side and visit)
REPEAT_BASELINE_SHARE = 0.05  # of randomized subjects: one baseline recording repeated another day
NOT_DONE_TEXT = "Paciente no colaboró"


# --- Adverse events ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AeTerm:
    verbatim: str
    pt: tuple[str, str]  # MedDRA preferred term (code, name)
    soc: tuple[str, str]  # MedDRA primary system organ class
    weight: int  # relative frequency among the drawn events
    early: bool  # starts within days of the injection (procedure-related)
    days: tuple[int, int]  # duration range when it resolves
    hospital: float  # probability that it is serious (hospitalization)
    causality: tuple[str, ...]  # WHO-UMC assessments that fit it
    chronic: bool = False  # ALS progression: rarely resolves

    @property
    def hierarchy(self) -> tuple[tuple[str, tuple[str, str]], ...]:
        """(level, (code, name)) of the term's primary MedDRA path, lowest level first. The lowest level
        term is the preferred term itself (the verbatim terms are coded to LLTs equal to their PT)."""
        hlt, hlgt = MEDDRA_PATHS[self.pt[0]]
        return ("LLT", self.pt), ("PT", self.pt), ("HLT", hlt), ("HLGT", hlgt), ("SOC", self.soc)


# The primary path above each preferred term (PT code -> HLT, HLGT), as MedDRA 26.0 arranges these terms
# to the best of this generator's knowledge: synthetic data, not a copy of the licensed dictionary, and not
# checked against it (public coded datasets disagree on some of these codes): not MedDRA's hierarchy.
MEDDRA_PATHS = {
    "10022086": (("10022097", "Injection site reactions"), ("10001316", "Administration site reactions")),
    "10019211": (("10019233", "Headaches NEC"), ("10019231", "Headaches")),
    "10028813": (("10028817", "Nausea and vomiting symptoms"), ("10018012", "Gastrointestinal signs and symptoms")),
    "10016256": (("10003550", "Asthenic conditions"), ("10018073", "General system disorders NEC")),
    "10028334": (("10028302", "Muscle related signs and symptoms NEC"), ("10028299", "Muscle disorders")),
    "10013950": (("10018016", "Gastrointestinal signs and symptoms NEC"), ("10018012", "Gastrointestinal signs and symptoms")),
    "10016173": (("10029513", "Non-site specific injuries NEC"), ("10022120", "Injuries NEC")),
    "10035669": (("10024970", "Lower respiratory tract and lung infections"), ("10021879", "Infections - pathogen unspecified")),
    "10038695": (("10038702", "Respiratory failures (excl neonatal)"), ("10038716", "Respiratory disorders NEC")),
}


SOC_GENERAL = ("10018065", "General disorders and administration site conditions")
SOC_GI = ("10017947", "Gastrointestinal disorders")
AE_TERMS = (
    AeTerm("Dolor en el lugar de inyección", ("10022086", "Injection site pain"), SOC_GENERAL, 30, True,
           (1, 7), 0.0, ("Certain", "Probably-Likely")),
    AeTerm("Cefalea", ("10019211", "Headache"), ("10029205", "Nervous system disorders"), 15, True,
           (1, 3), 0.0, ("Possible", "Unlikely")),
    AeTerm("Náuseas", ("10028813", "Nausea"), SOC_GI, 10, True, (1, 3), 0.0, ("Possible", "Unlikely")),
    AeTerm("Fatiga", ("10016256", "Fatigue"), SOC_GENERAL, 12, False, (7, 60), 0.0,
           ("Unlikely", "Possible"), chronic=True),
    AeTerm("Calambres musculares", ("10028334", "Muscle spasms"),
           ("10028395", "Musculoskeletal and connective tissue disorders"), 12, False, (5, 90), 0.0,
           ("Unlikely", "Possible"), chronic=True),
    AeTerm("Disfagia", ("10013950", "Dysphagia"), SOC_GI, 8, False, (30, 180), 0.2, ("Unlikely",), chronic=True),
    AeTerm("Caída", ("10016173", "Fall"), ("10022117", "Injury, poisoning and procedural complications"), 8,
           False, (1, 30), 0.25, ("Unlikely",)),
    AeTerm("Neumonía por aspiración", ("10035669", "Pneumonia aspiration"),
           ("10021881", "Infections and infestations"), 4, False, (7, 21), 1.0, ("Unlikely",)),
)
AE_FALL = AE_TERMS[6]
AE_RESPIRATORY_FAILURE = AeTerm(
    "Insuficiencia respiratoria", ("10038695", "Respiratory failure"),
    ("10038738", "Respiratory, thoracic and mediastinal disorders"), 0, False, (3, 10), 1.0, ("Unlikely",))
# A verbatim term longer than 200 characters, to exercise the SDTM split into SUPPAE.
LONG_FALL_TEXT = (
    "Caída accidental en el domicilio al levantarse de madrugada para ir al baño, atribuida a la debilidad "
    "de la dorsiflexión del pie derecho (pie caído), con traumatismo en la rodilla derecha, herida "
    "inciso-contusa pretibial que precisó sutura en urgencias y hematoma en el muslo, sin pérdida de "
    "conocimiento ni traumatismo craneoencefálico."
)
AE_COUNT_WEIGHTS = (25, 30, 25, 13, 7)  # 0..4 events per randomized subject
SEVERITIES = (("mild", 55), ("moderate", 35), ("severe", 10))
OUTCOMES = (("resolved", 75), ("recovering", 8), ("ongoing", 9), ("resolvedWithSequelae", 8))
OUTCOMES_CHRONIC = (("resolved", 35), ("recovering", 15), ("ongoing", 50))
ENDED_OUTCOMES = ("resolved", "resolvedWithSequelae", "fatal")  # outcomes that carry an end date
CRITERIA = {  # criterion -> (R4 seriousness code, NCIt criterionCode, display)
    "hospitalization": ("SeriousResultsInHospitalization", "C83052", "Hospitalization"),
    "death": ("SeriousResultsInDeath", "C48275", "Death"),
}
DISCONTINUED_SHARE = 0.05  # events that record "caused discontinuation" explicitly (as No)


# --- Concomitant medication and other observations (out of scope for the converter) -----------------
@dataclass(frozen=True)
class Drug:
    key: str
    codings: tuple[tuple[str, str, str], ...]  # (system, code, display)
    dose: tuple[float, str]  # (value, UCUM unit)
    visit: str  # visit at which the administration is recorded
    after_minutes: int


DRUGS = (
    Drug("riluzole", ((RXNORM, "35623", "riluzole"), (ATC, "N07XX02", "riluzole")), (50, "mg"), "BASELINE", 30),
    Drug("paracetamol", ((RXNORM, "161", "acetaminophen"), (ATC, "N02BE01", "paracetamol")), (1, "g"),
         "INJECTION", 300),
)
ORAL_ROUTE = (SNOMED, "26643006", "Oral route")
IM_ROUTE = (SNOMED, "78421000", "Intramuscular route")
BODY_WEIGHT = (LOINC, "29463-7", "Body weight")


# --- Invented people of the Region of Murcia -----------------------------------------------------------
GIVEN = {
    "male": ("Antonio", "José", "Manuel", "Francisco", "Juan", "Pedro", "Ángel", "Jesús", "Joaquín", "Tomás",
             "Ginés", "Andrés", "Ramón", "Íñigo", "Pascual"),
    "female": ("María", "Carmen", "Josefa", "Isabel", "Fuensanta", "Dolores", "Pilar", "Encarnación",
               "Ángeles", "Inés", "Concepción", "Lucía", "Remedios", "Begoña", "Ana"),
}
SURNAMES = ("García", "Martínez", "López", "Sánchez", "Fernández", "Pérez", "Hernández", "Jiménez", "Ruiz",
            "Muñoz", "Navarro", "Sáez", "Cánovas", "Ibáñez", "Campillo", "Noguera", "Zapata", "Meroño",
            "Gálvez", "Alcaraz", "Ortuño", "Ruipérez", "Ballester", "Molina")
STREETS = ("Calle Trapería", "Calle Platería", "Avenida de la Libertad", "Gran Vía Escultor Salzillo",
           "Calle Acisclo Díaz", "Avenida Juan Carlos I", "Calle San Nicolás", "Plaza de Santo Domingo",
           "Calle Mayor", "Avenida Primero de Mayo", "Calle Jabonerías", "Camino de Tiñosa")
TOWNS = (("Murcia", "30001", "30012"), ("Cartagena", "30201", "30205"), ("Lorca", "30800", "30800"),
         ("Molina de Segura", "30500", "30500"), ("Alcantarilla", "30820", "30820"), ("Cieza", "30530", "30530"),
         ("Águilas", "30880", "30880"), ("Yecla", "30510", "30510"))

FIRST_CONSENT = date(2021, 6, 1)
ENROLMENT_DAYS = 660  # consents spread over about 22 months


# --- Pass 1: the trial as plain data ------------------------------------------------------------------
@dataclass(eq=False)  # identity: a visit is one event, even if two look alike
class Visit:
    code: str
    key: str  # encounter id suffix: "baseline", "baseline-2" for a repeated baseline recording
    start: datetime  # local time, Europe/Madrid
    minutes: int


@dataclass
class Injection:
    key: str
    muscle: Muscle
    side: str
    product: str  # BMNC / PLACEBO
    dose: float
    visit: Visit
    at: datetime


@dataclass
class Measure:
    visit: Visit
    muscle: Muscle
    side: str
    test: MuneTest
    value: float | int | None  # None: not done
    at: datetime


@dataclass
class ConMed:
    drug: Drug
    visit: Visit
    at: datetime


@dataclass
class Weight:
    visit: Visit
    kg: float
    at: datetime


@dataclass
class Event:
    term: AeTerm
    verbatim: str
    start: date
    end: date | None
    severity: str
    criterion: str | None  # None (not serious), "hospitalization", "death"
    causality: str
    outcome: str
    suspect: Injection
    discontinued: bool | None  # None: not recorded
    seq: int = 0


@dataclass(frozen=True)
class SubjectPlan:
    """Trial-level choices about one subject, made before the subject itself is drawn."""

    num: int
    consent: date
    arm: str | None  # None: screen failure
    mrn: str
    death_day: int | None = None
    repeat_baseline: bool = False
    long_ae: bool = False


@dataclass
class Subject:
    plan: SubjectPlan
    gender: str
    given: list[str]
    family: str
    birth: date
    phone: str
    address: tuple[str, str, str]  # line, town, postal code
    end: date
    death: date | None = None
    cell_side: str | None = None
    visits: list[Visit] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    conmeds: list[ConMed] = field(default_factory=list)
    weights: list[Weight] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def sid(self) -> str:
        return f"{self.plan.num:03d}"

    @property
    def arm(self) -> str | None:
        return self.plan.arm

    def visit(self, code: str) -> Visit:
        return next(v for v in self.visits if v.code == code)


@dataclass
class Trial:
    subjects: list[Subject]

    @property
    def start(self) -> date:
        return min(s.plan.consent for s in self.subjects)

    @property
    def end(self) -> date:
        return max(s.end for s in self.subjects)


def _draw_trial(n: int, rng: random.Random) -> Trial:
    subjects = [_draw_subject(rng, plan) for plan in _plan_subjects(n, rng)]
    _mark_not_done(rng, [m for s in subjects for m in s.measures])
    return Trial(subjects)


def _plan_subjects(n: int, rng: random.Random) -> list[SubjectPlan]:
    screen_failure = rng.randrange(n) if n >= 2 else None
    randomized = [i for i in range(n) if i != screen_failure]
    mnc = round(MNC_SHARE * len(randomized))
    arms = ["MNC"] * mnc + ["PLACEBO"] * (len(randomized) - mnc)
    rng.shuffle(arms)
    arm_of = dict(zip(randomized, arms, strict=True))
    fatal = rng.choice(randomized)
    repeats = set(rng.sample(randomized, max(1, round(REPEAT_BASELINE_SHARE * len(randomized)))))
    long_ae = rng.choice(randomized) if n >= 20 else None
    consents = sorted(_weekday(FIRST_CONSENT + timedelta(rng.randint(0, ENROLMENT_DAYS))) for _ in range(n))
    mrns = rng.sample(range(1_000_000, 10_000_000), n)
    return [
        SubjectPlan(
            num=i + 1, consent=consents[i], arm=arm_of.get(i), mrn=str(mrns[i]),
            death_day=rng.randint(200, 340) if i == fatal else None,
            repeat_baseline=i in repeats, long_ae=i == long_ae,
        )
        for i in range(n)
    ]


def _draw_subject(rng: random.Random, plan: SubjectPlan) -> Subject:
    s = _draw_person(rng, plan)
    if plan.arm is None:
        _draw_screen_failure(rng, s)
    else:
        _draw_randomized(rng, s)
    return s


def _draw_person(rng: random.Random, plan: SubjectPlan) -> Subject:
    gender = "male" if rng.random() < 0.6 else "female"  # ALS is more frequent in men
    given = rng.sample(GIVEN[gender], rng.choice((1, 1, 2)))
    family = " ".join(rng.sample(SURNAMES, 2))
    age = min(70, max(18, round(rng.triangular(20, 70, 58))))
    birth = _birth_date(rng, plan.consent, age)
    phone = f"+34 6{rng.randint(0, 99):02d} {rng.randint(0, 999):03d} {rng.randint(0, 999):03d}"
    town, low, high = rng.choice(TOWNS)
    line = f"{rng.choice(STREETS)}, {rng.randint(1, 120)}"
    if rng.random() < 0.6:
        line += f", {rng.randint(1, 8)}º {rng.choice('ABCD')}"
    postal = f"{rng.randint(int(low), int(high)):05d}"
    return Subject(plan, gender, given, family, birth, phone, (line, town, postal), end=plan.consent)


def _birth_date(rng: random.Random, consent: date, age: int) -> date:
    """A birth date that makes the subject exactly `age` on the day of consent."""
    latest = _years_before(consent, age)
    earliest = _years_before(consent, age + 1) + timedelta(1)
    return earliest + timedelta(rng.randint(0, (latest - earliest).days))


def _draw_screen_failure(rng: random.Random, s: Subject) -> None:
    screening = _visit(rng, VISIT_BY_CODE["SCREENING"], s.plan.consent, "screening")
    s.visits = [screening]
    s.end = s.plan.consent + timedelta(rng.randint(3, 10))  # eligibility ruled out after the tests
    models = _muscle_models(rng, None, None)
    s.measures = _draw_measures(rng, [screening], models, None)
    s.weights = [_weight(rng, screening, None)]


def _draw_randomized(rng: random.Random, s: Subject) -> None:
    day1 = _weekday(s.plan.consent + timedelta(28 + rng.randint(-2, 3)))
    death = _study_date(day1, s.plan.death_day) if s.plan.death_day else None
    s.visits = _draw_visits(rng, s.plan.consent, day1, death)
    s.death = death
    s.end = death or s.visits[-1].start.date()
    s.cell_side = rng.choice(SIDES) if s.arm == "MNC" else None
    s.injections = _draw_injections(rng, s.visit("INJECTION"), s.cell_side)
    models = _muscle_models(rng, s.cell_side, s.arm)
    s.measures = _draw_measures(rng, [v for v in s.visits if v.code in MUNE_VISITS], models, day1)
    if s.plan.repeat_baseline:
        s.measures += _repeat_baseline(rng, s, models)
    s.conmeds = _draw_conmeds(rng, s)
    first = _weight(rng, s.visits[0], None)
    s.weights = [first] + ([_weight(rng, s.visits[-1], first.kg)] if rng.random() < 0.5 else [])
    s.events = _draw_events(rng, s, day1)


def _draw_visits(rng: random.Random, consent: date, day1: date, death: date | None) -> list[Visit]:
    visits = [_visit(rng, VISITS[0], consent, "screening")]
    for vd in VISITS[1:]:
        when = _weekday(_study_date(day1, vd.day) + timedelta(rng.randint(-vd.window, vd.window)))
        if death and when >= death:
            break
        visits.append(_visit(rng, vd, when, vd.code.lower()))
    return visits


def _visit(rng: random.Random, vd: VisitDef, day: date, key: str) -> Visit:
    start = datetime.combine(day, datetime.min.time()) + timedelta(minutes=480 + 15 * rng.randint(0, 14))
    return Visit(vd.code, key, start, vd.minutes)


def _draw_injections(rng: random.Random, visit: Visit, cell_side: str | None) -> list[Injection]:
    at = visit.start + timedelta(hours=3)  # after marrow aspiration and cell processing
    injections = []
    for k, (side, muscle) in enumerate(SITES):
        product = "BMNC" if side == cell_side else "PLACEBO"
        dose = round(rng.uniform(*muscle.cells), 1) if product == "BMNC" else 0
        key = f"{muscle.key}-{side[0].lower()}"
        injections.append(Injection(key, muscle, side, product, dose, visit, at + timedelta(minutes=4 * k)))
    return injections


@dataclass(frozen=True)
class MuscleModel:
    """How one muscle on one side behaves over the year: baseline state and speed of decline."""

    munix: float
    cmap: float  # mV
    duration: float  # CMAP area / amplitude, ms
    mune_ratio: float  # MScanFit MUNE / MUNIX
    d50_ratio: float  # D50 / MUNE
    decline: float  # yearly relative loss of motor units


def _muscle_models(rng: random.Random, cell_side: str | None, arm: str | None) -> dict:
    progression = rng.lognormvariate(0, 0.35)  # some patients progress much faster than others
    models = {}
    for side, muscle in SITES:
        treated = arm == "MNC" and side == cell_side
        decline = (DECLINE_CELLS if treated else DECLINE_PLACEBO) * progression
        models[side, muscle.key] = MuscleModel(
            munix=rng.uniform(*muscle.munix), cmap=rng.uniform(*muscle.cmap), duration=rng.uniform(4.0, 6.0),
            mune_ratio=rng.uniform(0.8, 1.3), d50_ratio=rng.uniform(0.25, 0.45), decline=decline)
    return models


def _mune_values(rng: random.Random, m: MuscleModel, years: float) -> dict[str, float | int]:
    """One recording: motor units are lost; collateral reinnervation keeps the CMAP up and enlarges units."""
    munix = m.munix * math.exp(-m.decline * years) * _noise(rng, 0.08)
    cmap = m.cmap * math.exp(-0.4 * m.decline * years) * _noise(rng, 0.06)
    mune = munix * m.mune_ratio * _noise(rng, 0.08)
    return {
        "MUNIX": max(1, round(munix)),
        "MUSIX": round(cmap * 1000 / munix * _noise(rng, 0.05)),
        "CMAPAMP": round(cmap, 1),
        "CMAPAREA": round(cmap * m.duration * _noise(rng, 0.05), 1),
        "D50": max(1, round(mune * m.d50_ratio * _noise(rng, 0.08))),
        "MUNE": max(1, round(mune)),
    }


def _draw_measures(rng: random.Random, visits: list[Visit], models: dict, day1: date | None,
                   sites: Iterable[tuple[str, Muscle]] = SITES) -> list[Measure]:
    measures = []
    for visit in visits:
        years = max(0, (visit.start.date() - day1).days) / 365 if day1 else 0.0
        for k, (side, muscle) in enumerate(sites):
            at = visit.start + timedelta(minutes=15 + 12 * k)
            values = _mune_values(rng, models[side, muscle.key], years)
            measures += [Measure(visit, muscle, side, t, values[t.code], at) for t in MUNE_TESTS]
    return measures


def _repeat_baseline(rng: random.Random, s: Subject, models: dict) -> list[Measure]:
    """One muscle recorded again on another day before the injection (the first one was doubtful)."""
    baseline, day1 = s.visit("BASELINE"), s.visit("INJECTION").start.date()
    days = [baseline.start.date() + timedelta(k) for k in range(1, 6)]
    days = [d for d in days if d < day1 and d.weekday() < 5]
    repeat = _visit(rng, VISIT_BY_CODE["BASELINE"], rng.choice(days), "baseline-2")
    s.visits.insert(s.visits.index(baseline) + 1, repeat)
    return _draw_measures(rng, [repeat], models, day1, [rng.choice(SITES)])


def _mark_not_done(rng: random.Random, measures: list[Measure]) -> None:
    """About 1% of recordings not done: every test of that method, muscle, side and visit."""
    groups: dict[tuple, list[Measure]] = {}
    for m in measures:
        groups.setdefault((m.visit, m.muscle.key, m.side, m.test.method), []).append(m)
    for key in rng.sample(list(groups), max(1, round(NOT_DONE_SHARE * len(groups)))):
        for m in groups[key]:
            m.value = None


def _draw_conmeds(rng: random.Random, s: Subject) -> list[ConMed]:
    drugs = sorted(rng.sample(DRUGS, rng.randint(0, len(DRUGS))), key=DRUGS.index)
    return [ConMed(d, s.visit(d.visit), s.visit(d.visit).start + timedelta(minutes=d.after_minutes)) for d in drugs]


def _weight(rng: random.Random, visit: Visit, before: float | None) -> Weight:
    if before is None:
        kg = rng.uniform(48, 95)
    else:
        kg = before * (1 - rng.uniform(0, 0.08))  # ALS: weight loss over the year
    return Weight(visit, round(kg, 1), visit.start + timedelta(minutes=5))


def _draw_events(rng: random.Random, s: Subject, day1: date) -> list[Event]:
    count = rng.choices(range(len(AE_COUNT_WEIGHTS)), weights=AE_COUNT_WEIGHTS)[0]
    terms = rng.choices(AE_TERMS, weights=[t.weight for t in AE_TERMS], k=count)
    events = [_draw_event(rng, s, t, t.verbatim, day1) for t in terms]
    special = []
    if s.plan.long_ae:
        special.append(_draw_event(rng, s, AE_FALL, LONG_FALL_TEXT, day1))
    if s.death:
        special.append(_fatal_event(rng, s))
    events = events[: len(AE_COUNT_WEIGHTS) - 1 - len(special)] + special
    events.sort(key=lambda e: e.start)
    for seq, e in enumerate(events, start=1):
        e.seq = seq
    return events


def _draw_event(rng: random.Random, s: Subject, term: AeTerm, verbatim: str, day1: date) -> Event:
    last_day = (s.end - day1).days  # study day of the day before the subject's last day
    start = _study_date(day1, rng.randint(1, 3) if term.early else rng.randint(5, last_day))
    serious = rng.random() < term.hospital
    severity = rng.choice(("moderate", "severe")) if serious else _weighted(rng, SEVERITIES)
    outcome = _weighted(rng, OUTCOMES_CHRONIC if term.chronic else OUTCOMES)
    end = start + timedelta(rng.randint(*term.days) - 1) if outcome in ENDED_OUTCOMES else None
    if end and end > s.end:  # still present at the last contact
        outcome, end = "ongoing", None
    return Event(
        term, verbatim, start, end, severity, "hospitalization" if serious else None,
        rng.choice(term.causality), outcome, rng.choice(s.injections),
        False if rng.random() < DISCONTINUED_SHARE else None)


def _fatal_event(rng: random.Random, s: Subject) -> Event:
    term = AE_RESPIRATORY_FAILURE
    assert s.death is not None  # only the subject who dies has a fatal event
    start = s.death - timedelta(rng.randint(*term.days))
    return Event(term, term.verbatim, start, s.death, "severe", "death", "Unlikely", "fatal",
                 rng.choice(s.injections), True)


# --- Small helpers for pass 1 ---------------------------------------------------------------------------
def _weekday(d: date) -> date:
    """Visits happen on working days: Saturday moves back to Friday, Sunday on to Monday."""
    return d + timedelta({5: -1, 6: 1}.get(d.weekday(), 0))


def _study_date(day1: date, day: int) -> date:
    return day1 + timedelta(day - 1 if day > 0 else day)  # there is no study day 0


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February
        return d.replace(year=d.year - years, day=28)


def _noise(rng: random.Random, sd: float) -> float:
    return min(1 + 3 * sd, max(1 - 3 * sd, rng.gauss(1, sd)))


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


# --- Pass 2: rendering in R4 or R5 ----------------------------------------------------------------------
def _madrid_offset(d: date) -> str:
    """Central European (Summer) Time, as in Spain since 1996: +02:00 from the last Sunday of March
    to the last Sunday of October. No visit is on a Sunday, so the switch hour does not matter."""

    def last_sunday(month: int) -> date:
        d31 = date(d.year, month, 31)
        return d31 - timedelta((d31.weekday() + 1) % 7)

    return "+02:00" if last_sunday(3) <= d < last_sunday(10) else "+01:00"


def _dt(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S") + _madrid_offset(at.date())


def _ref(rtype: str, rid: str) -> dict:
    return {"reference": f"{rtype}/{rid}"}


def _coding(system: str, code: str, display: str | None = None) -> dict:
    c = {"system": system, "code": code}
    if display:
        c["display"] = display
    return c


def _cc(system: str, code: str, display: str | None = None, text: str | None = None) -> dict:
    cc: dict[str, Any] = {"coding": [_coding(system, code, display)]}
    if text:
        cc["text"] = text
    return cc


def _quantity(value: float | int, code: str, unit: str | None = None) -> dict:
    """A UCUM quantity; the human-readable unit is the code unless said, and absent when dimensionless."""
    q: dict[str, Any] = {"value": value}
    if code != "1":
        q["unit"] = unit or code
    q.update(system=UCUM, code=code)
    return q


def _body_site(muscle: Muscle, side: str) -> dict:
    """Muscle (NCIt) with its laterality (SNOMED CT) in the tcim laterality extension."""
    lat_code, lat_display = LATERALITY[side]
    return {
        "extension": [{"url": EXT_LATERALITY, "valueCodeableConcept": _cc(SNOMED, lat_code, lat_display)}],
        "coding": [_coding(NCIT, muscle.nci_code, muscle.name.title())],
    }


def _patient_id(s: Subject) -> str:
    return f"pat-{s.sid}"


def _encounter_id(s: Subject, visit: Visit) -> str:
    return f"enc-{s.sid}-{visit.key}"


def _injection_id(s: Subject, inj: Injection) -> str:
    return f"ma-{s.sid}-{inj.key}"


def _render_trial(trial: Trial, v: str) -> list[dict]:
    resources = [_render_sponsor(), _render_criteria(v), _render_study(trial, v), _render_site(trial, v)]
    for s in trial.subjects:
        resources += _render_subject(s, v)
    return resources


def _render_subject(s: Subject, v: str) -> list[dict]:
    return [
        _render_patient(s),
        _render_consent(s, v),
        _render_research_subject(s, v),
        *(_render_encounter(s, visit, v) for visit in s.visits),
        *(_render_injection(s, inj, v) for inj in s.injections),
        *(_render_conmed(s, cm, v) for cm in s.conmeds),
        *(_render_mune(s, m) for m in s.measures),
        *(_render_weight(s, w, n) for n, w in enumerate(s.weights, start=1)),
        *(_render_event(s, e, v) for e in s.events),
    ]


def _render_study(trial: Trial, v: str) -> dict:
    r = {
        "resourceType": "ResearchStudy", "id": STUDY_ID,
        "identifier": [{"use": "official", "system": SID_STUDY, "value": "TCIM-ELAII"},
                       {"system": "http://clinicaltrials.gov", "value": "NCT04849065"},
                       {"system": "http://www.clinicaltrialsregister.eu", "value": "2019-002302-46"}],
        "title": "Ensayo clínico fase II, aleatorizado, doble ciego y controlado con placebo, de inyección "
                 "intramuscular de células mononucleares autólogas de médula ósea en la esclerosis lateral "
                 "amiotrófica (TCIM-ELAII)",
        "status": "completed" if v == "R4" else "active",  # R5 status is the publication status
        "primaryPurposeType": _cc(THO + "research-study-prim-purp-type", "treatment", "Treatment"),
        "phase": _cc(THO + "research-study-phase", "phase-2", "Phase 2"),
        "condition": [_cc(SNOMED, "86044005", "Amyotrophic lateral sclerosis", "Esclerosis lateral amiotrófica")],
        "period": {"start": trial.start.isoformat(), "end": trial.end.isoformat()},
    }
    criteria = _ref("Group", CRITERIA_ID)
    if v == "R4":
        r["sponsor"] = _ref("Organization", SPONSOR_ID)
        r["enrollment"] = [criteria]
    else:
        r["associatedParty"] = [{"role": _cc(THO + "research-study-party-role", "sponsor"),
                                 "party": _ref("Organization", SPONSOR_ID)}]
        r["recruitment"] = {"targetNumber": PLANNED_SUBJECTS, "eligibility": criteria}
    arm_type = THO + "research-study-arm-type"
    if v == "R4":
        r["arm"] = [{"name": name, "type": _cc(arm_type, kind), "description": text}
                    for name, (text, kind) in ARMS.items()]
    else:
        r["comparisonGroup"] = [{"linkId": ARM_LINK[name], "name": name, "type": _cc(arm_type, kind),
                                 "description": text} for name, (text, kind) in ARMS.items()]
    return r


def _render_sponsor() -> dict:
    return {"resourceType": "Organization", "id": SPONSOR_ID, "active": True,
            "name": "Fundación para la Formación e Investigación Sanitarias de la Región de Murcia"}


def _render_criteria(v: str) -> dict:
    """The eligibility criteria (TI): one characteristic each, the criterion's text and number."""
    group: dict[str, Any] = {"resourceType": "Group", "id": CRITERIA_ID, "type": "person",
             "name": "TCIM-ELAII eligibility criteria",
             "characteristic": [{"code": {"coding": [{"system": SYS_CRITERION, "code": code}], "text": text},
                                 "valueBoolean": True, "exclude": code.startswith("EXCL")}
                                for code, text in ELIGIBILITY]}
    group.update({"actual": False} if v == "R4" else {"membership": "definitional"})
    return group


def _render_site(trial: Trial, v: str) -> dict:
    r = {
        "resourceType": "ResearchStudy", "id": SITE_STUDY_ID,
        "identifier": [{"use": "official", "system": SID_SITE, "value": "01"}],
        "title": "TCIM-ELAII: Hospital Clínico Universitario Virgen de la Arrixaca, Murcia",
        "partOf": [_ref("ResearchStudy", STUDY_ID)],
        "status": "completed" if v == "R4" else "active",
        "period": {"start": trial.start.isoformat(), "end": trial.end.isoformat()},
    }
    r["location" if v == "R4" else "region"] = [_cc("urn:iso:std:iso:3166", "ES", "Spain")]
    return r


def _render_patient(s: Subject) -> dict:
    line, town, postal = s.address
    r = {
        "resourceType": "Patient", "id": _patient_id(s),
        "identifier": [{"use": "usual", "type": _cc(THO + "v2-0203", "MR", "Medical record number"),
                        "system": SID_MRN, "value": s.plan.mrn}],
        "name": [{"use": "official", "family": s.family, "given": s.given}],
        "telecom": [{"system": "phone", "value": s.phone, "use": "mobile"}],
        "gender": s.gender,
        "birthDate": s.birth.isoformat(),
    }
    if s.death:
        r["deceasedDateTime"] = s.death.isoformat()
    r["address"] = [{"use": "home", "line": [line], "city": town, "state": "Región de Murcia",
                     "postalCode": postal, "country": "ES"}]
    return r


def _render_consent(s: Subject, v: str) -> dict:
    r: dict[str, Any] = {"resourceType": "Consent", "id": f"cons-{s.sid}", "status": "active"}
    category = [_cc(LOINC, "59284-0", "Patient Consent")]
    if v == "R4":
        r["scope"] = _cc(THO + "consentscope", "research", "Research")
        r["category"] = category
        r["patient"] = _ref("Patient", _patient_id(s))
        r["dateTime"] = s.plan.consent.isoformat()
        # R4 ppc-1: a consent names its policy; Spanish clinical trials decree RD 1090/2015.
        r["policy"] = [{"uri": "https://www.boe.es/eli/es/rd/2015/12/04/1090"}]
    else:
        r["category"] = category
        r["subject"] = _ref("Patient", _patient_id(s))
        r["date"] = s.plan.consent.isoformat()
        r["decision"] = "permit"
    return r


def _render_research_subject(s: Subject, v: str) -> dict:
    r: dict[str, Any] = {"resourceType": "ResearchSubject", "id": f"rs-{s.sid}",
         "identifier": [{"use": "official", "system": SID_SUBJECT, "value": s.sid}]}
    period = {"start": s.plan.consent.isoformat(), "end": s.end.isoformat()}
    study, patient = _ref("ResearchStudy", SITE_STUDY_ID), _ref("Patient", _patient_id(s))
    consent = _ref("Consent", f"cons-{s.sid}")
    if v == "R4":
        r.update(status="off-study" if s.arm else "ineligible", period=period, study=study, individual=patient)
        if s.arm:
            r.update(assignedArm=s.arm, actualArm=s.arm)
        r["consent"] = consent
        return r
    r.update(status="active", progress=_progress(s), period=period, study=study, subject=patient)
    if s.arm:
        r.update(assignedComparisonGroup=ARM_LINK[s.arm], actualComparisonGroup=ARM_LINK[s.arm])
    r["consent"] = [consent]
    return r


def _progress(s: Subject) -> list[dict]:
    """R5 ResearchSubject.progress: the enrollment states the subject went through, last one current."""

    def state(code: str, start: date, end: date | None = None) -> dict:
        p = {"type": _cc(THO + "research-subject-state-type", "Enrollment"),
             "subjectState": _cc(THO + "research-subject-state", code), "startDate": start.isoformat()}
        if end:
            p["endDate"] = end.isoformat()
        return p

    if not s.arm:
        return [state("ineligible", s.end)]
    return [state("on-study", s.plan.consent, s.end), state("off-study", s.end)]


def _render_encounter(s: Subject, visit: Visit, v: str) -> dict:
    period = {"start": _dt(visit.start), "end": _dt(visit.start + timedelta(minutes=visit.minutes))}
    ambulatory = _coding(THO + "v3-ActCode", "AMB", "ambulatory")
    r = {"resourceType": "Encounter", "id": _encounter_id(s, visit),
         # "finished" was renamed "completed" in R5
         "status": "finished" if v == "R4" else "completed",
         "class": ambulatory if v == "R4" else [{"coding": [ambulatory]}],
         "type": [_cc(SYS_VISIT, visit.code, VISIT_BY_CODE[visit.code].name)],
         "subject": _ref("Patient", _patient_id(s))}
    r["period" if v == "R4" else "actualPeriod"] = period
    return r


def _medication_administration(v: str, rid: str, s: Subject, medication: dict, visit: Visit, at: datetime,
                               dosage: dict) -> dict:
    r: dict[str, Any] = {"resourceType": "MedicationAdministration", "id": rid, "status": "completed"}
    encounter = _ref("Encounter", _encounter_id(s, visit))
    if v == "R4":
        r.update(medicationCodeableConcept=medication, subject=_ref("Patient", _patient_id(s)), context=encounter,
                 effectiveDateTime=_dt(at))
    else:  # R5 spells occurence[x] with one r
        r.update(medication={"concept": medication}, subject=_ref("Patient", _patient_id(s)), encounter=encounter,
                 occurenceDateTime=_dt(at))
    r["dosage"] = dosage
    return r


def _render_injection(s: Subject, inj: Injection, v: str) -> dict:
    dosage = {"site": _body_site(inj.muscle, inj.side), "route": _cc(*IM_ROUTE),
              "dose": _quantity(inj.dose, "10*6{cells}", "10^6 cells")}
    return _medication_administration(v, _injection_id(s, inj), s, _cc(SYS_PRODUCT, inj.product, PRODUCTS[inj.product]),
                                      inj.visit, inj.at, dosage)


def _render_conmed(s: Subject, cm: ConMed, v: str) -> dict:
    medication = {"coding": [_coding(*c) for c in cm.drug.codings]}
    dosage = {"route": _cc(*ORAL_ROUTE), "dose": _quantity(*cm.drug.dose)}
    return _medication_administration(v, f"ma-{s.sid}-{cm.drug.key}", s, medication, cm.visit, cm.at, dosage)


def _observation(s: Subject, rid: str, category: str, code: dict, visit: Visit, at: datetime) -> dict:
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "category": [_cc(THO + "observation-category", category)], "code": code,
            "subject": _ref("Patient", _patient_id(s)), "encounter": _ref("Encounter", _encounter_id(s, visit)),
            "effectiveDateTime": _dt(at)}


def _render_mune(s: Subject, m: Measure) -> dict:
    rid = f"obs-{s.sid}-{m.visit.key}-{m.muscle.key}-{m.side[0].lower()}-{m.test.code.lower()}"
    r = _observation(s, rid, "procedure", _cc(SYS_MUNE_TEST, m.test.code, m.test.display), m.visit, m.at)
    if m.value is None:
        r["dataAbsentReason"] = {"coding": [_coding(THO + "data-absent-reason", "not-performed", "Not Performed")],
                                 "text": NOT_DONE_TEXT}
    else:
        r["valueQuantity"] = _quantity(m.value, m.test.unit)
    r["bodySite"] = _body_site(m.muscle, m.side)
    r["method"] = _cc(SYS_MUNE_METHOD, m.test.method, MUNE_METHODS[m.test.method])
    return r


def _render_weight(s: Subject, w: Weight, n: int) -> dict:
    r = _observation(s, f"obs-{s.sid}-weight-{n}", "vital-signs", _cc(*BODY_WEIGHT), w.visit, w.at)
    r["valueQuantity"] = _quantity(w.kg, "kg")
    return r


def _meddra(term: AeTerm) -> list[dict]:
    return [{"extension": [{"url": EXT_MEDDRA_LEVEL, "valueCode": level}], "system": MEDDRA,
             "version": MEDDRA_VERSION, "code": code, "display": name}
            for level, (code, name) in term.hierarchy]


def _event_extensions(e: Event, v: str) -> list[dict]:
    ext: list[dict[str, Any]] = []
    if v == "R4" and e.end:  # R4 has no end date: the R5 occurrence element, pre-adopted
        ext.append({"url": EXT_AE_OCCURRENCE, "valuePeriod": {"start": e.start.isoformat(), "end": e.end.isoformat()}})
    # the AE Clinical Research IG's extensions, as a site on that release sends them: R4 the backport's
    if v == "R5":  # R5 has no severity element
        ext.append({"url": ae_ig_url(v, SEVERITY), "valueCodeableConcept": _cc(THO + "adverse-event-severity", e.severity)})
    if e.criterion:
        _, nci, display = CRITERIA[e.criterion]
        ext.append({"url": ae_ig_url(v, SERIOUSNESS_CRITERIA), "extension": [
            {"url": "criterionCode", "valueCodeableConcept": _cc(NCIT, nci, display)},
            {"url": "criterionPresent", "valueBoolean": True}]})
    if e.discontinued is not None:
        ext.append({"url": ae_ig_url(v, DISCONTINUED), "valueBoolean": e.discontinued})
    return ext


def _seriousness(e: Event, v: str) -> dict:
    if v == "R4":  # one R4 code says both "serious" and the criterion
        code = CRITERIA[e.criterion][0] if e.criterion else "Non-serious"
    else:
        code = "serious" if e.criterion else "non-serious"
    return _cc(THO + "adverse-event-seriousness", code)


def _render_event(s: Subject, e: Event, v: str) -> dict:
    r: dict[str, Any] = {"resourceType": "AdverseEvent", "id": f"ae-{s.sid}-{e.seq:02d}"}
    ext = _event_extensions(e, v)
    if ext:
        r["extension"] = ext
    identifier = {"system": SID_AE, "value": f"AE-{s.sid}-{e.seq:02d}"}
    event = {"coding": _meddra(e.term), "text": e.verbatim}
    patient = _ref("Patient", _patient_id(s))
    outcome = _cc(THO + "adverse-event-outcome", e.outcome)
    causality = _cc(THO + "adverse-event-causality-assess", e.causality)
    suspect = _ref("MedicationAdministration", _injection_id(s, e.suspect))
    study = [_ref("ResearchStudy", SITE_STUDY_ID)]
    if v == "R4":
        r.update(identifier=identifier, actuality="actual", event=event, subject=patient, date=e.start.isoformat(),
                 seriousness=_seriousness(e, v), severity=_cc(THO + "adverse-event-severity", e.severity),
                 outcome=outcome, suspectEntity=[{"instance": suspect, "causality": [{"assessment": causality}]}],
                 study=study)
        return r
    r.update(identifier=[identifier], status="completed", actuality="actual", code=event, subject=patient)
    if e.end:
        r["occurrencePeriod"] = {"start": e.start.isoformat(), "end": e.end.isoformat()}
    else:
        r["occurrenceDateTime"] = e.start.isoformat()
    r.update(seriousness=_seriousness(e, v), outcome=[outcome], study=study,
             suspectEntity=[{"instanceReference": suspect, "causality": {"entityRelatedness": causality}}])
    return r


# --- Public API ---------------------------------------------------------------------------------------
# the collector paused as for a conversion (gc_pause.py): a trial is hundreds of thousands of new dicts and
# no garbage cycle; 100 subjects took 0.25 s with it running, 0.14 s paused
@paused_gc
def generate(subjects: int, seed: int = 1, fhir_version: str = "R4") -> list[dict]:
    """The FHIR resources (plain JSON dicts) of a synthetic TCIM-ELAII trial with `subjects` subjects.

    One overall and one site ResearchStudy, then per subject its Patient, Consent, ResearchSubject,
    Encounters, MedicationAdministrations, Observations and AdverseEvents. With two or more subjects,
    exactly one is a screen failure; exactly one randomized subject dies of a fatal adverse event.
    """
    if fhir_version not in VERSIONS:
        raise ValueError(f"fhir_version must be one of {', '.join(VERSIONS)}, not {fhir_version!r}")
    if subjects < 1:
        raise ValueError("at least one subject is needed")
    return _render_trial(_draw_trial(subjects, random.Random(seed)), fhir_version)


_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, f"{TCIM}/synth")


def full_url(resource: dict) -> str:
    """A stable urn:uuid for a resource, derived from its type and id."""
    return f"urn:uuid:{uuid.uuid5(_UUID_NAMESPACE, resource['resourceType'] + '/' + resource['id'])}"


def bundle(resources: Iterable[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": full_url(r), "resource": r} for r in resources]}


def _dumps(obj: dict, indent: int | None = None) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=False, indent=indent)


def write_bundle(resources: Iterable[dict], path: str | Path) -> Path:
    """One Bundle of type collection, as UTF-8 JSON with one entry per line (diffable, still one JSON)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    b = bundle(resources)
    head = _dumps({k: v for k, v in b.items() if k != "entry"})[:-1]  # without its closing brace
    entries = ",\n".join(_dumps(e) for e in b["entry"])
    path.write_bytes(f'{head}, "entry": [\n{entries}\n]}}\n'.encode())
    return path


def write_ndjson(resources: Iterable[dict], directory: str | Path) -> list[Path]:
    """Bulk-data style: <ResourceType>.ndjson per type, one resource per line, in generation order."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {}
    for r in resources:
        lines.setdefault(r["resourceType"], []).append(_dumps(r))
    paths = []
    for rtype, rows in lines.items():
        path = directory / f"{rtype}.ndjson"
        path.write_bytes(("\n".join(rows) + "\n").encode("utf-8"))
        paths.append(path)
    return paths

