#!/usr/bin/env node
// Minimal OpenID Connect relying party used by the Python test suite to check
// the provider against panva's openid-client (v6), a strict certified RP.
//
// Usage: node rp.mjs start|finish|refresh  < request.json  > result.json
//
// Reads exactly one JSON object from stdin and writes exactly one JSON object
// to stdout. On any failure it writes
//   {"error": <name>, "message": <text>, "code": <err.code or null>, ...}
// to stdout and exits with status 1. See README.md for the contract.

import { createHash } from 'node:crypto';
import * as client from 'openid-client';

class RPCheckError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'RPCheckError';
    this.code = code;
  }
}

async function readStdinJson() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) throw new RPCheckError('expected one JSON object on stdin, got nothing', 'RP_BAD_INPUT');
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RPCheckError(`stdin is not valid JSON: ${err.message}`, 'RP_BAD_INPUT');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new RPCheckError('stdin must hold a JSON object', 'RP_BAD_INPUT');
  }
  return value;
}

function required(input, name) {
  const value = input[name];
  if (typeof value !== 'string' || value === '') {
    throw new RPCheckError(`input field "${name}" must be a non-empty string`, 'RP_BAD_INPUT');
  }
  return value;
}

function optionalString(input, name) {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    throw new RPCheckError(`input field "${name}" must be a string or null`, 'RP_BAD_INPUT');
  }
  return value;
}

function clientAuth(input, clientSecret) {
  // Default (as openid-client's own default): client_secret_post when a secret
  // is given, none (public client) otherwise.
  const method = optionalString(input, 'token_endpoint_auth_method');
  switch (method) {
    case undefined:
      return clientSecret ? undefined : client.None();
    case 'client_secret_post':
      return client.ClientSecretPost(clientSecret);
    case 'client_secret_basic':
      return client.ClientSecretBasic(clientSecret);
    case 'none':
      return client.None();
    default:
      throw new RPCheckError(`unsupported token_endpoint_auth_method "${method}"`, 'RP_BAD_INPUT');
  }
}

async function configure(input) {
  const issuer = required(input, 'issuer');
  const clientId = required(input, 'client_id');
  const clientSecret = optionalString(input, 'client_secret');
  const timeout = input.timeout ?? 10;
  return client.discovery(
    new URL(issuer),
    clientId,
    clientSecret ?? undefined,
    clientAuth(input, clientSecret),
    {
      timeout,
      // http:// issuers on loopback are used in tests; enableNonRepudiationChecks
      // makes openid-client verify ID token signatures against the jwks_uri
      // (by default it trusts the TLS-protected token endpoint response).
      execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
    },
  );
}

// openid-client does not check at_hash (optional in the code flow); do it here
// when the claim is present (OIDC Core 3.1.3.8 / 3.2.2.9).
function hashNameForAlg(alg) {
  if (/^(RS|PS|ES|HS)256$/.test(alg) || alg === 'ES256K') return 'sha256';
  if (/^(RS|PS|ES|HS)384$/.test(alg)) return 'sha384';
  if (/^(RS|PS|ES|HS)512$/.test(alg)) return 'sha512';
  if (alg === 'EdDSA' || alg === 'Ed25519') return 'sha512';
  return undefined;
}

function checkAtHash(tokens) {
  const claims = tokens.claims();
  if (!claims || claims.at_hash === undefined) return;
  if (typeof claims.at_hash !== 'string') {
    throw new RPCheckError('ID Token "at_hash" claim must be a string', 'RP_AT_HASH_MISMATCH');
  }
  const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url').toString('utf8'));
  const hashName = hashNameForAlg(header.alg);
  if (!hashName) {
    throw new RPCheckError(`cannot check "at_hash" for JWS alg "${header.alg}"`, 'RP_AT_HASH_MISMATCH');
  }
  const digest = createHash(hashName).update(tokens.access_token, 'ascii').digest();
  const expected = digest.subarray(0, digest.length / 2).toString('base64url');
  if (claims.at_hash !== expected) {
    throw new RPCheckError(
      `ID Token "at_hash" claim does not match the access token (expected ${expected}, got ${claims.at_hash})`,
      'RP_AT_HASH_MISMATCH',
    );
  }
}

function tokenFields(tokens) {
  return {
    access_token: tokens.access_token,
    refresh_token: tokens.refresh_token ?? null,
    id_token: tokens.id_token ?? null,
    // openid-client lower-cases token_type ("Bearer" -> "bearer").
    token_type: tokens.token_type,
    expires_in: tokens.expires_in ?? null,
    scope: tokens.scope ?? null,
  };
}

async function start(input) {
  const config = await configure(input);
  const redirectUri = required(input, 'redirect_uri');
  const scope = optionalString(input, 'scope') ?? 'openid';
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const parameters = {
    ...(input.extra_params ?? {}),
    redirect_uri: redirectUri,
    scope,
    code_challenge: codeChallenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  const url = client.buildAuthorizationUrl(config, parameters);
  return { authorization_url: url.href, code_verifier: codeVerifier, state, nonce };
}

async function finish(input) {
  const config = await configure(input);
  const callbackUrl = new URL(required(input, 'callback_url'));
  const checks = {
    pkceCodeVerifier: required(input, 'code_verifier'),
    expectedState: optionalString(input, 'state'),
    expectedNonce: optionalString(input, 'nonce'),
    idTokenExpected: true,
  };
  if (input.max_age !== undefined && input.max_age !== null) checks.maxAge = input.max_age;
  const tokens = await client.authorizationCodeGrant(config, callbackUrl, checks);
  checkAtHash(tokens);
  const claims = tokens.claims();
  let userinfo = null;
  if (input.userinfo !== false) {
    userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  }
  return { claims, userinfo, ...tokenFields(tokens) };
}

async function refresh(input) {
  const config = await configure(input);
  const tokens = await client.refreshTokenGrant(config, required(input, 'refresh_token'));
  checkAtHash(tokens);
  return { claims: tokens.claims() ?? null, ...tokenFields(tokens) };
}

function causeText(err) {
  const parts = [];
  let cause = err?.cause;
  for (let depth = 0; cause && depth < 5; depth += 1) {
    if (typeof Response !== 'undefined' && cause instanceof Response) {
      parts.push(`HTTP ${cause.status} from ${cause.url || 'server'}`);
      break;
    } else if (cause instanceof Error) {
      parts.push(cause.code ? `${cause.message} [${cause.code}]` : cause.message);
      cause = cause.cause;
    } else {
      try {
        parts.push(JSON.stringify(cause));
      } catch {
        parts.push(String(cause));
      }
      break;
    }
  }
  const text = parts.join(': ');
  return text ? (text.length > 1000 ? `${text.slice(0, 1000)}...` : text) : null;
}

function errorObject(err) {
  return {
    error: err?.name ?? 'Error',
    message: err?.message ?? String(err),
    code: err?.code ?? null,
    // Extra detail (OAuth error responses and nested causes), null when absent.
    oauth_error: typeof err?.error === 'string' ? err.error : null,
    error_description: typeof err?.error_description === 'string' ? err.error_description : null,
    status: typeof err?.status === 'number'
      ? err.status
      : (typeof err?.cause?.status === 'number' ? err.cause.status : null),
    cause: causeText(err),
  };
}

const commands = { start, finish, refresh };

async function main() {
  const command = process.argv[2];
  let output;
  let status = 0;
  try {
    if (!Object.hasOwn(commands, command ?? '')) {
      throw new RPCheckError(`usage: node rp.mjs start|finish|refresh < input.json (got ${JSON.stringify(command ?? null)})`, 'RP_BAD_USAGE');
    }
    const input = await readStdinJson();
    output = await commands[command](input);
  } catch (err) {
    output = errorObject(err);
    status = 1;
  }
  process.stdout.write(`${JSON.stringify(output)}\n`, () => process.exit(status));
}

main();
