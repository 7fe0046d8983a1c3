// The dashboard in a real Chromium, against a running Tollgate whose config routes model
// `smart` to the mock provider: sign up, take the first key from the shown-once panel, spend
// with it through the gateway, watch the spend arrive, cap it with a team budget until the
// gateway refuses, add a card through (the local stand-in for) Stripe Checkout and see it on
// the billing page, set a guardrail policy and try it on a sample prompt, revoke the key, log
// out and back in. Screenshots of every page go to
// SCREENSHOT_DIR.
//
//   TOLLGATE_URL=http://127.0.0.1:8080 STRIPE_URL=http://127.0.0.1:12111 node tests/browser/dashboard.mjs
//
// Env: TOLLGATE_URL (default http://127.0.0.1:8080), STRIPE_URL (the Stripe stand-in the
// gateway's billing.stripe.api_base names; when unset, any page at /checkout/<id> counts as
// Checkout), SCREENSHOT_DIR (default tests/browser/screenshots), CHROMIUM (default
// /usr/bin/chromium). The gateway needs billing configured with a $5 free allowance and
// billing.public_url set to TOLLGATE_URL.
// Exits non-zero with the failing step's name on any failed check, and on any console error
// or uncaught error in the page.

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const BASE = (process.env.TOLLGATE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const STRIPE = (process.env.STRIPE_URL || '').replace(/\/+$/, '');
const SHOTS = process.env.SCREENSHOT_DIR || fileURLToPath(new URL('./screenshots/', import.meta.url));
const PASSWORD = 'correct horse battery staple';
const EMAIL = `owner-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}@example.com`;
const ORGANIZATION = `Acme ${Date.now().toString(36)}`;

// ---- helpers ----

let stepNumber = 0;
const problems = [];

async function step(name, fn) {
  stepNumber += 1;
  try {
    await fn();
    assertPageClean();
  } catch (error) {
    console.error(`not ok ${stepNumber} - ${name}`);
    throw error;
  }
  console.log(`ok ${stepNumber} - ${name}`);
}

function assertPageClean() {
  if (problems.length) {
    const list = problems.splice(0).join('\n  ');
    assert.fail(`the page reported problems:\n  ${list}`);
  }
}

/** Retries `fn` until it returns a truthy value or `timeout` ms pass; returns that value. */
async function eventually(fn, { timeout = 15_000, interval = 500, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
      last = null;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      assert.fail(`timed out after ${timeout} ms waiting for ${message}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

async function chat(key, { headers = {}, content = 'Say hello.' } = {}) {
  const response = await fetch(`${BASE}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'smart', messages: [{ role: 'user', content }], max_tokens: 16 }),
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

/** The same money formatting as the dashboard: at most 6 decimals rounded half up, at least 2. */
function usd(value) {
  const [int, frac = ''] = String(value).split('.');
  let scaled = BigInt(int + frac.padEnd(7, '0').slice(0, 7));
  scaled = (scaled + 5n) / 10n;
  const digits = scaled.toString().padStart(7, '0');
  const whole = digits.slice(0, -6).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const decimals = digits.slice(-6).replace(/0+$/, '').padEnd(2, '0');
  return `$${whole}.${decimals}`;
}

async function graphql(token, query, variables = {}) {
  const response = await fetch(`${BASE}/graphql`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.ok(!body.errors, `GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function shot(page, name) {
  // From the top, so that the sticky header sits where it belongs in a full-page image.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

function heading(page, name) {
  return page.getByRole('heading', { level: 1, name });
}

async function nav(page, name, title = name) {
  const toggle = page.getByRole('button', { name: 'Menu' });
  if (await toggle.isVisible()) await toggle.click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name }).click();
  await heading(page, title).waitFor();
}

// ---- the journey ----

async function main() {
  await mkdir(SHOTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  try {
    await journey(browser);
  } finally {
    await browser.close();
  }
}

function watch(page, label) {
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      const where = message.location().url || page.url();
      // The Stripe stand-in's pages have no favicon; its 404 is not the dashboard's problem.
      if (/\/favicon\.ico$/.test(where) && !where.startsWith(`${BASE}/`)) return;
      problems.push(`${label} console ${message.type()}: ${message.text()} (${where})`);
    }
  });
  page.on('pageerror', (error) => problems.push(`${label} uncaught: ${error.message}`));
}

async function journey(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  const page = await context.newPage();
  watch(page, 'page');
  page.setDefaultTimeout(15_000);

  let key = '';
  let prefix = '';

  await step('sign up with a new email, password and organization', async () => {
    const response = await page.goto(`${BASE}/`);
    assert.equal(response.status(), 200);
    const csp = response.headers()['content-security-policy'] || '';
    assert.match(csp, /script-src 'self'/, 'the dashboard is served with its Content-Security-Policy');
    await heading(page, 'Log in').waitFor();
    await page.getByRole('link', { name: 'Sign up' }).click();
    await heading(page, 'Create your account').waitFor();
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByLabel('Organization').fill(ORGANIZATION);
    await shot(page, 'signup');
    await page.getByRole('button', { name: 'Sign up' }).click();
  });

  await step('the key panel shows the first key once, and Copy puts it on the clipboard', async () => {
    const dialog = page.getByRole('dialog', { name: 'Your first key' });
    await dialog.waitFor();
    prefix = (await dialog.getByLabel('Prefix').textContent()).trim();
    assert.match(prefix, /^tg-/, 'the panel shows the key prefix');
    // The curl example appears once the model list is read.
    await dialog.getByRole('heading', { name: 'curl' }).waitFor();
    await shot(page, 'key-panel');
    await dialog.getByRole('button', { name: 'Copy key' }).click();
    await page.getByRole('status').getByText('Copied to the clipboard.').waitFor();
    key = await page.evaluate(() => navigator.clipboard.readText());
    const shown = await dialog.getByLabel('API key').inputValue();
    assert.equal(key, shown, 'the clipboard holds the key shown');
    assert.ok(key.startsWith(prefix), `the key ${key.slice(0, 12)}… starts with its prefix ${prefix}`);
    const curl = await dialog.locator('pre').first().textContent();
    assert.ok(curl.includes(`${BASE}/v1/chat/completions`) && curl.includes(key), 'the curl example calls this gateway with the key');
    const python = await dialog.locator('pre').nth(1).textContent();
    assert.ok(python.includes(`OpenAI(base_url="${BASE}/v1", api_key="${key}")`), 'the Python example sets base_url and api_key');
    await dialog.getByRole('button', { name: 'I have saved the key' }).click();
    await dialog.waitFor({ state: 'detached' });
    await heading(page, 'Overview').waitFor();
  });

  await step('six chat completions through the gateway with the key', async () => {
    for (let i = 0; i < 5; i += 1) {
      const { status, body } = await chat(key, { content: `Hello number ${i}` });
      assert.equal(status, 200, `request ${i + 1}: ${JSON.stringify(body)}`);
    }
    const tagged = await chat(key, { headers: { 'x-tollgate-tags': 'feature=search' } });
    assert.equal(tagged.status, 200, `tagged request: ${JSON.stringify(tagged.body)}`);
  });

  await step('a daily team budget on the default team', async () => {
    await nav(page, 'Budgets');
    await page.getByLabel('Scope').selectOption('team');
    await page.getByLabel('Team', { exact: true }).selectOption({ label: 'default' });
    await page.getByLabel('Period').selectOption('daily');
    await page.getByLabel('Limit (USD)').fill('10');
    await page.getByRole('button', { name: 'Create budget' }).click();
    const row = page.getByRole('table', { name: 'Teams budgets' }).getByRole('row').filter({ hasText: 'default' });
    await row.waitFor();
    assert.match(await row.textContent(), /\$10\.00/);
  });

  await step('the overview shows the spend: cost above zero and 6 requests', async () => {
    await nav(page, 'Overview');
    const requests = page.getByRole('group', { name: 'Requests' }).locator('.stat-value');
    const cost = page.getByRole('group', { name: 'Cost' }).locator('.stat-value');
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      await requests.waitFor();
      const [n, c] = [(await requests.textContent()).trim(), (await cost.textContent()).trim()];
      return n === '6' && c !== '$0.00' && c.startsWith('$');
    }, { timeout: 20_000, interval: 1_000, message: 'the overview to count 6 requests at a cost' });
    // A reload keeps the session (refresh token in sessionStorage) and the same figures.
    await page.reload();
    await heading(page, 'Overview').waitFor();
    await eventually(async () => (await requests.textContent()).trim() === '6', { message: 'the figures after a reload' });
    await page.getByRole('figure').filter({ hasText: 'Cost per day' }).locator('svg rect').first().waitFor();
    await shot(page, 'overview');
  });

  await step('analytics: totals per model and per tag match the API', async () => {
    await nav(page, 'Analytics');
    await page.getByLabel('Group by').selectOption('MODEL');
    const totals = page.getByRole('table', { name: 'Totals per group' });
    const smart = totals.getByRole('row').filter({ hasText: 'smart' });
    await smart.waitFor();
    const cells = await smart.getByRole('cell').allTextContents();
    assert.equal(cells[1].trim(), '6', 'six requests of model smart');
    // The same question straight to the API, from a session of our own.
    const session = await (await fetch(`${BASE}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
    })).json();
    const offset = Math.round(-new Date().getTimezoneOffset() / 15) * 15;
    const now = Date.now();
    const data = await graphql(session.access_token, `query($input: UsageInput!) { usageTotals(input: $input) { key figures { requests costUsd } } }`,
      { input: { from: now - 7 * 86_400_000, to: now, bucket: 'DAY', utcOffsetMinutes: offset, groupBy: 'MODEL' } });
    const api = data.usageTotals.find((g) => g.key === 'smart');
    assert.ok(api, 'the API has a group for model smart');
    assert.equal(api.figures.requests, 6);
    assert.equal(cells[5].trim(), usd(api.figures.costUsd), `the cost shown matches the API's ${api.figures.costUsd}`);
    await page.getByLabel('Group by').selectOption('TAG');
    await page.getByLabel('Tag key').fill('feature');
    await page.getByRole('button', { name: 'Apply' }).click();
    const search = totals.getByRole('row').filter({ hasText: 'search' });
    await search.waitFor();
    assert.equal((await search.getByRole('cell').nth(1).textContent()).trim(), '1', 'one request tagged feature=search');
    await page.getByLabel('Group by').selectOption('MODEL');
    await smart.waitFor();
    await shot(page, 'analytics');
  });

  await step('the request log lists the requests; a detail shows every field', async () => {
    await nav(page, 'Request log');
    const rows = page.getByRole('table', { name: 'Requests, newest first' }).locator('tbody tr');
    await eventually(async () => (await rows.count()) === 6, { message: 'six requests in the log' });
    for (const text of await rows.allTextContents()) {
      assert.ok(text.includes('smart') && text.includes('200'), `a row of model smart and status 200: ${text}`);
    }
    await shot(page, 'requests');
    await page.getByRole('link', { name: /^Request at/ }).first().click();
    await heading(page, 'Request').waitFor();
    const detail = page.locator('dl.detail-list');
    for (const label of ['Event ID', 'Request ID', 'Time', 'Status', 'Requested model', 'Provider', 'Input tokens', 'Output tokens', 'Cost', 'Latency', 'Cache', 'Attempts', 'Streamed']) {
      await detail.getByText(label, { exact: true }).waitFor();
    }
    const text = await detail.textContent();
    assert.match(text, /feature=search/, 'the newest request carries its tag');
    assert.match(text, /gpt-4o/, 'the provider model is shown');
    await shot(page, 'request-detail');
    // The detail opens from its address alone, too (after a reload nothing is cached).
    await page.reload();
    await heading(page, 'Request').waitFor();
    await page.locator('dl.detail-list').getByText('Event ID', { exact: true }).waitFor();
  });

  let spent = '';
  await step('the team budget cut below its spend shows a full, over-the-limit bar', async () => {
    await nav(page, 'Budgets');
    const row = page.getByRole('table', { name: 'Teams budgets' }).getByRole('row').filter({ hasText: 'default' });
    await row.waitFor();
    spent = (await row.locator('.budget-figures').textContent()).trim().split(' of ')[0];
    assert.notEqual(spent, '$0.00', 'the budget counts the spend of the day');
    await row.getByRole('button', { name: /^Edit team budget/ }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Limit (USD)').fill('0.000001');
    await dialog.getByRole('button', { name: 'Save budget' }).click();
    await dialog.waitFor({ state: 'detached' });
    const bar = row.getByRole('progressbar');
    await eventually(async () => (await bar.getAttribute('aria-valuenow')) === '100', { message: 'a full bar' });
    assert.match(await bar.getAttribute('aria-valuetext'), /over the limit/);
    await row.getByText('Over limit').waitFor();
    await shot(page, 'budgets');
  });

  await step('the gateway refuses the key once the budget is spent (429 insufficient_quota)', async () => {
    const refusal = await eventually(async () => {
      const answer = await chat(key);
      if (answer.status === 200) return null;
      return answer;
    }, { timeout: 8_000, interval: 250, message: 'a refusal' });
    assert.equal(refusal.status, 429, JSON.stringify(refusal.body));
    const error = refusal.body && refusal.body.error;
    assert.ok(error && (error.code === 'insufficient_quota' || error.type === 'insufficient_quota'), `insufficient_quota: ${JSON.stringify(refusal.body)}`);
    await nav(page, 'Request log');
    const refused = page.getByRole('table', { name: 'Requests, newest first' }).locator('tbody tr').filter({ hasText: '429' });
    await eventually(async () => {
      await page.getByRole('button', { name: 'Refresh' }).click();
      await page.getByRole('table', { name: 'Requests, newest first' }).waitFor();
      return (await refused.count()) > 0;
    }, { timeout: 20_000, interval: 1_000, message: 'the refused request in the log' });
  });

  await step('billing: the plan, no card yet, and this month\'s $5.00 free allowance', async () => {
    await nav(page, 'Billing');
    const allowance = page.getByRole('group', { name: 'Free allowance used' });
    await allowance.waitFor();
    assert.match((await allowance.textContent()).replace(/\s+/g, ' '), /of \$5\.00/, 'the free allowance of the month is $5.00');
    await page.getByRole('progressbar', { name: 'Free allowance used' }).waitFor();
    await page.getByRole('group', { name: 'Running cost' }).waitFor();
    await page.getByRole('group', { name: 'Provider cost' }).waitFor();
    const payment = page.getByRole('region', { name: 'Payment method' });
    await payment.getByText('No card on file.', { exact: false }).waitFor();
    await payment.getByRole('button', { name: 'Manage billing' }).waitFor();
    assert.equal(await page.getByRole('alert').count(), 0, 'no standing banner in good standing');
    await page.getByRole('region', { name: 'Invoices' }).getByText('No invoices yet.', { exact: false }).waitFor();
    await page.getByRole('region', { name: 'Prepaid credit' }).getByLabel('Amount (USD)').waitFor();
  });

  await step('billing: add a card through Stripe Checkout, come back, see •••• 4242', async () => {
    const visited = [];
    const onNavigated = (frame) => {
      if (frame === page.mainFrame()) visited.push(frame.url());
    };
    page.on('framenavigated', onNavigated);
    try {
      await page.getByRole('region', { name: 'Payment method' }).getByRole('button', { name: 'Add a card' }).click();
      await page.waitForURL((url) => /\/checkout\/[^/]+$/.test(url.pathname) && (!STRIPE || url.href.startsWith(`${STRIPE}/checkout/`)));
      await page.getByRole('heading', { name: 'Save a card for future payments' }).waitFor();
      await page.getByText('Visa ending in 4242').waitFor();
      await page.getByRole('button', { name: 'Save card' }).click();
      await heading(page, 'Billing').waitFor();
      await page.getByRole('status').getByText('Stripe has your payment details', { exact: false }).waitFor();
      assert.ok(visited.includes(`${BASE}/#/billing?checkout=done`), `Checkout sent the browser to #/billing?checkout=done: ${visited.join(', ')}`);
    } finally {
      page.off('framenavigated', onNavigated);
    }
    // The card arrives by webhook: the page looks again by itself; Refresh if it is slow.
    const payment = page.getByRole('region', { name: 'Payment method' });
    await eventually(async () => {
      if (await payment.getByText('•••• 4242').isVisible()) return true;
      await page.getByRole('button', { name: 'Refresh' }).click();
      await payment.waitFor();
      return payment.getByText('•••• 4242').isVisible();
    }, { timeout: 12_000, interval: 1_000, message: 'the card •••• 4242 on the billing page' });
    assert.match((await payment.textContent()).replace(/\s+/g, ' '), /Visa.*•••• 4242.*Expires \d{2}\/\d{4}/);
    await payment.getByRole('button', { name: 'Replace card' }).waitFor();
    await shot(page, 'billing');
  });

  await step('billing: Manage billing opens the portal with the card, and returns', async () => {
    await page.getByRole('region', { name: 'Payment method' }).getByRole('button', { name: 'Manage billing' }).click();
    await page.waitForURL((url) => !url.href.startsWith(BASE));
    await page.getByRole('heading', { name: 'Payment methods' }).waitFor();
    await page.getByText(/ending in 4242/).waitFor();
    await page.getByRole('link', { name: 'Return' }).click();
    await heading(page, 'Billing').waitFor();
    await page.getByRole('region', { name: 'Payment method' }).getByText('•••• 4242').waitFor();
  });

  await step('billing: an own provider key, shown by its last four characters; the plan switched to it and back', async () => {
    const own = () => page.getByRole('region', { name: 'Your own provider keys' });
    await own().getByLabel('API key').fill('sk-dashboard-own-4321');
    await own().getByRole('button', { name: 'Save key' }).click();
    await own().getByText('…4321').waitFor();
    assert.equal(await own().getByText('sk-dashboard-own').count(), 0, 'the key itself is never shown');
    await own().getByRole('button', { name: 'Use my own keys' }).click();
    await page.getByRole('region', { name: 'Plan' }).getByText('Bring your own keys').waitFor();
    await own().getByRole('button', { name: 'Switch to pay as you go' }).waitFor();
    await shot(page, 'billing-own-keys');
    await own().getByRole('button', { name: 'Switch to pay as you go' }).click();
    await page.getByRole('region', { name: 'Plan' }).getByText('Pay as you go').waitFor();
  });

  await step('billing on a phone', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await nav(page, 'Overview');
    await nav(page, 'Billing');
    await page.getByRole('region', { name: 'Payment method' }).getByText('•••• 4242').waitFor();
    await page.getByRole('group', { name: 'Free allowance used' }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 0, `the billing page fits the phone's width (${overflow} px too wide)`);
    await shot(page, 'billing-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('teams: invite a member, who accepts in another browser', async () => {
    await nav(page, 'Teams & members');
    await page.getByRole('table', { name: 'Teams' }).getByRole('row').filter({ hasText: 'default' }).waitFor();
    const invitee = `member-${Date.now().toString(36)}@example.com`;
    const invitations = page.getByRole('region', { name: 'Invitations' });
    await invitations.getByLabel('Email').fill(invitee);
    await invitations.getByLabel('Role').selectOption('VIEWER');
    await invitations.getByRole('button', { name: 'Invite' }).click();
    const dialog = page.getByRole('dialog', { name: 'Invitation created' });
    const link = await dialog.getByLabel('Invitation link').inputValue();
    assert.ok(link.startsWith(`${BASE}/#/accept/`), `an accept link: ${link}`);
    await dialog.getByRole('button', { name: 'Done' }).click();
    await invitations.getByRole('row').filter({ hasText: invitee }).waitFor();
    await shot(page, 'teams');

    const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const guest = await other.newPage();
    watch(guest, 'invitee');
    await guest.goto(link);
    await heading(guest, 'Join an organization').waitFor();
    await guest.getByText(ORGANIZATION).first().waitFor();
    await guest.getByLabel('Choose a password').fill('another long passphrase');
    await guest.getByRole('button', { name: `Join ${ORGANIZATION}` }).click();
    await heading(guest, 'Overview').waitFor();
    // A viewer reads but cannot create keys.
    await nav(guest, 'Keys');
    await guest.getByRole('table', { name: 'Virtual keys' }).waitFor();
    assert.equal(await guest.getByRole('button', { name: 'Create key' }).count(), 0, 'a viewer has no Create key button');
    assert.equal(await guest.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Billing' }).count(), 0, 'a viewer has no Billing link');
    await other.close();

    await page.reload();
    await heading(page, 'Teams & members').waitFor();
    await page.getByRole('table', { name: 'Members' }).getByRole('row').filter({ hasText: invitee }).waitFor();
  });

  await step('settings: an admin token, shown once, opens the GraphQL API', async () => {
    await nav(page, 'Settings');
    await page.getByLabel('Requests per minute').waitFor();
    await page.getByLabel('Token name').fill('ci export');
    await page.getByLabel('Token role').selectOption('VIEWER');
    await page.getByRole('button', { name: 'Create token' }).click();
    const dialog = page.getByRole('dialog', { name: 'Admin token created' });
    const secret = await dialog.getByLabel('Admin token').inputValue();
    await dialog.getByRole('button', { name: 'Done' }).click();
    const data = await graphql(secret, '{ viewer { role organization { name } } }');
    assert.equal(data.viewer.organization.name, ORGANIZATION);
    await page.getByRole('table', { name: 'Admin API tokens' }).getByRole('row').filter({ hasText: 'ci export' }).waitFor();
    await shot(page, 'settings');
  });

  await step('guardrails: a bad expression is refused naming it; a policy is saved and tried on a sample prompt', async () => {
    await nav(page, 'Guardrails');
    const editor = page.getByLabel('Policy (JSON)');
    await editor.waitFor();
    assert.deepEqual(JSON.parse(await editor.inputValue()), {}, 'no policy set yet');
    await editor.fill(JSON.stringify({ input: { deny_regex: ['(unclosed'] } }));
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByText(/^input\.deny_regex\[0\]: /).waitFor();
    // The selects per kind of data edit the JSON.
    await editor.fill('{}');
    await page.getByLabel('Email addresses', { exact: true }).selectOption('redact');
    await page.getByLabel('Card numbers', { exact: true }).selectOption('block');
    const policy = { input: { pii: { email: 'redact', credit_card: 'block' } } };
    assert.deepEqual(JSON.parse(await editor.inputValue()), policy);
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.getByRole('status').getByText('Guardrail policy saved.').waitFor();
    const session = await (await fetch(`${BASE}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: EMAIL, password: PASSWORD }),
    })).json();
    const data = await graphql(session.access_token, 'query { guardrailPolicy(level: {}) }');
    assert.deepEqual(data.guardrailPolicy, policy, 'the API has the policy saved');
    // The preview: the text the provider would receive, and what the rules did.
    await page.getByRole('textbox', { name: 'Sample prompt' }).fill('Mail <b>jane@example.com</b> the report.');
    await page.getByRole('button', { name: 'Test', exact: true }).click();
    await page.getByRole('heading', { name: 'The provider would receive' }).waitFor();
    const shown = await page.locator('.preview-text').textContent();
    assert.ok(shown.includes('the report.'), `the text is shown as text: ${shown}`);
    assert.equal(await page.locator('.preview-text b').count(), 0, 'the prompt is never parsed as HTML');
    assert.ok(!(await page.locator('.guardrail-preview').textContent()).includes('null'), 'nothing missing is shown as null');
    await page.getByRole('heading', { name: 'What the rules did' }).waitFor();
    await shot(page, 'guardrails');
  });

  await step('keys: revoke the key; the gateway then answers 401', async () => {
    await nav(page, 'Keys');
    const row = page.getByRole('table', { name: 'Virtual keys' }).getByRole('row').filter({ hasText: prefix });
    await row.getByRole('button', { name: /^Revoke key/ }).click();
    const confirm = page.getByRole('dialog', { name: /^Revoke key/ });
    await confirm.getByRole('button', { name: 'Revoke key' }).click();
    await confirm.waitFor({ state: 'detached' });
    await row.getByText('revoked', { exact: true }).waitFor();
    await shot(page, 'keys');
    const answer = await eventually(async () => {
      const a = await chat(key);
      return a.status === 401 ? a : null;
    }, { timeout: 8_000, interval: 250, message: 'a 401 for the revoked key' });
    assert.equal(answer.status, 401);
  });

  await step('phone viewport: overview and keys, through the menu button', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const menu = page.getByRole('button', { name: 'Menu' });
    await nav(page, 'Overview');
    await page.getByRole('group', { name: 'Requests' }).waitFor();
    await shot(page, 'overview-phone');
    await menu.click();
    assert.equal(await menu.getAttribute('aria-expanded'), 'true');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Keys' }).click();
    await heading(page, 'Keys').waitFor();
    assert.equal(await menu.getAttribute('aria-expanded'), 'false', 'the menu closes after navigating');
    await page.getByRole('table', { name: 'Virtual keys' }).getByRole('row').filter({ hasText: prefix }).waitFor();
    await shot(page, 'keys-phone');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  await step('log out; #/keys then asks to log in; log in again', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await heading(page, 'Log in').waitFor();
    await page.goto(`${BASE}/#/keys`);
    await heading(page, 'Log in').waitFor();
    assert.equal(new URL(page.url()).hash, '#/login');
    await page.getByLabel('Email').fill(EMAIL);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    // Back where the login was asked for.
    await heading(page, 'Keys').waitFor();
    await page.getByRole('table', { name: 'Virtual keys' }).getByRole('row').filter({ hasText: prefix }).waitFor();
  });

  await context.close();
  console.log(`all ${stepNumber} steps passed; screenshots in ${SHOTS}`);
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : error);
  process.exit(1);
});
