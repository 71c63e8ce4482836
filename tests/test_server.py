"""pull and push against a real FHIR server on 127.0.0.1: the Medplum engine (tests/fhir_server/server.js,
started here), with its test modes for 429, dropped connections, bearer tokens, SMART and TLS.

Needs node >= 20.19 and `cd tests/fhir_server && npm install`; without them these tests skip.
"""

import datetime
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pandas.testing as pdt
import pytest
from typer.testing import CliRunner

import tcim_interop.cli_server  # noqa: F401  (registers pull and push on the app)
from tcim_interop.cli import app
from tcim_interop.fhir.client import ServerError, ServerOptions
from tcim_interop.fhir.write import bundle as make_bundle
from tcim_interop.fhir.exchange import PULLED_TYPES, plan_chunks, pull_to_directory, push_bundle

ROOT = Path(__file__).resolve().parents[1]
SERVER_DIR = Path(__file__).resolve().parent / "fhir_server"
EXAMPLE = ROOT / "examples" / "tcim-elaii-100-r4.json"
runner = CliRunner()


def cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def _node_ok() -> str | None:
    node = shutil.which("node")
    if not node:
        return "node is not installed"
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip().lstrip("v")
    if tuple(map(int, version.split(".")[:2])) < (20, 19):
        return f"node {version} is too old for @medplum 4.5 (needs >= 20.19)"
    if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        return "the test FHIR server's packages are not installed: cd tests/fhir_server && npm install"
    return None


def start_server(*args):
    reason = _node_ok()
    if reason:
        pytest.skip(reason)
    proc = subprocess.Popen(["node", str(SERVER_DIR / "server.js"), "--port", "0", *map(str, args)],
                            cwd=SERVER_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # the server prints its URLs once it listens
    if not line:
        proc.kill()
        pytest.fail(f"the test FHIR server did not start: {proc.stderr.read()[-2000:]}")
    return proc, json.loads(line)


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


class Server:
    def __init__(self, info):
        self.url, self.token_url = info["url"], info["token_url"]
        self.origin = self.url.rsplit("/fhir", 1)[0]

    def configure(self, **config):
        httpx.post(f"{self.origin}/$test/config", json=config, verify=False).raise_for_status()

    def stats(self):
        return httpx.get(f"{self.origin}/$test/stats", verify=False).json()


@pytest.fixture(scope="session")
def server_session():
    proc, info = start_server()
    yield Server(info)
    stop_server(proc)


@pytest.fixture
def server(server_session, monkeypatch):
    for name in ("TCIM_FHIR_TOKEN", "TCIM_FHIR_CLIENT_ID", "TCIM_FHIR_PRIVATE_KEY", "TCIM_FHIR_TOKEN_URL"):
        monkeypatch.delenv(name, raising=False)
    server_session.configure()
    yield server_session
    server_session.configure()


@pytest.fixture
def mini(tmp_path, server):
    """The 23 resources of tests/data/mini-r4.json, loaded into an empty server."""
    resources = [e["resource"] for e in json.loads((ROOT / "tests/data/mini-r4.json").read_text())["entry"]]
    path = tmp_path / "mini-tx.json"
    path.write_text(json.dumps(make_bundle(resources, "transaction")))
    server.configure(reset=True)
    result = push_bundle(path, server.url)
    assert result.ok and result.created + result.updated == 23
    return resources


def strip_meta(resources):
    return sorted((json.dumps({k: v for k, v in r.items() if k != "meta"}, sort_keys=True) for r in resources))


def read_ndjson(directory):
    return [json.loads(line) for f in sorted(Path(directory).glob("*.ndjson")) for line in f.read_text().splitlines()]


# -- without a server -------------------------------------------------------------------------------

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


# -- against the server -------------------------------------------------------------------------------

def test_round_trip_push_pull_to_sdtm_gives_the_same_sdtm(tmp_path, server, capsys):
    from tcim_interop import read_sdtm, to_fhir, to_sdtm

    to_sdtm([EXAMPLE], tmp_path / "sdtm")
    to_fhir(tmp_path / "sdtm", tmp_path / "bundle.json", verify=False)
    server.configure(reset=True)
    r = cli("push", tmp_path / "bundle.json", "--server", server.url)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("13328 entries in ") and "0 refused, 0 not sent" in r.output

    server.configure()  # forget kept search results: a cold pull
    result = pull_to_directory(server.url, "TCIM-ELAII", tmp_path / "pulled")
    assert result.counts == {"AdverseEvent": 125, "Consent": 100, "Encounter": 594, "MedicationAdministration": 396,
                             "Observation": 11910, "Patient": 100, "ResearchStudy": 2, "ResearchSubject": 100,
                             "Group": 1}
    with capsys.disabled():
        print(f"\npull: {result.resources} resources in {result.seconds:.2f} s = "
              f"{result.resources / result.seconds:.0f} resources/s, {result.requests} requests")

    to_sdtm([tmp_path / "pulled"], tmp_path / "sdtm-again")
    before, after = read_sdtm(tmp_path / "sdtm"), read_sdtm(tmp_path / "sdtm-again")
    assert sorted(after) == sorted(before) == ["AE", "DM", "EX", "SUPPAE", "TA", "TE", "TI", "TS", "TV", "XM"]
    for name, dataset in before.items():
        pdt.assert_frame_equal(after[name].frame, dataset.frame, obj=name)


def test_paging_with_a_small_count_follows_every_next_link(tmp_path, server, mini):
    one_page = pull_to_directory(server.url, "TCIM-ELAII", tmp_path / "out", page_size=100)
    server.configure()  # forget kept search results
    small = pull_to_directory(server.url, "TCIM-ELAII", tmp_path / "out", page_size=2)
    assert strip_meta(read_ndjson(tmp_path / "out")) == strip_meta(mini)
    # 3 Encounters, 5 MedicationAdministrations, 5 Observations: 1 + 2 + 2 more pages.
    assert small.requests - one_page.requests == 5


def test_429_with_retry_after_then_success(tmp_path, server, mini):
    server.configure(faults=[{"status": 429, "retryAfter": 0, "times": 2}, {"status": 503, "retryAfter": 1, "times": 1}])
    start = time.monotonic()
    r = cli("pull", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    assert time.monotonic() - start >= 1  # Retry-After: 1 was honoured
    assert server.stats()["faultsLeft"] == 0
    assert strip_meta(read_ndjson(tmp_path / "out")) == strip_meta(mini)


def test_429_for_ever_is_a_one_line_error_and_no_output(tmp_path, server, mini):
    server.configure(faults=[{"status": 429, "retryAfter": 0, "times": 100}])
    r = cli("pull", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out", "--retries", "2")
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "HTTP 429" in r.output and "Traceback" not in r.output
    assert server.stats()["requests"] == 3  # 1 + 2 retries
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_dropped_connection_is_retried(tmp_path, server, mini):
    server.configure(faults=[{"drop": True, "times": 2}])
    result = pull_to_directory(server.url, "TCIM-ELAII", tmp_path / "out", options=ServerOptions(backoff=0.05))
    assert result.resources == 23 and server.stats()["faultsLeft"] == 0


def test_dropped_connections_give_a_clear_error_and_leave_the_previous_pull(tmp_path, server, mini):
    out = tmp_path / "out"
    pull_to_directory(server.url, "TCIM-ELAII", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    server.configure(faults=[{"drop": True, "times": 100}])
    with pytest.raises(ServerError, match=r"GET /fhir/ResearchStudy\?identifier=TCIM-ELAII.*connection|disconnected"):
        pull_to_directory(server.url, "TCIM-ELAII", out, options=ServerOptions(retries=1, backoff=0.05))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini-tx.json", "out"]


def test_wrong_token_is_refused_and_never_shown(tmp_path, server, mini):
    server.configure(token="right-token-5f2b9c")
    wrong = "wrong-token-a81e3d77c0"
    r = cli("pull", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out",
            env={"TCIM_FHIR_TOKEN": wrong})
    assert r.exit_code == 2 and "HTTP 401" in r.output and "refused the credentials" in r.output
    assert wrong not in r.output and r.output.count("\n") == 1
    assert 'Invalid bearer token "[redacted]"' in r.output  # the server echoed it; the client hid it
    assert not (tmp_path / "out").exists()
    r = cli("pull", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out",
            env={"TCIM_FHIR_TOKEN": "right-token-5f2b9c"})
    assert r.exit_code == 0 and "right-token" not in r.output


def test_no_token_when_one_is_needed(tmp_path, server, mini):
    server.configure(token="right-token-5f2b9c")
    with pytest.raises(ServerError, match="HTTP 401: the server wants credentials"):
        pull_to_directory(server.url, "TCIM-ELAII", tmp_path / "out")


def _key_pair(kind):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = rsa.generate_private_key(65537, 2048) if kind == "RSA" else ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


@pytest.mark.parametrize("kind", ["RSA", "EC"])
def test_smart_backend_services(tmp_path, server, mini, kind):
    private, public = _key_pair(kind)
    (tmp_path / "key.pem").write_bytes(private)
    server.configure(smart={"clientId": "tcim-etl", "publicKey": public})
    r = cli("pull", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out",
            "--client-id", "tcim-etl", "--private-key", tmp_path / "key.pem", "--token-url", server.token_url)
    assert r.exit_code == 0, r.output
    assert server.stats()["tokenRequests"] == 1  # one token, reused by every request


def test_smart_with_the_wrong_key_is_a_clear_error(tmp_path, server, mini):
    private, _ = _key_pair("RSA")
    _, other_public = _key_pair("RSA")
    (tmp_path / "key.pem").write_bytes(private)
    server.configure(smart={"clientId": "tcim-etl", "publicKey": other_public})
    r = cli("pull", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out",
            "--client-id", "tcim-etl", "--private-key", tmp_path / "key.pem", "--token-url", server.token_url)
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "token endpoint refused the client (HTTP 401): invalid_client: bad signature" in r.output
    assert "eyJ" not in r.output  # no JWT in the message


def test_push_reports_what_the_server_refused(tmp_path, server):
    server.configure(reset=True)
    entries = [{"resource": {"resourceType": "Patient", "id": f"p{i}"}, "request": {"method": "PUT", "url": f"Patient/p{i}"}}
               for i in range(3)]
    entries[1]["request"]["url"] = "Patient/other"  # the server refuses an id that is not the URL's
    path = tmp_path / "batch.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}))
    r = cli("push", path, "--server", server.url)
    assert r.exit_code == 1
    assert "refused: PUT Patient/other: error invalid: Incorrect resource ID" in r.output
    assert "2 updated, 1 refused" in r.output

    # Medplum refuses a transaction of more than 50 updates: the whole chunk is refused, in one line per issue.
    big = [{"resource": {"resourceType": "Patient", "id": f"q{i}"}, "request": {"method": "PUT", "url": f"Patient/q{i}"}}
           for i in range(60)]
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": big}))
    r = cli("push", path, "--server", server.url, "--batch-size", "60")
    assert r.exit_code == 1
    assert r.output.splitlines()[0] == ("refused: transaction of 60 entries (first PUT Patient/q0): error invalid: "
                                        "Transaction contains more update operations than allowed")
    assert cli("push", path, "--server", server.url, "--batch-size", "50").exit_code == 0


def test_requests_in_flight_are_bounded(tmp_path, server, mini):
    server.configure(delayMs=30)
    pull_to_directory(server.url, "TCIM-ELAII", tmp_path / "out", options=ServerOptions(workers=2))
    assert server.stats()["maxInFlight"] == 2


def test_output_that_is_not_a_pull_is_not_replaced(tmp_path, server, mini):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    r = cli("pull", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "out")
    assert r.exit_code == 2 and "holds other files than NDJSON (notes.txt)" in r.output


def test_unknown_study_is_a_clear_error(tmp_path, server, mini):
    r = cli("pull", "--server", server.url, "--study", "NO-SUCH-STUDY", "--out", tmp_path / "out")
    assert r.exit_code == 2 and "no ResearchStudy with identifier 'NO-SUCH-STUDY'" in r.output


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_tls_verification_failure_is_one_line_and_ca_bundle_fixes_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TCIM_FHIR_TOKEN", raising=False)
    _self_signed(tmp_path)
    proc, info = start_server("--tls-key", tmp_path / "tls.key", "--tls-cert", tmp_path / "tls.crt")
    try:
        r = cli("pull", "--server", info["url"], "--study", "TCIM-ELAII", "--out", tmp_path / "out")
        assert r.exit_code == 2 and r.output.count("\n") == 1
        assert "127.0.0.1" in r.output and "TLS failure" in r.output and "--ca-bundle" in r.output
        r = cli("pull", "--server", info["url"], "--study", "TCIM-ELAII", "--out", tmp_path / "out",
                "--ca-bundle", tmp_path / "tls.crt")
        assert r.exit_code == 2 and "no ResearchStudy with identifier" in r.output  # TLS passed: the server answered
    finally:
        stop_server(proc)


def test_to_sdtm_with_server_pulls_then_converts(tmp_path, server, mini):
    from conftest import DATA
    from tcim_interop import read_sdtm, to_sdtm

    r = cli("to-sdtm", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "sdtm", "-q")
    assert r.exit_code == 0, r.output
    to_sdtm([DATA / "mini-r4.json"], tmp_path / "direct")
    pulled, direct = read_sdtm(tmp_path / "sdtm"), read_sdtm(tmp_path / "direct")
    assert set(pulled) == set(direct)
    for name in direct:
        assert pulled[name].frame.equals(direct[name].frame), name


def test_to_sdtm_needs_inputs_or_a_server(tmp_path):
    r = cli("to-sdtm", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--server URL with --study" in r.output
