"""Trial design datasets (SDTMIG 3.4 section 7): TS, TA, TE, TI, TV, both directions.

    spec      mappings/trial_design.yaml: the datasets' variables and the TS parameters' sources
    summary   the named sources of TS parameter values (ResearchStudy elements, the data, study.yaml)
    build     FHIR -> TS, TA, TE, TI, TV (or the records to-fhir carried, given back exactly)
    to_fhir   TS, TA, TE, TI, TV -> ResearchStudy elements, an eligibility Group, carried records
"""

from ..sdtm.dataset import TRIAL_DESIGN

# Those made from the ResearchStudy and study.yaml, in the order they are built; the protocol data
# has nothing for TD (disease assessment schedule) or TM (disease milestones).
MADE = tuple(n for n in TRIAL_DESIGN if n not in ("TD", "TM"))
# What to-fhir carries, record by record, on the overall study: most of these have no FHIR element
CARRIED = MADE
# What to-fhir carries, record by record, on each subject's ResearchSubject, and describes (sdtm-dataset)
# on the overall study: SE (subject_elements.py), which no FHIR resource holds (its dates are derived from
# DM's, its elements from the protocol). On the subject, not the study, so that no resource grows with
# the study: to-fhir validates and writes a subject at a time.
ON_SUBJECTS = ("SE",)
