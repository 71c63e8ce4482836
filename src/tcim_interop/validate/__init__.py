"""SDTM conformance validation: a registry of small named checks (registry.py), each citing the CDISC
CORE rule(s) it applies, run on datasets in memory (validate_datasets) or on a package directory
(validate_package). See docs/validate.md for the list of checks."""

from .engine import ValidationReport, validate_datasets, validate_package

__all__ = ["ValidationReport", "validate_datasets", "validate_package"]
