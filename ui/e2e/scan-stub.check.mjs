// The Scan screen of the built UI (ui/dist) in Chromium with a fake camera, against a stub bridge in this
// process that answers the commands the screen uses with fixed views (no wallet, no ledger). For checking
// the screen before the Rust side of access requests exists; scan.e2e.mjs is the real end-to-end test.
//
// At desktop and phone size: the fake camera shows a contact card (the screen says so and offers New grant,
// which looks the card up); a request pasted as text is reviewed, narrowed (one kind of record unticked,
// a shorter time) and approved; another declined; one from a picture; a forged one warned about; an
// answer to an already answered request refused; then, without a camera, the other ways still work.
// axe-core on each state; no horizontal scrolling at phone size; no console errors.
//
//   npm run build && node e2e/scan-stub.check.mjs     (screenshots in target/scan-check/ with CUSTODIA_SHOTS=1)

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT, UI_DIST, VIEWPORTS, cli, formatViolations, launchBrowser, runAxe } from './harness.mjs';
import { fakeCameraArgs, greyToY4m, pngToY4m } from './y4m.mjs';

const SHOTS = process.env.CUSTODIA_SHOTS === '1' ? path.join(REPO_ROOT, 'target', 'scan-check') : null;
// The app server's CSP (crates/custodia-cli/src/app_server.rs), so a CSP violation shows here too.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
  "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const ALLERGIES = 'patient/AllergyIntolerance.rs';
const MEDICATIONS = 'patient/MedicationRequest.rs';
const CONDITIONS = 'patient/Condition.rs';
const REQUEST_TEXT = 'CU1:R:STUBREQUESTAAAABBBBCCCCDDDD';
const ANSWERED_TEXT = 'CU1:R:STUBANSWEREDALREADY';
const FORGED_TEXT = 'CU1:R:STUBFORGED';
const ER = { key: 'cusig1stubemergencyclinician0000000000000000000000000000', name: 'Dr Ines Ruiz', organisation: 'City Hospital A&E', role: 'emergency', verified: true };

let dir;
let card; // the contact card the fake camera shows
let cardPng;
let y4mFile;
let blankFile; // a camera that shows no code

before(async () => {
  assert.ok((await readFile(path.join(UI_DIST, 'index.html'), 'utf8')).includes('<div id="app">'), 'ui/dist is built');
  dir = await mkdtemp(path.join(tmpdir(), 'custodia-scan-stub-'));
  const wallet = path.join(dir, 'clinician');
  const png = path.join(dir, 'card.png');
  await cli(['wallet', 'init', '--wallet', wallet, '--name', 'Dr Fake Camera']);
  card = JSON.parse((await cli(['wallet', 'show', '--json', '--wallet', wallet, '--qr', png])).stdout).contact_card;
  cardPng = await readFile(png);
  y4mFile = path.join(dir, 'card.y4m');
  await writeFile(y4mFile, pngToY4m(cardPng));
  blankFile = path.join(dir, 'blank.y4m');
  await writeFile(blankFile, greyToY4m({ width: 2, height: 2, grey: new Uint8Array([200, 200, 200, 200]) }));
  if (SHOTS) await mkdir(SHOTS, { recursive: true });
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A stub of `custodia app serve`: ui/dist with the app's headers, and canned bridge answers. */
async function startStub() {
  const calls = [];
  const now = Date.now();
  const view = (id) => ({
    id,
    requester: ER,
    fingerprint: 'K3QF-7M2D-W9XA-PL4E',
    purpose: { code: 'ETREAT', display: 'emergency treatment' },
    scopes: [ALLERGIES, MEDICATIONS, CONDITIONS],
    duration_seconds: 12 * 3600,
    created_at: Date.now() - 10_000,
    expires_at: Date.now() + 5 * 60_000 - 10_000,
  });
  const grants = new Map();
  const summary = {
    name: 'Ada Lovelace',
    key: 'cusig1stubpatient',
    fingerprint: 'AAAA-BBBB-CCCC-DDDD',
    created_at: now - 86_400_000,
    ledger: { url: 'http://127.0.0.1:9', checkpoint_size: 5, synced_through: 5 },
    auto_lock_minutes: 10,
  };
  const fail = (status, code, message) => ({ status, body: { code, message } });
  const handlers = {
    status: () => ({ state: 'unlocked', wallet_dir: '/stub', default_ledger: null, auto_lock_minutes: 10, summary }),
    sync: () => ({ checkpoint_size: 5, new_events: [], complete: true }),
    home: () => ({ active_grants: [...grants.values()], recent_reads: [], attention: [] }),
    contacts: () => [],
    purposes: () => [
      { code: 'TREAT', display: 'treatment' },
      { code: 'ETREAT', display: 'emergency treatment' },
    ],
    resolve_contact: ({ text }) =>
      text.trim() === card
        ? { fingerprint: 'Z508-4RZF-9X64-CDZ4', last_granted: null, key: 'cusig1stubcard', name: 'Dr Fake Camera', organisation: "St Mary's Hospital", role: 'provider', verified: true }
        : fail(400, 'bad_input', 'not a contact card'),
    scan_image: ({ image_base64 }) =>
      Buffer.from(image_base64, 'base64').subarray(1, 4).toString() === 'PNG'
        ? { text: REQUEST_TEXT }
        : fail(400, 'bad_input', 'No QR code was found in the picture.'),
    open_request: ({ text }) => {
      if (text === REQUEST_TEXT) return view('req-0001');
      if (text === ANSWERED_TEXT) return view('req-answered');
      if (text === FORGED_TEXT) return fail(502, 'verification_failed', 'The request is not signed by an enrolled member.');
      return fail(400, 'bad_input', 'not a valid access request: damaged');
    },
    answer_request: (args) => {
      if (args.id === 'req-answered') return fail(404, 'not_found', 'No open request with that id.');
      const asked = view(args.id);
      if (!args.approve) return { approved: false, grant: null };
      const scopes = args.scopes ?? asked.scopes;
      const seconds = args.duration_seconds ?? asked.duration_seconds;
      if (!scopes.length || !scopes.every((s) => asked.scopes.includes(s))) return fail(400, 'bad_input', 'scopes not asked');
      if (seconds > asked.duration_seconds) return fail(400, 'bad_input', 'longer than asked');
      const t = Date.now();
      const grant = {
        id: `grant-${grants.size + 1}`, grantee: ER, scopes, labels: [], purpose: asked.purpose, note: '', issued_at: t,
        not_before: t, not_after: t + seconds * 1000, max_reads: null, status: 'active', grant_index: 7 + grants.size,
        revocation_index: null, revoked_at: null, reads: 0, denied: 0,
      };
      grants.set(grant.id, grant);
      return { approved: true, grant };
    },
    grant: ({ id }) => (grants.has(id) ? { grant: grants.get(id), reads: [] } : fail(404, 'not_found', 'no such grant')),
  };
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, 'http://stub');
    if (req.method === 'POST' && url.pathname.startsWith('/bridge/')) {
      const name = decodeURIComponent(url.pathname.slice('/bridge/'.length));
      let body = '';
      for await (const chunk of req) body += chunk;
      const args = body ? JSON.parse(body) : {};
      calls.push({ name, args });
      const handler = handlers[name];
      const out = handler ? handler(args) : fail(404, 'unknown_command', `no stub for ${name}`);
      const failed = out && typeof out === 'object' && 'status' in out && 'body' in out;
      res.writeHead(failed ? out.status : 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(JSON.stringify(failed ? out.body : out));
      return;
    }
    const rel = url.pathname.replace(/^\/+/, '') || 'index.html';
    const file = path.join(UI_DIST, rel);
    if (!file.startsWith(UI_DIST + path.sep)) return void res.writeHead(404).end();
    try {
      const bytes = await readFile(file);
      res.writeHead(200, {
        'Content-Type': types[path.extname(file)] ?? 'application/octet-stream',
        'Content-Security-Policy': CSP,
        'X-Content-Type-Options': 'nosniff',
      });
      res.end(bytes);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return { origin, calls, close: () => server.close(), last: (name) => calls.filter((c) => c.name === name).at(-1) };
}

/** Polls `fn` until it returns a truthy value. */
async function until(fn, { timeout = 15_000, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${message}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function watch(page) {
  const problems = [];
  page.on('pageerror', (e) => problems.push(String(e)));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    // The stub answers refusals with the app server's statuses, which Chromium logs.
    if (/Failed to load resource: the server responded with a status of (400|404|502)/.test(m.text())) return;
    problems.push(m.text());
  });
  return problems;
}

for (const size of /** @type {const} */ (['desktop', 'phone'])) {
  describe(`the Scan screen at ${size} size (stub bridge, fake camera)`, () => {
    let stub;
    let browser;
    let page;
    let problems;
    const axeByScreen = new Map();

    before(async () => {
      stub = await startStub();
      browser = await launchBrowser({ args: fakeCameraArgs(y4mFile) });
      const context = await browser.newContext({ ...VIEWPORTS[size], locale: 'en-GB' });
      context.setDefaultTimeout(15_000);
      page = await context.newPage();
      problems = watch(page);
    });
    after(async () => {
      await browser?.close().catch(() => {});
      stub?.close();
    });

    const h1 = (name) => page.getByRole('heading', { level: 1, name, exact: true });
    const nav = () => page.getByRole('navigation', { name: 'Main' });
    const problem = () => page.getByTestId('scan-problem');

    async function check(screen) {
      const violations = await runAxe(page);
      axeByScreen.set(screen, violations);
      console.log(formatViolations(`${size} ${screen}`, violations));
      if (SHOTS) await page.screenshot({ path: path.join(SHOTS, `${size}-${screen}.png`), fullPage: true, animations: 'disabled', caret: 'hide' });
      if (size === 'phone') {
        const { scroll, client, wide } = await page.evaluate(() => {
          const client = document.documentElement.clientWidth;
          const wide = [...document.querySelectorAll('body *')]
            .filter((el) => el.getBoundingClientRect().right > client + 0.5)
            .slice(0, 5)
            .map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')} (${Math.round(el.getBoundingClientRect().right)})`);
          return { scroll: document.documentElement.scrollWidth, client, wide };
        });
        assert.ok(scroll <= client, `${screen}: no sideways scrolling at 390 px (${scroll} > ${client}): ${wide.join(', ')}`);
      }
    }

    async function openScan() {
      await nav().getByRole('link', { name: 'Scan', exact: true }).click();
      await h1('Scan a QR code').waitFor();
      // The camera starts by itself and reads the contact card it shows.
      await problem().filter({ hasText: 'This is a contact card' }).waitFor({ timeout: 20_000 });
    }

    async function paste(text) {
      await page.getByLabel('Text of the QR code', { exact: true }).fill(text);
      await page.getByRole('button', { name: 'Open', exact: true }).click();
    }

    it('Home offers scanning; the camera reads a contact card, and New grant takes it', { timeout: 60_000 }, async () => {
      await page.goto(`${stub.origin}/#token=stub`);
      await h1('Home').waitFor();
      await page.getByRole('link', { name: 'Scan a QR code' }).click();
      await h1('Scan a QR code').waitFor();
      assert.equal(await nav().getByRole('link', { name: 'Scan', exact: true }).getAttribute('aria-current'), 'page');
      await problem().filter({ hasText: 'This is a contact card' }).waitFor({ timeout: 20_000 });
      assert.equal(await page.getByTestId('camera-status').innerText(), 'The camera is off.', 'the camera stops on a hit');
      assert.equal(await page.evaluate(() => document.querySelector('video')?.srcObject ?? null), null);
      await check('scan-contact');
      await page.getByRole('button', { name: 'Share your records with them' }).click();
      await h1('Share your records').waitFor();
      await page.locator('.chosen').getByText('Dr Fake Camera').waitFor();
      assert.equal(stub.last('resolve_contact').args.text, card);
    });

    it('a pasted request is reviewed, narrowed and approved', { timeout: 60_000 }, async () => {
      await openScan();
      await check('scan');
      await paste(REQUEST_TEXT);
      await h1('Request to see your records').waitFor();
      assert.deepEqual(stub.last('open_request').args, { text: REQUEST_TEXT });
      const who = await page.getByTestId('requester').innerText();
      assert.match(who, /Verified:\s*Dr Ines Ruiz, City Hospital A&E \(enrolled emergency provider\)/);
      assert.match(await page.locator('main').innerText(), /Fingerprint: K3QF-7M2D-W9XA-PL4E/);
      assert.match(await page.locator('.summary').innerText(), /allergies, medications and conditions, for emergency treatment, for 12 hours/);
      assert.match(await page.locator('main').innerText(), /Answer within 4 minutes/);
      const what = page.getByRole('group', { name: 'What they may see' });
      const boxes = what.getByRole('checkbox');
      assert.equal(await boxes.count(), 3);
      for (const name of ['Allergies', 'Medications', 'Conditions']) {
        assert.equal(await what.getByRole('checkbox', { name: new RegExp(`^${name}`) }).isChecked(), true, `${name} ticked`);
      }
      await check('review');

      // Nothing ticked: refused on the page.
      for (const box of await boxes.all()) await box.uncheck();
      await page.getByRole('button', { name: 'Approve', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: 'Leave at least one kind of record ticked' }).waitFor();
      assert.equal(stub.last('answer_request'), undefined, 'nothing sent');

      // By keyboard: tick Allergies and Medications again, leave Conditions off, 4 hours.
      await what.getByRole('checkbox', { name: /^Allergies/ }).focus();
      await page.keyboard.press('Space');
      await page.keyboard.press('Tab');
      await page.keyboard.press('Space');
      const duration = page.getByLabel('For how long', { exact: true });
      assert.deepEqual(await duration.locator('option').allInnerTexts(), ['12 hours (as asked)', '4 hours', '1 hour']);
      await duration.selectOption({ label: '4 hours' });
      await page.getByRole('button', { name: 'Approve', exact: true }).click();

      await h1('Access approved').waitFor();
      assert.deepEqual(stub.last('answer_request').args, {
        id: 'req-0001',
        approve: true,
        scopes: [ALLERGIES, MEDICATIONS],
        duration_seconds: 4 * 3600,
      });
      const done = await page.locator('main').innerText();
      assert.match(done, /Dr Ines Ruiz\sat City Hospital A&E may now see your allergies and medications, for emergency treatment, until .+ \(4 hours\)/);
      assert.equal(await page.getByRole('link', { name: 'See the grant' }).getAttribute('href'), '#/grants/grant-1');
      await check('approved');
      await page.getByRole('link', { name: 'See the grant' }).click();
      await h1('Grant for Dr Ines Ruiz').waitFor();
    });

    it('a request can be declined', { timeout: 60_000 }, async () => {
      await openScan();
      await paste(REQUEST_TEXT);
      await h1('Request to see your records').waitFor();
      await page.getByRole('button', { name: 'Decline', exact: true }).click();
      await h1('Request declined').waitFor();
      assert.deepEqual(stub.last('answer_request').args, { id: 'req-0001', approve: false });
      assert.match(await page.locator('main').innerText(), /Dr Ines Ruiz will be told that you declined/);
      await check('declined');
    });

    it('a picture of a request is read by the bridge and reviewed', { timeout: 60_000 }, async () => {
      await openScan();
      await page.getByLabel('A photo or image of the code', { exact: true }).setInputFiles({ name: 'code.png', mimeType: 'image/png', buffer: cardPng });
      await h1('Request to see your records').waitFor();
      assert.equal(Buffer.from(stub.last('scan_image').args.image_base64, 'base64').equals(cardPng), true, 'the picture’s bytes, base64');
      assert.deepEqual(stub.last('open_request').args, { text: REQUEST_TEXT });
    });

    it('a request that does not verify is a prominent warning; an answered one is refused', { timeout: 60_000 }, async () => {
      await openScan();
      await paste(FORGED_TEXT);
      const warning = problem().filter({ hasText: 'Warning: this may not be a real emergency room' });
      await warning.waitFor();
      assert.match(await warning.innerText(), /not signed by an enrolled member/);
      await page.getByRole('heading', { level: 2, name: 'Warning: this may not be a real emergency room' }).waitFor();
      await check('forged');

      await paste('CU1:E:SOMETHING');
      await problem().filter({ hasText: 'This is an emergency card' }).waitFor();
      await paste(ANSWERED_TEXT);
      await h1('Request to see your records').waitFor();
      await page.getByRole('button', { name: 'Approve', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: 'It may have been answered already' }).waitFor();
    });

    it('no serious or critical axe violations, no console errors', () => {
      const bad = [];
      for (const [screen, violations] of axeByScreen) {
        for (const v of violations) if (v.impact === 'serious' || v.impact === 'critical') bad.push(`${screen}: [${v.impact}] ${v.id}`);
      }
      assert.deepEqual(bad, []);
      assert.deepEqual(problems, []);
    });
  });
}

/** Keeps every camera stream the page opens in `window.__streams`, to see whether its tracks ended. */
function recordStreams() {
  const streams = [];
  Object.defineProperty(window, '__streams', { value: streams });
  const devices = navigator.mediaDevices;
  if (!devices) return;
  const original = devices.getUserMedia.bind(devices);
  devices.getUserMedia = async (constraints) => {
    const stream = await original(constraints);
    streams.push(stream);
    return stream;
  };
}

const trackStates = (page) => page.evaluate(() => window.__streams.flatMap((s) => s.getTracks().map((t) => t.readyState)));

describe('the camera is turned off', () => {
  it('by Stop the camera, and by leaving the screen, while it shows no code', { timeout: 60_000 }, async () => {
    const stub = await startStub();
    const browser = await launchBrowser({ args: fakeCameraArgs(blankFile) });
    try {
      const page = await browser.newPage({ ...VIEWPORTS.desktop });
      await page.addInitScript(recordStreams);
      const problems = watch(page);
      await page.goto(`${stub.origin}/#/scan`);
      const status = page.getByTestId('camera-status');
      await until(async () => (await status.innerText()).startsWith('Point the camera'), { message: 'the camera on' });
      assert.deepEqual(await trackStates(page), ['live']);
      assert.ok(await page.locator('video').isVisible(), 'the live picture is shown');
      if (SHOTS) await page.screenshot({ path: path.join(SHOTS, 'desktop-scan-camera.png'), animations: 'disabled' });
      const axe = await runAxe(page);
      console.log(formatViolations('desktop scan-camera', axe));
      assert.deepEqual(axe.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id), []);
      await page.waitForTimeout(1000); // still scanning, nothing found
      assert.deepEqual(await trackStates(page), ['live']);

      await page.getByRole('button', { name: 'Stop the camera' }).click();
      assert.equal(await status.innerText(), 'The camera is off.');
      assert.deepEqual(await trackStates(page), ['ended']);
      assert.equal(await page.locator('video').isVisible(), false);

      await page.getByRole('button', { name: 'Start the camera' }).click();
      await until(async () => (await status.innerText()).startsWith('Point the camera'), { message: 'the camera on again' });
      assert.deepEqual(await trackStates(page), ['ended', 'live']);
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Home', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'Home' }).waitFor();
      await until(async () => (await trackStates(page)).every((s) => s === 'ended'), { message: 'the camera off after leaving' });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      stub.close();
    }
  });
});

describe('the Scan screen without a camera', () => {
  it('says so, and the picture and paste ways still work', { timeout: 60_000 }, async () => {
    const stub = await startStub();
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage({ ...VIEWPORTS.phone });
      const problems = watch(page);
      await page.goto(`${stub.origin}/#/scan`);
      await page.getByRole('heading', { level: 1, name: 'Scan a QR code' }).waitFor();
      const cam = page.getByTestId('camera-problem');
      await cam.waitFor();
      const text = await cam.innerText();
      console.log(`# without a camera: ${text}`);
      assert.match(text, /picture of the code/);
      assert.ok(await page.getByRole('button', { name: 'Try the camera again' }).isEnabled());
      await page.getByLabel('Text of the QR code', { exact: true }).fill(REQUEST_TEXT);
      await page.getByRole('button', { name: 'Open', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'Request to see your records' }).waitFor();
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      stub.close();
    }
  });
});
