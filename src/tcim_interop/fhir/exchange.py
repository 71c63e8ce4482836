"""Pull a study's records from a FHIR server as NDJSON, and push to-fhir's bundles to one.

pull: the study (ResearchStudy?identifier=), its site studies (partof, recursively), their
ResearchSubjects (with _include of the Patient), then for the subjects' patients, in groups of
IDS_PER_QUERY, every Consent, Encounter, MedicationAdministration, AdverseEvent and Observation
(docs/fhir-input.md: what to-sdtm reads); last, whatever those records reference among these types and
was not found yet (a server may ignore _include). Every `next` link is followed. Each search answer is
checked against what was asked, so that a server ignoring a parameter cannot leak other patients'
records into the output. Output: one NDJSON file per type, staged and renamed into place; a PullRecord
says where it came from (server, searches, sha256) for the run report of to-sdtm --server.

push: the bundle is cut into transactions of at most `batch_size` entries. to-fhir writes PUT Type/id
with urn:uuid fullUrls, so every urn:uuid reference is rewritten to Type/id and each chunk stands alone;
an entry created by POST stays in one chunk with the entries that reference it. Chunks are sent in
dependency order (a resource before those that reference it), so a server that checks referential
integrity accepts them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import orjson

from ..errors import InputError, OutputError, UsageError
from ..gc_pause import paused_gc
from ..json_files import read_json
from .client import MAX_JSON_DEPTH, FhirClient, ServerError, ServerOptions, holds_secret, json_depth_ok, outcome_lines

# What to-sdtm reads (a test checks this against the mapping specs), and for the records of a subject,
# the search parameter that finds them by patient (the same in R4 and R5) and the elements it searches.
PULLED_TYPES = ("ResearchStudy", "ResearchSubject", "Patient", "Consent", "Encounter",
                "MedicationAdministration", "AdverseEvent", "Observation",
                "Group", "Organization")  # the study's eligibility criteria and sponsor (trial design)
BY_PATIENT = {
    "Consent": ("patient", ("patient", "subject")),
    "Encounter": ("subject", ("subject",)),
    "MedicationAdministration": ("subject", ("subject",)),
    "AdverseEvent": ("subject", ("subject",)),
    "Observation": ("subject", ("subject",)),
}
IDS_PER_QUERY = 20  # ids OR-ed in one search: ~1 kB of URL, far below what servers and proxies accept
PARTOF_PARAMS = ("partof", "part-of")  # R4 spells it partof, R5 part-of
_REFERENCE_JSON = re.compile(rb'"reference":"((?:[^"\\]|\\.)*)"')
_REF = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


class _Ignored(ServerError):
    """A search answered resources that do not match: the server ignored a parameter."""


@dataclass
class PullRecord:
    """Where pulled data came from, for a run report: what a temporary directory's path cannot say."""

    server: str  # the base URL, without credentials
    study: str
    queries: list[str]  # every search answered, `Type?params` (first page), sorted
    resources: int
    sha256: str  # of the NDJSON files concatenated in name order (`cat *.ndjson | sha256sum`)
    warnings: list[str] = field(default_factory=list)


@dataclass
class PullResult:
    counts: dict[str, int]
    requests: int
    seconds: float
    written: list[Path]
    warnings: list[str] = field(default_factory=list)
    record: PullRecord | None = None

    @property
    def resources(self) -> int:
        return sum(self.counts.values())


def bounded_map(fn: Callable, items: list, workers: int) -> Iterator:
    """fn over items, in order, with at most `workers` calls running (the bound on requests in flight);
    after a failure the calls not yet started are cancelled."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        yield from pool.map(fn, items)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def _walk_references(node) -> Iterable[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from _walk_references(v)
    elif isinstance(node, list):
        for x in node:
            yield from _walk_references(x)


class _Pull:
    def __init__(self, client: FhirClient, page_size: int, progress: Callable[..., None] | None):
        self.client, self.page_size, self.progress = client, page_size, progress
        self.found: dict[str, dict] = {}
        self.warnings: list[str] = []
        self.queries: list[str] = []

    def warn(self, message: str) -> None:
        message = self.client.redact(message)
        if message not in self.warnings:  # every page of every search may carry the same outcome
            self.warnings.append(message)

    def key(self, reference: str) -> str | None:
        """'Type/id' of a relative reference, or of an absolute one on this server; else None."""
        if "://" in reference and not reference.startswith(self.client.base + "/"):
            return None
        m = _REF.search(reference)
        return f"{m.group(1)}/{m.group(2)}" if m else None

    def refs(self, resource: dict, elements: Iterable[str]) -> set[str]:
        return {k for e in elements for k in map(self.key, _walk_references(resource.get(e))) if k}

    def all_refs(self, resource: dict) -> set[str]:
        # A regex over the serialised resource: several times faster than walking deep Observations.
        return {k for m in _REFERENCE_JSON.finditer(orjson.dumps(resource)) if (k := self.key(m.group(1).decode()))}

    def search(self, rtype: str, params: dict[str, str], matches: Callable[[dict], bool]) -> list[dict]:
        """All pages of one search; includes kept; a match that is not what was asked is an error."""
        params = {**params, "_count": str(self.page_size)}
        out, total, matched = [], None, 0
        for page in self.client.search_pages(rtype, params):
            total = page.get("total") if total is None else total
            for entry in page.get("entry") or []:
                res, mode = entry.get("resource") or {}, (entry.get("search") or {}).get("mode")
                if mode == "outcome" or res.get("resourceType") == "OperationOutcome":
                    for line in outcome_lines(res):
                        self.warn(f"{rtype} search: {line}")
                    continue
                if res.get("resourceType") == rtype and mode != "include":
                    if not matches(res):
                        asked = ", ".join(k for k in params if not k.startswith("_"))
                        raise _Ignored(self.client.redact(
                            f"{rtype} search ({asked}): the server answered {rtype}/{res.get('id')}, which does not "
                            "match: it ignores the parameter; nothing written"))
                    matched += 1
                if res.get("resourceType") in PULLED_TYPES and res.get("id"):
                    out.append(res)
            if isinstance(total, int) and matched > total:  # no use reading an endless chain to the end
                break
        self.queries.append(f"{rtype}?{urlencode(params)}")
        if isinstance(total, int) and total != matched:
            raise self.client.error(f"{rtype} search: the server announced {total} matches but served {matched} "
                                    "(records changed during the pull, or broken paging); nothing written")
        return out

    def keep(self, resources: Iterable[dict]) -> None:
        for r in resources:
            self.found.setdefault(f"{r['resourceType']}/{r['id']}", r)

    def run(self, study: str) -> None:
        system, _, value = study.casefold().rpartition("|")  # servers compare tokens case-insensitively
        studies = self.search("ResearchStudy", {"identifier": study}, lambda r: any(
            isinstance(i, dict) and str(i.get("value")).casefold() == value
            and (not system or str(i.get("system")).casefold() == system)
            for i in (r["identifier"] if isinstance(r.get("identifier"), list) else [])))
        studies = [r for r in studies if r["resourceType"] == "ResearchStudy"]
        if not studies:
            raise self.client.error(f"{self.client.base}: no ResearchStudy with identifier {study!r}")
        if len(studies) > 1:
            raise self.client.error(f"{self.client.base}: {len(studies)} ResearchStudy resources have identifier "
                                    f"{study!r} ({', '.join(r['id'] for r in studies[:5])}); give system|value")
        self.keep(studies)
        frontier = {f"ResearchStudy/{studies[0]['id']}"}
        study_keys = set(frontier)
        while frontier:  # site studies, and their sites in turn
            sites = [r for r in self._by_refs("ResearchStudy", PARTOF_PARAMS, sorted(frontier), ("partOf",))
                     if r["resourceType"] == "ResearchStudy"]
            frontier = {f"ResearchStudy/{r['id']}" for r in sites} - study_keys
            study_keys |= frontier
        subjects = self._by_refs("ResearchSubject", ("study",), sorted(study_keys), ("study",),
                                 {"_include": "ResearchSubject:patient"})
        patients = sorted({k for r in subjects if r["resourceType"] == "ResearchSubject"
                           for k in self.refs(r, ("individual", "subject")) if k.startswith("Patient/")})
        tasks: list[tuple] = [(rtype, param, elements, patients[i:i + IDS_PER_QUERY])
                 for rtype, (param, elements) in BY_PATIENT.items() for i in range(0, len(patients), IDS_PER_QUERY)]
        self._parallel(lambda t: self._by_refs(t[0], (t[1],), t[3], t[2]), tasks)
        scanned: set[str] = set()
        absent: set[str] = set()
        for _ in range(3):  # what the records reference and no search brought (servers may ignore _include)
            fresh = [k for k in list(self.found) if k not in scanned]
            scanned.update(fresh)
            missing = sorted({k for f in fresh for k in self.all_refs(self.found[f])
                              if k.split("/")[0] in PULLED_TYPES} - self.found.keys() - absent)
            if not missing:
                break
            by_type: dict[str, list[str]] = {}
            for k in missing:
                by_type.setdefault(k.split("/")[0], []).append(k.split("/")[1])
            tasks = [(t, ids[i:i + IDS_PER_QUERY]) for t, ids in by_type.items() for i in range(0, len(ids), IDS_PER_QUERY)]
            self._parallel(lambda t: self._by_ids(*t), tasks)
            absent |= {k for k in missing if k not in self.found}
        if absent:
            self.warn(f"{len(absent)} referenced resource(s) not on the server (first: {min(absent)}); "
                      "to-sdtm will report the records that need them")

    def _by_ids(self, rtype: str, ids: list[str]) -> None:
        wanted = set(ids)
        self.keep(self.search(rtype, {"_id": ",".join(ids)}, lambda r: r["id"] in wanted))

    def _by_refs(self, rtype: str, params: tuple[str, ...], keys: list[str], elements: tuple[str, ...],
                 extra: dict | None = None) -> list[dict]:
        """Resources whose `elements` reference one of `keys`, in groups of IDS_PER_QUERY; the first
        search parameter name the server knows is used (an unknown one answers 400, or is ignored)."""
        out = []
        for i in range(0, len(keys), IDS_PER_QUERY):
            group = keys[i:i + IDS_PER_QUERY]
            wanted = set(group)
            for n, param in enumerate(params):
                try:
                    found = self.search(rtype, {param: ",".join(group), **(extra or {})},
                                        lambda r: bool(self.refs(r, elements) & wanted))  # noqa: B023 (called in this iteration)
                    break
                except ServerError as e:
                    if n == len(params) - 1 or not (e.status == 400 or isinstance(e, _Ignored)):
                        raise
            out += found
        self.keep(out)
        return out

    def _parallel(self, fn: Callable, tasks: list) -> None:
        for n, _ in enumerate(bounded_map(fn, tasks, self.client.options.workers), start=1):
            if self.progress:
                self.progress("pulling", n, len(tasks))


# pull and push hold a study's resources as parsed JSON, no cycle among them: the collector paused as for a
# conversion (gc_pause.py)
@paused_gc
def pull_to_directory(server: str, study: str, out_dir: str | os.PathLike, *,
                      options: ServerOptions | None = None, page_size: int = 500,
                      progress: Callable[..., None] | None = None) -> PullResult:
    """Pull the study's records from the FHIR server into out_dir as NDJSON (one file per resource type,
    what to-sdtm reads). All or nothing: a failure leaves out_dir as it was."""
    from .write import write_ndjson

    if not 1 <= page_size <= 10_000:
        raise UsageError("--page-size must be between 1 and 10000")
    out = Path(out_dir)
    _check_replaceable(out)
    start = time.monotonic()
    with FhirClient(server, options, default_scope="system/*.read") as client:
        puller = _Pull(client, page_size, progress)
        puller.run(study)
        requests = client.requests
    resources = [puller.found[k] for k in sorted(puller.found)]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.pull-", dir=out.parent))
    except OSError as e:
        raise OutputError(f"{out}: cannot write: {e.strerror or e}") from None
    try:
        digest = _check_and_hash(sorted(write_ndjson(resources, staged)), client)
        _swap_in(staged, out)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    counts: dict[str, int] = {}
    for r in resources:
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
    written = sorted(out.glob("*.ndjson"))
    record = PullRecord(client.base, study, sorted(puller.queries), len(resources), digest, puller.warnings)
    return PullResult(counts, requests, time.monotonic() - start, written, puller.warnings, record)


SCANNED_SECRET_LENGTH = 8  # shorter secrets (a short URL password) would match ordinary data


def _check_and_hash(files: list[Path], client: FhirClient) -> str:
    """The sha256 of the files in this order; a ServerError if the server put a credential of ours in the
    records (an echoed header, say): patient data files must not carry it, and altering records would
    falsify them."""
    secrets = [s for s in (client.auth.secrets() if client.auth else []) if len(s) >= SCANNED_SECRET_LENGTH]
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as f:
            for line in f:  # one resource a line
                digest.update(line)
                if secrets and holds_secret(line.decode("utf-8", "replace"), secrets):
                    raise client.error(f"the server's records hold the credentials used to pull them "
                                       f"({path.name}): nothing written")
    return digest.hexdigest()


def _check_replaceable(out: Path) -> None:
    """out may be new, empty, or an earlier pull (NDJSON files only): anything else is not ours to replace."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a directory")
    if out.is_dir():
        other = [p.name for p in out.iterdir() if p.suffix != ".ndjson" or not p.is_file()]
        if other:
            raise OutputError(f"{out}: holds other files than NDJSON ({other[0]}): give a new or empty directory")


def _swap_in(staged: Path, out: Path) -> None:
    try:
        if not out.exists():
            os.rename(staged, out)
            return
        _check_replaceable(out)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.rename(out, old)
        try:
            os.rename(staged, out)
        except OSError:
            os.rename(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise OutputError(f"{out}: cannot write: {e.strerror or e}") from None


# -- push ---------------------------------------------------------------------------------------------

@dataclass
class PushResult:
    created: int = 0
    updated: int = 0
    refused: int = 0
    not_sent: int = 0
    transactions: int = 0
    requests: int = 0
    seconds: float = 0.0
    messages: list[str] = field(default_factory=list)  # one line per refusal issue

    @property
    def ok(self) -> bool:
        return not (self.refused or self.not_sent)


def _target(entry: dict) -> str | None:
    """'Type/id' an entry writes to, when its request names it (PUT/DELETE Type/id, not conditional)."""
    request = entry.get("request") or {}
    url = str(request.get("url") or "")
    m = _REF.fullmatch(url) if "?" not in url else None
    return f"{m.group(1)}/{m.group(2)}" if m and request.get("method") in ("PUT", "DELETE") else None


def _rewrite(node, alias: dict[str, str]):
    if isinstance(node, dict):
        return {k: (alias.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, alias))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(x, alias) for x in node]
    return node


def plan_chunks(entries: list[dict], size: int) -> tuple[list[dict], list[list[list[int]]]]:
    """The entries with urn:uuid references rewritten to Type/id, and their indexes cut into chunks of at
    most `size` (a group tied by unresolvable references may exceed it), grouped in dependency levels."""
    targets = [_target(e) for e in entries]
    alias = {e["fullUrl"]: t for e, t in zip(entries, targets, strict=True) if t and e.get("fullUrl")}
    entries = [{**e, "resource": _rewrite(e["resource"], alias)} if isinstance(e.get("resource"), dict) else e
               for e in entries]
    by_target = {t: i for i, t in enumerate(targets) if t}
    by_full_url = {e["fullUrl"]: i for i, e in enumerate(entries) if e.get("fullUrl")}
    parent = list(range(len(entries)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    deps: list[set[int]] = [set() for _ in entries]
    for i, e in enumerate(entries):
        for ref in _walk_references(e.get("resource")):
            if ref in by_target and by_target[ref] != i:
                deps[i].add(by_target[ref])
            elif ref in by_full_url:  # a POST's placeholder: only resolvable inside one transaction
                parent[find(i)] = find(by_full_url[ref])
    units: dict[int, list[int]] = {}
    for i in range(len(entries)):
        units.setdefault(find(i), []).append(i)
    unit_deps = {u: {find(d) for i in members for d in deps[i]} - {u} for u, members in units.items()}
    level = _levels(unit_deps)
    plan: list[list[list[int]]] = []
    for lv in range(max(level.values(), default=-1) + 1):
        chunks: list[list[int]] = []
        for u in (u for u in units if level[u] == lv):  # dict order: the bundle's order
            if chunks and len(chunks[-1]) + len(units[u]) <= size:
                chunks[-1] += units[u]
            else:
                chunks.append(list(units[u]))
        plan.append(chunks)
    return entries, plan


def _levels(deps: dict[int, set[int]]) -> dict[int, int]:
    """Longest dependency chain below each unit (Kahn's order); units on a cycle go in a last level."""
    users: dict[int, list[int]] = {u: [] for u in deps}
    pending = {u: len(d) for u, d in deps.items()}
    for u, d in deps.items():
        for v in d:
            users[v].append(u)
    level = {u: 0 for u, n in pending.items() if n == 0}
    queue = list(level)
    for u in queue:
        for w in users[u]:
            level[w] = max(level.get(w, 0), level[u] + 1)
            pending[w] -= 1
            if pending[w] == 0:
                queue.append(w)
    last = max(level.values(), default=-1) + 1
    return {u: level[u] if pending[u] == 0 else last for u in deps}


def read_bundle(path: str | os.PathLike) -> dict:
    path = Path(path)
    bundle = read_json(path, InputError)
    if not json_depth_ok(bundle):  # the chunking walks it recursively, and orjson must write it again
        raise InputError(f"{path}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" \
            or bundle.get("type") not in ("transaction", "batch"):
        raise InputError(f"{path}: not a transaction or batch Bundle (to-fhir writes one by default)")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("request"), dict) and isinstance(e["request"].get("method"), str)
            and isinstance(e["request"].get("url"), str) for e in entries):
        raise InputError(f"{path}: every entry of a transaction needs a request with a method and a url")
    return bundle


@paused_gc
def push_bundle(bundle_path: str | os.PathLike, server: str, *, options: ServerOptions | None = None,
                batch_size: int = 50, progress: Callable[..., None] | None = None) -> PushResult:
    """Send a transaction (or batch) Bundle in chunks of at most batch_size entries; what the server
    created, updated or refused comes back in the result. A network failure raises ServerError."""
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    bundle = read_bundle(bundle_path)
    entries, plan = plan_chunks(bundle.get("entry") or [], batch_size)
    result = PushResult()
    start = time.monotonic()
    total = sum(len(c) for level in plan for c in level)
    with FhirClient(server, options, default_scope="system/*.write") as client:
        def send(chunk: list[int]) -> PushResult:
            idempotent = all((entries[i]["request"].get("method") or "").upper() != "POST" for i in chunk)
            resp = client.transaction({"resourceType": "Bundle", "type": bundle["type"],
                                       "entry": [entries[i] for i in chunk]}, idempotent=idempotent)
            if resp.status_code >= 500 or resp.status_code == 429:  # still failing after the retries: not a refusal
                raise client.http_error(f"POST {client.base} (transaction)", resp)
            return _tally(client, resp, [entries[i] for i in chunk])

        try:
            for n, level in enumerate(plan):
                result.transactions += len(level)
                for part in bounded_map(send, level, client.options.workers):
                    result.created += part.created
                    result.updated += part.updated
                    result.refused += part.refused
                    result.messages += part.messages
                    if progress:
                        progress("pushing", result.created + result.updated + result.refused, total)
                if result.refused:  # later levels reference this one: stop rather than leave dangling references
                    result.not_sent = sum(len(c) for later in plan[n + 1:] for c in later)
                    break
        except ServerError as e:
            done = result.created + result.updated
            raise client.error(f"{e} ({done} of {total} entries confirmed stored; pushing again is safe for "
                               "PUT entries)", e.status) from None
        result.requests = client.requests
    result.seconds = time.monotonic() - start
    return result


def _describe(entry: dict) -> str:
    request = entry.get("request") or {}
    return f"{request.get('method', '?')} {request.get('url', '?')}"


def _tally(client: FhirClient, resp, sent: list[dict]) -> PushResult:
    """What the server did with one chunk."""
    result = PushResult()
    body = None
    try:
        body = resp.json()
    except ValueError:
        pass
    if resp.status_code >= 300 or not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        # The whole transaction was refused (rolled back).
        issues = outcome_lines(body) or [f"HTTP {resp.status_code} {resp.reason_phrase}"]
        what = f"transaction of {len(sent)} entries (first {_describe(sent[0])})"
        result.refused += len(sent)
        result.messages += [client.redact(f"refused: {what}: {line}") for line in issues]
        return result
    answers = body["entry"] if isinstance(body.get("entry"), list) else []
    for entry, answer in zip(sent, answers + [{}] * (len(sent) - len(answers)), strict=False):  # extra answers ignored
        response = answer.get("response") if isinstance(answer, dict) else None
        response = response if isinstance(response, dict) else {}
        status = str(response.get("status") or "").split(" ")[0]
        if status == "201":
            result.created += 1
        elif status.startswith("2"):
            result.updated += 1
        else:
            result.refused += 1
            issues = outcome_lines(response.get("outcome")) or [f"HTTP {status or 'status missing'}"]
            result.messages += [client.redact(f"refused: {_describe(entry)}: {line}") for line in issues]
    return result
