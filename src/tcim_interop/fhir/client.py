"""A small FHIR REST client for pull and push: what a real network needs, and no more.

- A deadline on every exchange (--timeout bounds the whole answer, not each socket read) and a cap on
  the decompressed size of an answer; bounded retries with exponential backoff (and jitter) on 429 and 5xx,
  honouring Retry-After, and on dropped connections. A request that is not idempotent (a transaction
  with creates) is retried only when the server says it did nothing (429, 503) or was never reached.
- TLS verification always on: the system trust store, or --ca-bundle. A TLS failure is one clear line.
- Credentials: a bearer token (TCIM_FHIR_TOKEN) or SMART Backend Services (client credentials with a
  signed JWT, RS384 or ES384), or the user and password of the --server URL. They go in the Authorization
  header and nowhere else: every message this module builds goes through redact(), redirects are not
  followed, and `next` links leaving the server's origin are refused, so a token is never sent to another
  host.
- A malformed answer (not JSON, not an object, a Bundle whose link, entry or id has the wrong type, JSON
  nested too deep) is a ServerError, one line, never a traceback.
- Thread-safe: pull runs a few searches at once on one connection pool (ServerOptions.workers).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import os
import random
import re
import ssl
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import httpcore
import httpx
import orjson

from ..errors import ServerError, UsageError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
NOT_PROCESSED = frozenset({429, 503})  # the server says it did nothing: safe to retry even a create
MAX_WAIT = 120.0  # seconds: the longest Retry-After or backoff honoured
MAX_PAGES = 10_000  # per search: 5 million resources at 500 a page; a longer `next` chain is a server loop
MAX_BODY = 256 * 1024 ** 2  # bytes of one decompressed answer (TCIM_FHIR_MAX_BODY): a page of 10,000
#                             resources is ~20 MB; 4 workers at the cap still fit in 1 GiB
MAX_JSON_DEPTH = 254  # levels of JSON nesting: what orjson can write again (FHIR needs a few dozen)
ENV = {"token": "TCIM_FHIR_TOKEN", "client_id": "TCIM_FHIR_CLIENT_ID", "private_key": "TCIM_FHIR_PRIVATE_KEY",
       "token_url": "TCIM_FHIR_TOKEN_URL"}


@dataclass(frozen=True)
class ServerOptions:
    """How to reach the server. Credentials left None are read from the TCIM_FHIR_* environment."""

    token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    private_key: str | os.PathLike | None = None  # PEM file: RSA (RS384) or EC P-384 (ES384)
    token_url: str | None = None
    scope: str | None = None
    key_id: str | None = None  # default: the key's RFC 7638 JWK thumbprint
    ca_bundle: str | os.PathLike | None = None
    timeout: float = 30.0
    retries: int = 4
    workers: int = 4  # requests in flight at most
    backoff: float = 0.5  # first retry delay in seconds, doubled each time
    max_body: int | None = None  # decompressed bytes of one answer; None: TCIM_FHIR_MAX_BODY, else MAX_BODY
    max_pages: int = MAX_PAGES  # pages of one search
    transport: httpx.BaseTransport | None = field(default=None, repr=False, compare=False)  # tests: a mock server


# Characters a server may put inside an echoed secret without changing how it reads on a screen.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_GAP = f"[\\s{_INVISIBLE}]*+"  # possessive: never backtracks, so a match attempt is linear


def redact(text: str, secrets: Iterable[str]) -> str:
    """text with every secret replaced by [redacted], found whatever the case and across whitespace or
    zero-width characters between its characters (a server's echo may be re-cased, wrapped or split)."""
    pattern = _secrets_pattern(tuple(sorted({s for s in secrets if s}, key=len, reverse=True)))
    return pattern.sub("[redacted]", text) if pattern else text


def holds_secret(text: str, secrets: Iterable[str]) -> bool:
    """Whether redact() would change text."""
    pattern = _secrets_pattern(tuple(sorted({s for s in secrets if s}, key=len, reverse=True)))
    return bool(pattern and pattern.search(text))


@functools.lru_cache(maxsize=16)
def _secrets_pattern(secrets: tuple[str, ...]) -> re.Pattern | None:
    alternatives = []
    for secret in secrets:  # longest first: a secret inside another is replaced with it
        chars = [c for c in secret if not c.isspace() and c not in _INVISIBLE]
        if chars:
            alternatives.append(_GAP.join(map(re.escape, chars)))
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


def outcome_lines(outcome: object) -> list[str]:
    """The issues of an OperationOutcome, one line each: 'error invalid: diagnostics (expression)'."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return []
    issues = outcome.get("issue")
    lines = []
    for issue in issues if isinstance(issues, list) else []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (details.get("text") if isinstance(details, dict) else "") or ""
        where = issue.get("expression") or issue.get("location") or []
        where = ", ".join(map(str, where)) if isinstance(where, list) else str(where)
        line = f"{issue.get('severity', '?')} {issue.get('code', '?')}: {text}" + (f" ({where})" if where else "")
        lines.append(" ".join(line.split()))
    return lines


class BearerAuth:
    def __init__(self, token: str):
        self._token = token

    def header(self, client: FhirClient) -> str:
        return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        return False  # a fixed token cannot be renewed: a 401 is final

    def secrets(self) -> list[str]:
        return [self._token]


class BasicAuth(BearerAuth):
    """The user and password of the --server URL."""

    def __init__(self, userinfo: str):  # as in the URL: percent-encoded
        user, _, password = userinfo.partition(":")
        plain = f"{unquote(user)}:{unquote(password)}"
        super().__init__(base64.b64encode(plain.encode()).decode())
        self._secrets = [self._token, plain, userinfo, unquote(password), password]

    def header(self, client: FhirClient) -> str:
        return f"Basic {self._token}"

    def secrets(self) -> list[str]:
        return self._secrets


class SmartBackendAuth:
    """SMART Backend Services: a JWT signed with the client's private key buys a short-lived token."""

    def __init__(self, client_id: str, key_pem: bytes, token_url: str, scope: str, key_id: str | None = None):
        import jwt  # PyJWT, imported only when SMART is used
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as e:
            raise UsageError(f"--private-key: not an unencrypted PEM private key ({e})") from None
        if isinstance(key, rsa.RSAPrivateKey):
            self.alg, jwk = "RS384", jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        elif isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
            self.alg, jwk = "ES384", jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        else:
            raise UsageError("--private-key: SMART Backend Services needs an RSA key (RS384) or an EC P-384 key (ES384)")
        self._key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = key
        self.client_id, self.token_url, self.scope = client_id, token_url, scope
        self.key_id = key_id or _jwk_thumbprint(jwk)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self._issued: list[str] = []  # every token and assertion of this run: an old one may be echoed too

    def _assertion_jwt(self) -> str:
        import jwt

        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url, "exp": now + 240,
                  "iat": now, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.key_id, "typ": "JWT"})

    def header(self, client: FhirClient) -> str:
        with self._lock:  # one token request at a time; the others wait for its token
            if not self._token or time.monotonic() > self._expires - 30:
                assertion = self._assertion_jwt()
                self._issued += [assertion, assertion.rsplit(".", 1)[-1]]  # the signature alone is secret too
                form = {"grant_type": "client_credentials", "scope": self.scope,
                        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        "client_assertion": assertion}
                body = client.token_request(self.token_url, form)
                token = body.get("access_token")
                if not isinstance(token, str) or not token:
                    raise client.error(f"{client.display(self.token_url)}: the token endpoint answered no access_token")
                self._issued.append(token)
                lifetime = body.get("expires_in")
                lifetime = 300 if lifetime is None else lifetime  # optional (RFC 6749 5.1)
                if isinstance(lifetime, str) and re.fullmatch(r"[0-9]{1,9}", lifetime.strip()):
                    lifetime = int(lifetime)  # some servers send a string
                if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) \
                        or not math.isfinite(lifetime) or lifetime < 0:
                    raise client.error(f"{client.display(self.token_url)}: the token endpoint answered expires_in "
                                       f"{str(lifetime)[:40]!r}, not a number of seconds")
                self._token = token
                self._expires = time.monotonic() + lifetime
            return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        with self._lock:
            had = self._token is not None
            self._token = None
            return had

    def secrets(self) -> list[str]:
        return self._issued


def _jwk_thumbprint(jwk: dict) -> str:
    required = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def resolve_auth(options: ServerOptions, default_scope: str) -> BearerAuth | SmartBackendAuth | None:
    """SMART when a client id is given (option or environment), else a bearer token, else none."""
    def pick(name):
        value = getattr(options, name)
        return value if value not in (None, "") else os.environ.get(ENV[name]) or None

    client_id, key, token_url = pick("client_id"), pick("private_key"), pick("token_url")
    if client_id or (options.private_key or options.token_url):
        missing = [f"--{n}" for n, v in (("client-id", client_id), ("private-key", key), ("token-url", token_url)) if not v]
        if missing:
            raise UsageError(f"SMART Backend Services needs {', '.join(missing)} as well")
        try:
            pem = Path(key).read_bytes()
        except OSError as e:
            raise UsageError(f"{key}: cannot read the private key: {e.strerror or e}") from None
        return SmartBackendAuth(client_id, pem, token_url, options.scope or default_scope, options.key_id)
    token = pick("token")
    return BearerAuth(token.strip()) if token else None


def _tls_context(ca_bundle) -> ssl.SSLContext:
    if ca_bundle is None:
        return ssl.create_default_context()  # the system store (and SSL_CERT_FILE): where a hospital CA lives
    try:
        return ssl.create_default_context(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as e:
        raise UsageError(f"--ca-bundle {ca_bundle}: not a readable PEM certificate file ({e})") from None


def _tls_failure(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return getattr(seen, "verify_message", None) or getattr(seen, "reason", None) or str(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return text if "SSL" in text or "CERTIFICATE" in text else None


def _retry_after(resp) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if re.fullmatch(r"[0-9]+", value):  # not str.isdigit(): it takes '²', which float() refuses
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, OSError):
        return None  # not a date either: the usual backoff


# -- the deadline of a whole exchange -------------------------------------------------------------------
# httpx times each socket operation, so a server sending a byte a second never times out. Every read and
# write below is also bounded by the time left until the deadline of the exchange running in this thread
# (httpx does a request's I/O in the calling thread), headers included.
_deadline = threading.local()


def _left(timeout: float | None, exc: type[Exception]) -> float | None:
    at = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise exc("the answer took longer than --timeout")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self):
        self._backend = httpcore.SyncBackend()  # httpcore's default: sockets

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        return _DeadlineStream(self._backend.connect_tcp(host, port, _left(timeout, httpcore.ConnectTimeout),
                                                         local_address, socket_options))

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return _DeadlineStream(self._backend.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout),
                                                                 socket_options))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class _Transport(httpx.HTTPTransport):
    """httpx's transport on the deadline backend (httpx has no option for a network backend)."""

    def __init__(self, ssl_context: ssl.SSLContext, workers: int):
        super().__init__(verify=ssl_context)
        self._pool = httpcore.ConnectionPool(ssl_context=ssl_context, max_connections=workers,
                                             max_keepalive_connections=workers, network_backend=_DeadlineBackend())


@dataclass
class Answer:
    """A whole answer, its body decompressed and bounded."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes

    def json(self):
        return orjson.loads(self.content)  # orjson: depth-limited, strict UTF-8; errors are ValueErrors


def _decoder(encoding: str):
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise ValueError(f"an unsupported Content-Encoding {encoding[:40]!r}")


class FhirClient:
    def __init__(self, base_url: str, options: ServerOptions | None = None, *, default_scope: str = "system/*.read"):
        self.options = options or ServerOptions()
        try:
            parts = urlsplit(base_url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:  # the URL is not shown when it may hold a password
            raise UsageError("--server must be an http(s) URL" + ("" if "@" in base_url else f", not {base_url!r}"))
        if self.options.retries < 0 or self.options.workers < 1 or self.options.timeout <= 0:
            raise UsageError("--retries must be >= 0, --workers >= 1 and --timeout > 0")
        if self.options.max_pages < 1 or (self.options.max_body is not None and self.options.max_body < 1):
            raise UsageError("max_pages and max_body must be at least 1")
        # The user and password of the URL become a Basic Authorization; messages show the URL without them.
        userinfo, _, netloc = parts.netloc.rpartition("@")
        self.base = urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")).rstrip("/")
        self._origin = (parts.scheme, netloc.lower())
        self.auth = resolve_auth(self.options, default_scope)
        if userinfo:
            if self.auth:
                raise UsageError("--server: give credentials in the URL or in TCIM_FHIR_TOKEN / the SMART "
                                 "options, not both")
            self.auth = BasicAuth(userinfo)
        self.max_body = self.options.max_body or _env_int("TCIM_FHIR_MAX_BODY") or MAX_BODY
        workers = self.options.workers
        context = _tls_context(self.options.ca_bundle)
        self._http = httpx.Client(
            transport=self.options.transport or _Transport(context, workers), timeout=httpx.Timeout(self.options.timeout), verify=context,
            follow_redirects=False, limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            headers={"Accept": "application/fhir+json", "Accept-Encoding": "gzip, deflate",
                     "User-Agent": "tcim-interop"})
        self._count_lock = threading.Lock()
        self.requests = 0

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc) -> None:
        self._http.close()

    # -- messages -----------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        return redact(text, self.auth.secrets() if self.auth else ())

    def display(self, url: str) -> str:
        """A URL for a message or a report: without the user and password it may carry."""
        parts = urlsplit(url)
        return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) if "@" in parts.netloc else url

    def error(self, message: str, status: int | None = None) -> ServerError:
        return ServerError(self.redact(" ".join(message.split())), status)

    def http_error(self, what: str, resp: Answer) -> ServerError:
        detail = "; ".join(outcome_lines(_json_or_none(resp)))
        if resp.status_code in (401, 403):
            hint = ("the server refused the credentials" if self.auth else
                    "the server wants credentials: set TCIM_FHIR_TOKEN or the SMART options")
            return self.error(f"{what}: HTTP {resp.status_code}: {hint}" + (f" ({detail})" if detail else ""),
                              resp.status_code)
        return self.error(f"{what}: HTTP {resp.status_code} {resp.reason_phrase}" + (f": {detail}" if detail else ""),
                          resp.status_code)

    # -- requests -----------------------------------------------------------------------------------
    def request(self, method: str, url: str, *, json_body: object = None, form: dict | None = None,
                headers: dict | None = None, idempotent: bool = True, auth: bool = True) -> Answer:
        """One request, retried on 429/5xx and lost connections; 4xx and the final answer are returned."""
        what = f"{method} {_short(url)}"
        content = None if json_body is None else orjson.dumps(json_body)
        headers = {**(headers or {}), **({"Content-Type": "application/fhir+json"} if content else {})}
        renewed = False
        attempt = 0
        while True:
            if auth and self.auth:
                headers["Authorization"] = self.auth.header(self)
            with self._count_lock:
                self.requests += 1
            _deadline.at = time.monotonic() + self.options.timeout
            try:
                resp = self._exchange(method, url, what, headers, form, content)
            except httpx.TransportError as e:
                tls = _tls_failure(e)
                if tls:
                    raise self.error(f"{urlsplit(url).hostname}: TLS failure: {tls}; if the server's certificate "
                                     "is signed by a private CA, give that CA with --ca-bundle") from None
                if isinstance(e, httpx.TimeoutException) and time.monotonic() >= _deadline.at:
                    # Not retried: a server this slow would make every retry take as long.
                    raise self.error(f"{what}: no complete answer within --timeout {self.options.timeout:g} s") from None
                # A request that never reached the server (ConnectError) can always be sent again.
                if attempt >= self.options.retries or not (idempotent or isinstance(e, httpx.ConnectError)):
                    raise self.error(f"{what}: {type(e).__name__}: {e or 'connection lost'} "
                                     f"(after {attempt + 1} attempt(s))") from None
                time.sleep(self._backoff(attempt))
                attempt += 1
                continue
            except httpx.HTTPError as e:  # a URL httpx cannot send, a broken encoding: not worth a retry
                raise self.error(f"{what}: {type(e).__name__}: {e}") from None
            finally:
                _deadline.at = None
            if resp.status_code == 401 and auth and self.auth and not renewed and self.auth.invalidate():
                renewed = True  # an expired SMART token: get a new one, once
                continue
            retryable = resp.status_code in RETRY_STATUS and (idempotent or resp.status_code in NOT_PROCESSED)
            if retryable and attempt < self.options.retries:
                wait = _retry_after(resp)
                time.sleep(min(wait, MAX_WAIT) if wait is not None else self._backoff(attempt))
                attempt += 1
                continue
            return resp

    def _exchange(self, method, url, what, headers, form, content) -> Answer:
        """Send, and read the whole answer, decompressing it ourselves so that its size is counted as it
        grows: a small gzip bomb must not become gigabytes in memory."""
        with self._http.stream(method, url, headers=headers, data=form, content=content) as resp:
            try:
                decoder = _decoder(resp.headers.get("Content-Encoding", ""))
            except ValueError as e:
                raise self.error(f"{what}: the answer has {e}") from None
            body = bytearray()
            try:
                for raw in resp.iter_raw(65536):
                    while raw:
                        if decoder is None:
                            chunk, raw = raw, b""
                        else:  # at most one byte past the cap, however much `raw` expands
                            chunk, raw = decoder.decompress(raw, self.max_body + 1 - len(body)), decoder.unconsumed_tail
                        body += chunk
                        if len(body) > self.max_body:
                            raise self.error(f"{what}: the answer is larger than {self.max_body} bytes "
                                             "(decompressed): refused")
                if decoder is not None:
                    body += decoder.flush()
                    if not decoder.eof:
                        raise zlib.error("the stream ends early")
            except zlib.error as e:
                raise self.error(f"{what}: the answer's {resp.headers.get('Content-Encoding')} encoding is "
                                 f"broken ({e})") from None
            if len(body) > self.max_body:
                raise self.error(f"{what}: the answer is larger than {self.max_body} bytes (decompressed): refused")
            return Answer(resp.status_code, resp.reason_phrase, resp.headers, bytes(body))

    def _backoff(self, attempt: int) -> float:
        return min(self.options.backoff * 2 ** attempt, MAX_WAIT) * random.uniform(0.5, 1.0)

    def get_json(self, url: str, headers: dict | None = None) -> dict:
        resp = self.request("GET", url, headers=headers)
        if resp.status_code != 200:
            raise self.http_error(f"GET {_short(url)}", resp)
        body = _json_or_none(resp)
        if not isinstance(body, dict):
            raise self.error(f"GET {_short(url)}: the answer is not a FHIR JSON resource (JSON object)")
        if not json_depth_ok(body):
            raise self.error(f"GET {_short(url)}: the answer is nested deeper than {MAX_JSON_DEPTH} levels")
        return body

    def token_request(self, token_url: str, form: dict) -> dict:
        resp = self.request("POST", token_url, form=form, auth=False)
        body = _json_or_none(resp)
        if resp.status_code != 200:
            reason = ": ".join(str(body.get(k)) for k in ("error", "error_description") if body.get(k)) \
                if isinstance(body, dict) else ""
            raise self.error(f"{self.display(token_url)}: the token endpoint refused the client "
                             f"(HTTP {resp.status_code})" + (f": {reason}" if reason else ""))
        if not isinstance(body, dict):
            raise self.error(f"{self.display(token_url)}: the token endpoint's answer is not a JSON object")
        return body

    def search_pages(self, resource_type: str, params: dict[str, str]) -> Iterator[dict]:
        """The searchset pages of one search, following every `next` link (on this server only)."""
        url = str(httpx.URL(f"{self.base}/{resource_type}", params=params))
        seen = {url}
        for _ in range(self.options.max_pages):
            # Strict handling: a server that does not know a parameter says so (400) instead of ignoring it.
            page = self.get_json(url, {"Prefer": "handling=strict"})
            if page.get("resourceType") != "Bundle":
                raise self.error(f"GET {_short(url)}: the answer is a {str(page.get('resourceType'))[:40]}, "
                                 "not a searchset Bundle")
            problem = _bundle_problem(page)
            if problem:
                raise self.error(f"GET {_short(url)}: malformed searchset Bundle: {problem}")
            yield page
            nxt = next((link.get("url") for link in page.get("link") or [] if link.get("relation") == "next"), None)
            if not nxt:
                return
            try:
                nxt = urljoin(self.base + "/", nxt)
                parts = urlsplit(nxt)
                origin = (parts.scheme, parts.netloc.lower())
            except ValueError:
                raise self.error(f"{resource_type} search: the next link is not a URL") from None
            if origin != self._origin:
                raise self.error(f"{resource_type} search: the next page is on another origin "
                                 f"({self.display(f'{parts.scheme}://{parts.netloc}')}): not followed, "
                                 "credentials stay here")
            if nxt in seen:
                raise self.error(f"{resource_type} search: the server's next links loop (back to {_short(nxt)})")
            seen.add(nxt)
            url = nxt
        raise self.error(f"{resource_type} search: more than {self.options.max_pages} pages: the server's next "
                         "links do not end")

    def transaction(self, bundle: dict, *, idempotent: bool) -> Answer:
        return self.request("POST", self.base, json_body=bundle, idempotent=idempotent)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
        raise UsageError(f"{name} must be a positive number of bytes, not {value[:40]!r}")
    return int(value)


def json_depth_ok(value: object) -> bool:
    """Whether parsed JSON nests at most MAX_JSON_DEPTH levels: what later steps (orjson, and recursive
    walks under Python's recursion limit) can handle."""
    try:
        orjson.dumps(value)  # refuses deeper nesting, at C speed
    except orjson.JSONEncodeError:
        return False
    return True


def _bundle_problem(bundle: dict) -> str | None:
    """What makes a searchset Bundle unreadable, in words; None when it is fine. Resources themselves are
    the caller's to check against what was asked."""
    links, entries, total = bundle.get("link"), bundle.get("entry"), bundle.get("total")
    if links is not None and not (isinstance(links, list) and all(isinstance(x, dict) for x in links)):
        return "link is not a list of objects"
    if any(not isinstance(x.get("url", ""), str) for x in links or []):
        return "a link url is not a string"
    if entries is not None and not (isinstance(entries, list) and all(isinstance(x, dict) for x in entries)):
        return "entry is not a list of objects"
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        return f"total is {str(total)[:40]!r}, not an integer"
    for entry in entries or []:
        resource, search = entry.get("resource"), entry.get("search")
        if resource is not None and not isinstance(resource, dict) or search is not None and not isinstance(search, dict):
            return "an entry's resource or search is not an object"
        if resource and not isinstance(resource.get("resourceType"), str):
            return "an entry's resource has no resourceType"
        if resource and not isinstance(resource.get("id", ""), str):
            return f"{resource['resourceType'][:40]} id {str(resource['id'])[:40]} is not a string"
    return None


def _json_or_none(resp: Answer):
    try:
        return resp.json()
    except ValueError:
        return None


def _short(url: str) -> str:
    """A URL for a message: path and the start of the query (ids lists can be long)."""
    parts = urlsplit(url)
    text = parts.path + (f"?{parts.query}" if parts.query else "")
    return text if len(text) <= 120 else text[:117] + "..."
