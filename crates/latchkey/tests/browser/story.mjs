// The real-browser story of issue 5, in headless Chromium (Debian's), driven by playwright-core, with axe-core run
// on every page. Started by crates/latchkey/tests/it/browser.rs, which starts the servers and passes:
//   LK_BASE    Latchkey's base URL            LK_SAMPLE  the demo site's base URL (serves /sample)
//   CHROMIUM   the browser binary             LK_SHOTS   optional directory for screenshots
// Prints one JSON line per step; exits 0 only if every step passed and axe found no serious or critical issue.
import { chromium } from 'playwright-core';
import { AxeBuilder } from '@axe-core/playwright';

const BASE = process.env.LK_BASE;
const SAMPLE = process.env.LK_SAMPLE;
const SHOTS = process.env.LK_SHOTS;
const stamp = Date.now().toString(36);
const email = `browser-${stamp}@example.com`;
const password = 'a browser passphrase';
const violations = [];
const checked = [];

function step(name, detail = {}) {
  console.log(JSON.stringify({ step: name, ...detail }));
}

function fail(message) {
  throw new Error(message);
}

/** axe-core on the page as it is now: WCAG 2.0/2.1 A and AA; serious and critical findings fail the run. */
async function axe(page, label) {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  checked.push(label);
  for (const v of bad) {
    violations.push({ page: label, id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) });
  }
}

async function shot(page, name) {
  if (SHOTS) await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

async function submit(page, selector = 'main form button[type=submit]') {
  await Promise.all([page.waitForLoadState('load'), page.locator(selector).first().click()]);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
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
  await page.goto(`${BASE}/nowhere`);
  await axe(page, 'not found');

  // 3. Become a developer and register an app for the sample site (its origin allowed).
  const clientId = await (await import('./console.mjs')).registerApp(page, { axe, submit, fail, step, sample: SAMPLE });

  // 4. Log in to the sample site through the SDK's popup.
  const site = await context.newPage();
  await site.goto(`${SAMPLE}/sample?client_id=${encodeURIComponent(clientId)}`);
  await axe(site, 'SDK sample site');
  const [popup] = await Promise.all([site.waitForEvent('popup'), site.click('#login')]);
  await popup.waitForLoadState('load');
  if (!(await popup.content()).includes('would like to use your Latchkey account')) fail(`the popup shows ${popup.url()}`);
  await axe(popup, 'consent (popup)');
  await shot(popup, 'consent');
  await Promise.all([popup.waitForEvent('close'), popup.click('button[value=allow]')]);
  await site.waitForSelector('#signed-in:not([hidden])', { timeout: 15000 });
  const profile = JSON.parse(await site.textContent('#profile'));
  if (profile.Name !== 'Brow Ser' || profile.PrimaryEmail !== email) fail(`unexpected profile ${JSON.stringify(profile)}`);
  if (!String(profile.CustomerId).startsWith('lk1.account.')) fail('no pairwise customer id');
  await shot(site, 'sample-signed-in');
  await site.click('#refresh');
  await site.waitForFunction(() => document.querySelector('#refresh-result').textContent.length > 0);
  if (!(await site.textContent('#refresh-result')).startsWith('Refreshed')) fail('the first refresh failed');
  step('sample site signed in', { profile });

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

  // 7. The account page, then sign out.
  await page.goto(`${BASE}/account`);
  await axe(page, 'account');
  await page.goto(`${BASE}/ap/signout`);
  await submit(page);
  await page.goto(`${BASE}/ap/adam`);
  if (!page.url().includes('/ap/signin')) fail('still signed in after signing out');
  step('signed out');

  step('axe', { pages: checked.length, violations });
  if (violations.length > 0) fail(`${violations.length} serious or critical accessibility violations`);
  console.log(JSON.stringify({ ok: true, pages: checked }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e && e.message || e), violations }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
