// The real-browser story of issue 5, in headless Chromium (Debian's), driven by playwright-core, with axe-core run
// on every page. Started by crates/latchkey/tests/it/browser.rs, which starts the servers and passes:
//   LK_BASE    Latchkey's base URL            LK_SAMPLE  the demo site's base URL (serves /sample)
//   CHROMIUM   the browser binary             LK_SHOTS   optional directory for screenshots
// Prints one JSON line per step; exits 0 only if every step passed and axe found no serious or critical issue.
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';
import { registerApp } from './console.mjs';
import { readdirSync, readFileSync } from 'node:fs';

const BASE = process.env.LK_BASE;
const SAMPLE = process.env.LK_SAMPLE;
const SHOTS = process.env.LK_SHOTS;
/** Where the test's SMTP server (aiosmtpd) writes what it receives, one JSON file per message. */
const MAILDIR = process.env.LK_MAILDIR;
const stamp = Date.now().toString(36);
const email = `browser-${stamp}@example.com`;
const password = 'a browser passphrase';
const violations = [];
const checked = [];
/** The demo's public TV app (`latchkey demo` seeds it; src/cli/demo.rs). */
const TV_CLIENT_ID = 'lk1.application-oa2-client.de0000000000000000000000000000dd';

function step(name, detail = {}) {
  console.log(JSON.stringify({ step: name, ...detail }));
}

function fail(message) {
  throw new Error(message);
}

/** axe-core on the page as it is now: WCAG 2.0/2.1 A and AA; serious and critical findings fail the run. */
async function axe(page, label) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  if (result.passes.length === 0) fail(`axe-core checked nothing on ${label}`);
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  checked.push(label);
  for (const v of bad) {
    violations.push({ page: label, id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) });
  }
}

/** The mails delivered to `address` so far, oldest first. */
function mailsTo(address) {
  return readdirSync(MAILDIR)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => JSON.parse(readFileSync(`${MAILDIR}/${f}`, 'utf8')))
    .filter((m) => m.rcpt_tos.includes(address));
}

/** The `n`th mail (1-based) delivered to `address`, waiting up to 20 s for it. */
async function mailTo(address, n) {
  for (let i = 0; i < 200; i++) {
    const mails = mailsTo(address);
    if (mails.length >= n) return mails[n - 1];
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`mail #${n} to ${address} did not arrive`);
}

/** The 6-digit code on a line of its own in a mail's text. */
function codeIn(mail) {
  const m = mail.text.match(/^\s*(\d{6})\s*$/m);
  if (!m) fail(`no code in the mail "${mail.subject}"`);
  return m[1];
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** Presses a submit button and waits until the next page has loaded (the page itself, not just any load). */
async function submit(page, selector = 'main form button[type=submit]') {
  const mark = await page.evaluate(() => (window.__lkBefore = Math.random().toString(36)));
  await page.locator(selector).first().click();
  await page.waitForFunction((m) => window.__lkBefore !== m && document.readyState === 'complete', mark);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Headless, and nothing that reaches for the network (this runs on machines without one).
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
  ],
});
try {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } }); // a phone
  const page = await context.newPage();

  // 1. Create an account.
  await page.goto(`${BASE}/ap/register`);
  await axe(page, 'register');
  await page.fill('#name', 'Brow Ser');
  await page.fill('#email', email);
  await page.fill('#password', password);
  await page.fill('#postal_code', '10115');
  await submit(page);
  // The address is verified with the code mailed to it.
  if (!page.url().includes('/ap/verify')) fail(`sign-up did not ask for the mailed code: ${page.url()}`);
  await axe(page, 'verify email');
  await shot(page, 'verify-email');
  await page.fill('input[name=code]', codeIn(await mailTo(email, 1)));
  await submit(page, 'main form:has(input[name=code]) button[type=submit]');
  await axe(page, 'home (signed in)');
  if (!(await page.content()).includes('Brow Ser')) fail('the home page does not greet the new customer');
  step('registered', { email });

  // 2. Sign out, then sign in again.
  await page.goto(`${BASE}/ap/signout`);
  await axe(page, 'sign out');
  await submit(page);
  await page.goto(`${BASE}/ap/signin`);
  await axe(page, 'sign in');
  await page.fill('#email', email);
  await page.fill('#password', 'wrong password');
  await submit(page);
  await axe(page, 'sign in (error)');
  await page.fill('#password', password);
  await submit(page);
  if (!(await page.content()).includes('Brow Ser')) fail('signing in did not work');
  step('signed in');

  // Pages that explain problems.
  await page.goto(`${BASE}/ap/oa?client_id=lk1.application-oa2-client.00000000000000000000000000000000&response_type=code&scope=profile`);
  await axe(page, 'error page (unknown app)');
  await page.goto(`${BASE}/code`);
  await axe(page, 'device code entry');

  // The device pages: a wrong code, then a real one (the demo TV's), its confirm page, and Deny (so that the TV
  // does not join the apps this customer allowed).
  await page.fill('#user_code', 'BCDF-GHJK');
  await submit(page);
  if (!(await page.textContent('#form-error') || '').trim()) fail('a wrong device code shows no error');
  await axe(page, 'device code entry (wrong code)');
  const pair = await (await fetch(`${BASE}/auth/o2/create/codepair`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ response_type: 'device_code', client_id: TV_CLIENT_ID, scope: 'profile' }),
  })).json();
  if (!pair.user_code) fail(`no code pair: ${JSON.stringify(pair)}`);
  await page.fill('#user_code', pair.user_code);
  await submit(page);
  if (!(await page.content()).includes('Is this your device?')) fail(`the code led to ${page.url()}`);
  await axe(page, 'device confirm');
  await submit(page, 'main form button[value=deny]');
  await axe(page, 'device result (denied)');
  step('device pages');
  await page.goto(`${BASE}/nowhere`);
  await axe(page, 'not found');

  // 3. Become a developer and register an app for the sample site (its origin allowed).
  const clientId = await registerApp(page, { axe, submit, fail, step, sample: SAMPLE });
  // The new profile is unverified: a broken request for it waits on a page instead of redirecting to its site.
  await page.goto(`${BASE}/ap/oa?client_id=${encodeURIComponent(clientId)}`);
  if (!(await page.content()).includes(`Continue to ${new URL(SAMPLE).host}`)) fail(`an unverified app's error led to ${page.url()}`);
  await axe(page, 'error page (unverified app)');
  step('unverified app error page');

  // 4. Log in to the sample site through the SDK's popup.
  const site = await context.newPage();
  await site.goto(`${SAMPLE}/sample?client_id=${encodeURIComponent(clientId)}`);
  await axe(site, 'SDK sample site');
  const [popup] = await Promise.all([site.waitForEvent('popup'), site.click('#login')]);
  // The SDK opens the popup blank (inside the click, for pop-up blockers), then sends it to Latchkey.
  await popup.waitForURL((u) => u.href.startsWith(`${BASE}/ap/oa?`), { waitUntil: 'load' });
  if (!(await popup.content()).includes('would like to use your Latchkey account')) fail(`the popup shows ${popup.url()}`);
  await axe(popup, 'consent (popup)');
  await shot(popup, 'consent');
  await Promise.all([popup.waitForEvent('close'), popup.click('button[value=allow]')]);
  await site.waitForSelector('#signed-in:not([hidden])', { timeout: 15000 });
  const profile = JSON.parse(await site.textContent('#profile'));
  if (profile.Name !== 'Brow Ser' || profile.PrimaryEmail !== email) fail(`unexpected profile ${JSON.stringify(profile)}`);
  if (!String(profile.CustomerId).startsWith('lk1.account.')) fail('no pairwise customer id');
  await shot(site, 'sample-signed-in');
  step('sample site signed in', { profile });

  // The SDK's cookies (setUseCookie(true), SPEC 2.7): on the sample site's origin, as LWA writes them, and read by
  // the site's own server (/whoami reads amazon_Login_accessToken and asks /user/profile with it).
  const sdkCookies = async () => Object.fromEntries((await context.cookies(SAMPLE))
    .filter((c) => c.name.startsWith('amazon_Login_')).map((c) => [c.name, c]));
  const jar = await sdkCookies();
  const tokenCookie = jar.amazon_Login_accessToken;
  if (!tokenCookie) fail(`no amazon_Login_accessToken cookie on ${SAMPLE}: ${JSON.stringify(await context.cookies())}`);
  const token = tokenCookie.value;
  if (!token.startsWith('Atza|')) fail(`the cookie holds ${token.slice(0, 8)}…, not an access token`);
  if (tokenCookie.path !== '/' || tokenCookie.sameSite !== 'Lax' || tokenCookie.httpOnly) fail(`cookie attributes ${JSON.stringify({ ...tokenCookie, value: '…' })}`);
  const life = tokenCookie.expires - Date.now() / 1000;
  const info = await (await fetch(`${BASE}/auth/o2/tokeninfo?access_token=${encodeURIComponent(token)}`)).json();
  if (info.aud !== clientId) fail(`the cookie's token is not the sample app's: ${JSON.stringify(info)}`);
  if (Math.abs(life - info.exp) > 30) fail(`the cookie lives ${life} s, the token ${info.exp} s`);
  if (!jar.amazon_Login_state_cache) fail('no amazon_Login_state_cache cookie');
  const cache = JSON.parse(decodeURIComponent(jar.amazon_Login_state_cache.value));
  if (cache.access_token !== token || cache.client_id !== clientId || !String(cache.scope).includes('profile')
      || !(cache.expiration_date > Date.now()) || !(cache.max_age > 0)) fail(`amazon_Login_state_cache is ${JSON.stringify({ ...cache, access_token: '…' })}`);
  await site.waitForFunction(() => document.querySelector('#whoami').textContent.length > 0);
  const whoami = JSON.parse(await site.textContent('#whoami'));
  if (!whoami.signed_in || whoami.profile.name !== 'Brow Ser' || whoami.profile.email !== email) fail(`/whoami answered ${JSON.stringify(whoami)}`);
  await axe(site, 'SDK sample site (signed in)');
  step('sdk cookies read by the site server', { whoami });

  await site.click('#refresh');
  await site.waitForFunction(() => document.querySelector('#refresh-result').textContent.length > 0);
  if (!(await site.textContent('#refresh-result')).startsWith('Refreshed')) fail('the first refresh failed');
  const refreshed = (await sdkCookies()).amazon_Login_accessToken;
  if (!refreshed || refreshed.value === token) fail('the refreshed token did not replace the cookie');

  // 5. Remove the app on "Apps and websites you've allowed".
  await page.goto(`${BASE}/ap/adam`);
  await axe(page, 'your apps');
  await shot(page, 'your-apps');
  await submit(page, 'main form button:has-text("Remove")');
  await axe(page, 'your apps (after removal)');
  step('app removed');

  // 6. The sample site's refresh now fails.
  await site.evaluate(() => { document.querySelector('#refresh-result').textContent = ''; });
  await site.click('#refresh');
  await site.waitForFunction(() => document.querySelector('#refresh-result').textContent.length > 0);
  const after = await site.textContent('#refresh-result');
  if (!after.includes('invalid_grant')) fail(`refresh after removal: ${after}`);
  step('refresh fails after removal', { after });

  // The sample site's Log out: the signed-in part goes, the button comes back, and the SDK holds no token.
  await site.click('#logout');
  await site.waitForSelector('#signed-in', { state: 'hidden' });
  if (!(await site.isVisible('#login'))) fail('the login button did not come back after Log out');
  const shown = (await site.textContent('#status')).trim();
  if (shown !== 'You are signed out.') fail(`after Log out the sample site says: ${shown}`);
  const gone = Object.keys(await sdkCookies());
  if (gone.length > 0) fail(`after Log out the site still has the cookies ${gone.join(', ')}`);
  const nobody = await (await fetch(`${SAMPLE}/whoami`)).json();
  if (nobody.signed_in !== false) fail(`/whoami without the cookie: ${JSON.stringify(nobody)}`);
  const left = await site.evaluate(() => new Promise((resolve) => latchkey.Login.refreshToken(resolve)));
  if (left.error !== 'invalid_request') fail(`after Log out the SDK still refreshes: ${JSON.stringify(left)}`);
  await axe(site, 'SDK sample site (logged out)');
  step('sample site logged out');

  // 7. The account page, then sign out.
  await page.goto(`${BASE}/account`);
  await axe(page, 'account');
  await page.goto(`${BASE}/ap/signout`);
  await submit(page);
  await page.goto(`${BASE}/ap/adam`);
  if (!page.url().includes('/ap/signin')) fail('still signed in after signing out');
  step('signed out');

  // 8. A forgotten password: a code by mail, a new password, signed in again.
  await page.goto(`${BASE}/ap/signin`);
  await page.click('text=Forgot your password?');
  await page.waitForURL(/\/ap\/forgot/);
  await axe(page, 'forgot password');
  await page.fill('#email', email);
  const mailed = mailsTo(email).length;
  await submit(page);
  if (!page.url().includes('/ap/reset')) fail(`asking for a reset code ended at ${page.url()}`);
  await axe(page, 'reset password');
  await page.fill('#code', codeIn(await mailTo(email, mailed + 1)));
  await page.fill('#new_password', 'a new browser passphrase');
  await submit(page);
  if (!(await page.content()).includes('Your new password is saved')) fail(`the reset ended at ${page.url()}`);
  await axe(page, 'account (after reset)');
  step('password reset');

  step('axe', { pages: checked.length, violations });
  if (violations.length > 0) fail(`${violations.length} serious or critical accessibility violations`);
  console.log(JSON.stringify({ ok: true, pages: checked }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message || e), violations }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
