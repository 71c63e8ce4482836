"""--ENRTPT and --ENTPT: a medication still taken, relative to the time point of the statement that says
so (SDTMIG 3.4 section 4.4.7, CM assumption 4), and back (to-fhir).

    ongoing          --ENRTPT: ONGOING for a record with no end whose source says the medication is still
                     taken (the map: a MedicationStatement's R4 status active, R5 adherence taking)
    reference_point  --ENTPT: the time point it is ongoing at: the date the statement was asserted, else
                     the point the spec names (DATA CUTOFF: the status is the one the data hold)
"""

from __future__ import annotations

import re
from typing import Any

from ..fhir.shape import has_element
from ..sdtm.dataset import present
from ..sdtm.dates import DateError, to_iso8601
from .context import Row
from .registry import algorithm, reverse
from .reverse_algorithms import Target, iso_datetime
from .row_algorithms import codes_of

ISO_DTC = re.compile(r"^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2})?)?)?)?$")  # an SDTM --DTC value, partial or not


@algorithm("ongoing", "row", needs_source=True, params=("without",))
def ongoing(row: Row, var) -> str | None:
    """The term the map gives the first code of the source it knows (ONGOING: still taken), for a record
    without params.without (its end, --ENDTC): a medication that ended is not ongoing, whatever its
    status. A code the map does not know says nothing about the end: no value, and no finding."""
    if row.values.get(var.params["without"]) is not None:
        return None
    codelists = row.run.mappings.codelists
    for system, code, _ in codes_of(row, var, row.values_of(var)):
        hit = codelists.lookup(var.codelist, var.map, system, code)
        if hit is not None:
            return hit
    return None


@reverse("ongoing")
def ongoing_back(t: Target, var, value: Any) -> None:
    """The map's code for the release (R4 status active, R5 adherence taking), for a record without an end:
    a primitive code where the map's system is params.system (R4 status), else a coding."""
    if present(t.record.get(var.params["without"])):
        return
    coding = t.mappings.codelists.fhir_coding(var.codelist, var.map, str(value), t.version)
    if coding is not None and _holds(t, var):
        t.write(var, coding["code"] if coding["system"] == var.params.get("system") else coding)


@algorithm("reference_point", "row", needs_source=True, params=("if", "otherwise"))
def reference_point(row: Row, var) -> str | None:
    """The reference time point of the relation params.if (--ENRTPT) when it has a value: the date the
    source gives (when the statement was asserted), else params.otherwise, the point the spec names;
    empty without the relation."""
    if row.values.get(var.params["if"]) is None:
        return None
    value = row.first_of(var)
    if value is not None:
        try:
            return to_iso8601(value)
        except DateError as e:
            row.finding("error", "BAD_DATE", f"{e}: {var.name} is {var.params['otherwise']!r}", var.name, value)
    return str(var.params["otherwise"])


@reverse("reference_point")
def reference_point_back(t: Target, var, value: Any) -> None:
    """A date is the source's (dateAsserted); params.otherwise is what no date gives back, and any other
    text (VISIT 2) has no FHIR element: carried."""
    if value != var.params["otherwise"] and ISO_DTC.match(str(value)) and _holds(t, var):
        iso_datetime(t, var, value)


def _holds(t: Target, var) -> bool:
    """Whether the record's resource has the element the source's first alternative names (a statement's
    dateAsserted, not an administration's)."""
    path = var.path(t.version)
    resource = t.resources["resource"]
    return path is not None and has_element(t.version, resource["resourceType"], path.alternatives[0].elements)
