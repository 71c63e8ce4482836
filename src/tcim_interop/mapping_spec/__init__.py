"""The mapping specs of mappings/: loaded, checked, and handed to the engine. The spec is what runs."""

from .codelists import Codelists, Term
from .model import DomainSpec, Supplemental, Variable
from .load import load_mapping_set, MappingSet, default_mappings_dir

__all__ = ["Codelists", "Term", "DomainSpec", "Variable", "Supplemental", "load_mapping_set", "MappingSet",
           "default_mappings_dir"]
