// Joining a network with its profile, in Chromium at phone size, against a real ledger that publishes only
// checkpoints its witness cosigned: the patient creates a wallet, pastes the profile (as the camera scanner
// hands it over) and opens its QR picture,
// sees the profile's fingerprint (the one `custodia network profile` printed) with the ledger and the
// witnesses, joins, and Settings says the wallet is pinned to that profile and its witnesses. axe-core runs on
// the screen; a screenshot goes to docs/screenshots/phone-onboarding-network.png.
//
// Run from ui/: npm run e2e   (needs ui/dist built and target/debug/custodia; CUSTODIA_BIN overrides)

import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { after, before, describe } from 'node:test';
import { SHOTS, VIEWPORTS, axeScreen, flow, launchBrowser, screenshot, startNetwork } from './harness.mjs';

describe('joining a network with its profile, at phone size', () => {
  /** @type {Awaited<ReturnType<typeof startNetwork>>} */
  let net;
  let browser;
  let context;
  /** @type {import('playwright-core').Page} */
  let page;
  const pageErrors = [];
  const axeByScreen = new Map();

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    net = await startNetwork({ label: 'custodia-e2e-network', witnesses: 1 });
    await net.startApp();
    browser = await launchBrowser();
    context = await browser.newContext({ ...VIEWPORTS.phone, locale: 'en-GB' });
    context.setDefaultTimeout(15_000);
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
  });

  after(async () => {
    await context?.close().catch(() => {});
    await browser?.close().catch(() => {});
    if (run.failed && net) console.log(`# app log (tail):\n${net.app?.log()}\n# ledger log (tail):\n${net.ledgerLog?.()}`);
    await net?.stop();
  });

  const run = flow('network-phone', () => ({ '': page }));
  const step = run.step;
  const h1 = (name) => page.getByRole('heading', { level: 1, name, exact: true });

  step('create the wallet, open the profile picture, compare its fingerprint, join', async () => {
    await page.goto(net.app.url);
    await h1('Create your wallet').waitFor();
    await page.getByLabel('Your name', { exact: true }).fill('Ada Lovelace');
    await page.getByLabel('Passphrase', { exact: true }).fill(net.passphrase);
    await page.getByLabel('Confirm passphrase', { exact: true }).fill(net.passphrase);
    await page.getByRole('button', { name: 'Create wallet' }).click();
    await h1('Connect to a ledger').waitFor({ timeout: 30_000 });

    // Something that is not a profile is refused with a message.
    await page.getByLabel('Open the network profile').setInputFiles({
      name: 'not-a-profile.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('https://ledger.example.org\n'),
    });
    await page.getByRole('alert').filter({ hasText: 'not a Custodia network profile' }).waitFor();

    // Pasted (as the camera's scanner would hand it over): the same fingerprint.
    await page.getByText('Scan its QR code with the camera, or paste it').click();
    await page.getByLabel("The network profile's text").fill(await readFile(net.profile.text, 'utf8'));
    await page.getByRole('button', { name: 'Read the profile' }).click();
    const shown = page.getByLabel('Network profile fingerprint');
    await shown.waitFor();
    assert.equal((await shown.innerText()).trim(), net.profile.fingerprint, 'the pasted profile');

    // From the picture of its QR code.
    await page.getByLabel('Open the network profile').setInputFiles(net.profile.png);
    await shown.waitFor();
    assert.equal((await shown.innerText()).trim(), net.profile.fingerprint, 'the fingerprint the CLI printed');
    const info = await page.getByRole('status').filter({ hasText: 'Compare this fingerprint' }).innerText();
    assert.match(info, /witnesses W1 \(1 of 1 must vouch for every checkpoint\)/);
    await axeScreen(page, 'phone', 'onboarding-network', axeByScreen);
    await screenshot(page, 'phone', 'onboarding-network');

    await page.getByRole('button', { name: 'The fingerprint matches: join' }).click();
    await h1('Home').waitFor({ timeout: 30_000 });
    const status = await net.app.bridge('status');
    assert.equal(status.summary.ledger?.network, net.profile.fingerprint);
    assert.deepEqual(status.summary.ledger?.witnesses, ['W1']);
  });

  step('Settings says the wallet is pinned to the profile and its witnesses', async () => {
    await page.goto(`${net.app.origin}/#/settings`);
    await h1('Settings').waitFor();
    await page.getByText(`Joined with the network profile ${net.profile.fingerprint}`, { exact: false }).waitFor();
    assert.deepEqual(pageErrors, []);
  });
});
