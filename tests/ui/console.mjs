// The console in a real browser (Debian's Chromium driven by playwright-core), against a running
// toggled. Run by tests/it/console.rs, which starts the server and checks the API afterwards.
//
// Environment: TOGGLED_URL, TOGGLED_TOKEN (an admin token), TOGGLED_FLAG_FILE (the served file,
// rewritten to prove a file edit shows up live), TOGGLED_FLAG (the flag to kill),
// TOGGLED_XSS_FLAG (a flag whose description is HTML), TOGGLED_SCREENSHOTS (optional: a
// directory for the README's screenshots). With `--measure` it only times the first paint of the
// flag list (benches/console.sh). Prints one JSON line of what it saw; exits 1 on a failed check.
import { chromium } from 'playwright-core';
import { appendFileSync } from 'node:fs';
import assert from 'node:assert/strict';

const base = process.env.TOGGLED_URL;
const token = process.env.TOGGLED_TOKEN;
const flag = process.env.TOGGLED_FLAG;
const seen = {};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});

/** A new tab (its own session storage), failing the run on any script error or alert. */
async function tab(options) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, ...options });
  const page = await context.newPage();
  page.on('pageerror', (e) => { throw new Error('script error in the console: ' + e.message); });
  page.on('dialog', (d) => { throw new Error('an alert opened (script injection?): ' + d.message()); });
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) seen.consoleErrors = [...(seen.consoleErrors || []), m.text()]; });
  return page;
}

async function signIn(page) {
  await page.goto(base + '/ui');
  await page.getByTestId('token-input').fill(token);
  await page.getByTestId('sign-in').click();
  await page.getByTestId('flag-list').waitFor();
}

const statusOf = (page, key) => page.getByTestId('flag-row-' + key).getByTestId('status');

try {
  if (process.argv.includes('--measure')) {
    const page = await tab();
    await signIn(page);
    const runs = [];
    for (let i = 0; i < 7; i++) {
      await page.reload();
      await page.waitForFunction(() => performance.getEntriesByName('toggled:flags-painted').length > 0);
      runs.push(await page.evaluate(() => {
        const paint = performance.getEntriesByName('first-contentful-paint')[0];
        const fetches = Object.fromEntries(performance.getEntriesByType('resource').map((e) => [new URL(e.name).pathname, Math.round(e.responseEnd - e.startTime)]));
        const rendered = performance.getEntriesByName('toggled:flags-rendered')[0];
        return { first_paint_ms: paint ? paint.startTime : null, list_ms: rendered.startTime, painted_ms: performance.getEntriesByName('toggled:flags-painted')[0].startTime, rows: document.querySelectorAll('[data-testid^="flag-row-"]').length, fetches };
      }));
    }
    console.log(JSON.stringify({ runs }));
    process.exit(0);
  }

  // A wrong token is refused, with the server's reason, and never lands in the URL.
  const a = await tab();
  await a.goto(base + '/ui');
  await a.getByTestId('token-input').fill('not-the-token');
  await a.getByTestId('sign-in').click();
  await a.getByTestId('sign-in-error').filter({ hasText: 'refused' }).waitFor();
  seen.wrongToken = await a.getByTestId('sign-in-error').textContent();
  assert.ok(!a.url().includes('not-the-token'));

  await signIn(a);
  assert.ok(!a.url().includes(token), 'the token is not in the URL');
  seen.rows = await a.locator('[data-testid^="flag-row-"]').count();
  seen.counts = await a.getByTestId('flag-row-' + flag).locator('td').nth(2).textContent();

  // Search narrows the list to the flag.
  await a.getByTestId('search').fill(flag);
  await a.waitForFunction((key) => {
    const rows = document.querySelectorAll('[data-testid^="flag-row-"]');
    return rows.length === 1 && rows[0].dataset.testid === 'flag-row-' + key;
  }, flag);
  await a.getByTestId('search').fill('');

  // The XSS case: the description renders as text, no element is made from it.
  const xss = process.env.TOGGLED_XSS_FLAG;
  const cell = a.getByTestId('flag-row-' + xss).locator('td').nth(3);
  seen.xssText = await cell.textContent();
  assert.equal(await a.locator('main img').count(), 0, 'no <img> was created from flag data');
  assert.equal(await a.evaluate(() => window.__xss), undefined);

  // A second tab, signed in separately, watching the list.
  const b = await tab();
  await signIn(b);
  seen.beforeKill = await statusOf(b, flag).textContent();

  // Kill with a reason, through the confirmation dialog.
  await a.getByTestId('kill-' + flag).click();
  await a.getByTestId('confirm').click();
  await a.getByText('A reason is required').waitFor(); // an empty reason is refused in the dialog
  await a.getByTestId('reason-input').fill('browser test: incident 42');
  const killedAt = Date.now();
  await a.getByTestId('confirm').click();
  await statusOf(a, flag).filter({ hasText: 'killed' }).waitFor({ timeout: 5000 });
  await statusOf(b, flag).filter({ hasText: 'killed' }).waitFor({ timeout: 2000 });
  seen.secondTabMs = Date.now() - killedAt;
  seen.afterKill = await statusOf(b, flag).textContent();

  // A file edit shows up live in the second tab.
  appendFileSync(process.env.TOGGLED_FLAG_FILE, '\n  added_live:\n    description: added while the console was open\n    default_value: false\n');
  const editedAt = Date.now();
  await b.getByTestId('flag-row-added_live').waitFor({ timeout: 10000 });
  seen.fileEditMs = Date.now() - editedAt;

  // The flag page: the override, the audit trail, explain, and clearing the override.
  await a.goto(base + '/ui#/flags/' + encodeURIComponent(flag));
  await a.getByTestId('override').waitFor();
  // A killed flag offers no Kill and no Pause, and its live state shows no raw null.
  assert.equal(await a.getByTestId('kill-' + flag).count(), 0);
  assert.equal(await a.getByTestId('pause-' + flag).count(), 0);
  assert.ok(!(await a.getByRole('table').first().textContent()).includes('null'));
  await a.getByTestId('audit-row').filter({ hasText: 'browser test: incident 42' }).waitFor();
  if (process.env.TOGGLED_SCHEDULE) {
    // The flag's scheduled changes, with the reason as text.
    const row = a.getByTestId('schedule-' + process.env.TOGGLED_SCHEDULE);
    await row.waitFor();
    seen.scheduleRow = await row.textContent();
    seen.scheduleHtml = await a.locator('[data-testid^="schedule-"] i').count();
  }
  await a.getByTestId('explain').click();
  await a.getByTestId('explain-result').filter({ hasText: 'kill switch' }).waitFor();
  seen.explain = await a.getByTestId('explain-result').locator('p').first().textContent();
  if (process.env.TOGGLED_SCREENSHOTS) {
    for (const page of [a, b]) await page.evaluate(() => { document.getElementById('toasts').replaceChildren(); window.scrollTo(0, 0); });
    await a.screenshot({ path: process.env.TOGGLED_SCREENSHOTS + '/console-flag.png', fullPage: false });
    await b.screenshot({ path: process.env.TOGGLED_SCREENSHOTS + '/console-flags.png', fullPage: false });
  }
  await a.getByTestId('clear-' + flag).click();
  await a.getByTestId('reason-input').fill('browser test: resolved');
  await a.getByTestId('confirm').click();
  await a.getByTestId('override').waitFor({ state: 'detached' });
  await statusOf(b, flag).filter({ hasNotText: 'killed' }).waitFor({ timeout: 2000 });

  // The audit log filtered by actor, and the releases page with its gates.
  await a.goto(base + '/ui#/audit');
  await a.getByTestId('audit-actor').fill('reload');
  await a.getByTestId('audit-actor').press('Enter');
  await a.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-testid="audit-row"]')];
    return rows.length > 0 && rows.every((r) => r.children[1].textContent.startsWith('reload'));
  });
  await a.goto(base + '/ui#/releases');
  await a.getByTestId('gate-release_success_rate').waitFor();
  if (process.env.TOGGLED_RELEASE) {
    // A release: notes rendered as text, an approval recorded from the page.
    await a.getByTestId('release-row-' + process.env.TOGGLED_RELEASE).getByRole('link').click();
    await a.getByTestId('release-title').waitFor();
    await a.getByTestId('approver').fill('pat');
    await a.getByTestId('approve').click();
    await a.getByTestId('confirm').click();
    await a.getByRole('cell', { name: 'pat', exact: true }).waitFor();
    seen.releaseHtml = await a.locator('.markdown b').count();
  }

  if (process.env.TOGGLED_SDK_APP) {
    // The registered SDK instances: the app name an SDK sent, shown as text.
    await a.getByTestId('nav-sdks').click();
    const row = a.getByTestId(`sdk-${process.env.TOGGLED_SDK_APP}-i-1`);
    await row.waitFor();
    seen.sdkRow = await row.textContent();
    seen.sdkHtml = await a.locator('[data-testid="sdk-instances"] b').count();
  }

  if (process.env.TOGGLED_REQUEST) {
    // A change another admin asked for: approved here, with a reason.
    const id = process.env.TOGGLED_REQUEST;
    await a.getByTestId('nav-requests').click();
    const row = a.getByTestId('request-' + id);
    await row.waitFor();
    seen.requestRow = await row.textContent();
    await a.getByTestId('approve-' + id).click();
    await a.getByTestId('reason-input').fill('browser test: looks right');
    await a.getByTestId('confirm').click();
    await a.getByTestId('no-requests').waitFor();
  }

  // Keyboard: the kill button opens the dialog with Enter, Escape closes it, nothing changes.
  await b.getByTestId('kill-' + flag).focus();
  await b.keyboard.press('Enter');
  await b.getByTestId('reason-input').waitFor();
  assert.equal(await b.evaluate(() => document.activeElement.dataset.testid), 'reason-input');
  await b.keyboard.press('Escape');
  await b.waitForFunction(() => !document.getElementById('confirm-dialog').open, null, { timeout: 2000 });

  // Dark scheme, and 400% zoom (a 1280 px window at 400% is 320 CSS px): no page-wide sideways scroll.
  const dark = await tab({ colorScheme: 'dark', viewport: { width: 320, height: 200 } });
  await signIn(dark);
  seen.darkBackground = await dark.evaluate(() => getComputedStyle(document.body).backgroundColor);
  seen.zoomOverflow = await dark.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);

  // A phone: the flag list keeps each row's status and Kill on screen.
  const phone = await tab({ viewport: { width: 390, height: 800 } });
  await signIn(phone);
  const kill = phone.locator('[data-testid^="kill-"]').first();
  await kill.waitFor();
  const box = await kill.boundingBox();
  assert.ok(box && box.x + box.width <= 390, `Kill at ${JSON.stringify(box)} on a 390 px screen`);

  // Signing out forgets the token.
  await a.getByTestId('sign-out').click();
  assert.equal(await a.evaluate(() => sessionStorage.length), 0);
  await a.getByTestId('token-input').waitFor();
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
