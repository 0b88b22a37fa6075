#!/usr/bin/env node
// A real MCP client, the official TypeScript SDK, against an MCP server behind
// tokengate (examples/mcp_server), run by examples/mcp_server/tests/mcp_client.rs.
//
// It connects the way any OAuth-enabled MCP client does: the first request has
// no token and gets a 401 whose `resource_metadata` names the RFC 9728
// document; the SDK reads it, discovers the authorization server from
// `authorization_servers`, gets a token with the client credentials grant and
// `resource=<the MCP URL>` (RFC 8707), and retries. Then: tools/list, calls the
// token's scopes allow, and one they do not (403 insufficient_scope, where the
// SDK tries its step-up path).
//
// Environment: MCP_URL, ISSUER (the authorization server the credentials are
// for), CLIENT_ID, CLIENT_SECRET, SCOPE (what the client asks for), DENIED_TOOL
// (a tool SCOPE does not allow).
//
// stdout: one JSON object per line, `{"step": ...}`, ending with
// `{"step":"done"}`; the Rust test asserts on them. No line holds a token or a
// secret: HTTP exchanges are recorded as method, URL, status and
// WWW-Authenticate, token responses as the claims of the token.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const MCP_URL = env('MCP_URL');
const ISSUER = env('ISSUER');
const DENIED_TOOL = env('DENIED_TOOL');

const emit = (step, fields = {}) => process.stdout.write(`${JSON.stringify({ step, ...fields })}\n`);

// The SDK's own console output (warnings) must not mix with the JSON lines.
console.log = (...args) => console.error(...args); // eslint-disable-line no-console
console.warn = (...args) => console.error(...args); // eslint-disable-line no-console

function jwtClaims(token) {
  try {
    return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

// Every HTTP exchange the SDK makes, in order, without credentials.
async function recordingFetch(input, init = {}) {
  const url = input instanceof Request ? input.url : String(input);
  const method = init.method ?? (input instanceof Request ? input.method : 'GET');
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  const exchange = { method, url, authorization: headers.has('authorization') };
  if (init.body instanceof URLSearchParams) {
    // A token request: what was asked for (never the client's secret).
    exchange.form = {
      grant_type: init.body.get('grant_type'),
      scope: init.body.get('scope'),
      resource: init.body.get('resource'),
    };
  } else if (typeof init.body === 'string') {
    try {
      const message = JSON.parse(init.body);
      exchange.jsonrpc = Array.isArray(message) ? message.map((m) => m.method) : message.method;
      if (message?.method === 'tools/call') exchange.tool = message.params?.name;
    } catch {
      // not JSON-RPC
    }
  }
  const response = await fetch(input, init);
  exchange.status = response.status;
  const challenge = response.headers.get('www-authenticate');
  if (challenge) exchange.www_authenticate = challenge;
  if (exchange.form && response.ok) {
    const body = await response.clone().json();
    const claims = jwtClaims(body.access_token);
    exchange.token = {
      token_type: body.token_type,
      scope: body.scope,
      aud: claims?.aud,
      client_id: claims?.client_id,
      iss: claims?.iss,
    };
  }
  emit('http', exchange);
  return response;
}

const provider = new ClientCredentialsProvider({
  clientId: env('CLIENT_ID'),
  clientSecret: env('CLIENT_SECRET'),
  scope: env('SCOPE'),
  expectedIssuer: ISSUER,
  clientName: 'tokengate mcp-client test',
});
const transport = new StreamableHTTPClientTransport(new URL(MCP_URL), {
  authProvider: provider,
  fetch: recordingFetch,
});
const client = new Client({ name: 'tokengate-mcp-client-test', version: '0.0.0' });

function describeError(err) {
  return { name: err?.name, code: err?.code, message: String(err?.message ?? err) };
}

async function call(name, args = {}) {
  try {
    const result = await client.callTool({ name, arguments: args });
    emit('call', { tool: name, ok: true, isError: result.isError ?? false, structured: result.structuredContent ?? null });
  } catch (err) {
    emit('call', { tool: name, ok: false, error: describeError(err) });
  }
}

let exitCode = 0;
try {
  await client.connect(transport);
  emit('initialized', {
    server: client.getServerVersion(),
    protocol_version: transport.protocolVersion ?? null,
    tools_capability: Boolean(client.getServerCapabilities()?.tools),
  });
  const { tools } = await client.listTools();
  emit('tools', { names: tools.map((t) => t.name).sort() });
  await call('whoami');
  await call('list_items');
  await call('add_item', { name: 'from the TypeScript SDK' });
  await call('list_items');
  await call(DENIED_TOOL);
  // The connection still works after a refusal.
  await call('whoami');
} catch (err) {
  emit('failed', { error: describeError(err) });
  exitCode = 1;
} finally {
  await client.close().catch(() => {});
}
emit('done');
process.exit(exitCode);
