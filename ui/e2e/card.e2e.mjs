// The emergency card in Chromium, against a real ledger, a real record gateway and `custodia app serve`, at
// desktop and phone size, each with its own fresh network: the patient (made and enrolled with the CLI, linked
// at the gateway as the synthetic patient p1) opens Emergency card from Settings, makes a card with the
// defaults, sees its preview and saves it as PDF, PNG and SVG. The saved PNG then works as a card: an
// enrolled emergency clinician reads the patient's allergies with it through the gateway (`er fetch --card`),
// an ordinary clinician holding it is refused, and the patient's app shows the read as emergency access. The
// card is listed as the patient's emergency card in Grants, Home and its grant page, and revoking it there
// retires it. axe-core runs on each screen; screenshots go to docs/screenshots/{desktop,phone}-emergency-card.png.
//
// Run from ui/: npm run e2e   (needs ui/dist built and target/debug/custodia; CUSTODIA_BIN overrides)

import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SHOTS, VIEWPORTS, axeScreen, flow, launchBrowser, screenshot, startNetwork, until } from './harness.mjs';
import { decodePngToGrey } from './y4m.mjs';

const ER_CLINICIAN = { name: 'Dr Ines Ruiz', org: 'City Hospital A&E' };
const DEFAULT_SCOPES = [
  'patient/AllergyIntolerance.rs',
  'patient/MedicationRequest.rs',
  'patient/MedicationStatement.rs',
  'patient/Condition.rs',
  'patient/Observation.rs?code=http://loinc.org|882-1',
];

for (const size of /** @type {const} */ (['desktop', 'phone'])) {
  describe(`the emergency card in Chromium at ${size} size`, () => {
    /** @type {Awaited<ReturnType<typeof startNetwork>>} */
    let net;
    let browser;
    let context;
    /** @type {import('playwright-core').Page} */
    let page;
    const pageErrors = [];
    const consoleErrors = [];
    const axeByScreen = new Map();

    // Filled in as the flow goes.
    let er; // the emergency clinician: { dir, key }
    let patient;
    let gatewayUrl = '';
    let cardId = '';
    let cardPng = '';

    before(async () => {
      await mkdir(SHOTS, { recursive: true });
      net = await startNetwork({ label: `custodia-e2e-card-${size}` });

      // An emergency clinician, enrolled by the network authority with the emergency role.
      er = await net.makeMember({ folder: 'er-clinician', ...ER_CLINICIAN, role: 'emergency' });

      // The patient's wallet, made and enrolled with the CLI, is p1 at the hospital; the app serves it (locked).
      patient = await net.makePatient('Ada Lovelace', 'patient');
      gatewayUrl = await net.startGateway({ links: [{ patient: patient.key, fhirId: 'p1' }] });
      await net.startApp({ walletDir: patient.dir });

      browser = await launchBrowser();
      context = await browser.newContext({ ...VIEWPORTS[size], acceptDownloads: true, locale: 'en-GB' });
      context.setDefaultTimeout(15_000);
      page = await context.newPage();
      page.on('pageerror', (e) => pageErrors.push(String(e)));
      page.on('console', (m) => {
        if (m.type() !== 'error') return;
        // Expected: the bridge answers a locked wallet with 423 before the unlock.
        if (/Failed to load resource: the server responded with a status of 423/.test(m.text())) return;
        consoleErrors.push(m.text());
      });
    });

    after(async () => {
      await context?.close().catch(() => {});
      await browser?.close().catch(() => {});
      if (run.failed && net) {
        console.log(
          `# app log (tail):\n${net.app?.log()}\n# gateway log (tail):\n${net.gatewayLog?.()}\n# ledger log (tail):\n${net.ledgerLog?.()}`,
        );
      }
      await net?.stop();
    });

    const run = flow(`card-${size}`, () => ({ '': page }));
    const step = run.step;

    const nav = () => page.getByRole('navigation', { name: 'Main' });
    const h1 = (name) => page.getByRole('heading', { level: 1, name, exact: true });

    const axe = (screen) => axeScreen(page, size, screen, axeByScreen);
    const shot = (screen) => screenshot(page, size, screen);

    /** Clicks a download button and returns the saved file's name and bytes. */
    async function download(name) {
      const [file] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name }).click()]);
      return { filename: file.suggestedFilename(), bytes: await readFile(await file.path()) };
    }

    /** `er fetch` with the card: the emergency clinician's tool by default. */
    const fetchWithCard = (wallet = er.dir, type = 'AllergyIntolerance') =>
      net.cli(
        ['er', 'fetch', '--wallet', wallet, '--gateway', gatewayUrl, '--type', type, '--card', cardPng, '--reason', 'unconscious', '--json'],
        { allowFail: true },
      );

    step('unlock; Home and Settings both lead to the emergency card', async () => {
      await page.goto(net.app.url);
      await h1('Unlock your wallet').waitFor();
      await page.getByLabel('Passphrase', { exact: true }).fill(net.passphrase);
      await page.keyboard.press('Enter');
      await h1('Home').waitFor({ timeout: 30_000 });
      assert.equal(await page.getByRole('link', { name: 'Emergency card', exact: true }).getAttribute('href'), '#/card');

      await nav().getByRole('link', { name: 'Settings', exact: true }).click();
      await h1('Settings').waitFor();
      await page.getByRole('heading', { level: 2, name: 'Emergency card' }).waitFor();
      await page.getByRole('link', { name: 'Make or manage your emergency card' }).click();
      await h1('Emergency card').waitFor();
      // Focus moves to the new screen's heading.
      await until(() => page.evaluate(() => document.activeElement?.tagName === 'H1'), { message: 'focus on the heading' });
    });

    step('the form: the defaults ticked, sensitive records apart and off, 1 year, the wallet’s name', async () => {
      const what = page.getByRole('group', { name: 'What emergency staff may see' });
      const expected = { Allergies: true, Medications: true, Conditions: true, 'Blood type': true, Immunizations: false, 'Lab results': false };
      assert.equal(await what.getByRole('checkbox').count(), Object.keys(expected).length);
      for (const [label, checked] of Object.entries(expected)) {
        assert.equal(await what.getByRole('checkbox', { name: new RegExp(`^${label}`) }).isChecked(), checked, label);
      }
      const sensitive = page.getByRole('group', { name: 'Sensitive records' }); // the ⚠ is aria-hidden
      assert.ok((await sensitive.getByRole('checkbox').count()) >= 6, 'sensitive records are offered');
      for (const box of await sensitive.getByRole('checkbox').all()) assert.equal(await box.isChecked(), false);
      assert.match(await sensitive.innerText(), /Anyone in an emergency department who has your card could see/);
      assert.equal((await page.getByLabel('Valid for', { exact: true }).locator('option:checked').innerText()).trim(), '1 year');
      assert.deepEqual(
        await page.getByLabel('Valid for', { exact: true }).locator('option').allInnerTexts(),
        ['1 year', '6 months', '3 months'],
      );
      assert.equal(await page.getByLabel('Name printed on the card', { exact: true }).inputValue(), 'Ada Lovelace');
      const review = await page.getByTestId('card-review').innerText();
      assert.match(review, /may see your allergies, medications, conditions and blood type, for emergency treatment, until about .+ \(1 year\)/);
      assert.match(review, /The name on the card is Ada Lovelace/);
      await page.getByText('You have no emergency card that works now.').waitFor();

      // Ticking a sensitive category says so in the review; unticking everything is refused before signing.
      await sensitive.getByRole('checkbox', { name: /^HIV/ }).check();
      await page.getByText('Includes sensitive records:').waitFor();
      await sensitive.getByRole('checkbox', { name: /^HIV/ }).uncheck();
      for (const label of ['Allergies', 'Medications', 'Conditions', 'Blood type']) {
        await what.getByRole('checkbox', { name: new RegExp(`^${label}`) }).uncheck();
      }
      await page.getByRole('button', { name: 'Make the card', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: 'Choose at least one kind of record for the card to show.' }).waitFor();
      assert.equal((await net.app.bridge('grants')).length, 0, 'nothing signed');
      for (const label of ['Allergies', 'Medications', 'Conditions', 'Blood type']) {
        await what.getByRole('checkbox', { name: new RegExp(`^${label}`) }).check();
      }
      await axe('emergency-card-form');
    });

    step('make the card: the preview, the note that no copy is kept, and its grant on the ledger', async () => {
      await page.getByRole('button', { name: 'Make the card', exact: true }).click();
      await page.getByRole('heading', { level: 2, name: 'Your new card' }).waitFor({ timeout: 30_000 });
      await page.getByTestId('toast').filter({ hasText: 'Emergency card made' }).waitFor();
      const preview = page.getByRole('img', { name: /^Your emergency card for Ada Lovelace: it shows your allergies, medications, conditions and blood type, valid until / });
      await preview.waitFor();
      await until(() => preview.evaluate((img) => img.complete && img.naturalWidth > 0), { message: 'the preview to render' });
      assert.match(await preview.getAttribute('src'), /^data:image\/svg\+xml;base64,/);
      assert.match(await page.getByTestId('no-copy').innerText(), /Custodia keeps no copy of the card's secret/);

      const link = page.getByRole('link', { name: "See the card's grant" });
      cardId = decodeURIComponent(/^#\/grants\/([^/?]+)$/.exec(await link.getAttribute('href'))[1]);
      const { grant } = await net.app.bridge('grant', { id: cardId });
      assert.equal(grant.emergency_card, true);
      assert.equal(grant.status, 'active');
      assert.equal(grant.purpose.code, 'ETREAT');
      assert.deepEqual([...grant.scopes].sort(), [...DEFAULT_SCOPES].sort());
      assert.deepEqual(grant.labels, [], 'nothing sensitive');
      assert.equal(grant.not_after - grant.not_before, 365 * 86_400_000, 'one year');
      assert.equal(typeof grant.grant_index, 'number', 'on the ledger');

      // The new card is listed under Your cards, with a link to its grant.
      const item = page.getByTestId('card-item');
      await until(async () => (await item.count()) === 1, { message: 'one card listed' });
      assert.equal(await item.getByRole('link').getAttribute('href'), `#/grants/${encodeURIComponent(cardId)}`);
    });

    step('the three downloads: a PDF, a PNG that decodes, an SVG', async () => {
      const pdf = await download('Download PDF to print');
      assert.equal(pdf.filename, 'emergency-card.pdf');
      assert.equal(pdf.bytes.subarray(0, 5).toString('latin1'), '%PDF-');

      const png = await download('Download PNG image');
      assert.equal(png.filename, 'emergency-card.png');
      const grey = decodePngToGrey(png.bytes);
      assert.ok(grey.width > grey.height && grey.height >= 300, `a card-shaped picture (${grey.width}x${grey.height})`);
      assert.ok(grey.grey.some((v) => v < 64) && grey.grey.some((v) => v > 192), 'with black and white in it');
      cardPng = path.join(net.dir, 'card.png');
      await writeFile(cardPng, png.bytes);

      const svg = await download('Download SVG image');
      assert.equal(svg.filename, 'emergency-card.svg');
      const text = svg.bytes.toString('utf8');
      assert.match(text, /<svg[\s>]/);
      assert.match(text, /Ada Lovelace/);

      // Each button is marked as saved.
      await page.getByRole('button', { name: 'Download PDF to print (saved)' }).waitFor();
      await axe('emergency-card');
      await shot('emergency-card');
    });

    step('the saved card works: an emergency clinician reads with it, an ordinary one is refused, both logged', async () => {
      const ok = await fetchWithCard();
      assert.equal(ok.code, 0, `er fetch with the card:\n${ok.stdout}\n${ok.stderr}`);
      const bundle = JSON.parse(ok.stdout);
      assert.equal(bundle.resourceType, 'Bundle');
      assert.ok(bundle.entry?.length > 0, 'the patient’s allergies');
      assert.ok(bundle.entry.every((e) => e.resource?.resourceType === 'AllergyIntolerance'));

      const refused = await fetchWithCard(net.clinician.dir);
      assert.notEqual(refused.code, 0, `an ordinary provider holding the card is refused:\n${refused.stdout}`);

      // The patient's app shows the read under the card as emergency access, and the refused attempt.
      await until(
        async () => {
          await net.app.bridge('sync');
          const { reads } = await net.app.bridge('grant', { id: cardId });
          return (
            reads.some(
              (r) =>
                r.break_glass &&
                r.outcome === 'allowed' &&
                r.reader.key === er.key &&
                r.emergency_reason === 'the patient was unconscious or could not communicate',
            ) &&
            reads.some((r) => r.outcome === 'denied' && r.reader.key === net.clinician.key)
          );
        },
        { timeout: 30_000, interval: 1000, message: 'the break-glass read and the refused attempt under the card' },
      );
    });

    step('Grants and Home show it as the emergency card, not as an unverified stranger', async () => {
      await nav().getByRole('link', { name: 'Grants', exact: true }).click();
      await h1('Grants').waitFor();
      const item = page.getByTestId('grant-item').filter({ hasText: 'Your emergency card' });
      await item.waitFor();
      const text = await item.innerText();
      assert.match(text, /Active/);
      assert.match(text, /An enrolled emergency provider holding the card may see allergies, medications, conditions and blood type, for emergency treatment/);
      assert.doesNotMatch(text, /Unverified|Not verified/);
      await axe('grants-with-card');

      await nav().getByRole('link', { name: 'Home', exact: true }).click();
      await h1('Home').waitFor();
      const onHome = page.getByTestId('grant-item').filter({ hasText: 'Your emergency card' });
      await onHome.waitFor();
      assert.doesNotMatch(await onHome.innerText(), /Unverified|Not verified/);
      const attention = page.locator('section[aria-labelledby="attention-h"]');
      await until(async () => /Dr Ines Ruiz at City Hospital A&E used emergency access/.test(await attention.innerText()), {
        timeout: 40_000,
        message: 'the card read in Needs your attention',
      });
    });

    step('the patient downloads their own records from Settings, and previews a grant before giving it', async () => {
      await nav().getByRole('link', { name: 'Settings', exact: true }).click();
      await h1('Settings').waitFor();
      await page.getByLabel("The hospital's record gateway").fill(gatewayUrl);
      const mine = await download('Download my records');
      assert.equal(mine.filename, 'my-records.json');
      const bundle = JSON.parse(mine.bytes.toString('utf8'));
      assert.equal(bundle.resourceType, 'Bundle');
      const refs = bundle.entry.map((e) => `${e.resource.resourceType}/${e.resource.id}`);
      assert.ok(refs.includes('Observation/p1-hiv-result'), 'their sensitive records too');
      await page.getByRole('status').filter({ hasText: /Downloaded \d+ records/ }).waitFor();
      await axe('settings-own-records');

      // The clinician's view under an allergies-only grant, before it is given: what they would see and not.
      const preview = await net.app.bridge('preview_grant', {
        gateway_url: gatewayUrl,
        grantee: net.clinician.key,
        scopes: ['patient/AllergyIntolerance.rs'],
        labels: [],
        purpose: 'TREAT',
      });
      assert.ok(preview.released.length > 0);
      assert.ok(preview.released.every((r) => r.reference.startsWith('AllergyIntolerance/') && r.words === 'your allergies'));
      assert.equal(preview.released.length + preview.hidden.length, preview.total);
      const hiv = preview.hidden.find((r) => r.reference === 'Observation/p1-hiv-result');
      assert.equal(hiv?.why, 'their permission does not cover those records');
      await nav().getByRole('link', { name: 'Home', exact: true }).click();
      await h1('Home').waitFor();
    });

    step('its grant page names the card; revoking it retires the card', async () => {
      await page.getByTestId('grant-item').filter({ hasText: 'Your emergency card' }).getByRole('link').click();
      await h1('Your emergency card').waitFor();
      const who = await page.locator('section[aria-labelledby="who-h"]').innerText();
      assert.match(who, /Any enrolled emergency provider holding the card/);
      assert.doesNotMatch(who, /Not verified|Unverified/);
      await page.getByRole('heading', { level: 2, name: 'What the card shows' }).waitFor();
      // The read and the refused attempt under the card are listed on its page.
      await until(async () => (await page.getByTestId('log-row').count()) === 2, { message: 'two rows under the card' });
      // In words, with the emergency clinician's reason under the break-glass read.
      const cardRows = await page.getByTestId('log-row').allInnerTexts();
      assert.ok(cardRows.some((t) => /Their reason: the patient was unconscious/.test(t)), cardRows.join('\n'));
      assert.ok(cardRows.every((t) => !/AllergyIntolerance/.test(t)), cardRows.join('\n'));
      await axe('grant-detail-card');

      await page.getByRole('button', { name: 'Revoke', exact: true }).click();
      const dialog = page.getByRole('dialog', { name: 'Revoke this card?' });
      await dialog.waitFor();
      await dialog.getByRole('button', { name: 'Yes, revoke' }).click();
      await dialog.waitFor({ state: 'hidden', timeout: 30_000 });
      await page.getByTestId('toast').filter({ hasText: 'Card revoked' }).waitFor();
      assert.equal((await net.app.bridge('grant', { id: cardId })).grant.status, 'revoked');

      // The gateway refuses the card from now on (it checks revocations on the ledger).
      await until(async () => (await fetchWithCard()).code !== 0, { timeout: 20_000, interval: 500, message: 'the revoked card refused' });

      await page.getByRole('link', { name: 'make a new card' }).waitFor({ state: 'detached' });
      await page.goto(`${net.app.origin}/#/card`);
      await h1('Emergency card').waitFor();
      await page.getByText('You have no emergency card that works now.').waitFor();
    });

    it('no serious or critical axe violations on the card screens', () => {
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
