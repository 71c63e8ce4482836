"""pull and push (fhir/exchange.py) against FakeServer, a FHIR server in memory behind httpx.MockTransport:
paging, retries on 429/5xx and dropped connections, bearer tokens, the bound on requests in flight, the
cutting of a push into transactions in dependency order, and the errors. tests/test_server.py runs pull
and push end to end against the Medplum engine; tests/test_server_hostile.py against hostile servers."""

import json
import time
from pathlib import Path

import pytest
from fhir_fake import MINI, FakeServer
from typer.testing import CliRunner

from tcim_interop.cli import app
from tcim_interop.fhir.client import ServerError
from tcim_interop.fhir.exchange import PULLED_TYPES, plan_chunks, pull_to_directory, push_bundle
from tcim_interop.fhir.write import bundle as make_bundle

runner = CliRunner()


def cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def strip_meta(resources):
    return sorted(json.dumps({k: v for k, v in r.items() if k != "meta"}, sort_keys=True) for r in resources)


def read_ndjson(directory):
    return [json.loads(line) for f in sorted(Path(directory).glob("*.ndjson")) for line in f.read_text().splitlines()]


# -- what pull asks, how push cuts ---------------------------------------------------------------------

def test_pull_fetches_every_type_the_mapping_reads(mappings):
    from tcim_interop.mapping import engine

    needed = {s.row_resource for s in mappings.domains.values()} | set(engine.SUPPORTING_TYPES)
    assert needed <= set(PULLED_TYPES)


def test_chunks_rewrite_urn_references_and_respect_dependencies():
    entries = [
        {"fullUrl": "urn:uuid:o", "resource": {"resourceType": "Observation", "id": "o", "subject": {"reference": "urn:uuid:p"},
                                               "encounter": {"reference": "urn:uuid:e"}},
         "request": {"method": "PUT", "url": "Observation/o"}},
        {"fullUrl": "urn:uuid:e", "resource": {"resourceType": "Encounter", "id": "e", "subject": {"reference": "urn:uuid:p"}},
         "request": {"method": "PUT", "url": "Encounter/e"}},
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "p"}, "request": {"method": "PUT", "url": "Patient/p"}},
        {"fullUrl": "urn:uuid:new", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": "urn:uuid:c", "resource": {"resourceType": "Consent", "patient": {"reference": "urn:uuid:new"}},
         "request": {"method": "POST", "url": "Consent"}},
    ]
    rewritten, plan = plan_chunks(entries, size=1)
    assert rewritten[0]["resource"]["subject"] == {"reference": "Patient/p"}
    assert rewritten[0]["resource"]["encounter"] == {"reference": "Encounter/e"}
    assert rewritten[4]["resource"]["patient"] == {"reference": "urn:uuid:new"}  # a POST: no id to rewrite to
    # Patient first, then the Encounter, then the Observation; the POSTed Patient and its Consent together.
    assert plan == [[[2], [3, 4]], [[1]], [[0]]]


def test_push_sends_transactions_of_batch_size_in_dependency_order(tmp_path):
    server = FakeServer()  # refuses a transaction referencing what it does not hold yet
    path = tmp_path / "mini-tx.json"
    path.write_text(json.dumps(make_bundle(MINI, "transaction")))
    result = push_bundle(path, server.url, batch_size=4, options=server.options())
    assert result.ok and (result.created, result.updated, result.refused) == (23, 0, 0)
    assert result.transactions == len(server.transactions) == result.requests
    assert max(len(t) for t in server.transactions) == 4
    assert strip_meta(server.store.values()) == strip_meta(MINI)
    again = push_bundle(path, server.url, batch_size=50, options=server.options())  # PUT again: updates
    assert again.ok and (again.created, again.updated) == (0, 23)


# -- pull -----------------------------------------------------------------------------------------------

def test_paging_with_a_small_count_follows_every_next_link(tmp_path, fake):
    one_page = pull_to_directory(fake.url, "TCIM-ELAII", tmp_path / "out", page_size=100, options=fake.options())
    small = pull_to_directory(fake.url, "TCIM-ELAII", tmp_path / "out", page_size=2, options=fake.options())
    assert strip_meta(read_ndjson(tmp_path / "out")) == strip_meta(MINI)
    # 3 Encounters, 5 MedicationAdministrations, 5 Observations: 1 + 2 + 2 more pages.
    assert small.requests - one_page.requests == 5


def test_429_with_retry_after_then_success(tmp_path, fake):
    fake.faults = [{"status": 429, "retry_after": 0, "times": 2}, {"status": 503, "retry_after": 1, "times": 1}]
    start = time.monotonic()
    r = cli("pull", "--server", fake.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert time.monotonic() - start >= 1  # Retry-After: 1 was honoured
    assert fake.faults_left == 0
    assert strip_meta(read_ndjson(tmp_path / "out")) == strip_meta(MINI)


def test_429_for_ever_is_a_one_line_error_and_no_output(tmp_path, fake):
    fake.faults = [{"status": 429, "retry_after": 0, "times": 100}]
    r = cli("pull", "--server", fake.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out", "--retries", "2")
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "HTTP 429" in r.output and "Traceback" not in r.output
    assert fake.requests == 3  # 1 + 2 retries
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_dropped_connection_is_retried(tmp_path, fake):
    fake.faults = [{"drop": True, "times": 2}]
    result = pull_to_directory(fake.url, "TCIM-ELAII", tmp_path / "out", options=fake.options(backoff=0.05))
    assert result.resources == 23 and fake.faults_left == 0


def test_dropped_connections_give_a_clear_error_and_leave_the_previous_pull(tmp_path, fake):
    out = tmp_path / "out"
    pull_to_directory(fake.url, "TCIM-ELAII", out, options=fake.options())
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    fake.faults = [{"drop": True, "times": 100}]
    with pytest.raises(ServerError, match=r"GET /fhir/ResearchStudy\?identifier=TCIM-ELAII.*connection|disconnected"):
        pull_to_directory(fake.url, "TCIM-ELAII", out, options=fake.options(retries=1, backoff=0.05))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_wrong_token_is_refused_and_never_shown(tmp_path, fake):
    fake.token = "right-token-5f2b9c"
    wrong = "wrong-token-a81e3d77c0"
    r = cli("pull", "--server", fake.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out",
            env={"TCIM_FHIR_TOKEN": wrong})
    assert r.exit_code == 2 and "HTTP 401" in r.output and "refused the credentials" in r.output
    assert wrong not in r.output and r.output.count("\n") == 1
    assert 'Invalid bearer token "[redacted]"' in r.output  # the server echoed it; the client hid it
    assert not (tmp_path / "out").exists()
    r = cli("pull", "--server", fake.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out",
            env={"TCIM_FHIR_TOKEN": "right-token-5f2b9c"})
    assert r.exit_code == 0 and "right-token" not in r.output


def test_no_token_when_one_is_needed(tmp_path, fake):
    fake.token = "right-token-5f2b9c"
    with pytest.raises(ServerError, match="HTTP 401: the server wants credentials"):
        pull_to_directory(fake.url, "TCIM-ELAII", tmp_path / "out", options=fake.options())


def test_requests_in_flight_are_bounded(tmp_path, fake):
    fake.delay = 0.03
    pull_to_directory(fake.url, "TCIM-ELAII", tmp_path / "out", options=fake.options(workers=2))
    assert fake.max_in_flight == 2


def test_output_that_is_not_a_pull_is_not_replaced(tmp_path, fake):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    r = cli("pull", "--server", fake.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out")
    assert r.exit_code == 2 and "holds other files than NDJSON (notes.txt)" in r.output


def test_unknown_study_is_a_clear_error(tmp_path, fake):
    r = cli("pull", "--server", fake.url, "--study", "NO-SUCH-STUDY", "--out", tmp_path / "out")
    assert r.exit_code == 2 and "no ResearchStudy with identifier 'NO-SUCH-STUDY'" in r.output
