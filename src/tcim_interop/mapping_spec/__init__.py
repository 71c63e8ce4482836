"""The mapping specs of mappings/: loaded, checked, and handed to the engine. The spec is what runs."""

from .codelists import Codelists, Term
from .load import default_mappings_dir, load_mapping_set
from .model import DomainSpec, MappingSet, Supplemental, Variable

__all__ = ["Codelists", "Term", "DomainSpec", "Variable", "Supplemental", "load_mapping_set", "MappingSet",
           "default_mappings_dir"]
