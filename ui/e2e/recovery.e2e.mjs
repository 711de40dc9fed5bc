// Social recovery in Chromium, against a real ledger and `custodia app serve`, at desktop and phone size, each
// with its own fresh network. With the CLI (not under test here): the patient (Maria Santos) has a grant, and
// chooses three guardians (Ann, Ben and Cy, two of them needed, a short waiting period), who accept their pieces
// with `custodia guardian inbox`. Then the patient loses the phone:
//
// - on a new device, in the browser, Onboarding's "Recover a wallet" asks the guardians and shows the code;
// - Ann, in her own browser on her own wallet, opens her guardian inbox, types a wrong code (refused plainly),
//   then the code read from the new device's screen, and approves; Ben approves with `custodia guardian approve`;
// - the new device shows "2 of 3 guardians have approved" with the waiting period left; once it is over, Ben's
//   `guardian inbox` and Ann's inbox check release their pieces, the new device shows it is ready, and Finish
//   lands on Home of the restored wallet, with its name, its grant and its guardians.
//
// On the restored wallet, a stranger then starts a recovery (`custodia recover start`): the background sync
// warns, Home asks for attention, and the Guardians screen cancels it (the stranger's device sees the veto).
// Finally the patient removes a guardian and chooses the three again by pasting their contact cards.
// axe-core runs on each screen; screenshots go to docs/screenshots/{desktop,phone}-recovery*.png and
// {desktop,phone}-guardian*.png.
//
// Run from ui/: npm run e2e   (needs ui/dist built and the custodia binary; see harness.mjs)

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SHOTS, VIEWPORTS, axeScreen, dismissToasts, flow, launchBrowser, screenshot, startNetwork, until } from './harness.mjs';

/**
 * The guardians' waiting period. Short for the test, but long enough that Ann (in the browser) and Ben (on the
 * command line) approve inside it, so the new device shows approvals before any piece arrives.
 */
const WAITING_SECONDS = 30;
const PATIENT = 'Maria Santos';

for (const size of /** @type {const} */ (['desktop', 'phone'])) {
  describe(`social recovery in Chromium at ${size} size`, () => {
    /** @type {Awaited<ReturnType<typeof startNetwork>>} */
    let net;
    let browser;
    /** The new device's page, and Ann's. @type {import('playwright-core').Page} */
    let page;
    /** @type {import('playwright-core').Page} */
    let annPage;
    let phoneApp; // `app serve` on the new device's (empty) wallet folder
    let annApp; // `app serve` on Ann's wallet
    const pageErrors = [];
    const consoleErrors = [];
    const axeByScreen = new Map();

    // Filled in as the flow goes.
    let patient;
    let ann;
    let ben;
    let cy;
    let code = '';
    let requestId = '';
    let releaseAt = 0;

    before(async () => {
      await mkdir(SHOTS, { recursive: true });
      net = await startNetwork({ label: `custodia-e2e-recovery-${size}` });

      // The patient and the three guardians, made and enrolled with the CLI.
      [patient, ann, ben, cy] = await Promise.all([
        net.makePatient(PATIENT, 'patient'),
        net.makePatient('Ann Santos', 'ann'),
        net.makePatient('Ben Okafor', 'ben'),
        net.makePatient('Cy Park', 'cy'),
      ]);
      // Something worth restoring: a grant to the clinician, on the ledger.
      await net.cli([
        'grant', 'create', '--wallet', patient.dir, '--to', net.clinician.key, '--scope', 'patient/Observation.rs',
        '--purpose', 'TREAT', '--for', '30d', '--post',
      ]);
      const set = JSON.parse(
        (
          await net.cli([
            'guardian', 'add', '--wallet', patient.dir, '--contact', ann.card, '--contact', ben.card, '--contact',
            cy.card, '--threshold', '2', '--waiting-period', `${WAITING_SECONDS}s`, '--json',
          ])
        ).stdout,
      );
      assert.equal(set.threshold, 2);
      assert.equal(set.count, 3);
      for (const g of [ann, ben, cy]) {
        const inbox = JSON.parse((await net.cli(['guardian', 'inbox', '--wallet', g.dir, '--json'])).stdout);
        assert.equal(inbox.accepted, 1, `${g.name} accepts the piece`);
      }

      // The new device starts with no wallet; Ann's app serves her wallet (locked).
      phoneApp = await net.startApp({ walletDir: path.join(net.dir, 'new-phone') });
      annApp = await net.startApp({ walletDir: ann.dir });

      browser = await launchBrowser();
      const open = async (app) => {
        const context = await browser.newContext({ ...VIEWPORTS[size], locale: 'en-GB' });
        context.setDefaultTimeout(15_000);
        const p = await context.newPage();
        p.on('pageerror', (e) => pageErrors.push(String(e)));
        p.on('console', (m) => {
          if (m.type() !== 'error') return;
          // Expected: 423 for a locked wallet before the unlock, 400 for the wrong code typed on purpose.
          if (/Failed to load resource: the server responded with a status of (423|400)/.test(m.text())) return;
          consoleErrors.push(m.text());
        });
        await p.goto(app.url);
        return p;
      };
      page = await open(phoneApp);
      annPage = await open(annApp);
    });

    after(async () => {
      await browser?.close().catch(() => {});
      if (run.failed && net) {
        console.log(
          `# new device app log (tail):\n${phoneApp?.log()}\n# Ann's app log (tail):\n${annApp?.log()}\n# ledger log (tail):\n${net.ledgerLog?.()}`,
        );
      }
      await net?.stop();
    });

    const run = flow(`recovery-${size}`, () => ({ device: page, ann: annPage }));
    const step = run.step;

    const h1 = (p, name) => p.getByRole('heading', { level: 1, name, exact: true });

    const axe = (p, screen) => axeScreen(p, size, screen, axeByScreen);
    const shot = (p, screen) => screenshot(p, size, screen);

    const progressText = () => page.getByTestId('recovery-progress').innerText();
    const annRequest = () => annPage.getByTestId('inbox-request').filter({ hasText: `${PATIENT} asks for help` });

    step('Ann unlocks her wallet and opens her guardian inbox: she holds a piece for Maria', async () => {
      await h1(annPage, 'Unlock your wallet').waitFor();
      await annPage.getByLabel('Passphrase', { exact: true }).fill(net.passphrase);
      await annPage.keyboard.press('Enter');
      await h1(annPage, 'Home').waitFor({ timeout: 30_000 });
      await annPage.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Settings', exact: true }).click();
      await h1(annPage, 'Settings').waitFor();
      await annPage.getByRole('link', { name: 'Guardian inbox', exact: true }).click();
      await h1(annPage, 'Guardian inbox').waitFor();
      await until(async () => /Checked just now/.test(await annPage.getByTestId('inbox-status').innerText()), {
        timeout: 30_000,
        message: "Ann's inbox checked",
      });
      const held = annPage.getByTestId('held-share');
      assert.equal(await held.count(), 1);
      assert.match(await held.innerText(), new RegExp(`${PATIENT}\\s*Current`));
      assert.match(await held.innerText(), /Piece \d of 3; any 2 together help them back in/);
      assert.match(await annPage.locator('main').innerText(), /No one has asked for your help\./);
    });

    step('the new device: Onboarding, Recover a wallet, the form', async () => {
      await h1(page, 'Create your wallet').waitFor();
      await page.getByRole('button', { name: 'Recover a wallet' }).click();
      await h1(page, 'Recover your wallet').waitFor();
      assert.equal(await page.getByLabel('Ledger address', { exact: true }).inputValue(), net.ledgerUrl, 'prefilled');
      // A mistyped key is caught before anything is made.
      await page.getByLabel("Your wallet's key", { exact: true }).fill('cusig1notakey');
      await page.getByLabel('New passphrase for this device', { exact: true }).fill(net.passphrase);
      await page.getByLabel('Confirm passphrase', { exact: true }).fill(net.passphrase);
      await page.getByRole('button', { name: 'Ask my guardians' }).click();
      await until(async () => /patient key is not valid/.test(await page.locator('main').innerText()), {
        message: 'the bad key refused',
      });
      assert.equal((await phoneApp.bridge('status')).state, 'none', 'no wallet was left behind');
      await page.getByLabel("Your wallet's key", { exact: true }).fill(patient.key);
      await axe(page, 'recovery-start');
      await shot(page, 'recovery-start');
    });

    step('Ask my guardians: the code in large digits, nobody has approved yet', async () => {
      await page.getByRole('button', { name: 'Ask my guardians' }).click();
      await h1(page, 'Recovering your wallet').waitFor({ timeout: 60_000 });
      code = (await page.getByTestId('recovery-code').innerText()).trim();
      assert.match(code, /^\d{3} \d{3}$/, 'six digits in two groups');
      await until(async () => /0 of 3 guardians have approved \(2 needed\); .+ left in the waiting period\./.test(await progressText()), {
        message: 'the progress before any approval',
      });
      assert.equal(await page.getByRole('button', { name: 'Finish' }).count(), 0, 'no Finish yet');
      const status = await phoneApp.bridge('status');
      assert.equal(status.summary.recovering, true);
      const progress = await phoneApp.bridge('recovery_status');
      assert.equal(progress.code, code);
      requestId = progress.request_id;
      releaseAt = progress.release_at;
      await axe(page, 'recovery-progress');
      await shot(page, 'recovery-progress');
    });

    step('Ann checks her inbox, types a wrong code (refused plainly), then the code, and approves', async () => {
      await annPage.getByRole('button', { name: 'Check the inbox' }).click();
      await annRequest().waitFor({ timeout: 30_000 });
      assert.equal((await annRequest().getByTestId('request-state').innerText()).trim(), 'Needs you');
      const input = annRequest().getByLabel(`Code from ${PATIENT}'s new device`, { exact: true });
      assert.match(await annRequest().innerText(), /After you approve, your piece waits until .+ \(the waiting period\)/);
      await axe(annPage, 'guardian-inbox');
      await shot(annPage, 'guardian-inbox');

      // Letters are caught in the page; a wrong code goes to the wallet and is refused with the tries left.
      await input.fill('12a456');
      await annRequest().getByRole('button', { name: 'Approve' }).click();
      await annRequest().getByRole('alert').filter({ hasText: 'The code is made of digits only.' }).waitFor();
      const wrong = code.startsWith('1') ? '222 222' : '111 111';
      await input.fill(wrong);
      await annRequest().getByRole('button', { name: 'Approve' }).click();
      const refused = annRequest().getByRole('alert').filter({ hasText: 'does not match' });
      await refused.waitFor();
      assert.match(await refused.innerText(), /4 tries left/);

      await input.fill(code);
      await annRequest().getByRole('button', { name: 'Approve' }).click();
      await until(async () => (await annRequest().getByTestId('request-state').innerText()).trim() === 'Approved', {
        message: "Ann's approval",
      });
      assert.ok(Date.now() < releaseAt, `Ann approved inside the ${WAITING_SECONDS} s waiting period`);
      assert.match(await annRequest().innerText(), new RegExp(`Your piece goes to ${PATIENT}'s new device in .+, when the waiting period ends`));
      await axe(annPage, 'guardian-approved');
    });

    step('Ben approves on the command line; the new device shows two approvals and the time left', async () => {
      const inbox = JSON.parse((await net.cli(['guardian', 'inbox', '--wallet', ben.dir, '--json'])).stdout);
      const asked = inbox.requests.find((r) => r.request_id === requestId);
      assert.equal(asked?.state, 'awaiting-code');
      const approved = JSON.parse(
        (await net.cli(['guardian', 'approve', '--wallet', ben.dir, '--request', requestId, '--code', code, '--json']))
          .stdout,
      );
      assert.equal(approved.state, 'approved');
      assert.ok(Date.now() < releaseAt, 'Ben approved inside the waiting period too');

      await page.getByRole('button', { name: 'Refresh' }).click();
      await until(async () => /^2 of 3 guardians have approved \(2 needed\); .+ left in the waiting period\.$/.test((await progressText()).trim()), {
        message: 'two approvals shown',
      });
      assert.equal(await page.getByRole('button', { name: 'Finish' }).count(), 0, 'no pieces yet: no Finish');
      await shot(page, 'recovery-approved');
    });

    step('after the waiting period the guardians release their pieces; the new device is ready', async () => {
      await until(() => Date.now() > releaseAt + 1000, { timeout: (WAITING_SECONDS + 5) * 1000, message: 'the waiting period' });
      const inbox = JSON.parse((await net.cli(['guardian', 'inbox', '--wallet', ben.dir, '--json'])).stdout);
      assert.deepEqual(inbox.released, [requestId], "Ben's inbox releases his piece");

      await annPage.getByRole('button', { name: 'Check the inbox' }).click();
      await until(async () => (await annRequest().getByTestId('request-state').innerText()).trim() === 'Sent', {
        timeout: 30_000,
        message: "Ann's piece sent",
      });
      assert.match(await annPage.getByTestId('inbox-status').innerText(), /sent a piece to a new device/);

      await page.getByRole('button', { name: 'Refresh' }).click();
      await until(async () => /enough to restore your wallet/.test(await progressText()), { message: 'ready' });
      assert.match(await progressText(), /^2 of 3 guardians have sent their piece/);
      await axe(page, 'recovery-ready');
      await shot(page, 'recovery-ready');
    });

    step('Finish: Home of the restored wallet, its grant and its guardians', async () => {
      await page.getByRole('button', { name: 'Finish' }).click();
      await h1(page, 'Home').waitFor({ timeout: 60_000 });
      await page.getByText(`Hello, ${PATIENT}.`).waitFor();
      const status = await phoneApp.bridge('status');
      assert.equal(status.summary.name, PATIENT);
      assert.equal(status.summary.recovering, false);
      assert.notEqual(status.summary.key, patient.key, 'recovery ends with a new key');
      const grants = await phoneApp.bridge('grants');
      assert.equal(grants.length, 1);
      assert.equal(grants[0].grantee.key, net.clinician.key);
      assert.match(await page.locator('main').innerText(), /Dr Grace Hopper/, 'the grant is on Home');

      await page.getByRole('link', { name: 'Guardians', exact: true }).click();
      await h1(page, 'Guardians').waitFor();
      assert.equal(
        (await page.getByTestId('threshold-sentence').innerText()).trim(),
        'Any 2 of your 3 guardians can help you back in; one alone cannot.',
      );
      const names = await page.getByTestId('guardian-item').locator('strong').allInnerTexts();
      assert.deepEqual(names, ['Ann Santos', 'Ben Okafor', 'Cy Park']);
      // The new pieces reach the guardians at their next inbox check.
      for (const g of [ben, cy]) {
        const inbox = JSON.parse((await net.cli(['guardian', 'inbox', '--wallet', g.dir, '--json'])).stdout);
        assert.equal(inbox.accepted, 1, `${g.name} takes the new piece`);
        assert.ok(inbox.shares.some((s) => s.superseded), `${g.name}'s old piece is superseded`);
      }
      await page.getByRole('button', { name: 'Check guardians' }).click();
      await page.getByTestId('toast').filter({ hasText: 'Guardians asked' }).waitFor();
      await until(
        async () => (await page.getByTestId('guardian-item').filter({ hasText: 'Not yet' }).count()) === 1,
        { message: "Ben's and Cy's acknowledgements collected" },
      );
      await axe(page, 'guardians');
      await shot(page, 'guardians');
    });

    step('a stranger asks to recover the wallet: the sync warns, Guardians cancels it', async () => {
      const { key } = (await phoneApp.bridge('status')).summary;
      const rogue = JSON.parse(
        (
          await net.cli([
            'recover', 'start', '--wallet', path.join(net.dir, 'rogue'), '--ledger', net.ledgerUrl, '--patient', key,
            '--json',
          ])
        ).stdout,
      );
      // The background sync (every 15 s) finds it.
      const toast = page.getByTestId('toast').filter({ hasText: 'Someone asked to recover your wallet' });
      await toast.waitFor({ timeout: 40_000 });
      const alert = page.getByTestId('recovery-alert');
      await alert.waitFor();
      assert.match(await alert.innerText(), /If it was not you, cancel it now/);
      await dismissToasts(page);
      await axe(page, 'guardians-alert');
      await shot(page, 'guardians-alert');

      await page.getByRole('link', { name: 'Home', exact: true }).first().click();
      await h1(page, 'Home').waitFor();
      await page.getByRole('link', { name: 'Review and cancel' }).click();
      await h1(page, 'Guardians').waitFor();
      await page.getByRole('button', { name: 'Cancel this recovery request' }).click();
      await page.getByTestId('toast').filter({ hasText: 'Recovery request cancelled' }).waitFor({ timeout: 30_000 });
      await until(async () => (await page.getByTestId('recovery-alert').count()) === 0, { message: 'the alert gone' });
      await page.getByRole('heading', { level: 2, name: 'Cancelled recovery requests' }).waitFor();

      const status = await net.cli(['recover', 'status', '--wallet', path.join(net.dir, 'rogue'), '--json'], {
        allowFail: true,
      });
      assert.equal(status.code, 1);
      assert.equal(JSON.parse(status.stdout).phase, 'cancelled');
      assert.equal(JSON.parse(status.stdout).request_id, rogue.request_id);
    });

    step('remove a guardian, then choose the three again by pasting their contact cards', async () => {
      const item = page.getByTestId('guardian-item').filter({ hasText: 'Cy Park' });
      await item.getByRole('button', { name: 'Remove Cy Park' }).click();
      const dialog = page.getByRole('dialog', { name: 'Remove Cy Park?' });
      await dialog.getByRole('button', { name: 'Remove', exact: true }).click();
      await page.getByTestId('toast').filter({ hasText: 'Cy Park removed' }).waitFor({ timeout: 30_000 });
      await until(async () => (await page.getByTestId('guardian-item').count()) === 2, { message: 'two guardians left' });
      assert.equal(
        (await page.getByTestId('threshold-sentence').innerText()).trim(),
        'All 2 of your guardians must help you back in; if one of them cannot, you cannot get back in.',
      );

      await page.getByRole('button', { name: 'Choose new guardians' }).click();
      await page.getByRole('heading', { level: 2, name: 'Choose new guardians' }).waitFor();
      const paste = page.getByLabel('Contact card text or key', { exact: true });
      for (const g of [ann, ben, cy]) {
        await paste.fill(g.card);
        await page.getByRole('button', { name: 'Add', exact: true }).click();
        await page.getByTestId('candidate-item').filter({ hasText: g.name }).waitFor();
      }
      // A repeat is refused plainly.
      await paste.fill(ann.card);
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: 'Ann Santos is already on the list.' }).waitFor();
      assert.equal(await page.getByLabel('How many guardians are needed to help you back in').inputValue(), '2', 'a majority');
      assert.match(await page.locator('#gd-threshold-words').innerText(), /Any 2 of your 3 guardians can help you back in; one alone cannot\./);
      assert.equal(await page.getByLabel('Waiting period', { exact: true }).inputValue(), String(WAITING_SECONDS), 'kept from the set');
      await axe(page, 'guardians-choose');
      await shot(page, 'guardians-choose');
      await page.getByRole('button', { name: 'Give them their pieces' }).click();
      await page.getByTestId('toast').filter({ hasText: 'Guardians chosen' }).waitFor({ timeout: 30_000 });
      await until(async () => (await page.getByTestId('guardian-item').count()) === 3, { message: 'three guardians again' });
      const view = await phoneApp.bridge('guardians');
      assert.equal(view.set.count, 3);
      assert.equal(view.set.threshold, 2);
    });

    it('no serious or critical axe violations on the recovery screens', () => {
      const bad = [];
      for (const [screen, violations] of axeByScreen) {
        for (const v of violations)
          if (v.impact === 'serious' || v.impact === 'critical')
            bad.push(`${screen}: [${v.impact}] ${v.id} (${v.nodes.map((n) => n.target).join(', ')})`);
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
