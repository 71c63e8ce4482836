"""pull and push end to end against a real FHIR server on 127.0.0.1: the Medplum engine
(tests/fhir_server/server.js, started here), with its test modes for SMART and TLS. The logic of pull and
push (paging, retries, tokens, chunking, errors) is tested in tests/test_exchange.py, without a server.

Needs node >= 20.19 and `cd tests/fhir_server && npm install`; without them these tests skip.
"""

import datetime
import json
import subprocess
from pathlib import Path

import httpx
import pandas.testing as pdt
import pytest
from conftest import MEDPLUM_DIR, medplum_missing
from typer.testing import CliRunner

import tcim_interop.cli_server  # noqa: F401  (registers pull and push on the app)
from tcim_interop.cli import app
from tcim_interop.fhir.exchange import pull_to_directory, push_bundle
from tcim_interop.fhir.write import bundle as make_bundle

ROOT = Path(__file__).resolve().parents[1]
# one Medplum server per test run: these tests run in one pytest-xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("medplum")
SERVER_DIR = MEDPLUM_DIR
runner = CliRunner()


def cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def start_server(*args):
    reason = medplum_missing()
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


def test_round_trip_push_pull_to_sdtm_gives_the_same_sdtm(tmp_path, server, capsys, example_package, example_fhir):
    from tcim_interop import read_sdtm, to_sdtm

    server.configure(reset=True)
    r = cli("push", example_fhir[1], "--server", server.url)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("13526 entries in ")  # 13328 + the 99 CM administrations + the 99 screening visits (SV) and "0 refused, 0 not sent" in r.output

    server.configure()  # forget kept search results: a cold pull
    result = pull_to_directory(server.url, "TCIM-ELAII", tmp_path / "pulled")
    assert result.counts == {"AdverseEvent": 125, "Consent": 100, "Encounter": 693, "MedicationAdministration": 495,
                             "Observation": 11910, "Patient": 100, "ResearchStudy": 2, "ResearchSubject": 100,
                             "Group": 1}
    with capsys.disabled():
        print(f"\npull: {result.resources} resources in {result.seconds:.2f} s = "
              f"{result.resources / result.seconds:.0f} resources/s, {result.requests} requests")

    to_sdtm([tmp_path / "pulled"], tmp_path / "sdtm-again")
    before, after = read_sdtm(example_package), read_sdtm(tmp_path / "sdtm-again")
    assert sorted(after) == sorted(before) == ["AE", "CM", "DM", "DS", "EX", "SUPPAE", "TA", "TE", "TI", "TS", "TV", "XM"]
    for name, dataset in before.items():
        pdt.assert_frame_equal(after[name].frame, dataset.frame, obj=name)


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


def _self_signed(tmp_path):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
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


def test_to_sdtm_with_server_pulls_then_converts(tmp_path, server, mini, mini_conversion):
    from tcim_interop import read_sdtm

    r = cli("to-sdtm", "--server", server.url, "--study", "TCIM-ELAII", "--out", tmp_path / "sdtm", "-q")
    assert r.exit_code == 0, r.output
    pulled, direct = read_sdtm(tmp_path / "sdtm"), read_sdtm(mini_conversion[1])
    assert set(pulled) == set(direct)
    for name in direct:
        assert pulled[name].frame.equals(direct[name].frame), name
