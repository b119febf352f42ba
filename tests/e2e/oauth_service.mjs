// A real OAuth 2.0 service for tests/connections_e2e.rs: panva's oidc-provider (pinned in
// package.json / package-lock.json, installed by setup.sh), on 127.0.0.1:<port>, playing a
// third-party service that oidc-realm's connections act at for their users.
//
//   node tests/e2e/oauth_service.mjs <port>          (0: any free port)
//
// Prints one line of JSON on stdout once it listens:
//   {"ready":true,"issuer":"http://127.0.0.1:<port>","port":<port>}
// and nothing else on stdout (oidc-provider's development warnings go to stderr).
//
// Configuration:
// - one static client, `connections-client` (client_secret_basic, grant types
//   authorization_code and refresh_token, redirect URI REDIRECT_URI);
// - refresh tokens for every code exchange of a client allowed the refresh_token grant
//   (issueRefreshToken), not only with offline_access, and refresh-token rotation;
// - short-lived access tokens (ACCESS_TOKEN_TTL seconds), opaque;
// - token revocation (RFC 7009) and UserInfo, so the test can check which access tokens work;
// - devInteractions (the built-in login and consent pages; the password is not checked;
//   accounts alice and bob).
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

export const REDIRECT_URI = 'https://app.example.test/connections/callback';
export const CLIENT_ID = 'connections-client';
export const SECRET = 'connections-client-secret-0123456789-abcdef';
export const ACCESS_TOKEN_TTL = 120;

const port = Number.parseInt(process.argv[2] ?? '0', 10);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write('usage: node oauth_service.mjs <port>\n');
  process.exit(2);
}

const accounts = { alice: { name: 'Alice' }, bob: { name: 'Bob' } };

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: SECRET,
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'profile', 'api'],
    claims: { openid: ['sub'], profile: ['name'] },
    pkce: { required: () => true },
    rotateRefreshToken: true,
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      RefreshToken: 24 * 3600,
      Grant: 24 * 3600,
      Session: 3600,
      Interaction: 600,
      AuthorizationCode: 60,
    },
    async issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: true },
      revocation: { enabled: true },
    },
    async findAccount(_ctx, id) {
      const account = accounts[id];
      if (!account) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...account }; } };
    },
  });
  provider.on('server_error', (_ctx, err) => process.stderr.write(`service server_error: ${err.stack}\n`));
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port: server.address().port })}\n`);
});

// The test harness closes our stdin when it is done (or dies): exit then.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
