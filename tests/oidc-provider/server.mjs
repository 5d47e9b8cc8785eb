// Test-only OpenID provider for Outband: a real `oidc-provider` that issues RFC 9068 JWT access
// tokens with the client_credentials grant, on plain http on loopback, with an admin API to
// rotate signing keys and manage clients at runtime. Started by tests/src/oidc.rs.
//
// Options (argument, or environment variable):
//   --port N                  OIDC_PORT                    0 = any free port (default 0)
//   --audience URI            OIDC_AUDIENCE                default resource / `aud` (https://api.outband.test)
//   --clients-file PATH       OIDC_CLIENTS_FILE            JSON clients (see below)
//                             OIDC_CLIENTS                 the same JSON inline
//   --keys-file PATH          OIDC_KEYS_FILE               signing keys: loaded if present, else generated;
//                                                          rewritten on every change (so a restart keeps them)
//   --ec-key                  OIDC_EC_KEY=1                also publish an EC P-256 key (ES256)
//   --token-ttl SECS          OIDC_TOKEN_TTL_SECS          default access token lifetime (600)
//   --old-key-retention SECS  OIDC_OLD_KEY_RETENTION_SECS  how long a rotated-out key stays published;
//                                                          0 = until a rotation that drops old keys (default 0)
//   --exit-on-stdin-eof       OIDC_EXIT_ON_STDIN_EOF=1     exit when stdin closes (the harness died)
//   --log-requests            OIDC_LOG_REQUESTS=1          one stderr line per request (method, path, status)
//
// Clients JSON: an array (or {"clients": [...]}) of
//   {"client_id": "...", "client_secret": "...", "scopes": ["a", "b"],
//    "token_ttl_secs": 60, "token_alg": "RS256" | "ES256",
//    "token_endpoint_auth_method": "client_secret_basic" | "client_secret_post"}
//
// Once listening it prints exactly one JSON line on stdout:
//   {"ready":true,"issuer":"http://127.0.0.1:PORT","port":PORT}
// Everything else (few lines, never tokens or secrets) goes to stderr.
//
// Admin API (same listener, loopback only, JSON in and out):
//   GET    /_admin/keys                 signing kids and every published key (public info only)
//   POST   /_admin/rotate-keys          {"keep_old": true, "retain_secs": N}: new signing keys with new
//                                       kids; old ones stay published (for retain_secs, or the configured
//                                       retention) or, with keep_old false, every old key is dropped
//   POST   /_admin/clients              one client object as above: added, or replaced by client_id
//   DELETE /_admin/clients/<client_id>  remove a client
//
// Tokens: every client_credentials request without `resource` gets the default resource (the
// audience); any absolute URI is accepted as `resource` and becomes `aud`. Scopes granted are
// the requested ones that the client is allowed; a scope known to another client but not allowed
// to this one is refused with invalid_scope; no `scope` parameter means no `scope` claim.

import { generateKeyPair as generateKeyPairCb, createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs, promisify } from 'node:util';

// oidc-provider prints notices with console.info; stdout is reserved for the ready line.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

const { default: Provider } = await import('oidc-provider');

const generateKeyPair = promisify(generateKeyPairCb);
const HOST = '127.0.0.1';
const ADMIN_PREFIX = '/_admin/';
const MAX_ADMIN_BODY = 64 * 1024;
const SUPPORTED_ALGS = new Set(['RS256', 'ES256']);

function log(message) {
  process.stderr.write(`oidc-provider: ${message}\n`);
}

function fail(message) {
  log(`error: ${message}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Options

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    audience: { type: 'string' },
    'clients-file': { type: 'string' },
    'keys-file': { type: 'string' },
    'ec-key': { type: 'boolean' },
    'token-ttl': { type: 'string' },
    'old-key-retention': { type: 'string' },
    'exit-on-stdin-eof': { type: 'boolean' },
    'log-requests': { type: 'boolean' },
  },
  strict: true,
});

const envFlag = (name) => ['1', 'true', 'yes'].includes((process.env[name] || '').toLowerCase());

function intOption(value, name, fallback) {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) fail(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

const options = {
  port: intOption(args.port ?? process.env.OIDC_PORT, 'port', 0),
  audience: args.audience ?? process.env.OIDC_AUDIENCE ?? 'https://api.outband.test',
  keysFile: args['keys-file'] ?? process.env.OIDC_KEYS_FILE,
  ecKey: args['ec-key'] ?? envFlag('OIDC_EC_KEY'),
  tokenTtl: intOption(args['token-ttl'] ?? process.env.OIDC_TOKEN_TTL_SECS, 'token-ttl', 600),
  oldKeyRetention: intOption(
    args['old-key-retention'] ?? process.env.OIDC_OLD_KEY_RETENTION_SECS,
    'old-key-retention',
    0,
  ),
  exitOnStdinEof: args['exit-on-stdin-eof'] ?? envFlag('OIDC_EXIT_ON_STDIN_EOF'),
  logRequests: args['log-requests'] ?? envFlag('OIDC_LOG_REQUESTS'),
};
if (options.port > 65535) fail('port must be at most 65535');
if (options.tokenTtl < 1) fail('token-ttl must be at least 1');
try {
  new URL(options.audience); // eslint-disable-line no-new
} catch {
  fail('audience must be an absolute URI');
}

// ---------------------------------------------------------------------------------------------
// Clients

function normalizeClient(raw) {
  if (!raw || typeof raw !== 'object') throw new Error('a client must be a JSON object');
  const { client_id: id, client_secret: secret } = raw;
  if (typeof id !== 'string' || !id) throw new Error('client_id must be a non-empty string');
  if (typeof secret !== 'string' || !secret) throw new Error(`client ${id}: client_secret must be a non-empty string`);
  let scopes = raw.scopes ?? (typeof raw.scope === 'string' ? raw.scope.split(' ') : []);
  if (!Array.isArray(scopes) || !scopes.every((s) => typeof s === 'string' && /^[\x21\x23-\x5b\x5d-\x7e]+$/.test(s))) {
    throw new Error(`client ${id}: scopes must be an array of scope tokens`);
  }
  scopes = [...new Set(scopes)];
  const ttl = raw.token_ttl_secs ?? undefined;
  if (ttl !== undefined && ttl !== null && !(Number.isInteger(ttl) && ttl > 0)) {
    throw new Error(`client ${id}: token_ttl_secs must be a positive integer`);
  }
  const alg = raw.token_alg ?? 'RS256';
  if (!SUPPORTED_ALGS.has(alg)) throw new Error(`client ${id}: token_alg must be RS256 or ES256`);
  if (alg === 'ES256' && !options.ecKey) throw new Error(`client ${id}: token_alg ES256 needs the EC key (--ec-key)`);
  const authMethod = raw.token_endpoint_auth_method ?? 'client_secret_basic';
  if (!['client_secret_basic', 'client_secret_post'].includes(authMethod)) {
    throw new Error(`client ${id}: token_endpoint_auth_method must be client_secret_basic or client_secret_post`);
  }
  return {
    id, secret, scopes, ttl: ttl ?? undefined, alg, authMethod,
  };
}

function loadClients() {
  let text;
  if (args['clients-file'] ?? process.env.OIDC_CLIENTS_FILE) {
    const file = args['clients-file'] ?? process.env.OIDC_CLIENTS_FILE;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      fail(`cannot read clients file ${file}: ${err.message}`);
    }
  } else if (process.env.OIDC_CLIENTS) {
    text = process.env.OIDC_CLIENTS;
  } else {
    return new Map();
  }
  try {
    let parsed = JSON.parse(text);
    if (!Array.isArray(parsed)) parsed = parsed?.clients;
    if (!Array.isArray(parsed)) throw new Error('expected an array of clients or {"clients": [...]}');
    const clients = new Map();
    for (const raw of parsed) {
      const client = normalizeClient(raw);
      if (clients.has(client.id)) throw new Error(`duplicate client_id ${client.id}`);
      clients.set(client.id, client);
    }
    return clients;
  } catch (err) {
    return fail(`invalid clients: ${err.message}`);
  }
}

const clients = loadClients();

// ---------------------------------------------------------------------------------------------
// Signing keys

// RFC 7638 thumbprint, used as `kid` (unique per key, stable across restarts).
function thumbprint(jwk) {
  const members = jwk.kty === 'RSA'
    ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

async function generateKey(alg) {
  const { privateKey } = alg === 'ES256'
    ? await generateKeyPair('ec', { namedCurve: 'P-256' })
    : await generateKeyPair('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    jwk: {
      ...jwk, kid: thumbprint(jwk), alg, use: 'sig',
    },
    status: 'signing',
    retired_at: null,
    expires_at: null,
  };
}

const now = () => Math.floor(Date.now() / 1000);

let keys = [];

function loadKeys() {
  if (!options.keysFile || !existsSync(options.keysFile)) return;
  try {
    const parsed = JSON.parse(readFileSync(options.keysFile, 'utf8'));
    if (!Array.isArray(parsed?.keys)) throw new Error('expected {"keys": [...]}');
    keys = parsed.keys;
    for (const key of keys) {
      if (!SUPPORTED_ALGS.has(key?.jwk?.alg) || typeof key.jwk.kid !== 'string') throw new Error('unsupported key entry');
    }
  } catch (err) {
    fail(`invalid keys file ${options.keysFile}: ${err.message}`);
  }
}

function saveKeys() {
  if (!options.keysFile) return;
  const tmp = `${options.keysFile}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ keys }, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, options.keysFile);
}

const signingKid = (alg) => keys.find((k) => k.status === 'signing' && k.jwk.alg === alg)?.jwk.kid;

async function ensureSigningKeys() {
  const wanted = options.ecKey ? ['RS256', 'ES256'] : ['RS256'];
  for (const alg of wanted) {
    if (!signingKid(alg)) keys.unshift(await generateKey(alg));
  }
}

function pruneExpiredKeys() {
  const before = keys.length;
  keys = keys.filter((k) => k.expires_at === null || k.expires_at > now());
  return keys.length !== before;
}

async function rotateKeys({ keepOld, retainSecs }) {
  const fresh = [];
  for (const alg of new Set(keys.filter((k) => k.status === 'signing').map((k) => k.jwk.alg))) {
    fresh.push(await generateKey(alg));
  }
  if (keepOld) {
    const t = now();
    for (const key of keys) {
      if (key.status === 'signing') {
        key.status = 'retired';
        key.retired_at = t;
        key.expires_at = retainSecs > 0 ? t + retainSecs : null;
      }
    }
    keys = [...fresh, ...keys];
  } else {
    keys = fresh;
  }
}

// Signing keys first, so that anything picking "the first key for an alg" gets the current one.
function publishedJwks() {
  const order = (k) => (k.status === 'signing' ? 0 : 1);
  return [...keys].sort((a, b) => order(a) - order(b)).map((k) => ({ ...k.jwk }));
}

function keysReport() {
  return {
    signing: Object.fromEntries(
      keys.filter((k) => k.status === 'signing').map((k) => [k.jwk.alg, k.jwk.kid]),
    ),
    keys: keys.map((k) => ({
      kid: k.jwk.kid,
      alg: k.jwk.alg,
      kty: k.jwk.kty,
      status: k.status,
      retired_at: k.retired_at,
      expires_at: k.expires_at,
    })),
  };
}

// ---------------------------------------------------------------------------------------------
// The provider. It is rebuilt (cheaply) whenever keys or clients change: the koa app is swapped
// atomically, so the JWKS, the token signer and the client list always agree.

// Minimal in-memory adapter (client_credentials with JWT access tokens stores almost nothing).
const store = new Map();
class MemoryAdapter {
  constructor(name) {
    this.name = name;
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    store.set(this.key(id), { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async findByUserCode() {
    return undefined;
  }

  async findByUid() {
    return undefined;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = now();
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId() {} // eslint-disable-line class-methods-use-this
}

let issuer;
let handler; // the current provider's request handler

function installProvider() {
  handler = buildProvider().callback();
}

function buildProvider() {
  const allScopes = new Set();
  for (const c of clients.values()) c.scopes.forEach((s) => allScopes.add(s));

  const configuration = {
    adapter: MemoryAdapter,
    clients: [...clients.values()].map((c) => ({
      client_id: c.id,
      client_secret: c.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: c.authMethod,
      scope: c.scopes.join(' ') || undefined,
    })),
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      id_token_signed_response_alg: 'RS256',
      token_endpoint_auth_method: 'client_secret_basic',
    },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    jwks: { keys: publishedJwks() },
    scopes: [...allScopes],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => options.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          const c = clients.get(client.clientId);
          const alg = c?.alg ?? 'RS256';
          return {
            scope: c?.scopes.join(' ') ?? '',
            audience: resourceIndicator,
            accessTokenFormat: 'jwt',
            accessTokenTTL: c?.ttl ?? options.tokenTtl,
            jwt: { sign: { alg, kid: signingKid(alg) } },
          };
        },
      },
    },
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? options.tokenTtl,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? options.tokenTtl,
      AuthorizationCode: 60,
      BackchannelAuthenticationRequest: 600,
      DeviceCode: 600,
      Grant: 3600,
      IdToken: 3600,
      Interaction: 600,
      RefreshToken: 86400,
      Session: 3600,
    },
    // Only reached by endpoints that tests do not use; keeps error pages plain.
    renderError: (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };

  const next = new Provider(issuer, configuration);
  next.on('server_error', (ctx, err) => log(`server_error on ${ctx.method} ${ctx.path}: ${err.message}`));
  next.on('grant.error', (ctx, err) => log(`token request refused: ${err.error || err.message}`));
  return next;
}

// ---------------------------------------------------------------------------------------------
// Admin API

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY) throw new HttpError(413, 'body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'body is not JSON');
  }
}

let retentionTimer;

// Keys whose retention ends are dropped by a timer; the provider is rebuilt then.
function scheduleKeyExpiry() {
  clearTimeout(retentionTimer);
  const next = Math.min(...keys.map((k) => k.expires_at ?? Infinity));
  if (next === Infinity) return;
  retentionTimer = setTimeout(() => {
    if (pruneExpiredKeys()) {
      saveKeys();
      installProvider();
      log('retired signing key(s) dropped after their retention');
    }
    scheduleKeyExpiry();
  }, Math.max(0, next - now()) * 1000 + 50);
  retentionTimer.unref();
}

async function handleAdmin(req, res, path) {
  let status = 200;
  let body;
  try {
    if (req.method === 'GET' && path === 'keys') {
      body = keysReport();
    } else if (req.method === 'POST' && path === 'rotate-keys') {
      const input = await readJson(req);
      const keepOld = input.keep_old ?? true;
      const retainSecs = input.retain_secs ?? options.oldKeyRetention;
      if (typeof keepOld !== 'boolean') throw new HttpError(400, 'keep_old must be a boolean');
      if (!Number.isInteger(retainSecs) || retainSecs < 0) throw new HttpError(400, 'retain_secs must be a non-negative integer');
      await rotateKeys({ keepOld, retainSecs });
      saveKeys();
      installProvider();
      scheduleKeyExpiry();
      body = keysReport();
      log(`signing keys rotated (${keepOld ? 'old keys kept' : 'old keys dropped'}): ${Object.values(body.signing).join(', ')}`);
    } else if (req.method === 'POST' && path === 'clients') {
      let client;
      try {
        client = normalizeClient(await readJson(req));
      } catch (err) {
        throw err instanceof HttpError ? err : new HttpError(400, err.message);
      }
      status = clients.has(client.id) ? 200 : 201;
      clients.set(client.id, client);
      installProvider();
      body = { client_id: client.id };
      log(`client ${client.id} ${status === 201 ? 'added' : 'replaced'}`);
    } else if (req.method === 'DELETE' && path.startsWith('clients/')) {
      const id = decodeURIComponent(path.slice('clients/'.length));
      if (!clients.delete(id)) throw new HttpError(404, `no client ${id}`);
      installProvider();
      body = { client_id: id };
      log(`client ${id} removed`);
    } else {
      throw new HttpError(404, 'unknown admin endpoint');
    }
  } catch (err) {
    if (!(err instanceof HttpError)) log(`admin ${path} failed: ${err.message}`);
    status = err.status ?? 500;
    body = { error: err.message };
  }
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

// ---------------------------------------------------------------------------------------------
// Start

loadKeys();
pruneExpiredKeys();
await ensureSigningKeys();
saveKeys();

const server = createServer((req, res) => {
  if (options.logRequests) {
    res.on('finish', () => log(`${req.method} ${req.url.split('?')[0]} ${res.statusCode}`));
  }
  const path = req.url.split('?')[0];
  if (path.startsWith(ADMIN_PREFIX)) {
    handleAdmin(req, res, path.slice(ADMIN_PREFIX.length));
    return;
  }
  handler(req, res);
});

server.on('error', (err) => fail(`cannot listen on ${HOST}:${options.port}: ${err.message}`));
server.listen(options.port, HOST, () => {
  const { port } = server.address();
  issuer = `http://${HOST}:${port}`;
  try {
    installProvider();
  } catch (err) {
    fail(`invalid provider configuration: ${err.message}`);
  }
  scheduleKeyExpiry();
  log(`listening, issuer ${issuer}, ${clients.size} client(s), signing ${Object.entries(keysReport().signing).map(([a, k]) => `${a}:${k}`).join(' ')}`);
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port })}\n`);
});

const shutdown = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (options.exitOnStdinEof) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}
