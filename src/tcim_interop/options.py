"""The options of a run, one object each way: what the CLI and the API gather, and what every step of
a pipeline reads (instead of the same eight parameters passed through every function)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from .errors import UsageError
from .fhir.version import VERSIONS

Progress = Callable[..., None]  # progress(stage, done, total): see progress.Progress
FORMATS = ("xpt", "json")
BUNDLE_TYPES = ("transaction", "collection", "batch")

if TYPE_CHECKING:
    from .fhir.exchange import PullRecord


@dataclass(frozen=True)
class SdtmOptions:
    """to-sdtm. fhir_version: force R4 or R5 (None: told per resource). mune_domain: XM (default) or NV.
    strict: an error finding stops the run, nothing written. created: the outputs' creation time (None:
    from the input; sdtm_pipeline.creation_time). formats: ("xpt",), ("json",) or both. fast: validate only the
    JSON types of whole resources and what the mapping reads. masked: a delivery before unblinding.
    jobs: processes validating resources (None: one per core). report_paths: reports name input files by
    path, not only by label. pulled: where a --server run's input came from (fhir.exchange.PullRecord)."""

    fhir_version: str | None = None
    mune_domain: str | None = None
    strict: bool = False
    created: datetime | None = None
    formats: tuple[str, ...] = ("xpt",)
    fast: bool = False
    masked: bool = False
    jobs: int | None = None
    report_paths: bool = False
    pulled: PullRecord | None = None
    progress: Progress | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.fhir_version and self.fhir_version not in VERSIONS:
            raise UsageError(f"--fhir-version must be one of {', '.join(VERSIONS)}, not {self.fhir_version!r}")
        object.__setattr__(self, "formats", _formats(self.formats))


@dataclass(frozen=True)
class FhirOptions:
    """to-fhir. fhir_version: R4 or R5. bundle_type: transaction, collection (or batch). ndjson: one
    NDJSON file per resource type instead of a Bundle. strict: an error finding stops the run. verify:
    prove the round trip (to-sdtm of the output gives the datasets back). jobs: processes validating the
    output (None: one per core). timezone: the IANA time zone of the SDTM local date-times (--timezone),
    for every study in the input; None: study.yaml's, for its own study only."""

    fhir_version: str = "R4"
    bundle_type: str = "transaction"
    ndjson: bool = False
    strict: bool = False
    verify: bool = True
    jobs: int | None = None
    timezone: str | None = None

    def __post_init__(self) -> None:
        if self.timezone is not None:
            from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise UsageError(f"--timezone must be an IANA time zone name such as Europe/Madrid or "
                                 f"America/New_York, not {self.timezone!r}") from None
        if self.fhir_version not in VERSIONS:
            raise UsageError(f"--fhir-version must be one of {', '.join(VERSIONS)}, not {self.fhir_version!r}")
        if self.bundle_type not in BUNDLE_TYPES:
            raise UsageError(f"--bundle-type must be transaction or collection, not {self.bundle_type!r}")


def _formats(formats: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise UsageError(f"--format takes xpt, json or xpt,json, not {','.join(unknown) or 'nothing'}")
    return chosen
