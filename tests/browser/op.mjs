// A real OpenID Provider for tests/browser.rs: panva's oidc-provider, the one pinned and
// installed for tests/e2e (tests/e2e/setup.sh; this script loads it from
// tests/e2e/node_modules), configured for the reference facilitator (examples/webapp), whose
// callback and logged-out URLs are on a port known only at run time.
//
//   node tests/browser/op.mjs <port> <redirect_uri> <post_logout_redirect_uri>
//
// Prints one line of JSON on stdout once it listens:
//   {"ready":true,"issuer":"http://127.0.0.1:<port>"}
// One client, `webapp` (client_secret_basic, ES256 ID tokens, secret SECRET below); one ES256
// key generated at start; accounts alice (groups staff, finance) and bob (staff) with the
// `groups` scope; devInteractions (built-in login and consent pages, the password is not
// checked), UserInfo and RP-initiated logout. Exits when its standard input closes.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const { default: Provider } = await import(
  pathToFileURL(join(here, '..', 'e2e', 'node_modules', 'oidc-provider', 'lib', 'index.js')).href
);

export const SECRET = 'browser-client-secret-0123456789-abcdefghij';

const [portArg, redirectUri, postLogoutRedirectUri] = process.argv.slice(2);
const port = Number.parseInt(portArg ?? '', 10);
if (!Number.isInteger(port) || !redirectUri || !postLogoutRedirectUri) {
  process.stderr.write('usage: node op.mjs <port> <redirect_uri> <post_logout_redirect_uri>\n');
  process.exit(2);
}

const accounts = {
  alice: { name: 'Alice Liddell', email: 'alice@example.test', groups: ['staff', 'finance'] },
  bob: { name: 'Bob Builder', email: 'bob@example.test', groups: ['staff'] },
};

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'ec-1', alg: 'ES256', use: 'sig' };

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'webapp',
      client_secret: SECRET,
      redirect_uris: [redirectUri],
      post_logout_redirect_uris: [postLogoutRedirectUri],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    }],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'profile', 'email', 'groups'],
    claims: { openid: ['sub'], profile: ['name'], email: ['email'], groups: ['groups'] },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    async findAccount(_ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...account }; } };
    },
  });
  provider.on('server_error', (_ctx, err) => process.stderr.write(`op server_error: ${err.stack}\n`));
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ ready: true, issuer })}\n`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
