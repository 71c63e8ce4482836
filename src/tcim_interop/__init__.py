"""tcim-interop: HL7 FHIR <-> CDISC SDTM for the TCIM-ELAII trial (NCT04849065).

Public API (everything else is private and may change; tests/test_api.py holds __all__ to this list):
    to_sdtm(inputs, out_dir=None, ...) -> SdtmResult     FHIR files or documents in memory -> SDTM DataFrames
                                                         (+ the package: XPT v5, Dataset-JSON, define.xml, ...)
    to_fhir(sdtm, out=None, ...) -> FhirResult           SDTM datasets -> FHIR resources (+ Bundle/NDJSON)
    validate_package(path) -> ValidationReport           the conformance checks of `tcim-interop validate`
    read_sdtm(path) -> {name: Dataset}                   SDTM .xpt / Dataset-JSON files, checked
    load_mapping_set(directory=None)                     the specs of mappings/, checked
    SdtmResult, FhirResult, ValidationReport, Dataset    the result types (documented where they live)
    Report, Finding                                      what a run met, as records
    TcimError and subclasses                             see tcim_interop.errors

Names are imported on first use, so that `tcim-interop --help` does not pay for pandas or
fhir.resources.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:  # the one place the version is written is pyproject.toml
    __version__ = version("tcim-interop")
except PackageNotFoundError:  # a source tree on PYTHONPATH, not installed
    __version__ = "0+unknown"

_EXPORTS = {
    "to_sdtm": "api", "SdtmResult": "api", "to_fhir": "api", "FhirResult": "api", "read_sdtm": "api",
    "validate_package": "api", "ValidationReport": "validate.engine", "Dataset": "sdtm.dataset",
    "load_mapping_set": "mapping_spec.load", "Report": "findings",
    "Finding": "findings", "TcimError": "errors", "UsageError": "errors", "SpecError": "errors",
    "InputError": "errors", "NoSubjectError": "errors", "OutputError": "errors", "ConformanceError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
