"""A FHIR server in memory, for the tests of pull and push: the searches pull makes (one page, or pages of
_count with `next` links), transactions, and what a network does to them (429 and 5xx with Retry-After,
dropped connections, a bearer token, slow answers). FakeServer answers through httpx.MockTransport
(ServerOptions.transport): no socket, no process. tests/test_server_hostile.py serves the same searches
over HTTP."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx

from tcim_interop.fhir.client import ServerOptions

DATA = Path(__file__).resolve().parent / "data"
MINI = [e["resource"] for e in json.loads((DATA / "mini-r4.json").read_text())["entry"]]
# search parameter -> the elements it searches, as the searches below understand them
PARAMS = {"partof": ("partOf",), "study": ("study",), "patient": ("patient", "subject"), "subject": ("subject",)}


def references(node) -> list[str]:
    if isinstance(node, dict):
        return [node["reference"]] if isinstance(node.get("reference"), str) else \
            [r for v in node.values() for r in references(v)]
    return [r for v in node for r in references(v)] if isinstance(node, list) else []


def search(resources, rtype: str, query: dict[str, str]) -> list[dict]:
    """The resources of type rtype that match the parameters pull uses (others are ignored)."""
    found = [r for r in resources if r["resourceType"] == rtype]
    for name, value in query.items():
        values = set(value.split(","))
        if name == "identifier":
            found = [r for r in found if any(i.get("value") in values for i in r.get("identifier") or [])]
        elif name == "_id":
            found = [r for r in found if r["id"] in values]
        elif name in PARAMS:
            found = [r for r in found if values & {x for e in PARAMS[name] for x in references(r.get(e))}]
    return found


def included(resources, found: list[dict], query: dict[str, str]) -> list[dict]:
    """The entries an _include=ResearchSubject:patient adds to the answer of `found`."""
    if query.get("_include") != "ResearchSubject:patient":
        return []
    wanted = {x for r in found for x in references(r.get("individual"))}
    return [{"resource": r, "search": {"mode": "include"}} for r in resources if f"Patient/{r['id']}" in wanted]


def searchset(resources=(), *, next_url=None, extra_entries=(), total=None) -> dict:
    entries = [{"resource": r, "search": {"mode": "match"}} for r in resources] + list(extra_entries)
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "total": len(resources) if total is None else total, "entry": entries}
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def outcome(*texts: str, severity: str = "warning", code: str = "informational") -> dict:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": t} for t in texts]}


def answer(status: int, body: dict, headers: dict | None = None) -> httpx.Response:
    """A response whose body is read as a stream, as from a socket (the client reads it so, to bound it)."""
    return httpx.Response(status, headers={"Content-Type": "application/fhir+json", **(headers or {})},
                          stream=httpx.ByteStream(json.dumps(body).encode()))


class FakeServer:
    """A FHIR server over `resources`. Set `faults` (each {"status": 429, "retry_after": 0, "times": 2} or
    {"drop": True, "times": 1}: the next requests get them, in order), `token` (a bearer token every
    request must carry) and `delay` (seconds each answer takes); it counts `requests`, the most requests
    in flight (`max_in_flight`) and keeps the entries of every transaction received (`transactions`)."""

    url = "http://fhir.test/fhir"

    def __init__(self, resources=()):
        self.store = {f"{r['resourceType']}/{r['id']}": r for r in resources}
        self.faults: list[dict] = []
        self.token: str | None = None
        self.delay = 0.0
        self.requests = self.in_flight = self.max_in_flight = 0
        self.transactions: list[list[dict]] = []
        self._lock = threading.Lock()
        self.transport = httpx.MockTransport(self.handle)

    def options(self, **kw) -> ServerOptions:
        return ServerOptions(transport=self.transport, **kw)

    @property
    def faults_left(self) -> int:
        return sum(f["times"] for f in self.faults)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = next((f for f in self.faults if f["times"] > 0), None)
            if fault:
                fault["times"] -= 1
        try:
            time.sleep(self.delay)
            if fault and fault.get("drop"):
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
            if fault:
                return answer(fault["status"], outcome("try again later", severity="error", code="throttled"),
                              {"Retry-After": str(fault.get("retry_after", 0))})
            given = request.headers.get("Authorization", "")
            if self.token and given != f"Bearer {self.token}":  # echoed, as some servers do
                return answer(401, outcome(f'Invalid bearer token "{given.removeprefix("Bearer ")}"', severity="error",
                                          code="login"))
            return self._transaction(request) if request.method == "POST" else self._search(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _search(self, request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        resources = list(self.store.values())
        found = search(resources, request.url.path.rsplit("/", 1)[-1], query)
        count, offset = int(query.get("_count", 100)), int(query.get("_offset", 0))
        page = found[offset:offset + count]
        more = offset + count < len(found)
        next_url = str(request.url.copy_set_param("_offset", offset + count)) if more else None
        return answer(200, searchset(page, next_url=next_url, total=len(found),
                                     extra_entries=included(resources, page, query)))

    def _transaction(self, request: httpx.Request) -> httpx.Response:
        """PUT Type/id entries stored; a reference to what is neither stored nor in the same transaction
        refuses the whole transaction, as a server checking referential integrity does."""
        bundle = json.loads(request.content)
        entries = bundle.get("entry") or []
        with self._lock:
            self.transactions.append(entries)
            writes = {e["request"]["url"]: e["resource"] for e in entries}
            dangling = sorted({ref for r in writes.values() for ref in references(r)} - self.store.keys() - writes.keys())
            if dangling:
                return answer(400, outcome(f"Reference not found: {dangling[0]}", severity="error", code="invalid"))
            answers = []
            for url, resource in writes.items():
                answers.append({"response": {"status": "200 OK" if url in self.store else "201 Created"}})
                self.store[url] = resource
        return answer(200, {"resourceType": "Bundle", "type": f"{bundle.get('type')}-response", "entry": answers})
