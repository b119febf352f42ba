// A real OpenID Provider for tests/e2e.rs: panva's oidc-provider (OpenID-certified), pinned in
// package.json / package-lock.json, on 127.0.0.1:<port>.
//
//   node tests/e2e/op.mjs <port>          (0: any free port)
//
// Prints one line of JSON on stdout once it listens:
//   {"ready":true,"issuer":"http://127.0.0.1:<port>","port":<port>,"kids":[...]}
// and nothing else on stdout (oidc-provider's development warnings go to stderr).
//
// Configuration (everything the e2e suite needs, nothing more):
// - static clients, all with the redirect URI REDIRECT_URI and the post-logout redirect URI
//   POST_LOGOUT_REDIRECT_URI (never fetched: the test stops at the redirect):
//     rp-basic    code flow, client_secret_basic, ID tokens RS256
//     rp-post     code flow, client_secret_post,  ID tokens ES256
//     rp-jwt      code flow, client_secret_jwt (HS256 assertion), ID tokens RS256
//     rp-implicit implicit flows (id_token, id_token token), ID tokens ES256
//     rp-pkjwt    code flow, private_key_jwt (RS256 assertion; the client's public key is
//                 registered from tests/fixtures/keys/rsa2.pem, kid "e2e-client-key"),
//                 ID tokens RS256
//     rp-eddsa    code flow, client_secret_basic, ID tokens EdDSA (Ed25519)
//     rp-bcl      code flow, client_secret_basic, ID tokens RS256, Back-Channel Logout to
//                 <issuer>/admin/bcl, which forwards each logout request to the URL last
//                 set by `POST /admin/bcl-target` (oidc-realm's port is not known when the
//                 provider starts)
// - signing keys: one RS256, one ES256 and one EdDSA (Ed25519) key, generated at start, kids
//   "rsa-<n>", "ec-<n>" and "ed-<n>";
// - accounts (findAccount): alice (groups staff, finance), bob (groups staff) and
//   mallory@evil (groups staff); claims sub, name, email, groups, the scope `groups` asking
//   for the `groups` claim;
// - devInteractions (oidc-provider's built-in login and consent pages: the password is not
//   checked; the claims come from findAccount, which knows only the three accounts above),
//   UserInfo, and RP-initiated logout (its confirmation page and /session/end/confirm).
//
// Key rotation: `POST /admin/rotate` on the same port generates a new RS256 and ES256 key
// (new kids; the old keys are gone from the JWKS) and answers {"kids":[...]}. oidc-provider
// takes its keys only when a Provider is constructed, so rotating constructs a new Provider
// with the same configuration and the new keys, and the listening HTTP server sends every
// later request to it. State survives: grants, sessions and codes live in oidc-provider's
// in-memory adapter, which is module-level (shared by both instances), and the cookie signing
// keys are fixed for the process. `GET /admin/kids` answers the kids in use.
import { createServer } from 'node:http';
import { createPublicKey, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';

export const REDIRECT_URI = 'https://kibana.example.test/api/security/oidc/callback';
export const POST_LOGOUT_REDIRECT_URI = 'https://kibana.example.test/security/logged_out';
// Client secrets: at least 32 bytes (HS256 client_secret_jwt needs that much, and so does
// oidc-realm).
export const SECRET = 'e2e-client-secret-0123456789-abcdefghijklmnop';

const port = Number.parseInt(process.argv[2] ?? '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`usage: node op.mjs <port>\n`);
  process.exit(2);
}

const accounts = {
  alice: { name: 'Alice Liddell', email: 'alice@example.test', groups: ['staff', 'finance'] },
  bob: { name: 'Bob Builder', email: 'bob@example.test', groups: ['staff'] },
  'mallory@evil': { name: 'Mallory', email: 'mallory@evil.test', groups: ['staff'] },
};

const client = (clientId, extra) => ({
  client_id: clientId,
  client_secret: SECRET,
  redirect_uris: [REDIRECT_URI],
  post_logout_redirect_uris: [POST_LOGOUT_REDIRECT_URI],
  ...extra,
});

// The public half of the key oidc-realm's `pkjwt` realm signs its client assertions with.
const clientKey = {
  ...createPublicKey(readFileSync(new URL('../fixtures/keys/rsa2.pem', import.meta.url)))
    .export({ format: 'jwk' }),
  kid: 'e2e-client-key',
  alg: 'RS256',
  use: 'sig',
};

const clients = () => [
  client('rp-basic', {
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }),
  client('rp-post', {
    token_endpoint_auth_method: 'client_secret_post',
    id_token_signed_response_alg: 'ES256',
  }),
  client('rp-jwt', {
    token_endpoint_auth_method: 'client_secret_jwt',
    token_endpoint_auth_signing_alg: 'HS256',
    id_token_signed_response_alg: 'RS256',
  }),
  client('rp-implicit', {
    response_types: ['id_token', 'id_token token'],
    grant_types: ['implicit'],
    id_token_signed_response_alg: 'ES256',
  }),
  {
    ...client('rp-pkjwt', {
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'RS256',
      id_token_signed_response_alg: 'RS256',
      jwks: { keys: [clientKey] },
    }),
    client_secret: undefined,
  },
  client('rp-eddsa', {
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'EdDSA',
  }),
  client('rp-bcl', {
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    backchannel_logout_uri: `${issuer()}/admin/bcl`,
    backchannel_logout_session_required: true,
  }),
];

// Where /admin/bcl forwards to (oidc-realm's back-channel logout URL).
let bclTarget;

let generation = 0;
async function newKeys() {
  generation += 1;
  const keys = [];
  for (const [alg, kty] of [['RS256', 'rsa'], ['ES256', 'ec'], ['EdDSA', 'ed']]) {
    const opts = alg === 'EdDSA' ? { extractable: true, crv: 'Ed25519' } : { extractable: true };
    const { privateKey } = await generateKeyPair(alg, opts);
    const jwk = await exportJWK(privateKey);
    keys.push({ ...jwk, kid: `${kty}-${generation}`, alg, use: 'sig' });
  }
  return keys;
}

const cookieKeys = [randomBytes(32).toString('base64url')];
const issuer = () => `http://127.0.0.1:${server.address().port}`;

function newProvider(keys) {
  const provider = new Provider(issuer(), {
    clients: clients(),
    jwks: { keys },
    cookies: { keys: cookieKeys },
    responseTypes: ['code', 'id_token', 'id_token token'],
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: {
      openid: ['sub'],
      profile: ['name'],
      email: ['email'],
      groups: ['groups'],
    },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
    },
    // Outgoing requests (the back-channel logout POSTs) go to 127.0.0.1, which oidc-provider's
    // SSRF protection refuses; this test provider lets them through.
    fetch: (url, options) => {
      const { dispatcher: _ignored, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    async findAccount(_ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, ...account };
        },
      };
    },
  });
  provider.on('server_error', (_ctx, err) => process.stderr.write(`op server_error: ${err.stack}\n`));
  provider.on('backchannel.error', (_ctx, err, clientId) => process.stderr.write(`op backchannel.error: ${err?.stack ?? err} cause: ${err?.cause?.stack ?? err?.cause}\n`));
  provider.on('backchannel.success', (_ctx, clientId) => process.stderr.write(`op backchannel.success ${clientId}\n`));
  return provider;
}

let keys;
let handler;

async function rotate() {
  keys = await newKeys();
  handler = newProvider(keys).callback();
}

const server = createServer((req, res) => {
  if (req.url === '/admin/rotate' && req.method === 'POST') {
    rotate().then(
      () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
      },
      (err) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err?.stack ?? err));
      },
    );
    return;
  }
  if (req.url === '/admin/bcl-target' && req.method === 'POST') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      bclTarget = body.trim();
      res.writeHead(204);
      res.end();
    });
    return;
  }
  if (req.url === '/admin/bcl' && req.method === 'POST') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      try {
        const r = await fetch(bclTarget, {
          method: 'POST',
          headers: { 'content-type': req.headers['content-type'] ?? '' },
          body: Buffer.concat(chunks),
        });
        const text = await r.text();
        process.stderr.write(`op: back-channel logout forwarded: ${r.status} ${text}\n`);
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'text/plain' });
        res.end(text);
      } catch (err) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(String(err));
      }
    });
    return;
  }
  if (req.url === '/admin/kids' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
    return;
  }
  handler(req, res);
});

server.listen(port, '127.0.0.1', async () => {
  try {
    await rotate();
  } catch (err) {
    process.stderr.write(`op: cannot start: ${err?.stack ?? err}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({
    ready: true, issuer: issuer(), port: server.address().port, kids: keys.map((k) => k.kid),
  })}\n`);
});

// The test harness closes our stdin when it is done (or dies): exit then, so no provider
// outlives its test.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
