// The emergency-room QR flow in Chromium, against a real ledger and `custodia app serve`, at desktop and phone
// size, each with its own fresh network: an emergency clinician enrolled by the network authority makes a
// signed access request (`custodia er request --qr`), Chromium's fake camera shows its QR code to the Scan
// screen, the review names the clinician as verified with the three kinds of records asked, the patient
// unticks one and approves, and the clinician's tool picks up the grant (`custodia er wait`), the same
// grant the UI shows. axe-core runs on the scan and review screens; screenshots go to
// docs/screenshots/{desktop,phone}-scan*.png.
//
// The QR code PNG becomes a Y4M video in y4m.mjs. Chromium loops it as its camera
// (--use-file-for-fake-video-capture), so the Scan screen is first shown with a camera that sees no code
// (a blank video) for its own checks, then with the request's code.
//
// Run from ui/: npm run e2e   (needs ui/dist built and target/debug/custodia; CUSTODIA_BIN overrides)

import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SHOTS, VIEWPORTS, axeScreen, flow, launchBrowser, screenshot, startNetwork, until } from './harness.mjs';
import { fakeCameraArgs, greyToY4m, pngToY4m } from './y4m.mjs';

const ER_CLINICIAN = { name: 'Dr Ines Ruiz', org: 'City Hospital A&E' };
const ASKED = ['patient/AllergyIntolerance.rs', 'patient/MedicationRequest.rs', 'patient/Condition.rs'];

for (const size of /** @type {const} */ (['desktop', 'phone'])) {
  describe(`the emergency-room QR flow in Chromium at ${size} size`, () => {
    /** @type {Awaited<ReturnType<typeof startNetwork>>} */
    let net;
    let browser;
    /** @type {import('playwright-core').Page} */
    let page;
    const pageErrors = [];
    const consoleErrors = [];
    const axeByScreen = new Map();

    // Filled in as the flow goes.
    let er; // the emergency clinician: { dir, key, fingerprint }
    let patient;
    let request; // { id, text } from `er request --json`
    let qrVideo;
    let blankVideo;
    let grantId = '';

    before(async () => {
      await mkdir(SHOTS, { recursive: true });
      net = await startNetwork({ label: `custodia-e2e-scan-${size}` });

      // An emergency clinician, enrolled by the network authority with the emergency role.
      er = await net.makeMember({ folder: 'er-clinician', ...ER_CLINICIAN, role: 'emergency' });

      // The patient's wallet, made and enrolled with the CLI; the app serves it (locked).
      patient = await net.makePatient('Ada Lovelace', 'patient');
      await net.startApp({ walletDir: patient.dir });

      blankVideo = path.join(net.dir, 'blank.y4m');
      await writeFile(blankVideo, greyToY4m({ width: 2, height: 2, grey: new Uint8Array([200, 200, 200, 200]) }));
    });

    after(async () => {
      await browser?.close().catch(() => {});
      if (run.failed && net) {
        console.log(`# app log (tail):\n${net.app?.log()}\n# ledger log (tail):\n${net.ledgerLog?.()}`);
      }
      await net?.stop();
    });

    const run = flow(`scan-${size}`, () => ({ '': page }));
    const step = run.step;

    /** A fresh Chromium whose camera shows `video`, on the app (the wallet stays unlocked in app serve). */
    async function browse(video) {
      await browser?.close().catch(() => {});
      browser = await launchBrowser({ args: fakeCameraArgs(video) });
      const context = await browser.newContext({ ...VIEWPORTS[size], locale: 'en-GB' });
      context.setDefaultTimeout(15_000);
      page = await context.newPage();
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() !== 'error') return;
        // Expected: the bridge answers a locked wallet with 423 before the unlock.
        if (/Failed to load resource: the server responded with a status of 423/.test(m.text())) return;
        consoleErrors.push(m.text());
      });
      await page.goto(net.app.url);
    }

    const h1 = (name) => page.getByRole('heading', { level: 1, name, exact: true });
    const cameraStatus = () => page.getByTestId('camera-status');

    const axe = (screen) => axeScreen(page, size, screen, axeByScreen);
    const shot = (screen) => screenshot(page, size, screen, { keepToasts: true });

    step('unlock; the Scan screen with a camera that sees no code', async () => {
      await browse(blankVideo);
      await h1('Unlock your wallet').waitFor();
      await page.getByLabel('Passphrase', { exact: true }).fill(net.passphrase);
      await page.keyboard.press('Enter');
      await h1('Home').waitFor({ timeout: 30_000 });

      await page.getByRole('link', { name: 'Scan a QR code' }).click();
      await h1('Scan a QR code').waitFor();
      await until(async () => (await cameraStatus().innerText()).startsWith('Point the camera at the QR code'), {
        message: 'the camera on',
      });
      assert.ok(await page.locator('video').isVisible(), 'the live camera picture is shown');
      await page.getByLabel('A photo or image of the code', { exact: true }).waitFor();
      await page.getByLabel('Text of the QR code', { exact: true }).waitFor();
      await axe('scan');
      await shot('scan');
    });

    step('the emergency room makes a signed access request as a QR code', async () => {
      const png = path.join(net.dir, 'request.png');
      const { stdout } = await net.cli([
        'er', 'request', '--wallet', er.dir, '--ledger', net.ledgerUrl,
        ...ASKED.flatMap((s) => ['--scope', s]),
        '--purpose', 'ETREAT', '--for', '12h', '--qr', png, '--json',
      ]);
      request = JSON.parse(stdout);
      assert.equal(typeof request.id, 'string');
      assert.match(request.text, /^CU1:R:/);
      qrVideo = path.join(net.dir, 'request.y4m');
      await writeFile(qrVideo, pngToY4m(await readFile(png)));

      // The bridge's view of it, as the Scan screen will get it.
      const view = await net.app.bridge('open_request', { text: request.text });
      assert.equal(view.id, request.id);
      assert.equal(view.requester.key, er.key);
      assert.equal(view.requester.verified, true);
      assert.equal(view.requester.role, 'emergency');
      assert.equal(view.requester.name, ER_CLINICIAN.name);
      assert.equal(view.requester.organisation, ER_CLINICIAN.org);
      assert.equal(view.fingerprint, er.fingerprint);
      assert.equal(view.purpose.code, 'ETREAT');
      assert.deepEqual([...view.scopes].sort(), [...ASKED].sort());
      assert.equal(view.duration_seconds, 12 * 3600);
      assert.ok(view.expires_at > Date.now() && view.expires_at - Date.now() <= 30 * 60_000, 'answerable for minutes');
    });

    step('the camera reads the code; the review shows the clinician verified and what they ask for', async () => {
      await browse(qrVideo);
      await h1('Home').waitFor({ timeout: 30_000 });
      await page.getByRole('link', { name: 'Scan a QR code' }).click();
      await h1('Request to see your records').waitFor({ timeout: 30_000 });

      const who = await page.getByTestId('requester').innerText();
      assert.match(who, /Verified:\s*Dr Ines Ruiz, City Hospital A&E \(enrolled emergency provider\)/);
      assert.match(await page.locator('main').innerText(), new RegExp(`Fingerprint: ${er.fingerprint}`));
      const summary = await page.locator('.summary').innerText();
      assert.match(summary, /allergies, medications and conditions, for emergency treatment, for 12 hours/);
      assert.match(await page.locator('main').innerText(), /Answer within \d+ minutes?/);

      const what = page.getByRole('group', { name: 'What they may see' });
      assert.equal(await what.getByRole('checkbox').count(), 3);
      for (const name of ['Allergies', 'Medications', 'Conditions']) {
        assert.equal(await what.getByRole('checkbox', { name: new RegExp(`^${name}`) }).isChecked(), true, `${name} is ticked`);
      }
      assert.equal(
        (await page.getByLabel('For how long', { exact: true }).locator('option:checked').innerText()).trim(),
        '12 hours (as asked)',
      );
      await axe('scan-review');
      await shot('scan-review');
    });

    step('untick one, approve: the confirmation, and the grant on its page', async () => {
      await page.getByRole('group', { name: 'What they may see' }).getByRole('checkbox', { name: /^Conditions/ }).uncheck();
      await page.getByRole('button', { name: 'Approve', exact: true }).click();
      await h1('Access approved').waitFor({ timeout: 30_000 });
      const done = await page.locator('main').innerText();
      assert.match(done, /Dr Ines Ruiz\sat City Hospital A&E may now see your allergies and medications, for emergency treatment, until .+ \(12 hours\)/);
      assert.match(done, /The grant is on the ledger/);
      const link = page.getByRole('link', { name: 'See the grant' });
      grantId = decodeURIComponent(/^#\/grants\/([^/?]+)$/.exec(await link.getAttribute('href'))[1]);
      await axe('scan-approved');
      await shot('scan-approved');

      const { grant } = await net.app.bridge('grant', { id: grantId });
      assert.equal(grant.grantee.key, er.key);
      assert.deepEqual([...grant.scopes].sort(), ['patient/AllergyIntolerance.rs', 'patient/MedicationRequest.rs']);
      assert.deepEqual(grant.labels, [], 'no sensitive labels');
      assert.equal(grant.purpose.code, 'ETREAT');
      assert.equal(grant.not_after - grant.not_before, 12 * 3600 * 1000);
      assert.equal(typeof grant.grant_index, 'number', 'posted to the ledger');

      await link.click();
      await h1('Grant for Dr Ines Ruiz').waitFor();
      assert.equal((await page.locator('dl.facts dt:has-text("Grant id") + dd').innerText()).trim(), grantId);
    });

    step('the emergency room’s tool picks up the same grant', async () => {
      const { stdout } = await net.cli(['er', 'wait', '--wallet', er.dir, '--timeout', '20s']);
      assert.equal(stdout.trim(), grantId);
      // Answered: the same code cannot be answered again.
      await assert.rejects(net.app.bridge('answer_request', { id: request.id, approve: true }), (e) => e.code === 'not_found');
    });

    it('no serious or critical axe violations on the scan screens', () => {
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
