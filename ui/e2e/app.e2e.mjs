// The whole patient flow in Chromium, against a real ledger and `custodia app serve`, at desktop size
// (1280x800) and at phone size (390x844), each with its own fresh network and wallet:
// onboarding → lock → unlock (wrong passphrase first, by keyboard) → a grant to Dr Hopper from her
// contact card → on the ledger → a read by the hospital's gateway appears verified in the access log →
// its proof verifies → denied and break-glass events → revoke (Escape cancels the dialog) → lock.
// axe-core runs on every main screen; screenshots go to docs/screenshots/{desktop,phone}-{screen}.png.
//
// Run from ui/: npm run e2e   (needs ui/dist built and target/debug/custodia; CUSTODIA_BIN overrides)

import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  PASSPHRASE,
  SHOTS,
  VIEWPORTS,
  axeScreen,
  dismissToasts,
  flow,
  launchBrowser,
  startHarness,
  until,
} from './harness.mjs';

const SYNC_WAIT_MS = 40_000; // the UI syncs every 15 s; allow two rounds and some slack

for (const size of /** @type {const} */ (['desktop', 'phone'])) {
  describe(`Custodia in Chromium at ${size} size`, () => {
    /** @type {Awaited<ReturnType<typeof startHarness>>} */
    let net;
    let browser;
    let context;
    /** @type {import('playwright-core').Page} */
    let page;
    const pageErrors = [];
    const consoleErrors = [];
    const axeByScreen = new Map();

    // Filled in as the flow goes.
    let grantId = '';
    let patientKey = '';
    let readIndex = -1;

    before(async () => {
      await mkdir(SHOTS, { recursive: true });
      net = await startHarness({ label: `custodia-e2e-${size}` });
      browser = await launchBrowser();
      context = await browser.newContext({ ...VIEWPORTS[size], acceptDownloads: true, locale: 'en-GB' });
      context.setDefaultTimeout(15_000);
      page = await context.newPage();
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() !== 'error') return;
        const text = m.text();
        // Expected: the bridge answers a wrong passphrase with 422, and a locked wallet with 423.
        if (/Failed to load resource: the server responded with a status of 4(22|23)/.test(text)) return;
        consoleErrors.push(text);
      });
    });

    after(async () => {
      await context?.close().catch(() => {});
      await browser?.close().catch(() => {});
      if (run.failed && net) {
        console.log(`# app log (tail):\n${net.app?.log()}\n# ledger log (tail):\n${net.ledgerLog?.()}`);
      }
      await net?.stop();
    });

    const run = flow(size, () => ({ '': page }));
    const step = run.step;

    // ---- helpers ----

    const nav = () => page.getByRole('navigation', { name: 'Main' });
    const h1 = (name) => page.getByRole('heading', { level: 1, name, exact: true });

    const axe = (screen) => axeScreen(page, size, screen, axeByScreen);

    async function shot(screen, { full = true } = {}) {
      await dismissToasts(page);
      // Tables scrolled sideways by an earlier click start at the left again.
      await page.evaluate(() => document.querySelectorAll('.table-wrap').forEach((el) => (el.scrollLeft = 0)));
      const file = path.join(SHOTS, `${size}-${screen}.png`);
      const opts = { path: file, animations: 'disabled', caret: 'hide' };
      if (full) {
        // Whole page, but at most 3000 CSS pixels tall (the access log can be long).
        const { w, h } = await page.evaluate(() => ({
          w: document.documentElement.clientWidth,
          h: document.documentElement.scrollHeight,
        }));
        await page.screenshot({ ...opts, fullPage: true, ...(h > 3000 ? { clip: { x: 0, y: 0, width: w, height: 3000 } } : {}) });
      } else {
        await page.screenshot(opts);
      }
    }

    async function goNav(label, heading = label) {
      await nav().getByRole('link', { name: label, exact: true }).click();
      await h1(heading).waitFor();
    }

    async function waitForRefreshAndClick() {
      // The UI syncs at unlock and every 15 s; new events show "New reads have arrived" with Refresh.
      const refresh = page.getByRole('button', { name: 'Refresh', exact: true });
      await refresh.waitFor({ timeout: SYNC_WAIT_MS });
      await refresh.click();
      await refresh.waitFor({ state: 'detached' });
    }

    const logStatus = () => page.locator('.status-line [role="status"]');

    // ---- the flow ----

    step('onboarding: create the wallet and connect to the prefilled ledger', async () => {
      await page.goto(net.app.url);
      await h1('Create your wallet').waitFor();
      // The bridge token leaves the address bar at once.
      await until(() => !page.url().includes('token='), { message: 'the token to leave the URL' });
      await axe('onboarding');
      await shot('onboarding');

      // Nothing filled in: the form says what is missing.
      await page.getByRole('button', { name: 'Create wallet' }).click();
      await page.getByRole('alert').filter({ hasText: 'Enter your name.' }).waitFor();

      await page.getByLabel('Your name', { exact: true }).fill('Ada Lovelace');
      await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByLabel('Confirm passphrase', { exact: true }).fill(PASSPHRASE);
      await page.getByRole('button', { name: 'Create wallet' }).click();

      await h1('Connect to a ledger').waitFor({ timeout: 30_000 });
      const ledgerField = page.getByLabel('Ledger address', { exact: true });
      assert.equal(await ledgerField.inputValue(), net.ledgerUrl, 'the ledger address is prefilled with the default ledger');
      await axe('onboarding-ledger');
      await shot('onboarding-ledger');
      await page.getByRole('button', { name: 'Connect', exact: true }).click();

      await h1('Home').waitFor({ timeout: 30_000 });
      await nav().waitFor();
      await page.getByText('Hello, Ada Lovelace.').waitFor();
      const status = await net.app.bridge('status');
      assert.equal(status.state, 'unlocked');
      assert.equal(status.summary.name, 'Ada Lovelace');
      assert.equal(status.summary.ledger?.url, net.ledgerUrl, 'the wallet is enrolled on the test ledger');
      patientKey = status.summary.key;
      assert.match(patientKey, /^cusig1/);
    });

    step('home screen', async () => {
      await page.getByRole('heading', { level: 2, name: 'Needs your attention' }).waitFor();
      await page.getByText('Nobody. When you share your records with a clinician, they appear here.').waitFor();
      await axe('home-empty');
    });

    step('lock, then unlock by keyboard (a wrong passphrase first shows an error)', async () => {
      await page.getByRole('button', { name: 'Lock', exact: true }).click();
      await h1('Unlock your wallet').waitFor();
      assert.equal(await nav().count(), 0, 'no navigation while locked');
      assert.equal((await net.app.bridge('status')).state, 'locked');
      await axe('unlock');
      await shot('unlock');

      // The passphrase field has focus: type and press Enter, no mouse.
      const field = page.getByLabel('Passphrase', { exact: true });
      await until(() => field.evaluate((el) => el === document.activeElement), { message: 'focus on the passphrase field' });
      await page.keyboard.type('not my passphrase');
      await page.keyboard.press('Enter');
      const error = page.getByRole('alert');
      await error.waitFor({ timeout: 30_000 });
      assert.ok((await error.innerText()).trim().length > 0, 'the error says something');
      assert.equal(await field.getAttribute('aria-invalid'), 'true');
      assert.equal(await h1('Unlock your wallet').count(), 1, 'still locked');
      await axe('unlock-error');

      // After the error the field is focused with its text selected: typing replaces it.
      await until(() => field.evaluate((el) => el === document.activeElement), { message: 'focus back on the field' });
      await page.keyboard.type(PASSPHRASE);
      await page.keyboard.press('Enter');
      await h1('Home').waitFor({ timeout: 30_000 });
      assert.equal((await net.app.bridge('status')).state, 'unlocked');
    });

    step('new grant: Dr Hopper from her contact card, lab results, treatment, 7 days', async () => {
      await goNav('New grant', 'Share your records');
      await page.getByRole('heading', { level: 2, name: 'Who should see your records?' }).waitFor();
      await axe('new-grant-who');

      await page.getByLabel('Contact card text or key', { exact: true }).fill(net.clinician.card);
      await page.getByRole('button', { name: 'Look up', exact: true }).click();
      const chosen = page.locator('.chosen');
      await chosen.getByText('Dr Grace Hopper').first().waitFor();
      await chosen.getByTestId('verified').first().waitFor();
      assert.match(await chosen.innerText(), /St Mary's Hospital/);
      await axe('new-grant-who-chosen');
      await page.getByRole('button', { name: 'Next', exact: true }).click();

      await page.getByRole('heading', { level: 2, name: 'What may Dr Grace Hopper see?' }).waitFor();
      // Next without a choice is refused.
      await page.getByRole('button', { name: 'Next', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: 'Choose at least one kind of record.' }).waitFor();
      const kinds = page.getByRole('group', { name: 'Kinds of records' });
      await kinds.getByRole('checkbox', { name: /^Lab results/ }).check();
      const sensitive = page.getByRole('group', { name: 'Sensitive records' }); // the ⚠ is aria-hidden
      assert.ok((await sensitive.getByRole('checkbox').count()) > 0, 'sensitive records are offered');
      for (const box of await sensitive.getByRole('checkbox').all()) assert.equal(await box.isChecked(), false);
      await axe('new-grant-what');
      await page.getByRole('button', { name: 'Next', exact: true }).click();

      await page.getByRole('heading', { level: 2, name: 'Why, and for how long?' }).waitFor();
      await page.getByLabel('Purpose', { exact: true }).selectOption('TREAT');
      await page.getByLabel('How long', { exact: true }).selectOption({ label: '1 week' });
      await axe('new-grant-terms');
      await page.getByRole('button', { name: 'Next', exact: true }).click();

      await page.getByRole('heading', { level: 2, name: 'Check and sign' }).waitFor();
      const summary = await page.locator('.summary').innerText();
      assert.match(summary, /Dr Grace Hopper/);
      assert.match(summary, /lab results/i);
      assert.match(summary, /treatment/i);
      assert.match(summary, /1 week|7 days/);
      await axe('new-grant-review');
      await shot('new-grant-review');

      await page.getByRole('button', { name: 'Sign and post', exact: true }).click();
      await page.waitForURL(/#\/grants\/(?!new$)[^/?]+$/, { timeout: 30_000 });
      grantId = decodeURIComponent(/#\/grants\/([^/?]+)$/.exec(page.url())[1]);
      assert.ok(grantId && grantId !== 'new', `grant id from the URL: ${grantId}`);
      await page.getByTestId('toast').filter({ hasText: 'Grant signed and posted' }).waitFor();
    });

    step('grant detail: posted, with its ledger entry', async () => {
      await h1('Grant for Dr Grace Hopper').waitFor();
      const facts = page.locator('dl.facts');
      const onLedger = facts.locator('dt:has-text("On the ledger") + dd');
      assert.match(await onLedger.innerText(), /^Yes, entry \d+/);
      assert.equal((await facts.locator('dt:has-text("Grant id") + dd').innerText()).trim(), grantId);
      assert.match(await facts.locator('dt:has-text("Purpose") + dd').innerText(), /TREAT/);
      assert.match(await page.locator('.spread .badge').first().innerText(), /^●\s*Active$/);
      assert.match(await page.locator('section[aria-labelledby="what-h"]').innerText(), /Lab results/);

      const { grant } = await net.app.bridge('grant', { id: grantId });
      assert.equal(grant.status, 'active');
      assert.equal(typeof grant.grant_index, 'number');
      assert.match(await onLedger.innerText(), new RegExp(`entry ${grant.grant_index}\\b`));
      assert.equal(grant.purpose.code, 'TREAT');
      assert.equal(grant.not_after - grant.not_before, 7 * 86_400_000, 'seven days');
      assert.deepEqual(grant.labels, [], 'no sensitive labels');
      assert.ok(grant.scopes.includes('patient/Observation.rs?category=laboratory'));
      const [consentFile] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Export as FHIR Consent' }).click(),
      ]);
      const consent = JSON.parse(await readFile(await consentFile.path(), 'utf8'));
      assert.equal(consent.resourceType, 'Consent', 'the export is a FHIR Consent');

      // The grant is on Home and in Grants.
      await goNav('Grants');
      const item = page.getByTestId('grant-item').filter({ hasText: 'Dr Grace Hopper' });
      await item.waitFor();
      assert.match(await item.innerText(), /Active/);
    });

    step('a read by the gateway appears in the access log, verified', async () => {
      await goNav('Access log');
      await page.getByText('No one has read your records yet.').waitFor();

      const posting = Date.now();
      const posted = await net.postAccess({ patient: patientKey, grant: grantId });
      const postedAt = Date.now();
      readIndex = posted.index;
      assert.equal(typeof readIndex, 'number');
      // Told within seconds: the app follows the ledger's stream rather than waiting for its 15 s sync.
      await page.getByTestId('toast').filter({ hasText: 'Dr Grace Hopper' }).first().waitFor({ timeout: 5_000 });
      console.log(
        `[e2e ${size}] toast ${Date.now() - posting} ms after the post began (${postedAt - posting} ms of it the posting command)`,
      );

      await waitForRefreshAndClick();
      const rows = page.getByTestId('log-row');
      await until(async () => (await rows.count()) === 1, { message: 'one log row' });
      const row = rows.first();
      const text = await row.innerText();
      assert.match(text, /Dr Grace Hopper/);
      assert.match(text, /St Mary's Hospital/);
      // The records in words, never a FHIR type.
      assert.match(text, /Your test results and measurements \(1 record\)/);
      assert.doesNotMatch(text, /Observation/);
      assert.match(text, /Allowed/);
      await row.getByTestId('verified').waitFor();
      assert.equal(await row.getByText('Not verified').count(), 0, 'the reader is an enrolled clinician');
      assert.match(await logStatus().innerText(), /^1 event$/);
      await axe('access-log-one');
    });

    step('the proof dialog shows a verified proof; Escape closes it', async () => {
      await dismissToasts(page);
      await page.getByRole('button', { name: /^Proof for the read at .+ by Dr Grace Hopper$/ }).click();
      const dialog = page.getByRole('dialog', { name: 'Proof that this read is on the ledger' });
      await dialog.waitFor();
      await dialog.getByText('Verified.', { exact: false }).first().waitFor({ timeout: 20_000 });
      const text = await dialog.innerText();
      assert.match(text, new RegExp(`This read is entry ${readIndex} of the ledger`));
      assert.match(text, /Checkpoint size/);
      assert.match(text, /Root hash\s*\n?\s*[0-9a-f]{64}/);
      const proof = await net.app.bridge('access_proof', { index: readIndex });
      assert.equal(proof.verified, true);
      assert.ok(text.includes(proof.leaf_hash), 'the dialog shows the leaf hash');
      await axe('proof-dialog');
      await shot('proof-dialog', { full: false });

      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      // Focus goes back to the button that opened it.
      await until(
        () => page.evaluate(() => document.activeElement?.getAttribute('aria-label')?.startsWith('Proof for the read at')),
        { message: 'focus back on the Proof button' },
      );
    });

    step('denied and break-glass events (posted as the gateway) are shown and filterable', async () => {
      // `post-access --count N` posts synthetic events: about one in twenty denied, one in a hundred break-glass.
      await net.postAccess({ patient: patientKey, grant: grantId, count: 50, spreadDays: 1 });

      await waitForRefreshAndClick();
      const rows = page.getByTestId('log-row');
      // One page of 50, then the rest on demand.
      await until(async () => (await rows.count()) === 50, { timeout: 20_000, message: 'a first page of 50 log rows' });
      assert.match(await logStatus().innerText(), /^51 events$/);
      // By keyboard: an alarm toast may sit over the button on a small screen.
      await page.getByRole('button', { name: 'Load more' }).press('Enter');
      await until(async () => (await rows.count()) === 51, { message: '51 log rows after Load more' });

      // The strong news arrives as an alarm toast (it stays until dismissed).
      await page.locator('[data-testid="toast"][role="alert"]').first().waitFor();

      await page.getByRole('checkbox', { name: 'Break-glass only' }).check();
      await until(async () => /^1 of 51 events match$/.test(await logStatus().innerText()), { message: 'break-glass filter' });
      assert.equal(await rows.count(), 1);
      assert.match(await rows.first().innerText(), /Break-glass/);
      await page.getByRole('checkbox', { name: 'Break-glass only' }).uncheck();
      await until(async () => /^51 events$/.test(await logStatus().innerText()), { message: 'filter cleared' });

      await page.getByLabel('Outcome', { exact: true }).selectOption('denied');
      await until(async () => /^3 of 51 events match$/.test(await logStatus().innerText()), { message: 'denied filter' });
      for (const row of await rows.all()) {
        assert.match(await row.innerText(), /Denied/);
        await row.getByTestId('verified').waitFor();
      }
      assert.match(page.url(), /outcome=denied/, 'filters are in the address');

      // Reader and text search filters.
      await page.getByRole('button', { name: 'Clear filters' }).click();
      await until(async () => /^51 events$/.test(await logStatus().innerText()), { message: 'filters cleared' });
      const reader = page.getByLabel('Reader', { exact: true });
      const hopperKey = net.clinician.key;
      await reader.selectOption(hopperKey);
      await until(async () => /^1 of 51 events match$/.test(await logStatus().innerText()), { message: 'reader filter' });
      await reader.selectOption('');
      await page.getByLabel('Search', { exact: true }).fill('Riverside');
      await until(async () => / of 51 events match$/.test(await logStatus().innerText()), { message: 'text search' });
      for (const row of await rows.all()) assert.match(await row.innerText(), /Riverside Clinic/);
      await page.getByRole('button', { name: 'Clear filters' }).click();
      await until(async () => /^51 events$/.test(await logStatus().innerText()), { message: 'filters cleared' });

      // Every event the wallet shows is verified.
      await until(async () => (await rows.count()) === 50, { message: 'the first page again' });
      // By keyboard: an alarm toast may sit over the button on a small screen.
      await page.getByRole('button', { name: 'Load more' }).press('Enter');
      await until(async () => (await rows.count()) === 51, { message: '51 log rows after Load more' });
      assert.equal(await page.locator('[data-testid="log-row"] [data-testid="verified"]').count(), 51);

      // The CSV export holds every event.
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Export CSV' }).click(),
      ]);
      const csv = await readFile(await download.path(), 'utf8');
      const lines = csv.trim().split(/\r?\n/);
      assert.equal(lines.length, 52, 'a header and 51 events');
      assert.match(csv, /Dr Grace Hopper/);

      // So does the FHIR AuditEvent bundle.
      const [bundleFile] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('button', { name: 'Export FHIR AuditEvent bundle' }).click(),
      ]);
      const bundle = JSON.parse(await readFile(await bundleFile.path(), 'utf8'));
      assert.equal(bundle.resourceType, 'Bundle');
      assert.equal(bundle.type, 'collection');
      assert.equal(bundle.entry?.length, 51, 'one AuditEvent per event');
      assert.ok(bundle.entry.every((e) => e.resource?.resourceType === 'AuditEvent'));

      await axe('access-log');
      await shot('access-log');
    });

    step('home shows the grant and the reads, with the break-glass read needing attention', async () => {
      await goNav('Home');
      await page.getByRole('heading', { level: 2, name: 'Recent reads' }).waitFor();
      await page.getByTestId('grant-item').filter({ hasText: 'Dr Grace Hopper' }).waitFor();
      const attention = page.locator('section[aria-labelledby="attention-h"]');
      await until(async () => /used emergency access/i.test(await attention.innerText()), { message: 'break-glass (emergency access) in attention' });
      await axe('home');
      await shot('home');
    });

    step('grant detail with its reads; revoke (Escape cancels, then confirm)', async () => {
      await goNav('Grants');
      await page.getByTestId('grant-item').filter({ hasText: 'Dr Grace Hopper' }).getByRole('link').click();
      await h1('Grant for Dr Grace Hopper').waitFor();
      await page.getByRole('heading', { level: 2, name: 'Reads under this grant' }).waitFor();
      await until(async () => (await page.getByTestId('log-row').count()) === 51, { message: '51 reads under the grant' });
      assert.match(await page.locator('dl.facts dt:has-text("Reads") + dd').innerText(), /\d+ made.*; 3 denied/);
      await axe('grant-detail');
      await shot('grant-detail');

      // The confirmation dialog: Cancel has focus, Escape closes it and nothing changes.
      await page.getByRole('button', { name: 'Revoke', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Revoke this grant?' });
      await dialog.waitFor();
      await until(() => page.evaluate(() => document.activeElement?.textContent?.trim() === 'Cancel'), {
        message: 'focus on Cancel',
      });
      await axe('revoke-dialog');
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      assert.equal((await net.app.bridge('grant', { id: grantId })).grant.status, 'active', 'Escape revokes nothing');

      await page.getByRole('button', { name: 'Revoke', exact: true }).click();
      await dialog.waitFor();
      await dialog.getByRole('button', { name: 'Yes, revoke' }).click();
      await dialog.waitFor({ state: 'hidden', timeout: 30_000 });
      await page.getByTestId('toast').filter({ hasText: 'Access revoked' }).waitFor();
      await until(async () => /^✕\s*Revoked$/.test(await page.locator('.spread .badge').first().innerText()), {
        message: 'the Revoked badge',
      });
      assert.equal(await page.getByRole('button', { name: 'Revoke', exact: true }).count(), 0, 'no Revoke button any more');
      await until(async () => /revocation is entry \d+/.test(await page.locator('dl.facts').innerText()), {
        message: 'the revocation entry',
      });
      const { grant } = await net.app.bridge('grant', { id: grantId });
      assert.equal(grant.status, 'revoked');
      assert.equal(typeof grant.revocation_index, 'number');
      await axe('grant-detail-revoked');

      await goNav('Grants');
      const ended = page.locator('section[aria-labelledby="ended-h"]');
      await ended.getByTestId('grant-item').filter({ hasText: 'Dr Grace Hopper' }).waitFor();
      assert.match(await ended.innerText(), /Revoked/);
    });

    step('settings', async () => {
      await goNav('Settings');
      await page.getByText(`Connected to ${net.ledgerUrl}.`, { exact: false }).waitFor();
      await page.getByRole('img', { name: 'QR code of your contact card' }).waitFor();
      const card = await page.getByLabel('Contact card text', { exact: true }).inputValue();
      assert.match(card, /^CU1:C:/, 'the contact card text is shown');
      // What interrupts: the defaults, then routine reads told at once; the choice is the wallet's.
      const routine = page.getByLabel('Other reads, and permissions withdrawn');
      assert.equal(await routine.inputValue(), 'summary');
      assert.equal(await page.getByLabel('Someone used your emergency card').inputValue(), 'instant');
      await routine.selectOption('instant');
      await until(
        async () =>
          (await net.app.bridge('notice_prefs')).choices.find((c) => c.kind === 'routine')?.delivery === 'instant',
        { message: 'routine reads told at once' },
      );
      await axe('settings');
      await shot('settings');
    });

    step('lock returns to the unlock screen', async () => {
      await page.getByRole('button', { name: 'Lock', exact: true }).click();
      await h1('Unlock your wallet').waitFor();
      assert.equal(await nav().count(), 0);
      assert.equal((await net.app.bridge('status')).state, 'locked');
      await assert.rejects(net.app.bridge('home'), (e) => e.code === 'locked');
    });

    it('no serious or critical axe violations on any screen', () => {
      const bad = [];
      for (const [screen, violations] of axeByScreen) {
        for (const v of violations) if (v.impact === 'serious' || v.impact === 'critical') bad.push(`${screen}: [${v.impact}] ${v.id} (${v.nodes.map((n) => n.target).join(', ')})`);
      }
      assert.ok(axeByScreen.size > 0, 'axe ran');
      assert.deepEqual(bad, [], `serious/critical axe violations at ${size} size:\n${bad.join('\n')}`);
    });

    it('no uncaught page errors and no console errors (CSP included)', () => {
      assert.deepEqual(pageErrors, [], 'uncaught errors in the page');
      assert.deepEqual(consoleErrors, [], 'console errors');
    });
  });
}
