"""A small FHIR REST client for pull and push: what a real network needs, and no more.

- Timeouts on every request; bounded retries with exponential backoff (and jitter) on 429 and 5xx,
  honouring Retry-After, and on dropped connections. A request that is not idempotent (a transaction
  with creates) is retried only when the server says it did nothing (429, 503) or was never reached.
- TLS verification always on: the system trust store, or --ca-bundle. A TLS failure is one clear line.
- Credentials: a bearer token (TCIM_FHIR_TOKEN) or SMART Backend Services (client credentials with a
  signed JWT, RS384 or ES384). They go in the Authorization header and nowhere else: every message this
  module builds is scrubbed of them, redirects are not followed, and `next` links leaving the server's
  origin are refused, so a token is never sent to another host.
- Thread-safe: pull runs a few searches at once on one connection pool (ServerOptions.workers).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from ..errors import TcimError, UsageError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
NOT_PROCESSED = frozenset({429, 503})  # the server says it did nothing: safe to retry even a create
MAX_WAIT = 120.0  # seconds: the longest Retry-After or backoff honoured
MAX_PAGES = 100_000  # a `next` chain longer than this is a server loop
ENV = {"token": "TCIM_FHIR_TOKEN", "client_id": "TCIM_FHIR_CLIENT_ID", "private_key": "TCIM_FHIR_PRIVATE_KEY",
       "token_url": "TCIM_FHIR_TOKEN_URL"}


class ServerError(TcimError):
    """The server cannot be reached, refuses the credentials, or answers what cannot be used (exit 2)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status when the server answered one


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


def outcome_lines(outcome: object) -> list[str]:
    """The issues of an OperationOutcome, one line each: 'error invalid: diagnostics (expression)'."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return []
    lines = []
    for issue in outcome.get("issue") or []:
        text = issue.get("diagnostics") or (issue.get("details") or {}).get("text") or ""
        where = ", ".join(issue.get("expression") or issue.get("location") or [])
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


class SmartBackendAuth:
    """SMART Backend Services: a JWT signed with the client's private key buys a short-lived token."""

    def __init__(self, client_id: str, key_pem: bytes, token_url: str, scope: str, key_id: str | None = None):
        import jwt  # PyJWT, imported only when SMART is used
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            self._key = load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as e:
            raise UsageError(f"--private-key: not an unencrypted PEM private key ({e})") from None
        if isinstance(self._key, rsa.RSAPrivateKey):
            self.alg, jwk_alg = "RS384", jwt.algorithms.RSAAlgorithm
        elif isinstance(self._key, ec.EllipticCurvePrivateKey) and self._key.curve.name == "secp384r1":
            self.alg, jwk_alg = "ES384", jwt.algorithms.ECAlgorithm
        else:
            raise UsageError("--private-key: SMART Backend Services needs an RSA key (RS384) or an EC P-384 key (ES384)")
        self.client_id, self.token_url, self.scope = client_id, token_url, scope
        self.key_id = key_id or _jwk_thumbprint(jwk_alg.to_jwk(self._key.public_key(), as_dict=True))
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self._assertion = ""

    def _assertion_jwt(self) -> str:
        import jwt

        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url, "exp": now + 240,
                  "iat": now, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, self._key, algorithm=self.alg, headers={"kid": self.key_id, "typ": "JWT"})

    def header(self, client: FhirClient) -> str:
        with self._lock:  # one token request at a time; the others wait for its token
            if not self._token or time.monotonic() > self._expires - 30:
                self._assertion = self._assertion_jwt()
                form = {"grant_type": "client_credentials", "scope": self.scope,
                        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                        "client_assertion": self._assertion}
                body = client.token_request(self.token_url, form)
                token = body.get("access_token") if isinstance(body, dict) else None
                if not isinstance(token, str) or not token:
                    raise ServerError(f"{self.token_url}: the token endpoint answered no access_token")
                self._token = token
                self._expires = time.monotonic() + float(body.get("expires_in") or 300)
            return f"Bearer {self._token}"

    def invalidate(self) -> bool:
        with self._lock:
            had = self._token is not None
            self._token = None
            return had

    def secrets(self) -> list[str]:
        return [s for s in (self._token, self._assertion) if s]


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
    seen = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return getattr(seen, "verify_message", None) or getattr(seen, "reason", None) or str(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return text if "SSL" in text or "CERTIFICATE" in text else None


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class FhirClient:
    def __init__(self, base_url: str, options: ServerOptions | None = None, *, default_scope: str = "system/*.read"):
        self.options = options or ServerOptions()
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--server must be an http(s) URL, not {base_url!r}")
        if self.options.retries < 0 or self.options.workers < 1 or self.options.timeout <= 0:
            raise UsageError("--retries must be >= 0, --workers >= 1 and --timeout > 0")
        self.base = base_url.rstrip("/")
        self._origin = (parts.scheme, parts.netloc.lower())
        self.auth = resolve_auth(self.options, default_scope)
        workers = self.options.workers
        self._http = httpx.Client(
            timeout=httpx.Timeout(self.options.timeout), verify=_tls_context(self.options.ca_bundle),
            follow_redirects=False, limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers),
            headers={"Accept": "application/fhir+json", "User-Agent": "tcim-interop"})
        self._count_lock = threading.Lock()
        self.requests = 0

    def __enter__(self) -> FhirClient:
        return self

    def __exit__(self, *exc) -> None:
        self._http.close()

    # -- messages -----------------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        for secret in (self.auth.secrets() if self.auth else []):
            if len(secret) >= 4:
                text = text.replace(secret, "[redacted]")
        return text

    def error(self, message: str, status: int | None = None) -> ServerError:
        return ServerError(self.redact(" ".join(message.split())), status)

    def http_error(self, what: str, resp: httpx.Response) -> ServerError:
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
                headers: dict | None = None, idempotent: bool = True, auth: bool = True) -> httpx.Response:
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
            try:
                resp = self._http.request(method, url, headers=headers, data=form, content=content)
            except httpx.TransportError as e:
                tls = _tls_failure(e)
                if tls:
                    raise self.error(f"{urlsplit(url).netloc}: TLS failure: {tls}; if the server's certificate is "
                                     "signed by a private CA, give that CA with --ca-bundle") from None
                # A request that never reached the server (ConnectError) can always be sent again.
                if attempt >= self.options.retries or not (idempotent or isinstance(e, httpx.ConnectError)):
                    raise self.error(f"{what}: {type(e).__name__}: {e or 'connection lost'} "
                                     f"(after {attempt + 1} attempt(s))") from None
                time.sleep(self._backoff(attempt))
                attempt += 1
                continue
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

    def _backoff(self, attempt: int) -> float:
        return min(self.options.backoff * 2 ** attempt, MAX_WAIT) * random.uniform(0.5, 1.0)

    def get_json(self, url: str, headers: dict | None = None) -> dict:
        resp = self.request("GET", url, headers=headers)
        if resp.status_code != 200:
            raise self.http_error(f"GET {_short(url)}", resp)
        body = _json_or_none(resp)
        if not isinstance(body, dict):
            raise self.error(f"GET {_short(url)}: the answer is not a FHIR JSON resource")
        return body

    def token_request(self, token_url: str, form: dict) -> dict:
        resp = self.request("POST", token_url, form=form, auth=False)
        body = _json_or_none(resp)
        if resp.status_code != 200:
            reason = ": ".join(str(body.get(k)) for k in ("error", "error_description") if body.get(k)) \
                if isinstance(body, dict) else ""
            raise self.error(f"{token_url}: the token endpoint refused the client (HTTP {resp.status_code})"
                             + (f": {reason}" if reason else ""))
        return body if isinstance(body, dict) else {}

    def search_pages(self, resource_type: str, params: dict[str, str]) -> Iterator[dict]:
        """The searchset pages of one search, following every `next` link (on this server only)."""
        url = str(httpx.URL(f"{self.base}/{resource_type}", params=params))
        seen = set()
        for _ in range(MAX_PAGES):
            # Strict handling: a server that does not know a parameter says so (400) instead of ignoring it.
            page = self.get_json(url, {"Prefer": "handling=strict"})
            if page.get("resourceType") != "Bundle":
                raise self.error(f"GET {_short(url)}: the answer is a {page.get('resourceType')}, not a searchset Bundle")
            yield page
            nxt = next((link.get("url") for link in page.get("link") or [] if link.get("relation") == "next"), None)
            if not nxt:
                return
            nxt = urljoin(self.base + "/", nxt)
            parts = urlsplit(nxt)
            if (parts.scheme, parts.netloc.lower()) != self._origin:
                raise self.error(f"{resource_type} search: the next page is on another origin "
                                 f"({parts.scheme}://{parts.netloc}): not followed, credentials stay here")
            if nxt in seen:
                raise self.error(f"{resource_type} search: the server's next links loop")
            seen.add(nxt)
            url = nxt
        raise self.error(f"{resource_type} search: more than {MAX_PAGES} pages")

    def transaction(self, bundle: dict, *, idempotent: bool) -> httpx.Response:
        return self.request("POST", self.base, json_body=bundle, idempotent=idempotent)


def _json_or_none(resp: httpx.Response):
    try:
        return resp.json()
    except ValueError:
        return None


def _short(url: str) -> str:
    """A URL for a message: path and the start of the query (ids lists can be long)."""
    parts = urlsplit(url)
    text = parts.path + (f"?{parts.query}" if parts.query else "")
    return text if len(text) <= 120 else text[:117] + "..."
