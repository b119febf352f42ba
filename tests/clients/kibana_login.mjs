// Kibana's OpenID Connect login, replayed with the Node.js client 9.x (alias es9) exactly as
// Kibana's OIDC authentication provider and user-profile service send it:
//
//   1. POST /_security/oidc/prepare {realm}                       (internal user)
//   2. the browser GETs the provider's authorization URL; the provider answers 302 to
//      Kibana's callback /api/security/oidc/callback?code=...&state=...
//   3. POST /_security/oidc/authenticate {redirect_uri, state, nonce, realm}, where
//      redirect_uri is ONLY the path and query of the callback request Kibana received
//      (Kibana sends request.url.pathname + request.url.search, never the origin)
//   4. POST /_security/profile/_activate {grant_type: access_token, access_token}
//   5. GET /_security/_authenticate as the user (Authorization: Bearer, scoped child client)
//   6. the access token expires (the harness's clock moves past token.timeout):
//      _authenticate answers 401, WWW-Authenticate error_description="The access token expired"
//   7. Kibana refreshes: POST /_security/oauth2/token {grant_type: refresh_token}; a second
//      refresh of the same refresh token within 30 s (another browser tab) gets the same pair
//   8. POST /_security/oidc/logout {token, refresh_token}
//   9. DELETE /_security/oauth2/token {token} of the logged-out access token: already
//      invalidated → 200, previously_invalidated_tokens 1
//
// Kibana's internal user here is the facilitator with Basic credentials (Kibana's
// elasticsearch.username / elasticsearch.password); default client options otherwise.
//
// Environment: OIDC_REALM_URL, CONTROL_URL (POST /advance?seconds=N moves the server's and the
// provider's clock); CLIENT_CHECK_VERBOSE=1 prints every response body.

import { readFileSync } from 'node:fs'
import { isDeepStrictEqual, inspect } from 'node:util'
import { Client, errors } from 'es9'

const { version: clientVersion } = JSON.parse(
  readFileSync(new URL('./node_modules/es9/package.json', import.meta.url), 'utf8'))
const VERSION = `kibana_login, @elastic/elasticsearch ${clientVersion} (es9)`
const URL_ = process.env.OIDC_REALM_URL ?? ''
const CONTROL_URL = process.env.CONTROL_URL ?? ''
// CLIENT_CHECK_VERBOSE=1: print every response body.
const VERBOSE = !['', '0', undefined].includes(process.env.CLIENT_CHECK_VERBOSE)
const REALM = 'oidc1'
const CALLBACK_PATH = '/api/security/oidc/callback'
const OIDC_USER = '00u1abcd'
// token.timeout in the harness's configuration (20m); the clock moves one second past it.
const ACCESS_TOKEN_LIFETIME_S = 20 * 60

// One line per value: JSON where possible (bodies, headers), inspect otherwise.
function show (v) {
  try {
    const j = JSON.stringify(v)
    if (j !== undefined) return j
  } catch {}
  return inspect(v, { depth: 8, breakLength: Infinity, compact: true })
}
let step = '(start)'
const softFailures = []

function fail (msg) {
  throw new Error(`${step}: ${msg}`)
}
function expect (cond, what, body) {
  if (!cond) fail(`expected ${what}; response: ${show(body)}`)
}
function expectEq (actual, expected, what, body) {
  expect(isDeepStrictEqual(actual, expected), `${what} == ${show(expected)}, got ${show(actual)}`, body)
}
function describe (e) {
  if (e instanceof errors.ResponseError) {
    return `HTTP ${e.meta.statusCode}: ${show(e.meta.body)} (response headers: ${show(e.meta.headers)})`
  }
  return `${e?.name}: ${e?.message}`
}
async function run (name, fn) {
  step = name
  let body
  try {
    body = await fn()
  } catch (e) {
    if (e instanceof Error && e.message.startsWith(`${name}: `)) throw e
    fail(`raised ${describe(e)}`)
  }
  console.log(`[${VERSION}]   ${name}` + (VERBOSE ? ` -> ${show(body)}` : ''))
  return body
}

async function main () {
  if (!URL_ || !CONTROL_URL) {
    console.error('OIDC_REALM_URL and CONTROL_URL must be set')
    process.exit(2)
  }
  console.log(`[${VERSION}] against ${URL_} (node ${process.version})`)
  // Kibana's cluster client: the internal user, and per request a scoped child client
  // carrying the user's Authorization header.
  const internal = new Client({ node: URL_, auth: { username: 'facilitator', password: 'facilitator-password' } })
  const asUser = (accessToken) => internal.child({ headers: { authorization: `Bearer ${accessToken}` } })

  // 1. prepare
  const prepare = await run('POST /_security/oidc/prepare {realm}', () =>
    internal.transport.request({ method: 'POST', path: '/_security/oidc/prepare', body: { realm: REALM } }))
  expect(typeof prepare.redirect === 'string', 'a redirect', prepare)
  expect(typeof prepare.state === 'string' && typeof prepare.nonce === 'string', 'state and nonce', prepare)
  expectEq(prepare.realm, REALM, 'realm', prepare)

  // 2. the browser at the provider
  const location = await run('GET <prepare redirect> (browser at the OpenID Provider)', async () => {
    const resp = await fetch(prepare.redirect, { redirect: 'manual' })
    await resp.arrayBuffer()
    expect(resp.status === 302, `302 from the provider, got ${resp.status}`, Object.fromEntries(resp.headers))
    return resp.headers.get('location')
  })
  const callback = new URL(location)
  expectEq(callback.pathname, CALLBACK_PATH, 'callback path', location)
  expect(callback.searchParams.get('code') && callback.searchParams.get('state') === prepare.state,
    'code and state in the callback', location)
  // What Kibana hands to Elasticsearch: the path and query of the request it received.
  const redirectUri = callback.pathname + callback.search
  console.log(`[${VERSION}] callback path+query: ${redirectUri.replace(/code=[^&]+/, 'code=…').replace(/state=[^&]+/, 'state=…')}`)

  // 3. authenticate
  const auth = await run('POST /_security/oidc/authenticate {redirect_uri: <path+query>, state, nonce, realm}', () =>
    internal.transport.request({
      method: 'POST',
      path: '/_security/oidc/authenticate',
      body: { state: prepare.state, nonce: prepare.nonce, redirect_uri: redirectUri, realm: REALM }
    }))
  expectEq(auth.username, OIDC_USER, 'username', auth)
  expect(typeof auth.access_token === 'string' && typeof auth.refresh_token === 'string', 'access and refresh tokens', auth)
  expectEq(auth.authentication?.authentication_realm, { name: REALM, type: 'oidc' }, 'authentication.authentication_realm', auth)
  const { access_token: accessToken, refresh_token: refreshToken } = auth

  // 4. user profile activation (Kibana's UserProfileService.activate)
  const profile = await run('POST /_security/profile/_activate {grant_type: access_token}', () =>
    internal.security.activateUserProfile({ grant_type: 'access_token', access_token: accessToken }))
  expect(typeof profile.uid === 'string' && profile.uid.length > 0, 'a uid', profile)
  expectEq(profile.enabled, true, 'enabled', profile)
  expectEq(profile.user?.username, OIDC_USER, 'user.username', profile)
  expectEq(profile.user?.realm_name, REALM, 'user.realm_name', profile)
  expect(Array.isArray(profile.user?.roles), 'user.roles an array', profile)

  // 5. the user's requests
  const me = await run('GET /_security/_authenticate as the user (Bearer)', () => asUser(accessToken).security.authenticate())
  expectEq(me.username, OIDC_USER, 'username', me)
  expect(Array.isArray(me.roles), 'roles an array', me)
  expectEq(me.authentication_type, 'token', 'authentication_type', me)
  console.log(`[${VERSION}] user ${me.username}, roles ${show(me.roles)}`)

  // 6. time passes: the access token expires
  await run(`POST ${CONTROL_URL}/advance?seconds=${ACCESS_TOKEN_LIFETIME_S + 1}`, async () => {
    const resp = await fetch(`${CONTROL_URL}/advance?seconds=${ACCESS_TOKEN_LIFETIME_S + 1}`, { method: 'POST' })
    expect(resp.ok, `200 from the control server, got ${resp.status}`, await resp.text())
  })
  step = 'GET /_security/_authenticate with the expired access token'
  let expired
  try {
    const r = await asUser(accessToken).security.authenticate()
    fail(`expected 401, got success: ${show(r)}`)
  } catch (e) {
    if (!(e instanceof errors.ResponseError)) throw e
    expired = e
  }
  expectEq(expired.meta.statusCode, 401, 'status', expired.meta.body)
  // Elasticsearch strips the product header from 401 and 403 answers
  // (RestResponse.filterHeaders); recorded, the replay goes on.
  if (expired.meta.headers?.['x-elastic-product'] !== undefined) {
    softFailures.push(`${step}: expected no X-Elastic-Product on the 401 (as Elasticsearch); response headers: ${show(expired.meta.headers)}`)
  }
  const challenge = [expired.meta.headers?.['www-authenticate']].flat().join(', ')
  expect(challenge.includes('error_description="The access token expired"'),
    `WWW-Authenticate with error_description="The access token expired", got ${show(challenge)}`, expired.meta.body)

  // 7. Kibana refreshes (Tokens.refresh), then another tab refreshes the same token
  const refreshed = await run('POST /_security/oauth2/token {grant_type: refresh_token}', () =>
    internal.security.getToken({ grant_type: 'refresh_token', refresh_token: refreshToken }))
  expect(typeof refreshed.access_token === 'string' && refreshed.access_token !== accessToken, 'a new access_token', refreshed)
  expect(typeof refreshed.refresh_token === 'string' && refreshed.refresh_token !== refreshToken, 'a new refresh_token', refreshed)
  expectEq(refreshed.authentication?.username, OIDC_USER, 'authentication.username', refreshed)
  const again = await run('POST /_security/oauth2/token {grant_type: refresh_token} again, same refresh token, within 30 s', () =>
    internal.security.getToken({ grant_type: 'refresh_token', refresh_token: refreshToken }))
  expect(again.access_token === refreshed.access_token, `the same access_token as the first refresh (${refreshed.access_token})`, again)
  expect(again.refresh_token === refreshed.refresh_token, `the same refresh_token as the first refresh (${refreshed.refresh_token})`, again)
  expectEq(again, refreshed, 'the whole body equal to the first refresh', again)
  const me2 = await run('GET /_security/_authenticate with the refreshed access token', () =>
    asUser(refreshed.access_token).security.authenticate())
  expectEq(me2.username, OIDC_USER, 'username', me2)

  // 8. logout
  const logout = await run('POST /_security/oidc/logout {token, refresh_token}', () =>
    internal.transport.request({
      method: 'POST',
      path: '/_security/oidc/logout',
      body: { token: refreshed.access_token, refresh_token: refreshed.refresh_token }
    }))
  expect(typeof logout.redirect === 'string', 'redirect a string', logout)
  expect(logout.redirect.includes('id_token_hint=') && logout.redirect.includes('post_logout_redirect_uri='),
    'an end-session redirect with id_token_hint and post_logout_redirect_uri', logout)

  // 9. the logged-out access token is already invalidated
  const inv = await run('DELETE /_security/oauth2/token {token: <logged-out access token>}', () =>
    internal.security.invalidateToken({ token: refreshed.access_token }))
  expectEq(inv.invalidated_tokens, 0, 'invalidated_tokens', inv)
  expectEq(inv.previously_invalidated_tokens, 1, 'previously_invalidated_tokens', inv)
  expectEq(inv.error_count, 0, 'error_count', inv)

  await internal.close()
  if (softFailures.length > 0) throw new Error(softFailures.join('\n'))
  console.log(`[${VERSION}] Kibana's OIDC login, refresh and logout all passed`)
}

try {
  await main()
} catch (e) {
  console.error(`[${VERSION}] FAIL ${e?.message ?? show(e)}`)
  process.exitCode = 1
}
