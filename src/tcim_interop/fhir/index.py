"""Find resources by reference, the way a FHIR server would resolve them on load.

A reference may be relative ("Patient/123"), absolute ("https://host/fhir/Patient/123"), or point
at a Bundle entry's fullUrl ("urn:uuid:..."). A contained reference ("#x") names a resource inside the
resource that holds it, not one of the input: `contained` finds it there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .read import InputResource, LineResource

_BARE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_TYPE_ID = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


class ResourceIndex:
    def __init__(self, resources: Iterable[InputResource | LineResource]):
        self.by_key: dict[str, InputResource | LineResource] = {}
        self.by_full_url: dict[str, InputResource | LineResource] = {}
        self._resolved: dict[str, InputResource | LineResource | None] = {}  # every event row resolves its subject and visit
        for r in resources:
            self.by_key.setdefault(r.key, r)
            if r.full_url:
                self.by_full_url.setdefault(r.full_url, r)

    def of_type(self, resource_type: str) -> list[InputResource | LineResource]:
        return [r for k, r in self.by_key.items() if k.startswith(resource_type + "/")]

    def resolve(self, reference: object, expected_type: str | None = None) -> InputResource | LineResource | None:
        """The resource a Reference (dict) or reference string points at, or None."""
        ref = reference.get("reference") if isinstance(reference, dict) else reference
        if not isinstance(ref, str) or not ref or ref.startswith("#"):
            return None
        if ref in self._resolved:
            found = self._resolved[ref]
        else:
            found = self.by_full_url.get(ref)
            if found is None:
                m = _TYPE_ID.search(ref)
                if m:
                    found = self.by_key.get(f"{m.group(1)}/{m.group(2)}")
            self._resolved[ref] = found
        if found is None and expected_type and _BARE_ID.fullmatch(ref):
            # a bare id ("example-study" for "ResearchStudy/example-study"), as some senders (HL7's own R5
            # ResearchSubject example among them) write it: unambiguous where the element allows one type
            found = self.by_key.get(f"{expected_type}/{ref}")
        if found is not None and expected_type and found.resource_type != expected_type:
            return None
        return found


def contained(container: dict, reference: object) -> dict | None:
    """The resource of `container`'s `contained` list that a contained reference ("#id") names, or None
    (a hospital's MedicationAdministration naming its product in a contained Medication)."""
    ref = reference.get("reference") if isinstance(reference, dict) else reference
    if not isinstance(ref, str) or len(ref) < 2 or not ref.startswith("#"):
        return None
    return next((r for r in container.get("contained") or () if isinstance(r, dict) and r.get("id") == ref[1:]), None)


def reference_text(reference: object) -> str:
    ref = reference.get("reference") if isinstance(reference, dict) else reference
    return ref if isinstance(ref, str) else ""
