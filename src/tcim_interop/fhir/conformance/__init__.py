"""The project's FHIR conformance resources (R4), built from the specs: extensions, profiles of what
to-fhir writes, CodeSystems and ValueSets, written as a FHIR NPM package (`tcim-interop fhir-package`).

    write_package(ms, out)            DIR/package/{package.json, .index.json, <Type>-<id>.json}
    conformance_resources(ms)         the resources, in memory
    profile_url(type, dataset=None)   the profile a resource to-fhir makes conforms to (meta.profile)
"""

from .package import conformance_resources, write_package
from .profiles import profile_url

__all__ = ["conformance_resources", "profile_url", "write_package"]
