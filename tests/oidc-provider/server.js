#!/usr/bin/env node
// Test-only OAuth 2.0 authorization server for tokengate's interop tests.
// Runs the OpenID-certified `oidc-provider` (8.x) on 127.0.0.1. See README.md.
//
// stdout carries exactly one line, `READY http://127.0.0.1:<port>`, once the
// server accepts requests; everything else (oidc-provider notices, logs) goes
// to stderr. The process exits when its stdin closes (so a crashed test never
// leaves it behind) and on SIGTERM / SIGINT / SIGHUP.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

import { generateJwks } from './genkeys.js';

// Keep stdout for the READY line only: oidc-provider prints its notices with
// console.info, which goes to stdout.
const toStderr = (...args) => console.error(...args); // eslint-disable-line no-console
console.log = toStderr; // eslint-disable-line no-console
console.info = toStderr; // eslint-disable-line no-console

const HOST = '127.0.0.1';

function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const PORT = envInt('PORT', 0);
const TOKEN_TTL = envInt('TOKEN_TTL', undefined); // seconds; undefined = oidc-provider defaults
const AUDIENCE = process.env.AUDIENCE || 'http://127.0.0.1/api';
const OTHER_AUDIENCE = process.env.OTHER_AUDIENCE || 'http://127.0.0.1/other-api';
const APP_ALG = process.env.APP_ALG || 'ES256';
const EXIT_ON_STDIN_CLOSE = process.env.EXIT_ON_STDIN_CLOSE !== '0';

const API_SCOPES = ['items:read', 'items:write', 'admin'];
const RESOURCE_SERVERS = new Set([AUDIENCE, OTHER_AUDIENCE]);
// MCP servers under test (examples/mcp_server) listen on a free loopback port:
// their resource indicator, and so the token `aud`, is their MCP endpoint.
const MCP_RESOURCE = /^http:\/\/127\.0\.0\.1:[0-9]{1,5}\/mcp$/;
const ALGS = new Set(['ES256', 'RS256', 'PS256', 'EdDSA']);

if (!ALGS.has(APP_ALG)) throw new Error(`APP_ALG must be one of ${[...ALGS].join(', ')}`);

// ---- signing keys ---------------------------------------------------------

let jwks;
if (process.env.KEYS_FILE) {
  jwks = JSON.parse(readFileSync(process.env.KEYS_FILE, 'utf8'));
} else {
  jwks = generateJwks('gen');
}
for (const alg of ALGS) {
  if (!jwks.keys.some((k) => k.alg === alg)) {
    console.error(`warning: no key with alg ${alg} in the JWKS; clients using it will fail`);
  }
}

// ---- clients --------------------------------------------------------------

// Access-token policy per client for the API resource servers:
// format (jwt|opaque), JWS alg for jwt, and the API scopes the client may get.
const POLICY = {
  'cc-es256': { format: 'jwt', alg: 'ES256', scopes: API_SCOPES },
  'cc-rs256': { format: 'jwt', alg: 'RS256', scopes: API_SCOPES },
  'cc-ps256': { format: 'jwt', alg: 'PS256', scopes: API_SCOPES },
  'cc-eddsa': { format: 'jwt', alg: 'EdDSA', scopes: API_SCOPES },
  'cc-readonly': { format: 'jwt', alg: 'ES256', scopes: ['items:read'] },
  'cc-opaque': { format: 'opaque', scopes: API_SCOPES },
  // Tokens that carry roles and a step-up `acr` (see extraTokenClaims).
  'cc-auditor': { format: 'jwt', alg: 'ES256', scopes: API_SCOPES },
  'cc-auditor-opaque': { format: 'opaque', scopes: API_SCOPES },
  app: { format: 'jwt', alg: APP_ALG, scopes: API_SCOPES },
  'app-opaque': { format: 'opaque', scopes: API_SCOPES },
};

const ccClient = (id) => ({
  client_id: id,
  client_secret: `${id}-secret`,
  token_endpoint_auth_method: 'client_secret_basic',
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
});

const publicApp = (id) => ({
  client_id: id,
  token_endpoint_auth_method: 'none',
  application_type: 'native', // allows the plain-http loopback redirect_uri
  grant_types: [
    'authorization_code',
    'refresh_token',
    'urn:ietf:params:oauth:grant-type:device_code',
  ],
  response_types: ['code'],
  redirect_uris: ['http://127.0.0.1/cb'],
});

const clients = [
  ccClient('cc-es256'),
  ccClient('cc-rs256'),
  ccClient('cc-ps256'),
  ccClient('cc-eddsa'),
  ccClient('cc-readonly'),
  ccClient('cc-opaque'),
  ccClient('cc-auditor'),
  ccClient('cc-auditor-opaque'),
  publicApp('app'),
  publicApp('app-opaque'),
  {
    // The resource server's own credentials, for the introspection endpoint only.
    client_id: 'resource-server',
    client_secret: 'resource-server-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
];

// ---- resource indicators (RFC 8707) ---------------------------------------

async function getResourceServerInfo(ctx, resourceIndicator, client) {
  if (!RESOURCE_SERVERS.has(resourceIndicator) && !MCP_RESOURCE.test(resourceIndicator)) {
    throw new errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
  }
  const policy = POLICY[client.clientId];
  if (!policy) {
    throw new errors.InvalidTarget(`client ${client.clientId} may not request access tokens for APIs`);
  }

  // Refuse (rather than silently drop) API scopes the client is not allowed.
  const requested = (ctx.oidc.params.scope || '').split(' ').filter(Boolean);
  for (const scope of requested) {
    if (API_SCOPES.includes(scope) && !policy.scopes.includes(scope)) {
      throw new errors.InvalidScope('requested scope is not allowed', scope);
    }
  }

  const info = {
    scope: policy.scopes.join(' '),
    audience: resourceIndicator,
    accessTokenFormat: policy.format,
  };
  if (TOKEN_TTL !== undefined) info.accessTokenTTL = TOKEN_TTL;
  if (policy.format === 'jwt') info.jwt = { sign: { alg: policy.alg } };
  return info;
}

// ---- introspection policy -------------------------------------------------

// A client may introspect its own tokens; `resource-server` may introspect any
// access token whose audience is AUDIENCE (whoever it was issued to). Anything
// else is answered with {"active": false}.
async function introspectionAllowedPolicy(ctx, caller, token) {
  if (caller.clientId === token.clientId) return true;
  if (caller.clientId === 'resource-server') {
    if (token.kind === 'RefreshToken') return false;
    const aud = Array.isArray(token.aud) ? token.aud : [token.aud];
    return aud.includes(AUDIENCE);
  }
  return false;
}

// ---- provider -------------------------------------------------------------

function configuration() {
  return {
    clients,
    jwks,
    // The auditor clients' access tokens carry a role and the RFC 9470
    // claims of a multi-factor login: top-level claims in a JWT, top-level
    // members of the introspection answer for an opaque token.
    extraTokenClaims: async (ctx, token) => {
      if (!String(token.clientId).startsWith('cc-auditor')) return undefined;
      return {
        roles: ['auditor'],
        acr: 'urn:tokengate:mfa',
        auth_time: Math.floor(Date.now() / 1000),
      };
    },
    scopes: ['openid', 'offline_access'],
    claims: { openid: ['sub'] },
    cookies: {
      keys: ['tokengate-test-cookie-signing-key'],
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    pkce: {
      methods: ['S256'],
      required: () => true,
    },
    // Clients allowed the refresh_token grant always get one (no need for
    // offline_access + prompt=consent), and it does not die with the session.
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      // RFC 9449: a token request with a DPoP proof gets a DPoP-bound token.
      dPoP: { enabled: true },
      introspection: { enabled: true, allowedPolicy: introspectionAllowedPolicy },
      revocation: { enabled: true },
      deviceFlow: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // No `resource` parameter means the main API.
        defaultResource: async (ctx, client, oneOf) => (oneOf ? oneOf : AUDIENCE),
        // At the token endpoint, a code/refresh token granted for one API
        // yields an access token for it even without `resource` (and even
        // with the `openid` scope).
        useGrantedResource: async () => true,
        getResourceServerInfo,
      },
    },
    ttl: {
      AccessToken: (ctx, token) => TOKEN_TTL ?? token.resourceServer?.accessTokenTTL ?? 60 * 60,
      ClientCredentials: (ctx, token) => TOKEN_TTL ?? token.resourceServer?.accessTokenTTL ?? 10 * 60,
      AuthorizationCode: 60,
      DeviceCode: 10 * 60,
      IdToken: 60 * 60,
      RefreshToken: 14 * 24 * 60 * 60,
      Interaction: 60 * 60,
      Session: 14 * 24 * 60 * 60,
      Grant: 14 * 24 * 60 * 60,
    },
  };
}

// ---- lifecycle ------------------------------------------------------------

const server = createServer();
const sockets = new Set();
server.on('connection', (s) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
});

let exiting = false;
function shutdown(reason, code = 0) {
  if (exiting) return;
  exiting = true;
  console.error(`oidc-provider test server: shutting down (${reason})`);
  for (const s of sockets) s.destroy();
  server.close();
  process.exit(code);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGHUP', () => shutdown('SIGHUP'));
if (EXIT_ON_STDIN_CLOSE) {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.on('data', () => {});
  process.stdin.resume();
}

server.on('error', (err) => {
  console.error(`oidc-provider test server: ${err.message}`);
  shutdown('listen error', 1);
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  const issuer = `http://${HOST}:${port}`;
  const provider = new Provider(issuer, configuration());
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  const callback = provider.callback();
  server.on('request', callback);
  process.stdout.write(`READY ${issuer}\n`);
});
