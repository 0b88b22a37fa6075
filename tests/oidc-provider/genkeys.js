#!/usr/bin/env node
// Generates a private JWKS usable as the KEYS_FILE of server.js.
//
//   node genkeys.js <out.json> [kid-prefix]
//
// The set holds one signing key per algorithm tokengate's tests use, each with
// a distinct `kid`, its `alg` and `use: "sig"`:
//   ES256 (EC P-256), RS256 (RSA 2048), PS256 (a separate RSA 2048 key), EdDSA (Ed25519).
// kids look like `<prefix>-es256-<random>`; the prefix (default "k") makes it
// easy to tell two generations apart in a key-rotation test.
//
// Only node:crypto is used (no extra npm dependency). server.js imports
// generateJwks() from here when KEYS_FILE is not set.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';

const SPECS = [
  { alg: 'ES256', type: 'ec', options: { namedCurve: 'P-256' } },
  { alg: 'RS256', type: 'rsa', options: { modulusLength: 2048 } },
  { alg: 'PS256', type: 'rsa', options: { modulusLength: 2048 } },
  { alg: 'EdDSA', type: 'ed25519', options: {} },
];

export function generateJwks(prefix = 'k') {
  const keys = SPECS.map(({ alg, type, options }) => {
    const { privateKey } = generateKeyPairSync(type, options);
    const jwk = privateKey.export({ format: 'jwk' });
    const kid = `${prefix}-${alg.toLowerCase()}-${randomBytes(4).toString('hex')}`;
    return {
      kid, alg, use: 'sig', ...jwk,
    };
  });
  return { keys };
}

const isMain = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);

if (isMain) {
  const [out, prefix] = process.argv.slice(2);
  if (!out) {
    process.stderr.write('usage: node genkeys.js <out.json> [kid-prefix]\n');
    process.exit(2);
  }
  const jwks = generateJwks(prefix);
  writeFileSync(out, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
  process.stderr.write(`wrote ${out}: ${jwks.keys.map((k) => `${k.alg}=${k.kid}`).join(' ')}\n`);
}
