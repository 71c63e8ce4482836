"""Synthetic FHIR data for TCIM-ELAII: deterministic R4/R5 bundles and NDJSON exports for tests and demos."""

from .generate import bundle, full_url, generate, write_bundle, write_ndjson

__all__ = ["bundle", "full_url", "generate", "write_bundle", "write_ndjson"]
