"""pull, push and to-sdtm --server against hostile or broken servers: a small threaded http.server on
127.0.0.1 started by each test (no node needed). Secrets echoed back in any disguise, answers that trickle,
decompress to gigabytes, page for ever or are malformed: one line on stderr, exit code 2, no traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from fhir_fake import MINI, included, outcome as echo_outcome, search, searchset
from typer.testing import CliRunner

import tcim_interop.cli_server  # noqa: F401  (registers pull and push on the app)
from tcim_interop.cli import app
from tcim_interop.fhir.client import ServerError, ServerOptions, redact
from tcim_interop.fhir.exchange import pull_to_directory

TOKEN = "tok-9F3a7Qx2Lm8Zp4Wd"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch):
    for name in ("TCIM_FHIR_TOKEN", "TCIM_FHIR_CLIENT_ID", "TCIM_FHIR_PRIVATE_KEY", "TCIM_FHIR_TOKEN_URL",
                 "TCIM_FHIR_MAX_BODY"):
        monkeypatch.delenv(name, raising=False)


def cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def disguises(secret: str) -> list[str]:
    """How a server may echo a secret: re-cased, split by zero-width characters or spaces."""
    half = len(secret) // 2
    return [secret.lower(), secret.upper(), ZERO_WIDTH.join(secret), secret[:half] + " " + secret[half:],
            " ".join(secret.swapcase())]


def assert_hidden(secret: str, text: str) -> None:
    flat = re.sub(f"[\\s{ZERO_WIDTH}]", "", text).casefold()
    assert secret.casefold() not in flat, text


def assert_one_error_line(r) -> None:
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr


# -- the test servers -------------------------------------------------------------------------------

class Request:
    def __init__(self, handler: BaseHTTPRequestHandler):
        self.handler = handler
        self.method = handler.command
        parts = urlsplit(handler.path)
        self.path, self.query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.headers = handler.headers
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""

    def send(self, status: int, body: object = b"", headers: dict | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.handler.send_response(status)
        for k, v in {"Content-Type": "application/fhir+json", **(headers or {})}.items():
            self.handler.send_header(k, v)
        self.handler.send_header("Content-Length", str(len(data)))
        self.handler.end_headers()
        self.handler.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        try:
            self.server.respond(Request(self))
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_POST = do_GET

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client hanging up on a hostile answer is the point; stderr belongs to the command tested


@pytest.fixture
def serve():
    """serve(respond) starts a server calling respond(request) for each request; gives its FHIR base URL."""
    servers = []

    def start(respond, prefix="http://"):
        server = _Server(("127.0.0.1", 0), _Handler)
        server.respond = respond
        # a short poll: shutdown() waits for the loop to look, once per test
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        servers.append(server)
        return f"{prefix}127.0.0.1:{server.server_port}/fhir"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def emulator(resources=MINI, *, outcome=None, check=None):
    """A FHIR search server over `resources`: the parameters pull uses, one page per search. outcome: an
    OperationOutcome added to every ResearchStudy search answer; check(request): None, or a response."""
    def respond(req: Request):
        if check and check(req):
            return
        rtype = req.path.rsplit("/", 1)[-1]
        found = search(resources, rtype, req.query)
        extra = included(resources, found, req.query) + ([{"resource": outcome, "search": {"mode": "outcome"}}]
                                                         if outcome and rtype == "ResearchStudy" else [])
        req.send(200, searchset(found, extra_entries=extra))
    return respond


# -- 1. secrets never leak ---------------------------------------------------------------------------

def test_redact_finds_a_secret_in_any_case_and_across_invisible_characters():
    for shown in disguises(TOKEN):
        assert redact(f"token <{shown}> refused", [TOKEN]) == "token <[redacted]> refused"
    assert redact("pw=ab\u200bC9 and AB C9", ["abc9"]) == "pw=[redacted] and [redacted]"  # short ones too
    assert redact("nothing here", [TOKEN, ""]) == "nothing here"


def test_redact_is_linear_on_big_bodies():
    body = ("t " * 2_000_000) + TOKEN.upper()
    start = time.monotonic()
    assert redact(body, [TOKEN, "t" * 40]).endswith("[redacted]")
    assert time.monotonic() - start < 3


def test_a_token_echoed_in_disguise_is_never_shown(tmp_path, serve):
    def respond(req):
        auth = req.headers.get("Authorization", "")
        req.send(401, echo_outcome(*(f"bad {form}" for form in disguises(auth))))

    r = cli("pull", "--server", serve(respond), "--study", "S", "--out", tmp_path / "out",
            env={"TCIM_FHIR_TOKEN": TOKEN})
    assert_one_error_line(r)
    assert "HTTP 401: the server refused the credentials" in r.stderr and "[redacted]" in r.stderr
    assert_hidden(TOKEN, r.output)


def test_warnings_from_outcomes_are_redacted_and_go_to_the_run_report(tmp_path, serve):
    url = serve(emulator(outcome=echo_outcome(*(f"caller {form}" for form in disguises(TOKEN)))))
    r = cli("to-sdtm", "--server", url, "--study", "TCIM-ELAII", "--out", tmp_path / "sdtm",
            env={"TCIM_FHIR_TOKEN": TOKEN})
    assert r.exit_code == 0, r.output
    assert_hidden(TOKEN, r.output)
    report = json.loads((tmp_path / "sdtm" / "run-report.json").read_text())
    pulled = [f for f in report["findings"] if f["code"] == "PULL_WARNING"]
    # Five disguises, each on every ResearchStudy search's page: redacted, they are one warning.
    assert [f["message"] for f in pulled] == ["ResearchStudy search: warning informational: caller [redacted]"]
    for path in (tmp_path / "sdtm").iterdir():
        assert_hidden(TOKEN, path.read_text(errors="replace"))


def test_to_sdtm_from_a_server_records_where_the_data_came_from(tmp_path, serve):
    url = serve(emulator(outcome=echo_outcome("slow index")))
    r = cli("to-sdtm", "--server", url, "--study", "TCIM-ELAII", "--out", tmp_path / "sdtm", "-q")
    assert r.exit_code == 0, r.output
    pull = json.loads((tmp_path / "sdtm" / "run-report.json").read_text())["pull"]
    assert pull["server"] == url and pull["study"] == "TCIM-ELAII" and pull["resources"] == len(MINI)
    assert "ResearchStudy?identifier=TCIM-ELAII&_count=500" in pull["queries"]
    assert pull["warnings"] == ["ResearchStudy search: warning informational: slow index"]
    assert "tcim-pull" not in json.dumps(pull)  # no temporary path
    # The sha256 is that of the NDJSON files of a pull, in name order.
    cli("pull", "--server", url, "--study", "TCIM-ELAII", "--out", tmp_path / "pulled")
    files = sorted((tmp_path / "pulled").glob("*.ndjson"))
    assert pull["sha256"] == hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


def test_the_password_of_the_server_url_is_used_and_never_shown(tmp_path, serve):
    password = "Pa55-w0rd-xyz"
    expected = "Basic " + base64.b64encode(f"etl:{password}".encode()).decode()

    def check(req):
        if req.headers.get("Authorization") != expected:
            req.send(401, echo_outcome("wrong"))
            return True
        if req.query.get("identifier") == "NOPE":  # a server echoing what it got, in disguise
            req.send(400, echo_outcome(*(f"{form} / {password.upper()} / {expected.lower()}"
                                         for form in disguises(f"etl:{password}"))))
            return True
        return False

    url = serve(emulator(check=check))
    with_password = url.replace("http://", f"http://etl:{password}@")
    r = cli("to-sdtm", "--server", with_password, "--study", "TCIM-ELAII", "--out", tmp_path / "sdtm", "-q")
    assert r.exit_code == 0, r.output
    report = (tmp_path / "sdtm" / "run-report.json").read_text()
    assert json.loads(report)["pull"]["server"] == url
    for path in (tmp_path / "sdtm").iterdir():
        assert_hidden(password, path.read_text(errors="replace"))
    r = cli("pull", "--server", with_password, "--study", "NOPE", "--out", tmp_path / "out")
    assert_one_error_line(r)
    assert_hidden(password, r.output)
    assert_hidden(expected.split()[1], r.output)


def _smart_key(tmp_path) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def smart_cli(tmp_path, url, *extra):
    return cli("pull", "--server", url, "--study", "TCIM-ELAII", "--out", tmp_path / "out", "--client-id", "etl",
               "--private-key", _smart_key(tmp_path), "--token-url", url.replace("/fhir", "/token"), *extra)


def test_the_signed_assertion_echoed_by_the_token_endpoint_is_never_shown(tmp_path, serve):
    seen = []

    def respond(req):
        assertion = parse_qs(req.body.decode())["client_assertion"][0]
        seen.append(assertion)
        req.send(401, {"error": "invalid_client",
                       "error_description": " ".join(f"got {form}" for form in disguises(assertion))})

    r = smart_cli(tmp_path, serve(respond))
    assert_one_error_line(r)
    assert "token endpoint refused the client (HTTP 401): invalid_client: got [redacted]" in r.stderr
    assert_hidden(seen[0], r.output)
    assert_hidden(seen[0].rsplit(".", 1)[1], r.output)


def test_an_access_token_in_the_pulled_records_stops_the_pull(tmp_path, serve):
    patient = {"resourceType": "Patient", "id": "p1", "text": {"div": f"<div>by {TOKEN.lower()}</div>"}}
    url = serve(emulator(MINI[:2] + [dict(MINI[6], id="rs1"), patient]))
    r = cli("pull", "--server", url, "--study", "TCIM-ELAII", "--out", tmp_path / "out",
            env={"TCIM_FHIR_TOKEN": TOKEN})
    assert_one_error_line(r)
    assert "hold the credentials used to pull them (Patient.ndjson): nothing written" in r.stderr
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []


# -- 3. hostile servers ---------------------------------------------------------------------------------

def test_timeout_bounds_a_whole_answer_not_each_read(tmp_path, serve):
    def respond(req):
        h = req.handler
        h.send_response(200)
        h.send_header("Content-Type", "application/fhir+json")
        h.send_header("Content-Length", "60")
        h.end_headers()
        for _ in range(60):  # a byte every quarter second: each read is quick, the whole takes 15 s
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(0.25)

    start = time.monotonic()
    r = cli("pull", "--server", serve(respond), "--study", "S", "--out", tmp_path / "out", "--timeout", "1")
    assert time.monotonic() - start < 5
    assert_one_error_line(r)
    assert "no complete answer within --timeout 1 s" in r.stderr


def test_trickled_headers_are_bounded_too(tmp_path, serve):
    def respond(req):
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"x" * 30:
            req.handler.wfile.write(bytes([byte]))
            req.handler.wfile.flush()
            time.sleep(0.25)

    start = time.monotonic()
    r = cli("pull", "--server", serve(respond), "--study", "S", "--out", tmp_path / "out", "--timeout", "1")
    assert time.monotonic() - start < 5  # the header alone takes 12 s
    assert_one_error_line(r)


def test_a_gzip_bomb_is_cut_off_at_the_cap(tmp_path, serve, monkeypatch):
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # gzip
    zeros = b"\0" * 1_000_000
    bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()  # 200 MB in ~200 kB
    assert len(bomb) < 1_000_000
    url = serve(lambda req: req.send(200, bomb, {"Content-Encoding": "gzip"}))
    r = cli("pull", "--server", url, "--study", "S", "--out", tmp_path / "out", env={"TCIM_FHIR_MAX_BODY": "1000000"})
    assert_one_error_line(r)
    assert "the answer is larger than 1000000 bytes (decompressed): refused" in r.stderr
    with pytest.raises(ServerError, match="larger than 5000 bytes"):
        pull_to_directory(url, "S", tmp_path / "out", options=ServerOptions(max_body=5000))


def test_a_looping_next_link_is_an_error(tmp_path, serve):
    def respond(req):
        req.send(200, searchset(next_url=f"ResearchStudy?identifier=S&page={int(req.query.get('page', 0)) % 3 + 1}"))

    r = cli("pull", "--server", serve(respond), "--study", "S", "--out", tmp_path / "out")
    assert_one_error_line(r)
    assert "the server's next links loop" in r.stderr


def test_an_endless_next_chain_stops_at_the_page_limit(tmp_path, serve):
    pages = []

    def respond(req):
        pages.append(1)
        page = int(req.query.get("page", 0))
        req.send(200, {**searchset(next_url=f"ResearchStudy?identifier=S&page={page + 1}"), "total": 1})

    url = serve(respond)
    with pytest.raises(ServerError, match="more than 30 pages: the server's next links do not end"):
        pull_to_directory(url, "S", tmp_path / "out", options=ServerOptions(max_pages=30))
    assert len(pages) == 30


def test_more_matches_than_announced_stop_the_paging(tmp_path, serve):
    study = MINI[0]

    def respond(req):
        page = int(req.query.get("page", 0))
        req.send(200, {**searchset([dict(study, id=f"s{page}")], next_url=f"ResearchStudy?identifier=TCIM-ELAII&page={page + 1}"),
                       "total": 3})

    url = serve(respond)
    with pytest.raises(ServerError, match="announced 3 matches but served 4"):
        pull_to_directory(url, "TCIM-ELAII", tmp_path / "out")


STUDY = MINI[0]
MALFORMED = {  # what the server answers, and what the one line says
    "link is an object": (200, {**searchset([STUDY]), "link": {"relation": "next", "url": "x"}}, {},
                           "malformed searchset Bundle: link is not a list of objects"),
    "entries are strings": (200, {**searchset(), "entry": ["Patient/1", "Patient/2"]}, {},
                            "malformed searchset Bundle: entry is not a list of objects"),
    "integer ids": (200, searchset([dict(STUDY, id=12), dict(STUDY, id=13)]), {},
                    "malformed searchset Bundle: ResearchStudy id 12 is not a string"),
    "entry resource is a list": (200, {**searchset(), "entry": [{"resource": [1]}]}, {},
                                 "an entry's resource or search is not an object"),
    "not JSON": (200, b"<html>maintenance</html>", {"Content-Type": "text/html"}, "not a FHIR JSON resource"),
    "JSON not an object": (200, b"[1, 2, 3]", {}, "not a FHIR JSON resource"),
    "invalid UTF-8": (200, b'{"resourceType": "Bundle", "x": "\xff"}', {}, "not a FHIR JSON resource"),
    "nested too deep": (200, b'{"a":' * 600 + b"1" + b"}" * 600, {}, "nested deeper than 254 levels"),
    "Retry-After superscript digit": (503, echo_outcome("busy"), {"Retry-After": "\u00b2"}, "HTTP 503"),
    "broken gzip": (200, b"\x1f\x8b\x08\x00garbage", {"Content-Encoding": "gzip"},
                    "the answer's gzip encoding is broken"),
    "unknown encoding": (200, b"xyz", {"Content-Encoding": "snappy"},
                         "the answer has an unsupported Content-Encoding 'snappy'"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_answer_is_one_error_line(tmp_path, serve, case):
    status, body, headers, message = MALFORMED[case]
    url = serve(lambda req: req.send(status, body, headers))
    r = cli("pull", "--server", url, "--study", "TCIM-ELAII", "--out", tmp_path / "out", "--retries", "1")
    assert_one_error_line(r)
    assert message in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("expires_in", ["soon", -5, [3600], "²"])
def test_a_malformed_expires_in_is_one_error_line(tmp_path, serve, expires_in):
    def respond(req):
        if req.path.endswith("/token"):
            req.send(200, {"access_token": "acc-123456789", "token_type": "bearer", "expires_in": expires_in})
        else:
            req.send(200, searchset())

    r = smart_cli(tmp_path, serve(respond))
    assert_one_error_line(r)
    assert "expires_in" in r.stderr and "not a number of seconds" in r.stderr


def test_a_numeric_string_expires_in_is_accepted(tmp_path, serve):
    def respond(req):
        if req.path.endswith("/token"):
            req.send(200, {"access_token": "acc-123456789", "expires_in": "3600"})
        else:
            req.send(200, searchset())

    r = smart_cli(tmp_path, serve(respond))
    assert_one_error_line(r)
    assert "no ResearchStudy with identifier 'TCIM-ELAII'" in r.stderr  # the token was taken


@pytest.mark.parametrize("shape", ["transaction", "bare"])
def test_push_of_a_bundle_nested_1000_deep_is_one_error_line(tmp_path, serve, shape):
    deep = '{"a":' * 1000 + "{}" + "}" * 1000  # written by hand: json.dumps itself would hit the recursion limit
    head = '{"resourceType":"Bundle","type":"transaction",' if shape == "transaction" else '{"resourceType":"Bundle",'
    request = ',"request":{"method":"PUT","url":"Patient/p"}' if shape == "transaction" else ""
    path = tmp_path / "deep.json"
    path.write_text(head + '"entry":[{"resource":{"resourceType":"Patient","id":"p","a":' + deep + "}" + request + "}]}")
    r = cli("push", path, "--server", serve(lambda req: req.send(200, {})))
    assert_one_error_line(r)
    assert str(path) in r.stderr


def test_push_of_a_malformed_transaction_answer_is_tallied(tmp_path, serve):
    entries = [{"resource": {"resourceType": "Patient", "id": f"p{i}"}, "request": {"method": "PUT", "url": f"Patient/p{i}"}}
               for i in range(3)]
    path = tmp_path / "tx.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
    answer = {"resourceType": "Bundle", "type": "transaction-response",
              "entry": ["ok", {"response": "201"}, {"response": {"status": "201 Created"}}]}
    r = cli("push", path, "--server", serve(lambda req: req.send(200, answer)))
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert "1 created, 0 updated, 2 refused" in r.stderr


def test_retries_still_work_through_the_streaming_client(tmp_path, serve):
    """429 with Retry-After, then a dropped connection, then the answers: the pull completes, gzip-encoded."""
    faults = ["429", "drop"]
    inner = emulator()

    def respond(req):
        if faults:
            fault = faults.pop(0)
            if fault == "429":
                return req.send(429, echo_outcome("slow down"), {"Retry-After": "0"})
            req.handler.close_connection = True
            return req.handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{")
        plain = Request.send

        def send_gzip(self, status, body=b"", headers=None):
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            plain(self, status, zlib.compress(data, wbits=16 + zlib.MAX_WBITS), {**(headers or {}), "Content-Encoding": "gzip"})
        req.send = send_gzip.__get__(req)
        inner(req)

    result = pull_to_directory(serve(respond), "TCIM-ELAII", tmp_path / "out", options=ServerOptions(backoff=0.01))
    assert result.resources == len(MINI) and not faults
    assert result.requests == 2 + 9
