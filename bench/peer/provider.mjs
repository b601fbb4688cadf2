// node-oidc-provider, configured as the project is, for `make bench` to measure
// beside it on the same core: RS256 (or ES256), PKCE, JWT access tokens for
// client_credentials, rotating refresh tokens, introspection, a password
// sign-in page whose password is checked with argon2id at the cost the
// project ships (its [passwords] defaults, sent in SETUP_JSON), consent
// remembered, and an unbounded in-memory store (a Map: nothing is evicted).
//
//   node provider.mjs PORT ISSUER SETUP_JSON
//
// SETUP_JSON names the clients and the member to create; the provider prints
// "ready" on stdout once it listens on 127.0.0.1:PORT.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import argon2 from 'argon2';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

const [port, issuer, setupPath] = process.argv.slice(2);
const setup = JSON.parse(readFileSync(setupPath, 'utf8'));

// --- an unbounded store -------------------------------------------------------------
// The package's own memory adapter keeps at most 1,000 entries (an LRU); the
// benchmark stores more than that, so this one keeps everything, as a Map.

const store = new Map();
const grantMembers = new Map(); // grantId -> Set of keys

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload) {
    const key = this.key(id);
    store.set(key, payload);
    if (this.model === 'Session') store.set(`sessionUid:${payload.uid}`, id);
    if (payload.grantId) {
      if (!grantMembers.has(payload.grantId)) grantMembers.set(payload.grantId, new Set());
      grantMembers.get(payload.grantId).add(key);
    }
  }

  async find(id) {
    return store.get(this.key(id));
  }

  async findByUid(uid) {
    const id = store.get(`sessionUid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode() {
    return undefined;
  }

  async consume(id) {
    const payload = store.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of grantMembers.get(grantId) ?? []) store.delete(key);
    grantMembers.delete(grantId);
  }
}

// --- keys, accounts, clients --------------------------------------------------------

// RS256 unless SETUP_JSON says ES256 (`bench.run --algorithm`), as the project's keys.algorithm.
const alg = setup.algorithm ?? 'RS256';
const { privateKey } = await generateKeyPair(alg, {
  extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}),
});
const jwk = { ...(await exportJWK(privateKey)), kid: `bench-${alg.toLowerCase()}`, alg, use: 'sig' };

const member = setup.member;
const passwordHash = await argon2.hash(member.password, {
  type: argon2.argon2id, ...setup.password_cost,
});
const accounts = new Map([[member.username, { id: member.sub, ...member }]]);

const API = 'urn:bench:api';

const configuration = {
  adapter: MapAdapter,
  jwks: { keys: [jwk] },
  clients: [
    {
      client_id: setup.admin.client_id,
      client_secret: setup.admin.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: 'api',
      id_token_signed_response_alg: alg, // none issued; the package checks a key exists
    },
    {
      client_id: setup.web.client_id,
      client_secret: setup.web.client_secret,
      grant_types: ['authorization_code', 'refresh_token'],
      redirect_uris: [setup.web.redirect_uri],
      response_types: ['code'],
      id_token_signed_response_alg: alg,
      scope: 'openid profile email offline_access',
    },
  ],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'profile', 'email', 'offline_access', 'api'],
  pkce: { required: () => true },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: 900,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 900,
    Grant: 30 * 86400,
    Session: 30 * 86400,
    RefreshToken: 30 * 86400,
    ClientCredentials: 900,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // client_credentials asks for the API; the code flow's tokens are for UserInfo.
      defaultResource: (ctx) => (ctx.oidc.params?.grant_type === 'client_credentials' ? API : undefined),
      useGrantedResource: () => false,
      getResourceServerInfo: () => ({
        scope: 'api',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 900,
        jwt: { sign: { alg } },
      }),
    },
  },
  async findAccount(ctx, sub) {
    if (sub !== member.sub) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: member.name,
          preferred_username: member.username,
          email: member.email,
          email_verified: true,
        };
      },
    };
  },
  // Consent is remembered: the first sign-in's grant serves every later one.
  async loadExistingGrant(ctx) {
    const { Grant } = ctx.oidc.provider;
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const found = await Grant.find(grantId);
      if (found) return found;
    }
    const grant = new Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email offline_access');
    grant.addOIDCClaims(['sub', 'name', 'preferred_username', 'email', 'email_verified']);
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
};

const provider = new Provider(issuer, configuration);
provider.proxy = false;

// --- the sign-in page (node-oidc-provider's example routes, reduced) -----------------

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 65536) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(\/login)?$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET' && !match[2]) {
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'html';
    ctx.body = `<!doctype html><html lang="en"><title>Sign in</title>
<form id="login-form" method="post" action="/interaction/${escape(details.uid)}/login">
<input name="username" autocomplete="username"><input name="password" type="password">
<button type="submit">Sign in</button></form></html>`;
    return undefined;
  }
  if (ctx.method === 'POST' && match[2]) {
    const form = await readForm(ctx.req);
    const account = accounts.get(form.get('username') ?? '');
    const ok = await argon2.verify(passwordHash, form.get('password') ?? '');
    if (!account || !ok) {
      ctx.status = 200;
      ctx.type = 'html';
      ctx.body = '<p role="alert">The user ID or password is incorrect.</p>';
      return undefined;
    }
    const target = await provider.interactionResult(ctx.req, ctx.res, {
      login: { accountId: account.id },
    }, { mergeWithLastSubmission: false });
    ctx.status = 303;
    ctx.redirect(target);
    return undefined;
  }
  return next();
});

createServer(provider.callback()).listen(Number(port), '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
