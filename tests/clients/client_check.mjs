// Elasticsearch's official Node.js client, stock, against oidc-realm.
//
//   node tests/clients/client_check.mjs es8|es9
//
// Imports the npm alias given as argument (package.json: es8 / es9 = @elastic/elasticsearch),
// installed by setup.sh. Every client is built with default options: only the node URL and
// credentials (auth: {username, password} or auth: {bearer}).
//
// Environment:
//   OIDC_REALM_URL  the server, e.g. http://127.0.0.1:40123
//   CONTROL_URL     the harness's control server (unused here; kibana_login.mjs moves time)
//   SERVICE_TOKEN   bearer token of the service account elastic/kibana/kibana-test
//   CLIENT_CHECK_VERBOSE=1  print every response body
//
// Each group of calls runs even when an earlier group failed (a group stops at its first
// failure, as its later calls depend on the earlier ones). Exit status 0 only when every call
// passed; otherwise every failure is printed, naming the call and the client version.

import { readFileSync } from 'node:fs'
import { isDeepStrictEqual, inspect } from 'node:util'

const alias = process.argv[2]
if (alias !== 'es8' && alias !== 'es9') {
  console.error('usage: node client_check.mjs es8|es9')
  process.exit(2)
}
const { version: clientVersion } = JSON.parse(
  readFileSync(new URL(`./node_modules/${alias}/package.json`, import.meta.url), 'utf8'))
const VERSION = `@elastic/elasticsearch ${clientVersion} (${alias})`
const { Client, errors } = await import(alias)

const URL_ = process.env.OIDC_REALM_URL ?? ''
const SERVICE_TOKEN = process.env.SERVICE_TOKEN ?? ''
// CLIENT_CHECK_VERBOSE=1: print every response body.
const VERBOSE = !['', '0', undefined].includes(process.env.CLIENT_CHECK_VERBOSE)

// The users tests/clients.rs configures (bcrypt cost 4, test-only passwords).
const FACILITATOR = { username: 'facilitator', password: 'facilitator-password' }
const ADMIN = { username: 'admin', password: 'admin-password' }
const ENDUSER = { username: 'enduser', password: 'enduser-password' }
const REALM = 'oidc1'
// tests/common/fake_op.rs: REDIRECT_URI and the default user.
const CALLBACK = 'https://kibana.example.org/api/security/oidc/callback'
const OIDC_USER = '00u1abcd'
const FILE_REALM = { name: 'default_file', type: 'file' }

class CheckFailed extends Error {}
// Failures that do not stop their group (the product header of an error answer).
const HEADER_FAILURES = []

// One line per value: JSON where possible (bodies, headers), inspect otherwise.
function show (v) {
  try {
    const j = JSON.stringify(v)
    if (j !== undefined) return j
  } catch {}
  return inspect(v, { depth: 8, breakLength: Infinity, compact: true })
}

function describe (e) {
  if (e instanceof errors.ResponseError) {
    return `HTTP ${e.meta.statusCode}: ${show(e.meta.body)} (response headers: ${show(e.meta.headers)})`
  }
  return `${e?.name ?? typeof e}: ${e?.message ?? show(e)}`
}

/** Run one client call; any exception becomes a failure naming the call. */
async function call (name, fn) {
  let body
  try {
    body = await fn()
  } catch (e) {
    if (e instanceof CheckFailed) throw e
    throw new CheckFailed(`${name}: raised ${describe(e)}`, { cause: e })
  }
  console.log(`[${VERSION}]   call ${name}` + (VERBOSE ? ` -> ${show(body)}` : ''))
  return body
}

function expect (name, cond, what, body) {
  if (!cond) throw new CheckFailed(`${name}: expected ${what}; response body: ${show(body)}`)
}

function expectEq (name, actual, expected, what, body) {
  expect(name, isDeepStrictEqual(actual, expected), `${what} == ${show(expected)}, got ${show(actual)}`, body)
}

/** The call must fail with this HTTP status; returns the ResponseError. */
async function expectStatus (name, fn, status) {
  let resp
  try {
    resp = await fn()
  } catch (e) {
    if (!(e instanceof errors.ResponseError && e.meta.statusCode === status)) {
      throw new CheckFailed(`${name}: expected HTTP ${status}, got ${describe(e)}`, { cause: e })
    }
    // The product header as Elasticsearch sends it: on every answer but 401 and 403, where
    // RestResponse.filterHeaders strips it (the clients only insist on it for 2xx).
    // Recorded, not thrown: the group goes on.
    const product = e.meta.headers?.['x-elastic-product']
    const want = status === 401 || status === 403 ? undefined : 'Elasticsearch'
    if (product !== want) {
      HEADER_FAILURES.push(`${name}: expected X-Elastic-Product ${show(want)} on the ${status} answer (as Elasticsearch), got ${show(product)}; response headers: ${show(e.meta.headers)}`)
    }
    return e
  }
  throw new CheckFailed(`${name}: expected HTTP ${status}, got success: ${show(resp)}`)
}

const isToken = (v) => typeof v === 'string' && v.length >= 20

// Default options: node URL and credentials only.
const client = (auth) => new Client(auth === undefined ? { node: URL_ } : { node: URL_, auth })
const facilitator = client(FACILITATOR)
const admin = client(ADMIN)

// ----------------------------------------------------------------------------------------------

async function checkInfo () {
  const n = 'info()'
  const b = await call(n, () => client().info())
  const number = b?.version?.number
  expect(n, typeof number === 'string' && /^(7|8|9)\.\d+\.\d+$/.test(number),
    `version.number a string like 8.x.y, got ${show(number)}`, b)
  expectEq(n, b.tagline, 'You Know, for Search', 'tagline', b)
}

async function checkAuthenticateBasic () {
  const n = 'security.authenticate() with auth {username, password} (facilitator)'
  const b = await call(n, () => facilitator.security.authenticate())
  expectEq(n, b.username, 'facilitator', 'username', b)
  expectEq(n, b.authentication_realm, FILE_REALM, 'authentication_realm', b)
  expectEq(n, b.authentication_type, 'realm', 'authentication_type', b)
  expectEq(n, b.enabled, true, 'enabled', b)
  expect(n, Array.isArray(b.roles), 'roles an array', b)
}

async function checkTokens () {
  let n = 'security.getToken({grant_type: password, username: enduser})'
  const pw = await call(n, () => facilitator.security.getToken({
    grant_type: 'password', username: ENDUSER.username, password: ENDUSER.password
  }))
  expect(n, isToken(pw.access_token), 'an access_token', pw)
  expect(n, isToken(pw.refresh_token), 'a refresh_token', pw)
  expectEq(n, pw.type, 'Bearer', 'type', pw)
  expectEq(n, pw.expires_in, 1200, 'expires_in (token.timeout 20m)', pw)
  expectEq(n, pw.authentication?.username, 'enduser', 'authentication.username', pw)
  expectEq(n, pw.authentication?.roles, ['superuser'], 'authentication.roles', pw)
  const a1 = pw.access_token
  const r1 = pw.refresh_token

  n = "security.authenticate() with auth {bearer} (enduser's access token)"
  const b = await call(n, () => client({ bearer: a1 }).security.authenticate())
  expectEq(n, b.username, 'enduser', 'username', b)
  expectEq(n, b.roles, ['superuser'], 'roles', b)
  expectEq(n, b.authentication_type, 'token', 'authentication_type', b)
  expectEq(n, b.authentication_realm, FILE_REALM, 'authentication_realm', b)

  n = 'security.getToken({grant_type: client_credentials})'
  const cc = await call(n, () => facilitator.security.getToken({ grant_type: 'client_credentials' }))
  expect(n, isToken(cc.access_token), 'an access_token', cc)
  expect(n, !('refresh_token' in cc), 'no refresh_token', cc)
  expectEq(n, cc.type, 'Bearer', 'type', cc)
  expectEq(n, cc.authentication?.username, 'facilitator', 'authentication.username', cc)

  n = 'security.getToken({grant_type: refresh_token})'
  const rf = await call(n, () => facilitator.security.getToken({ grant_type: 'refresh_token', refresh_token: r1 }))
  expect(n, isToken(rf.access_token) && rf.access_token !== a1, 'a new access_token', rf)
  expect(n, isToken(rf.refresh_token) && rf.refresh_token !== r1, 'a new refresh_token', rf)
  expectEq(n, rf.authentication?.username, 'enduser', 'authentication.username', rf)
  expectEq(n, rf.authentication?.roles, ['superuser'], 'authentication.roles', rf)
  const a2 = rf.access_token
  const r2 = rf.refresh_token

  n = 'security.invalidateToken({token: <access token>})'
  let iv = await call(n, () => facilitator.security.invalidateToken({ token: a1 }))
  expectEq(n, iv.invalidated_tokens, 1, 'invalidated_tokens', iv)
  expectEq(n, iv.previously_invalidated_tokens, 0, 'previously_invalidated_tokens', iv)
  expectEq(n, iv.error_count, 0, 'error_count', iv)
  n = 'security.authenticate() with auth {bearer} (an invalidated access token)'
  await expectStatus(n, () => client({ bearer: a1 }).security.authenticate(), 401)

  n = 'security.invalidateToken({refresh_token: <refresh token>})'
  iv = await call(n, () => facilitator.security.invalidateToken({ refresh_token: r2 }))
  expectEq(n, iv.invalidated_tokens, 1, 'invalidated_tokens', iv)
  expectEq(n, iv.previously_invalidated_tokens, 0, 'previously_invalidated_tokens', iv)
  expectEq(n, iv.error_count, 0, 'error_count', iv)
  n = 'security.getToken({grant_type: refresh_token}) with an invalidated refresh token'
  const err = await expectStatus(n, () => facilitator.security.getToken({ grant_type: 'refresh_token', refresh_token: r2 }), 400)
  expectEq(n, err.meta.body?.error, 'invalid_grant', 'error', err.meta.body)

  n = 'security.invalidateToken({username: enduser})'
  iv = await call(n, () => facilitator.security.invalidateToken({ username: 'enduser' }))
  // a2 was still valid; a1 and r2 were invalidated above.
  expect(n, Number.isInteger(iv.invalidated_tokens) && iv.invalidated_tokens >= 1, 'invalidated_tokens >= 1', iv)
  expect(n, Number.isInteger(iv.previously_invalidated_tokens), 'previously_invalidated_tokens a number', iv)
  expectEq(n, iv.error_count, 0, 'error_count', iv)
  n = 'security.authenticate() with auth {bearer} (access token of a user whose tokens were invalidated)'
  await expectStatus(n, () => client({ bearer: a2 }).security.authenticate(), 401)

  n = 'security.invalidateToken({username: <no such user>})'
  iv = await call(n, () => facilitator.security.invalidateToken({ username: 'nobody-has-this-name' }))
  expectEq(n, iv.invalidated_tokens, 0, 'invalidated_tokens', iv)
  expectEq(n, iv.previously_invalidated_tokens, 0, 'previously_invalidated_tokens', iv)
  expectEq(n, iv.error_count, 0, 'error_count', iv)

  n = 'security.invalidateToken({realm_name: default_file})'
  iv = await call(n, () => facilitator.security.invalidateToken({ realm_name: 'default_file' }))
  // the client_credentials token is still valid
  expect(n, Number.isInteger(iv.invalidated_tokens) && iv.invalidated_tokens >= 1, 'invalidated_tokens >= 1', iv)
  expectEq(n, iv.error_count, 0, 'error_count', iv)
  n = 'security.authenticate() with auth {bearer} (client_credentials token after invalidation by realm)'
  await expectStatus(n, () => client({ bearer: cc.access_token }).security.authenticate(), 401)
}

async function checkServiceToken () {
  const n = 'security.authenticate() with auth {bearer} (service token elastic/kibana/kibana-test)'
  if (!SERVICE_TOKEN) throw new CheckFailed(`${n}: SERVICE_TOKEN is not set (the harness could not generate a service token)`)
  const b = await call(n, () => client({ bearer: SERVICE_TOKEN }).security.authenticate())
  // Elasticsearch's answer for a service account token.
  expectEq(n, b.username, 'elastic/kibana', 'username', b)
  expectEq(n, b.authentication_type, 'token', 'authentication_type', b)
  expectEq(n, b.authentication_realm?.name, '_service_account', 'authentication_realm.name', b)
  expectEq(n, b.token?.name, 'kibana-test', 'token.name', b)
}

async function checkRoleMapping () {
  const name = `client-check-js-${clientVersion.replaceAll('.', '-')}`
  const rules = { all: [{ field: { 'realm.name': REALM } }, { field: { groups: 'finance-team' } }] }
  let n = `security.putRoleMapping({name: ${name}})`
  let b = await call(n, () => admin.security.putRoleMapping({
    name, enabled: true, roles: ['finance_data'], rules, metadata: { version: 1 }
  }))
  expectEq(n, b.role_mapping, { created: true }, 'role_mapping', b)

  n = `security.getRoleMapping({name: ${name}})`
  b = await call(n, () => admin.security.getRoleMapping({ name }))
  const m = b?.[name] ?? {}
  expectEq(n, m.enabled, true, `${name}.enabled`, b)
  expectEq(n, m.roles, ['finance_data'], `${name}.roles`, b)
  expectEq(n, m.rules, rules, `${name}.rules`, b)
  expectEq(n, m.metadata, { version: 1 }, `${name}.metadata`, b)

  n = `security.deleteRoleMapping({name: ${name}})`
  b = await call(n, () => admin.security.deleteRoleMapping({ name }))
  expectEq(n, b.found, true, 'found', b)
}

/** What the browser does with prepare's `redirect`: GET it, do not follow the redirect. */
async function browserGet (url) {
  const resp = await fetch(url, { redirect: 'manual' })
  await resp.arrayBuffer()
  return { status: resp.status, location: resp.headers.get('location') }
}

async function checkOidcAndProfile () {
  let n = `security.oidcPrepareAuthentication({realm: ${REALM}})`
  const p = await call(n, () => facilitator.security.oidcPrepareAuthentication({ realm: REALM }))
  expect(n, typeof p.redirect === 'string' && p.redirect.startsWith('http'), 'a redirect URL', p)
  expect(n, typeof p.state === 'string' && p.state.length > 0, 'a state', p)
  expect(n, typeof p.nonce === 'string' && p.nonce.length > 0, 'a nonce', p)
  expectEq(n, p.realm, REALM, 'realm', p)

  n = 'GET <prepare redirect> at the OpenID Provider (no redirects followed)'
  const { status, location } = await call(n, () => browserGet(p.redirect))
  expect(n, status === 302 && location, `302 with a Location, got ${status} ${show(location)}`, p)
  expect(n, location.startsWith(CALLBACK + '?'), `Location on ${CALLBACK}, got ${show(location)}`, p)

  n = 'security.oidcAuthenticate({redirect_uri: <callback URL>, state, nonce, realm})'
  const a = await call(n, () => facilitator.security.oidcAuthenticate({
    redirect_uri: location, state: p.state, nonce: p.nonce, realm: REALM
  }))
  expectEq(n, a.username, OIDC_USER, 'username', a)
  expect(n, isToken(a.access_token), 'an access_token', a)
  expect(n, isToken(a.refresh_token), 'a refresh_token', a)
  expectEq(n, a.type, 'Bearer', 'type', a)
  expectEq(n, a.authentication?.username, OIDC_USER, 'authentication.username', a)
  expectEq(n, a.authentication?.authentication_realm, { name: REALM, type: 'oidc' }, 'authentication.authentication_realm', a)
  expect(n, Array.isArray(a.authentication?.roles), 'authentication.roles an array', a)
  const access = a.access_token
  const refresh = a.refresh_token

  n = "security.authenticate() with auth {bearer} (the OIDC user's access token)"
  const b = await call(n, () => client({ bearer: access }).security.authenticate())
  expectEq(n, b.username, OIDC_USER, 'username', b)
  expectEq(n, b.authentication_realm, { name: REALM, type: 'oidc' }, 'authentication_realm', b)
  expectEq(n, b.authentication_type, 'token', 'authentication_type', b)

  n = "security.activateUserProfile({grant_type: access_token, access_token: <OIDC user's>})"
  const prof = await call(n, () => facilitator.security.activateUserProfile({ grant_type: 'access_token', access_token: access }))
  const uid = prof.uid
  expect(n, typeof uid === 'string' && uid.length > 0, 'a uid', prof)
  expectEq(n, prof.enabled, true, 'enabled', prof)
  expectEq(n, prof.user?.username, OIDC_USER, 'user.username', prof)
  expectEq(n, prof.user?.realm_name, REALM, 'user.realm_name', prof)
  expect(n, Array.isArray(prof.user?.roles), 'user.roles an array', prof)

  n = `security.getUserProfile({uid: ${uid}})`
  const g = await call(n, () => facilitator.security.getUserProfile({ uid }))
  expect(n, Array.isArray(g.profiles) && g.profiles.length === 1, 'profiles: an array of one', g)
  expectEq(n, g.profiles[0].uid, uid, 'profiles[0].uid', g)
  expectEq(n, g.profiles[0].user?.username, OIDC_USER, 'profiles[0].user.username', g)
  expectEq(n, g.profiles[0].user?.realm_name, REALM, 'profiles[0].user.realm_name', g)

  n = 'security.oidcLogout({token, refresh_token})'
  const lo = await call(n, () => facilitator.security.oidcLogout({ token: access, refresh_token: refresh }))
  expect(n, typeof lo.redirect === 'string', 'redirect a string', lo)
  expect(n, lo.redirect.includes('id_token_hint='), 'redirect with an id_token_hint', lo)

  n = 'security.authenticate() with auth {bearer} (the OIDC access token after logout)'
  await expectStatus(n, () => client({ bearer: access }).security.authenticate(), 401)
}

const GROUPS = [checkInfo, checkAuthenticateBasic, checkTokens, checkServiceToken, checkRoleMapping, checkOidcAndProfile]

if (!URL_) {
  console.error(`[${VERSION}] OIDC_REALM_URL is not set`)
  process.exit(2)
}
console.log(`[${VERSION}] against ${URL_} (node ${process.version})`)
const failures = []
for (const group of GROUPS) {
  try {
    await group()
    console.log(`[${VERSION}] ok   ${group.name}`)
  } catch (e) {
    const line = e instanceof CheckFailed
      ? `[${VERSION}] FAIL ${group.name}: ${e.message}`
      : `[${VERSION}] ERROR ${group.name}: ${e?.stack ?? show(e)}`
    failures.push(line)
    console.log(line)
  }
}
for (const f of HEADER_FAILURES) {
  failures.push(`[${VERSION}] FAIL ${f}`)
  console.log(failures.at(-1))
}
if (failures.length > 0) {
  console.error(`\n[${VERSION}] ${failures.length} failures:`)
  for (const f of failures) console.error(f)
  process.exitCode = 1
} else {
  console.log(`[${VERSION}] all ${GROUPS.length} groups passed`)
}
