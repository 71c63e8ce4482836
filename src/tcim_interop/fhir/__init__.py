"""FHIR side: reading files, telling R4 from R5, validating, resolving references, writing."""
