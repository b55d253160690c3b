// The developer console part of the browser story (story.mjs): a signed-in customer turns on developer access
// and registers the sample site's app through the real forms, with axe-core on every console page.
//
// The sample site (`/sample` on the demo's origin) logs in with the SDK's popup, exchanges the code in the
// browser with PKCE and no secret, and refreshes there: so its app is public, lists the site's origin (the relay
// posts the response only to an allowed origin; the token and profile endpoints answer CORS only for it), and
// has a return URL (the console asks for one; the SDK's redirect mode returns to the page itself).
//
// A confidential app is registered too, to check the page that shows a new secret: shown once, never again.

/** The text of `selector` on `page`, trimmed ('' when there is none). */
async function text(page, selector) {
  const el = page.locator(selector).first();
  return (await el.count()) > 0 ? ((await el.textContent()) || '').trim() : '';
}

async function follow(page, link) {
  await Promise.all([page.waitForLoadState('load'), page.getByRole('link', { name: link, exact: true }).click()]);
}

/**
 * Registers the app the sample site at `sample` (an origin such as http://127.0.0.1:8081) uses, and returns its
 * client id as the console shows it. `page` is signed in; it ends on the app's page.
 */
export async function registerApp(page, { axe, submit, fail, step, sample }) {
  // Developer access, off then on.
  await page.goto(new URL('/developer', page.url()).href);
  if (!(await page.content()).includes('Turn on developer access')) fail('the console does not offer developer access');
  await axe(page, 'developer console (access off)');
  await submit(page);
  if (!(await text(page, 'main .notice')).startsWith('Developer access is on')) fail(`turning on developer access: ${page.url()}`);
  await axe(page, 'developer console (no apps)');

  // The new-app form, refused once: each problem next to its field, what was typed kept.
  await follow(page, 'Create a security profile');
  if (!page.url().endsWith('/developer/apps/new')) fail(`the create link went to ${page.url()}`);
  await axe(page, 'new security profile form');
  await page.fill('#name', 'Sample Shop (browser)');
  await page.fill('#description', 'The SDK sample site, registered by the browser test.');
  await page.fill('#privacy_url', 'http://shop.example/privacy'); // not https
  await page.fill('#redirect_uris', `${sample}/sample`);
  await page.fill('#allowed_origins', `${sample}/`); // a trailing slash: not an origin
  await page.check('#type-public');
  await submit(page);
  if (!(await text(page, '#form-error')).startsWith('Please correct these 2 problems')) {
    fail(`the refused form says: ${await text(page, 'main')}`);
  }
  for (const id of ['privacy_url', 'allowed_origins']) {
    if ((await page.getAttribute(`#${id}`, 'aria-invalid')) !== 'true') fail(`#${id} is not marked invalid`);
    if (!(await text(page, `#${id}-error`))) fail(`no message next to #${id}`);
  }
  if ((await page.inputValue('#name')) !== 'Sample Shop (browser)') fail('the refused form lost the name');
  if (!(await page.isChecked('#type-public'))) fail('the refused form lost the type');
  await axe(page, 'new security profile form (2 problems)');

  // Corrected and created: a public app has no secret to show.
  await page.fill('#privacy_url', `${sample}/privacy`);
  await page.fill('#allowed_origins', sample);
  await submit(page);
  if (!(await text(page, 'main h1')).endsWith('is ready')) fail(`creating the app: ${await text(page, 'main')}`);
  const clientId = await text(page, '#client-id');
  if (!/^lk1\.application-oa2-client\.[0-9a-f]{32}$/.test(clientId)) fail(`no client id on the page: ${clientId}`);
  if ((await page.locator('#client-secret').count()) !== 0) fail('a public app was shown a secret');
  await axe(page, 'security profile created (public)');

  // Its page: the origin and return URL as entered; then the edit form, saved.
  await follow(page, 'Go to Sample Shop (browser)');
  if ((await text(page, '#client-id')) !== clientId) fail('the app page shows another client id');
  const facts = await text(page, 'main dl.facts');
  if (!facts.includes(sample) || !facts.includes(`${sample}/sample`)) fail(`the app page lists: ${facts}`);
  await axe(page, 'security profile page');
  await follow(page, 'Edit settings');
  if ((await page.inputValue('#allowed_origins')) !== sample) fail('the edit form does not show the origin');
  await axe(page, 'edit security profile form');
  await page.fill('#description', 'The SDK sample site, registered and edited by the browser test.');
  await submit(page);
  if ((await text(page, 'main .notice')) !== 'Your changes are saved.') fail(`saving: ${await text(page, 'main')}`);
  if (!(await text(page, 'main')).includes('registered and edited by the browser test')) fail('the edit was not saved');
  await axe(page, 'security profile page (saved)');

  // A logo, uploaded as a file (a 16x16 PNG): the page then shows Latchkey's own copy, from Latchkey's origin.
  const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAFklEQVR4nGPgDr9AEmIY1TCqYfhqAADpbTIQS5otggAAAABJRU5ErkJggg==', 'base64');
  await page.setInputFiles('#logo', { name: 'shop.png', mimeType: 'image/png', buffer: png });
  await Promise.all([page.waitForURL(/done=logo$/), page.getByRole('button', { name: 'Upload logo', exact: true }).click()]);
  if (!(await text(page, 'main .notice')).startsWith('The logo is saved')) fail(`uploading the logo: ${await text(page, 'main')}`);
  const logo = await page.locator('#current-logo').getAttribute('src');
  if (!logo || !logo.startsWith('/logos/')) fail(`the logo is not served by Latchkey: ${logo}`);
  await axe(page, 'security profile page (logo)');
  const appPage = page.url();

  // A confidential app: its secret appears on the page that created it, and nowhere after.
  await page.goto(new URL('/developer/apps/new', page.url()).href);
  await page.fill('#name', 'Shop back office (browser)');
  await page.fill('#privacy_url', `${sample}/privacy`);
  await page.fill('#redirect_uris', `${sample}/callback`);
  await submit(page);
  const secret = await text(page, '#client-secret');
  if (!secret) fail(`no secret shown for a confidential app: ${await text(page, 'main')}`);
  if (!(await text(page, 'main .notice')).includes('shown only this once')) fail('the secret page does not say it is shown once');
  await axe(page, 'security profile created (secret shown once)');
  await follow(page, 'Go to Shop back office (browser)');
  if ((await page.content()).includes(secret)) fail('the app page shows the secret again');
  await axe(page, 'security profile page (confidential)');

  // The list shows both.
  await page.goto(new URL('/developer', page.url()).href);
  const list = await text(page, 'main ul.items');
  if (!list.includes(clientId) || !list.includes('Shop back office (browser)')) fail(`the console lists: ${list}`);
  await axe(page, 'developer console (two apps)');

  await page.goto(appPage);
  step('app registered in the console', { client_id: clientId });
  return clientId;
}
