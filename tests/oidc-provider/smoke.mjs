#!/usr/bin/env node
// Self-test of the fixture: starts server.js, drives every recipe from
// README.md over plain HTTP on 127.0.0.1 (fetch + hand-rolled cookie handling,
// the same way a Rust test without a browser does), and prints
// "N passed, M failed". Exit code 0 only if everything passed.
//
//   node smoke.mjs
//
// Needs only Node >= 20 and `npm ci` having been run in this directory.

import { spawn } from 'node:child_process';
import {
  createHash, createPublicKey, randomBytes, verify as cryptoVerify,
} from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { strict as assert } from 'node:assert';

import { generateJwks } from './genkeys.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const API = 'http://127.0.0.1/api';
const REDIRECT_URI = 'http://127.0.0.1/cb';

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}: ${err.stack || err}`);
  }
}

// ---- server process -------------------------------------------------------

function startServer(env) {
  const child = spawn(process.execPath, [join(HERE, 'server.js')], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no READY line; stderr:\n${stderr}`)), 15000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^READY (http:\/\/127\.0\.0\.1:(\d+))\n/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({
          child, issuer: m[1], port: Number(m[2]), stdout: () => out, stderr: () => stderr,
        });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited early (${code}); stderr:\n${stderr}`));
    });
  });
}

function waitExit(child, ms = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => { clearTimeout(t); resolve(true); });
  });
}

// ---- HTTP helpers ---------------------------------------------------------

const basic = (id, secret) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

async function postForm(url, form, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form),
    redirect: 'manual',
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return {
    status: res.status, json, text, headers: res.headers,
  };
}

// Minimal cookie jar: name -> value. Paths are ignored, which works here
// because the newest cookie of each name is always the one the next step needs.
class Jar {
  cookies = new Map();

  store(res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=.*1970/i.test(a));
      if (!value || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header() {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

// One browser step: request with the jar's cookies, no redirect following.
async function step(jar, url, form) {
  const init = { redirect: 'manual', headers: { cookie: jar.header() } };
  if (form) {
    init.method = 'POST';
    init.headers['content-type'] = 'application/x-www-form-urlencoded';
    init.body = new URLSearchParams(form);
  }
  const res = await fetch(url, init);
  jar.store(res);
  const body = await res.text();
  const location = res.headers.get('location');
  return {
    status: res.status, body, location: location && new URL(location, url).href,
  };
}

// ---- JWT helpers ----------------------------------------------------------

const b64json = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));

function decodeJwt(token) {
  const parts = token.split('.');
  assert.equal(parts.length, 3, 'not a JWS compact serialization');
  return { header: b64json(parts[0]), payload: b64json(parts[1]), parts };
}

function verifyJws(token, jwks) {
  const { header, payload, parts } = decodeJwt(token);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} not in JWKS`);
  assert.equal(jwk.alg, header.alg);
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(`${parts[0]}.${parts[1]}`);
  const sig = Buffer.from(parts[2], 'base64url');
  let ok;
  switch (header.alg) {
    case 'ES256': ok = cryptoVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig); break;
    case 'RS256': ok = cryptoVerify('sha256', data, key, sig); break;
    case 'PS256': ok = cryptoVerify('sha256', data, { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, sig); break;
    case 'EdDSA': ok = cryptoVerify(null, data, key, sig); break;
    default: throw new Error(`unexpected alg ${header.alg}`);
  }
  assert.ok(ok, 'signature does not verify');
  return { header, payload };
}

// ---- flows ----------------------------------------------------------------

async function clientCredentials(issuer, id, form) {
  return postForm(`${issuer}/token`, { grant_type: 'client_credentials', ...form }, { authorization: basic(id, `${id}-secret`) });
}

function pkcePair() {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

// Authorization code + PKCE, driving devInteractions login and consent.
async function authorizationCode(issuer, {
  clientId = 'app', scope = 'openid items:read items:write', resource = API, login = 'alice', codeVerifier,
} = {}) {
  const jar = new Jar();
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(8).toString('hex');
  const auth = new URL(`${issuer}/auth`);
  const q = {
    client_id: clientId,
    response_type: 'code',
    redirect_uri: REDIRECT_URI,
    scope,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
  };
  if (resource) q.resource = resource;
  for (const [k, v] of Object.entries(q)) auth.searchParams.set(k, v);

  let r = await step(jar, auth.href); // 303 -> /interaction/<uid1>
  assert.equal(r.status, 303, r.body);
  const loginUrl = r.location;
  assert.match(loginUrl, /\/interaction\/[\w-]+$/);

  r = await step(jar, loginUrl); // login page (optional GET)
  assert.equal(r.status, 200);
  assert.match(r.body, /name="prompt" value="login"/);

  r = await step(jar, loginUrl, { prompt: 'login', login, password: 'any' }); // 303 -> /auth/<uid1>
  assert.equal(r.status, 303, r.body);
  r = await step(jar, r.location); // 303 -> /interaction/<uid2>
  assert.equal(r.status, 303, r.body);
  const consentUrl = r.location;
  assert.match(consentUrl, /\/interaction\/[\w-]+$/);

  r = await step(jar, consentUrl, { prompt: 'consent' }); // 303 -> /auth/<uid2>
  assert.equal(r.status, 303, r.body);
  r = await step(jar, r.location); // 303 -> http://127.0.0.1/cb?code=...
  assert.equal(r.status, 303, r.body);
  const cb = new URL(r.location);
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI);
  assert.equal(cb.searchParams.get('state'), state);
  assert.equal(cb.searchParams.get('iss'), issuer);
  const code = cb.searchParams.get('code');
  assert.ok(code, `no code in ${r.location}`);

  const form = {
    grant_type: 'authorization_code', client_id: clientId, code, redirect_uri: REDIRECT_URI, code_verifier: codeVerifier ?? verifier,
  };
  if (resource) form.resource = resource;
  return postForm(`${issuer}/token`, form);
}

// ---- the checks -----------------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'oidc-fixture-'));
const keys1 = generateJwks('one');
const keys2 = generateJwks('two');
writeFileSync(join(tmp, 'keys1.json'), JSON.stringify(keys1));
writeFileSync(join(tmp, 'keys2.json'), JSON.stringify(keys2));

let srv = await startServer({ PORT: '0', KEYS_FILE: join(tmp, 'keys1.json') });
const { issuer, port } = srv;
let jwks;

await check('stdout has only the READY line', () => {
  assert.equal(srv.stdout(), `READY ${issuer}\n`);
});

await check('discovery', async () => {
  const d = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.equal(d.issuer, issuer);
  assert.equal(d.jwks_uri, `${issuer}/jwks`);
  assert.equal(d.token_endpoint, `${issuer}/token`);
  assert.equal(d.introspection_endpoint, `${issuer}/token/introspection`);
  assert.equal(d.revocation_endpoint, `${issuer}/token/revocation`);
  assert.equal(d.device_authorization_endpoint, `${issuer}/device/auth`);
  assert.ok(d.grant_types_supported.includes('client_credentials'));
});

await check('jwks has one public key per alg', async () => {
  jwks = await (await fetch(`${issuer}/jwks`)).json();
  assert.deepEqual(jwks.keys.map((k) => k.alg).sort(), ['ES256', 'EdDSA', 'PS256', 'RS256']);
  assert.deepEqual(jwks.keys.map((k) => k.kid), keys1.keys.map((k) => k.kid));
  for (const k of jwks.keys) {
    assert.equal(k.use, 'sig');
    assert.equal(k.d, undefined, 'private part exposed');
  }
});

for (const [client, alg] of [['cc-es256', 'ES256'], ['cc-rs256', 'RS256'], ['cc-ps256', 'PS256'], ['cc-eddsa', 'EdDSA']]) {
  await check(`client_credentials ${client} -> ${alg} at+jwt`, async () => {
    const r = await clientCredentials(issuer, client, { resource: API, scope: 'items:read items:write' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.token_type, 'Bearer');
    assert.equal(r.json.scope, 'items:read items:write');
    const { header, payload } = verifyJws(r.json.access_token, jwks);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.alg, alg);
    assert.equal(header.kid, keys1.keys.find((k) => k.alg === alg).kid);
    assert.equal(payload.iss, issuer);
    assert.equal(payload.aud, API);
    assert.equal(payload.client_id, client);
    assert.equal(payload.sub, client);
    assert.equal(payload.scope, 'items:read items:write');
    assert.ok(payload.jti);
    assert.equal(payload.exp - payload.iat, r.json.expires_in);
  });
}

await check('scope not allowed for client -> invalid_scope', async () => {
  const r = await clientCredentials(issuer, 'cc-readonly', { resource: API, scope: 'items:read items:write' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'invalid_scope');
  const ok = await clientCredentials(issuer, 'cc-readonly', { resource: API, scope: 'items:read' });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(decodeJwt(ok.json.access_token).payload.scope, 'items:read');
});

await check('unknown resource -> invalid_target', async () => {
  const r = await clientCredentials(issuer, 'cc-es256', { resource: 'http://127.0.0.1/nope', scope: 'items:read' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'invalid_target');
});

await check('other-api audience', async () => {
  const r = await clientCredentials(issuer, 'cc-es256', { resource: 'http://127.0.0.1/other-api', scope: 'items:read' });
  assert.equal(r.status, 200, r.text);
  assert.equal(decodeJwt(r.json.access_token).payload.aud, 'http://127.0.0.1/other-api');
});

await check('wrong client secret -> 401 invalid_client', async () => {
  const r = await postForm(`${issuer}/token`, { grant_type: 'client_credentials', scope: 'items:read' }, { authorization: basic('cc-es256', 'wrong') });
  assert.equal(r.status, 401);
  assert.equal(r.json.error, 'invalid_client');
});

const rsAuth = { authorization: basic('resource-server', 'resource-server-secret') };

await check('opaque token: introspect, revoke, introspect', async () => {
  const r = await clientCredentials(issuer, 'cc-opaque', { resource: API, scope: 'items:read admin' });
  assert.equal(r.status, 200, r.text);
  const token = r.json.access_token;
  assert.equal(token.split('.').length, 1, 'expected an opaque token');

  let i = await postForm(`${issuer}/token/introspection`, { token }, rsAuth);
  assert.equal(i.status, 200, i.text);
  assert.equal(i.json.active, true);
  assert.equal(i.json.client_id, 'cc-opaque');
  assert.equal(i.json.scope, 'items:read admin');
  assert.equal(i.json.aud, API);
  assert.equal(i.json.iss, issuer);
  assert.equal(i.json.token_type, 'Bearer');
  assert.ok(i.json.exp > Date.now() / 1000);

  i = await postForm(`${issuer}/token/introspection`, { token }, { authorization: basic('cc-es256', 'cc-es256-secret') });
  assert.deepEqual(i.json, { active: false }, 'another client must not see it');

  const bad = await postForm(`${issuer}/token/introspection`, { token }, { authorization: basic('resource-server', 'nope') });
  assert.equal(bad.status, 401);

  const notOwner = await postForm(`${issuer}/token/revocation`, { token }, rsAuth);
  assert.equal(notOwner.status, 400);

  const rev = await postForm(`${issuer}/token/revocation`, { token, token_type_hint: 'access_token' }, { authorization: basic('cc-opaque', 'cc-opaque-secret') });
  assert.equal(rev.status, 200, rev.text);

  i = await postForm(`${issuer}/token/introspection`, { token }, rsAuth);
  assert.deepEqual(i.json, { active: false });
});

await check('resource-server cannot introspect tokens for another audience', async () => {
  const r = await clientCredentials(issuer, 'cc-opaque', { resource: 'http://127.0.0.1/other-api', scope: 'items:read' });
  const i = await postForm(`${issuer}/token/introspection`, { token: r.json.access_token }, rsAuth);
  assert.deepEqual(i.json, { active: false });
});

await check('authorization code + PKCE, then refresh', async () => {
  const r = await authorizationCode(issuer);
  assert.equal(r.status, 200, r.text);
  assert.ok(r.json.refresh_token);
  assert.ok(r.json.id_token);
  const { header, payload } = verifyJws(r.json.access_token, jwks);
  assert.equal(header.typ, 'at+jwt');
  assert.equal(header.alg, 'ES256');
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.client_id, 'app');
  assert.equal(payload.aud, API);
  assert.equal(payload.scope, 'items:read items:write');

  // refresh, narrowing the scope
  const r2 = await postForm(`${issuer}/token`, {
    grant_type: 'refresh_token', client_id: 'app', refresh_token: r.json.refresh_token, scope: 'items:read', resource: API,
  });
  assert.equal(r2.status, 200, r2.text);
  assert.equal(verifyJws(r2.json.access_token, jwks).payload.scope, 'items:read');
  assert.notEqual(r2.json.refresh_token, r.json.refresh_token, 'public client refresh tokens rotate');

  // asking for more than was granted fails
  const r3 = await postForm(`${issuer}/token`, {
    grant_type: 'refresh_token', client_id: 'app', refresh_token: r2.json.refresh_token, scope: 'admin',
  });
  assert.equal(r3.status, 400);
  assert.equal(r3.json.error, 'invalid_scope');

  // no scope/resource: full granted scope, same API
  const r4 = await postForm(`${issuer}/token`, {
    grant_type: 'refresh_token', client_id: 'app', refresh_token: r2.json.refresh_token,
  });
  assert.equal(r4.status, 200, r4.text);
  const p4 = verifyJws(r4.json.access_token, jwks).payload;
  assert.equal(p4.scope, 'items:read items:write');
  assert.equal(p4.aud, API);
});

await check('authorization code without openid and without resource (defaults to API)', async () => {
  const r = await authorizationCode(issuer, { scope: 'items:read', resource: undefined, login: 'carol' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.id_token, undefined);
  const { payload } = verifyJws(r.json.access_token, jwks);
  assert.equal(payload.aud, API);
  assert.equal(payload.sub, 'carol');
  assert.equal(payload.scope, 'items:read');
});

await check('app-opaque code flow; resource-server introspection shows sub', async () => {
  const r = await authorizationCode(issuer, { clientId: 'app-opaque', scope: 'openid items:read', login: 'dave' });
  assert.equal(r.status, 200, r.text);
  const i = await postForm(`${issuer}/token/introspection`, { token: r.json.access_token }, rsAuth);
  assert.equal(i.json.active, true, i.text);
  assert.equal(i.json.sub, 'dave');
  assert.equal(i.json.client_id, 'app-opaque');
  assert.equal(i.json.scope, 'items:read');
  assert.equal(i.json.aud, API);
});

await check('PKCE is required and checked', async () => {
  const jar = new Jar();
  const auth = new URL(`${issuer}/auth`);
  for (const [k, v] of Object.entries({
    client_id: 'app', response_type: 'code', redirect_uri: REDIRECT_URI, scope: 'items:read', resource: API,
  })) auth.searchParams.set(k, v);
  const r = await step(jar, auth.href);
  assert.equal(r.status, 303);
  const cb = new URL(r.location);
  assert.equal(cb.searchParams.get('error'), 'invalid_request');
});

await check('wrong code_verifier -> invalid_grant', async () => {
  const r = await authorizationCode(issuer, { scope: 'items:read', codeVerifier: randomBytes(32).toString('base64url') });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'invalid_grant');
});

await check('device authorization grant', async () => {
  const da = await postForm(`${issuer}/device/auth`, { client_id: 'app', scope: 'items:read', resource: API });
  assert.equal(da.status, 200, da.text);
  const { device_code: deviceCode, user_code: userCode, verification_uri: verificationUri } = da.json;
  const poll = () => postForm(`${issuer}/token`, {
    grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: 'app', device_code: deviceCode, resource: API,
  });
  let t = await poll();
  assert.equal(t.json.error, 'authorization_pending');

  const jar = new Jar();
  let r = await step(jar, verificationUri);
  assert.equal(r.status, 200);
  const xsrf = /name="xsrf" value="([^"]+)"/.exec(r.body)[1];
  r = await step(jar, verificationUri, { xsrf, user_code: userCode, confirm: 'yes' });
  assert.equal(r.status, 303, r.body);
  r = await step(jar, r.location, { prompt: 'login', login: 'erin', password: 'any' }); // -> /device/<uid1>
  assert.equal(r.status, 303, r.body);
  r = await step(jar, r.location); // -> /interaction/<uid2>
  assert.equal(r.status, 303, r.body);
  r = await step(jar, r.location, { prompt: 'consent' }); // -> /device/<uid2>
  assert.equal(r.status, 303, r.body);
  r = await step(jar, r.location); // success page
  assert.equal(r.status, 200);
  assert.match(r.body, /Sign-in Success/);

  t = await poll();
  assert.equal(t.status, 200, t.text);
  assert.ok(t.json.refresh_token);
  const { payload } = verifyJws(t.json.access_token, jwks);
  assert.equal(payload.sub, 'erin');
  assert.equal(payload.scope, 'items:read');
  assert.equal(payload.aud, API);
});

await check('exits when stdin closes', async () => {
  srv.child.stdin.end();
  assert.ok(await waitExit(srv.child), 'still running');
});

await check('restart on the same port with new keys (rotation)', async () => {
  srv = await startServer({ PORT: String(port), KEYS_FILE: join(tmp, 'keys2.json'), TOKEN_TTL: '30' });
  assert.equal(srv.issuer, issuer);
  const jwks2 = await (await fetch(`${issuer}/jwks`)).json();
  assert.deepEqual(jwks2.keys.map((k) => k.kid), keys2.keys.map((k) => k.kid));
  const r = await clientCredentials(issuer, 'cc-es256', { resource: API, scope: 'items:read' });
  assert.equal(r.json.expires_in, 30);
  const { header, payload } = verifyJws(r.json.access_token, jwks2);
  assert.equal(header.kid, keys2.keys[0].kid);
  assert.equal(payload.exp - payload.iat, 30);
  assert.throws(() => verifyJws(r.json.access_token, jwks), /not in JWKS/);
});

await check('exits on SIGTERM', async () => {
  srv.child.kill('SIGTERM');
  assert.ok(await waitExit(srv.child), 'still running');
});

await check('rotation with overlap: new keys first sign, old keys still published; APP_ALG', async () => {
  writeFileSync(join(tmp, 'keys21.json'), JSON.stringify({ keys: [...keys2.keys, ...keys1.keys] }));
  srv = await startServer({ PORT: String(port), KEYS_FILE: join(tmp, 'keys21.json'), APP_ALG: 'PS256' });
  const jwks21 = await (await fetch(`${issuer}/jwks`)).json();
  assert.equal(jwks21.keys.length, 8);
  for (const [client, alg] of [['cc-es256', 'ES256'], ['cc-rs256', 'RS256'], ['cc-ps256', 'PS256'], ['cc-eddsa', 'EdDSA']]) {
    const r = await clientCredentials(issuer, client, { resource: API, scope: 'items:read' });
    const { header } = verifyJws(r.json.access_token, jwks21);
    assert.equal(header.kid, keys2.keys.find((k) => k.alg === alg).kid);
  }
  const a = await authorizationCode(issuer, { scope: 'items:read' });
  assert.equal(a.status, 200, a.text);
  assert.equal(verifyJws(a.json.access_token, jwks21).header.alg, 'PS256');
  srv.child.kill('SIGTERM');
  assert.ok(await waitExit(srv.child), 'still running');
});

if (srv.child.exitCode === null && srv.child.signalCode === null) srv.child.kill('SIGKILL');
rmSync(tmp, { recursive: true, force: true });

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
