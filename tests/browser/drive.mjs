// Headless Chromium driven by playwright-core, for tests/browser.rs: Debian's /usr/bin/chromium
// (OIDC_REALM_CHROMIUM overrides), never a downloaded browser.
//
//   node tests/browser/drive.mjs '<json>'
//
// The JSON names a scenario and its inputs; one line of JSON is printed on stdout with what
// the browser saw (nothing else goes to stdout). A screenshot of every step is written to
// `shots` (a directory), named <nn>-<step>.png.
//
// Scenarios:
//   login       {app, user, password, shots}: the app's page → "Log in" → the provider's
//               pages (its login form; a consent page if it shows one) → back on the app:
//               username, roles, expiry → "Renew the access token now" → "Log out" → the
//               provider's end-session (its confirmation page if it shows one) → the app's
//               logged-out page.
//   wrong-state {app, shots}: "Log in" (the provider's form is shown: a login is pending in
//               this browser's session), then the app's callback with another state: the
//               page the app answers, and its status.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const input = JSON.parse(process.argv[2] ?? '{}');
const executablePath = process.env.OIDC_REALM_CHROMIUM || '/usr/bin/chromium';
mkdirSync(input.shots, { recursive: true });

let step = 0;
async function shot(page, name) {
  step += 1;
  const file = join(input.shots, `${String(step).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

const appOrigin = new URL(input.app).origin;
const onApp = (page) => new URL(page.url()).origin === appOrigin;
const text = async (page, sel) => ((await page.locator(sel).first().textContent()) ?? '').trim();

// The provider's pages, until the browser is back on the app: fill what is asked, submit.
async function throughProvider(page, what) {
  const seen = [];
  for (let i = 0; i < 6 && !onApp(page); i += 1) {
    const body = await page.locator('body').innerText();
    seen.push({ url: page.url().split('?')[0], banner: await page.locator('#banner').count() ? await text(page, '#banner') : null });
    await shot(page, `${what}-provider-${i + 1}`);
    const user = page.locator('input[name=username], input[name=login]');
    if (await user.count()) await user.first().fill(input.user);
    const pw = page.locator('input[name=password]');
    if (await pw.count()) await pw.first().fill(input.password);
    const submit = page.locator('button[type=submit], button:not([type])');
    if (!(await submit.count())) throw new Error(`no button on the provider's page ${page.url()}: ${body.slice(0, 400)}`);
    const before = page.url();
    await Promise.all([page.waitForURL((u) => u.href !== before), submit.first().click()]);
    await page.waitForLoadState('load');
  }
  if (!onApp(page)) throw new Error(`still not back on the app after the provider's pages: ${page.url()}`);
  return seen;
}

async function login(page) {
  const out = {};
  await page.goto(input.app);
  out.start_title = await page.title();
  await shot(page, 'app-start');
  await Promise.all([page.waitForURL((u) => u.origin !== appOrigin), page.locator('#login').click()]);
  out.provider = await throughProvider(page, 'login');
  await page.waitForSelector('#username');
  out.username = await text(page, '#username');
  out.full_name = (await page.locator('#full-name').count()) ? await text(page, '#full-name') : null;
  out.roles = await page.locator('#roles li.role').allTextContents();
  out.expires_at = await text(page, '#expires-at');
  out.renewals_before = await text(page, '#renewals');
  await shot(page, 'app-logged-in');
  await Promise.all([page.waitForLoadState('load'), page.locator('#refresh').click()]);
  await page.waitForSelector('#renewals');
  out.renewals_after = await text(page, '#renewals');
  await shot(page, 'app-token-renewed');
  // The session cookie, as the browser holds it.
  const cookies = await page.context().cookies(input.app);
  out.cookie = cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite }));
  const navigations = [];
  page.on('request', (r) => {
    if (r.isNavigationRequest()) navigations.push(r.url().split('?')[0]);
  });
  await page.locator('#logout').click();
  await page.waitForURL((u) => u.origin !== appOrigin || u.pathname === '/logged-out', { timeout: 15000 });
  out.logout_provider = await throughProvider(page, 'logout');
  await page.waitForURL((u) => u.pathname === '/logged-out', { timeout: 15000 });
  out.logged_out_url = page.url().split('?')[0];
  // Every page the browser was sent through on logout (the provider's end-session among them).
  out.logout_navigations = navigations;
  out.logged_out_title = await page.title();
  await shot(page, 'app-logged-out');
  // Back to the app's front page: not logged in any more.
  await page.goto(input.app);
  out.after_logout_has_login = (await page.locator('#login').count()) > 0;
  out.after_logout_has_username = (await page.locator('#username').count()) > 0;
  return out;
}

async function wrongState(page) {
  const out = {};
  await page.goto(input.app);
  await Promise.all([page.waitForURL((u) => u.origin !== appOrigin), page.locator('#login').click()]);
  await shot(page, 'provider-login-pending');
  const forged = new URL('/callback', appOrigin);
  forged.searchParams.set('code', 'forged-code');
  forged.searchParams.set('state', 'not-the-state-of-this-session');
  const resp = await page.goto(forged.href);
  out.status = resp.status();
  out.title = await page.title();
  out.error = await text(page, '#error');
  await shot(page, 'app-wrong-state-refused');
  return out;
}

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
let result;
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  if (input.scenario === 'login') result = await login(page);
  else if (input.scenario === 'wrong-state') result = await wrongState(page);
  else throw new Error(`unknown scenario ${input.scenario}`);
  result.ok = true;
} catch (err) {
  result = { ok: false, error: String(err?.stack ?? err) };
} finally {
  await browser.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);
