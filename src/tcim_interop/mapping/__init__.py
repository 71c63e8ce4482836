"""Spec-driven mapping: named algorithms (registry), FHIR rows -> SDTM records, then derivations."""
