"""Related records (RELREC, SDTMIG 3.4 section 8.2): a record whose FHIR resource references the
resource of another domain's record (an adverse event's suspectEntity naming the administration it
followed) is related to that record. The specs say which reference relates which domains (`relrec:`);
the links are also what a derivation reads from the related record (AELOC from EXLOC).
"""

from __future__ import annotations

from ..mapping_spec.model import DomainSpec, MappingSet
from ..sdtm.dataset import Dataset, present, records_as_frame
from .context import Row

# links[domain][role]: the key of each record's resource -> the keys of the records of the domain serving
# role (study.yaml domains) that it references
Links = dict[str, dict[str, dict[str, list[str]]]]


def referenced_keys(row: Row, spec: DomainSpec) -> None:
    """The keys of the resources each relrec: entry's references name, kept on the row (role -> keys)."""
    for rel in spec.relations:
        found = (row.run.index.resolve(ref) for ref in row.values_of(rel))
        row.related[rel.role] = [r.key for r in found if r is not None]


def link_records(mappings: MappingSet, rows: dict[str, list[Row]]) -> Links:
    """For every relrec: entry, each record's references to resources that are records of the other
    domain. A reference to anything else (a concomitant medication, a resource not in the input) relates
    nothing."""
    links: Links = {}
    for spec in mappings.domains.values():
        for rel in spec.relations if spec.domain in rows else ():
            other = mappings.spec(rel.role).domain
            records = {r.resource.key for r in rows.get(other, ())}
            links.setdefault(spec.domain, {})[rel.role] = {
                r.resource.key: [k for k in r.related.get(rel.role, ()) if k in records] for r in rows[spec.domain]}
    return links


def related_rows(links: Links, domain: str, role: str, other: str, sources: dict[str, list[str]]) -> list[list[int]]:
    """For each record of domain (in its frame's order), the rows of other's frame (the domain serving
    role) it is related to."""
    position = {key: i for i, key in enumerate(sources.get(other, ()))}
    by_key = links.get(domain, {}).get(role, {})
    return [[position[k] for k in by_key.get(key, ()) if k in position] for key in sources.get(domain, ())]


def related_of(mappings: MappingSet, links: Links, domain: str, sources: dict[str, list[str]]) -> dict:
    """What a derivation of domain reads of its related records: role -> (the role's domain, for each
    record the rows of that domain's frame it is related to)."""
    out = {}
    for role in links.get(domain, {}):
        other = mappings.spec(role).domain
        out[role] = (other, related_rows(links, domain, role, other, sources))
    return out


def _seq(ds: Dataset, i: int) -> str:
    value = ds.frame.at[i, f"{ds.name}SEQ"]
    return f"{int(value)}" if present(value) else ""


def relrec_dataset(mappings: MappingSet, datasets: dict[str, Dataset], links: Links) -> Dataset | None:
    """RELREC: one relationship per record that references others, RELID its domain and --SEQ ("AE3"),
    holding that record and each record it references (IDVAR --SEQ; RELTYPE empty: records, not datasets)."""
    shape = mappings.relrec
    sources = {name: ds.sources for name, ds in datasets.items()}
    records = []
    for domain, others in links.items():
        ds = datasets[domain]
        for role in others:
            other = mappings.spec(role).domain
            for i, targets in enumerate(related_rows(links, domain, role, other, sources)):
                if not targets:
                    continue
                seq = _seq(ds, i)
                base = {"STUDYID": ds.frame.at[i, "STUDYID"], "USUBJID": ds.frame.at[i, "USUBJID"], "RELTYPE": None,
                        "RELID": f"{domain}{seq}"}
                records.append({**base, "RDOMAIN": domain, "IDVAR": f"{domain}SEQ", "IDVARVAL": seq})
                records += [{**base, "RDOMAIN": other, "IDVAR": f"{other}SEQ", "IDVARVAL": _seq(datasets[other], j)}
                            for j in sorted(set(targets))]
    if shape is None or not records:
        return None
    records.sort(key=_order)
    frame = records_as_frame(records, shape.variables).drop_duplicates(ignore_index=True)
    return Dataset("RELREC", shape.label, list(shape.variables), frame)


def _order(record: dict) -> tuple:
    """By subject, then relationship (AE2 before AE10), its own record first, then those it names."""
    relid = record["RELID"]
    domain = relid.rstrip("0123456789")
    return (record["USUBJID"], domain, int(relid[len(domain):] or 0), record["RDOMAIN"] != domain,
            record["RDOMAIN"], float(record["IDVARVAL"] or 0))
