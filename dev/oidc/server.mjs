// Local OIDC provider for the development/test stack.
//
// A thin configuration of the `oidc-provider` package (https://github.com/panva/node-oidc-provider):
// oidc-provider implements the endpoints and issues/signs the tokens; this file only maps our
// JSON config onto it. Only the OAuth2 client-credentials grant is enabled; access tokens are
// RS256-signed JWTs carrying `preferred_username` (and `sun`, for Slurm) = the client's username.
//
// Usage: node server.mjs CONFIG.json   (see README.md for the config format)

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

function fail(message, code = 2) {
  process.stderr.write(`oidc: ${message}\n`);
  process.exit(code);
}

// ---------------------------------------------------------------------------------------------
// Configuration

function loadConfig(path) {
  if (!path) fail('usage: node server.mjs CONFIG.json');
  let raw;
  try {
    raw = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (err) {
    fail(`cannot read config ${path}: ${err.message}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) fail('config must be a JSON object');

  const host = raw.host ?? '127.0.0.1';
  if (typeof host !== 'string' || !host) fail('config "host" must be a non-empty string');
  const { port } = raw;
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail('config "port" must be an integer in 1..65535');
  const issuer = raw.issuer ?? `http://${host}:${port}`;
  if (typeof issuer !== 'string') fail('config "issuer" must be a string');
  const audience = raw.audience ?? 'firecrest';
  if (typeof audience !== 'string' || !audience) fail('config "audience" must be a non-empty string');
  const tokenTtl = raw.token_ttl ?? 300;
  if (!Number.isInteger(tokenTtl) || tokenTtl < 1) fail('config "token_ttl" must be a positive integer (seconds)');
  if (typeof raw.signing_key_file !== 'string' || !raw.signing_key_file) fail('config "signing_key_file" must be a path');
  if (!Array.isArray(raw.clients) || raw.clients.length === 0) fail('config "clients" must be a non-empty array');

  const seen = new Set();
  const clients = raw.clients.map((c, i) => {
    for (const field of ['client_id', 'client_secret', 'username']) {
      if (typeof c?.[field] !== 'string' || !c[field]) fail(`config clients[${i}].${field} must be a non-empty string`);
    }
    if (seen.has(c.client_id)) fail(`config clients[${i}]: duplicate client_id ${JSON.stringify(c.client_id)}`);
    seen.add(c.client_id);
    return { clientId: c.client_id, clientSecret: c.client_secret, username: c.username };
  });

  // Dev-only: one client that may ask for a token naming any of a list of usernames, so a stack
  // with 1,000 extra users needs one client, not 1,000 (see README.md "Extra users").
  let extraUsers = null;
  if (raw.extra_users !== undefined) {
    const e = raw.extra_users;
    for (const field of ['client_id', 'client_secret']) {
      if (typeof e?.[field] !== 'string' || !e[field]) fail(`config extra_users.${field} must be a non-empty string`);
    }
    if (!Array.isArray(e.usernames) || e.usernames.some((u) => typeof u !== 'string' || !u)) {
      fail('config extra_users.usernames must be an array of non-empty strings');
    }
    if (seen.has(e.client_id)) fail(`config extra_users.client_id ${JSON.stringify(e.client_id)} is also a client's`);
    const named = new Set(clients.map((c) => c.username));
    const clash = e.usernames.find((u) => named.has(u));
    if (clash) fail(`config extra_users.usernames: ${JSON.stringify(clash)} already has a client of its own`);
    extraUsers = { clientId: e.client_id, clientSecret: e.client_secret, usernames: new Set(e.usernames) };
  }

  return {
    host, port, issuer, audience, tokenTtl, signingKeyFile: raw.signing_key_file, clients, extraUsers,
  };
}

// RSA private key (PEM, PKCS#8 or PKCS#1) -> private JWK with an RFC 7638 thumbprint as `kid`.
function loadSigningJwk(path) {
  let key;
  try {
    key = crypto.createPrivateKey(fs.readFileSync(path));
  } catch (err) {
    fail(`cannot load signing key ${path}: ${err.message}`);
  }
  if (key.asymmetricKeyType !== 'rsa') fail(`signing key ${path} must be an RSA private key (got ${key.asymmetricKeyType})`);
  const jwk = key.export({ format: 'jwk' });
  const thumbprint = crypto.createHash('sha256')
    .update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n }))
    .digest('base64url');
  return {
    ...jwk, kid: thumbprint, alg: 'RS256', use: 'sig',
  };
}

// ---------------------------------------------------------------------------------------------
// Minimal in-memory adapter. Functionally the same as oidc-provider's built-in memory adapter,
// but passing our own keeps the provider from printing its "development-only adapter" warning.
// JWT-format access tokens are not stored at all; this only holds short-lived bookkeeping
// (e.g. replay detection), so losing it on restart is fine for a dev/test provider.

const store = new Map();

function sweep() {
  const now = Date.now();
  for (const [key, entry] of store) {
    if (entry.expiresAt !== undefined && entry.expiresAt <= now) store.delete(key);
  }
}
setInterval(sweep, 60_000).unref();

class MemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    store.set(this.key(id), { payload, expiresAt });
    if (payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      const keys = store.get(grantKey)?.payload ?? [];
      keys.push(this.key(id));
      store.set(grantKey, { payload: keys, expiresAt });
    }
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, { payload: id, expiresAt });
    if (payload.uid) store.set(`uid:${payload.uid}`, { payload: id, expiresAt });
  }

  #get(key) {
    const entry = store.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  async find(id) {
    return this.#get(this.key(id));
  }

  async findByUserCode(userCode) {
    const id = this.#get(`userCode:${userCode}`);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUid(uid) {
    const id = this.#get(`uid:${uid}`);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = this.#get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `grant:${grantId}`;
    for (const key of this.#get(grantKey) ?? []) store.delete(key);
    store.delete(grantKey);
  }
}

// ---------------------------------------------------------------------------------------------
// Provider

const config = loadConfig(process.argv[2]);
const signingJwk = loadSigningJwk(config.signingKeyFile);
const usernames = new Map(config.clients.map((c) => [c.clientId, c.username]));
const { extraUsers } = config;
// The extra-users client names its user in the scope parameter, the one free-form parameter the
// client-credentials grant passes through: scope=stack-user:user0042.
const EXTRA_USER_SCOPE = 'stack-user:';

function extraUsername(ctx) {
  const requested = (ctx.oidc.params?.scope ?? '').split(' ')
    .filter((s) => s.startsWith(EXTRA_USER_SCOPE))
    .map((s) => s.slice(EXTRA_USER_SCOPE.length));
  if (requested.length !== 1) {
    throw new errors.InvalidScope(`name exactly one extra user as scope ${EXTRA_USER_SCOPE}NAME`);
  }
  if (!extraUsers.usernames.has(requested[0])) {
    throw new errors.InvalidScope('not one of the stack\'s extra users');
  }
  return requested[0];
}

// Resource indicator (RFC 8707) that every token request is defaulted to. The audience itself is
// accepted too when it is an absolute URI (resource indicators must be absolute URIs).
const DEFAULT_RESOURCE = `urn:dev-oidc:resource:${encodeURIComponent(config.audience)}`;
const acceptedResources = new Set([DEFAULT_RESOURCE]);
if (URL.canParse?.(config.audience) ?? /^[a-z][a-z0-9+.-]*:/i.test(config.audience)) {
  acceptedResources.add(config.audience);
}

const registered = extraUsers ? [...config.clients, extraUsers] : config.clients;

const provider = new Provider(config.issuer, {
  adapter: MemoryAdapter,
  clients: registered.map((c) => ({
    client_id: c.clientId,
    client_secret: c.clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    // oidc-provider v8 treats client_secret_basic and client_secret_post as interchangeable at
    // the token endpoint: a client registered with either one may authenticate with both.
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  scopes: ['openid'],
  ttl: { ClientCredentials: config.tokenTtl },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    introspection: { enabled: false },
    revocation: { enabled: false },
    // Not needed for client credentials; keeps discovery close to what the stack uses.
    pushedAuthorizationRequests: { enabled: false },
    userinfo: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // A client_credentials request without `resource` is defaulted to our single resource
      // server, so it gets a JWT access token instead of an opaque one.
      defaultResource: async () => DEFAULT_RESOURCE,
      // Only consulted by authorization_code/refresh_token flows (not enabled here).
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        if (!acceptedResources.has(resourceIndicator)) throw new errors.InvalidTarget();
        return {
          scope: 'openid',
          audience: config.audience,
          accessTokenTTL: config.tokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  formats: {
    customizers: {
      // `typ: JWT` instead of RFC 9068's `at+jwt`: the libjwt 1.10 under Slurm 22.05's
      // auth/jwt refuses any other `typ` ("jwt_decode failure: Invalid argument"), and
      // slurmrestd must accept the same tokens as the API server.
      jwt: async (ctx, token, jwt) => {
        jwt.header = { ...jwt.header, typ: 'JWT' };
      },
    },
  },
  extraTokenClaims: async (ctx, token) => {
    if (extraUsers && token.clientId === extraUsers.clientId) {
      return { preferred_username: extraUsername(ctx) };
    }
    const username = usernames.get(token.clientId);
    // `sun` ("slurm user name") is the claim Slurm's auth/jwt (22.05) takes the user from, so
    // that slurmrestd accepts the same token the API server does.
    return username === undefined ? undefined : { preferred_username: username, sun: username };
  },
});

// Errors caused by the server itself (never includes secrets or tokens).
provider.on('server_error', (ctx, err) => {
  process.stderr.write(`oidc: server error: ${err?.stack ?? err}\n`);
});
// Rejected token requests, one line each, with the client id but no credentials.
provider.on('grant.error', (ctx, err) => {
  const clientId = ctx.oidc?.client?.clientId ?? ctx.oidc?.authorization?.clientId ?? '?';
  const detail = err.error_detail ?? err.error_description;
  process.stderr.write(`oidc: token request rejected (client ${clientId}): ${err.error}${detail ? ` - ${detail}` : ''}\n`);
});

// ---------------------------------------------------------------------------------------------
// HTTP server

const server = http.createServer(provider.callback());

server.on('error', (err) => {
  if (err.code === 'EADDRINUSE') fail(`port ${config.host}:${config.port} is already in use`, 1);
  if (err.code === 'EADDRNOTAVAIL') fail(`cannot bind ${config.host}:${config.port}: address not available`, 1);
  if (err.code === 'EACCES') fail(`cannot bind ${config.host}:${config.port}: permission denied`, 1);
  fail(`server error: ${err.message}`, 1);
});

server.listen(config.port, config.host, () => {
  const { address, port } = server.address();
  const shown = address.includes(':') ? `[${address}]` : address;
  process.stdout.write(`oidc-provider listening on http://${shown}:${port} (issuer ${config.issuer})\n`);
});

let stopping = false;
function shutdown() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => {
    server.closeAllConnections();
    process.exit(0);
  }, 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
