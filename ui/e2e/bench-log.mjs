// The access-log benchmark: the UI with 100,000 access events in the wallet.
//
// Builds a network (harness.mjs), a patient wallet enrolled with one grant via the CLI, posts the events as
// the gateway (`ledger post-access --count`), syncs the patient with the CLI until complete, then serves
// the app on that wallet, unlocks it in Chromium and measures, N times each:
//   - opening the access log: performance.measure custodia:log-open → custodia:log-painted, and an outside
//     wall clock from the click (in Node) to the first log row visible;
//   - applying a filter: a Reader, and a text search (custodia:filter-start → custodia:filter-painted; the
//     search box's 200 ms debounce comes before filter-start, so it is not counted);
// and, as ceilings in the same run, a bare bridge round trip (`status`) and the `access_log` calls alone
// (fetch + JSON parse, inside the page). Prints a table and the UI bundle sizes; writes target/bench-log.json.
//
// Run from ui/: npm run bench:log   (env: BENCH_EVENTS=100000, BENCH_RUNS=5, CUSTODIA_BIN)

import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { gzipSync } from 'node:zlib';
import { PASSPHRASE, REPO_ROOT, UI_DIST, VIEWPORTS, launchBrowser, startNetwork } from './harness.mjs';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const CEILING_RUNS = Math.max(RUNS, 20);
const GOAL_MS = 100;
const PAGE = 50; // the UI's page size (Log.svelte)
const SEARCH_TEXT = 'Riverside';

const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
const log = (msg) => console.log(`[${elapsed()}] ${msg}`);

async function timed(label, fn) {
  const t0 = performance.now();
  log(`${label}…`);
  const result = await fn();
  const ms = performance.now() - t0;
  log(`${label}: ${(ms / 1000).toFixed(2)} s`);
  return { result, ms };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const stats = (xs) => ({ median: median(xs), max: Math.max(...xs), min: Math.min(...xs), samples: xs });

let net;
let browser;
const setup = {};

try {
  // ---- 1. the network and a patient with one grant, all through the CLI ----
  const network = await timed('network (3 wallets, ledger init + serve, 2 enrollments)', () =>
    startNetwork({ label: 'custodia-bench' }),
  );
  net = network.result;
  const patientStep = await timed('patient wallet (init + enroll)', () => net.makePatient('Ada Lovelace'));
  const patient = patientStep.result;

  const grant = await timed('grant to Dr Hopper (create + post)', async () => {
    await net.cli([
      'grant', 'create', '--wallet', patient.dir, '--to', net.clinician.key,
      '--scope', 'patient/Observation.rs?category=laboratory', '--purpose', 'TREAT', '--for', '30d', '--post',
    ]);
    const { stdout } = await net.cli(['grant', 'list', '--wallet', patient.dir, '--json']);
    const [g] = JSON.parse(stdout);
    if (!g?.id) throw new Error(`no grant listed:\n${stdout}`);
    return g.id;
  });
  const grantId = grant.result;

  let lastProgress = 0;
  const posting = await timed(`post ${EVENTS.toLocaleString('en')} access events as the gateway (post-access --count)`, () =>
    net.postAccess({
      patient: patient.key,
      grant: grantId,
      count: EVENTS,
      onStderr: (d) => {
        const m = /posted (\d+) of (\d+)/.exec(d.trim().split('\n').pop() ?? '');
        if (m && performance.now() - lastProgress > 2000) {
          lastProgress = performance.now();
          log(`  posted ${Number(m[1]).toLocaleString('en')} of ${Number(m[2]).toLocaleString('en')}`);
        }
      },
    }),
  );
  if (posting.result.posted !== EVENTS) throw new Error(`posted ${posting.result.posted}, wanted ${EVENTS}`);

  const rounds = [];
  const syncing = await timed('patient wallet sync (CLI, until complete)', async () => {
    for (let round = 1; ; round++) {
      const s = performance.now();
      const { stdout, stderr } = await net.cli(['wallet', 'sync', '--wallet', patient.dir]);
      const ms = performance.now() - s;
      rounds.push(ms);
      const more = /More entries remain/i.test(stdout + stderr);
      log(`  sync round ${round}: ${(ms / 1000).toFixed(2)} s${more ? ' (more entries remain)' : ' (complete)'}`);
      if (!more) break;
      if (round > 500) throw new Error('wallet sync never completed');
    }
  });

  Object.assign(setup, {
    events: EVENTS,
    network_ms: network.ms,
    patient_ms: patientStep.ms,
    grant_ms: grant.ms,
    post_ms: posting.ms,
    post_seconds_reported: posting.result.seconds,
    sync_ms: syncing.ms,
    sync_rounds_ms: rounds,
  });

  // ---- 2. the app on that wallet, unlocked in Chromium ----
  const app = (await timed('app serve on the patient wallet', () => net.startApp({ walletDir: patient.dir }))).result;
  browser = await launchBrowser();
  const context = await browser.newContext({ ...VIEWPORTS.desktop, locale: 'en-GB' });
  context.setDefaultTimeout(60_000);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));

  const unlock = await timed('open the page and unlock', async () => {
    await page.goto(app.url);
    await page.getByRole('heading', { level: 1, name: 'Unlock your wallet' }).waitFor();
    await page.getByLabel('Passphrase', { exact: true }).fill(PASSPHRASE);
    await page.getByRole('button', { name: 'Unlock', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Home', exact: true }).waitFor();
  });
  setup.unlock_ms = unlock.ms;

  // The wallet really holds the events.
  const check = await app.bridge('access_log', { filter: {}, offset: 0, limit: 1 });
  if (check.total_all < EVENTS) throw new Error(`the wallet shows ${check.total_all} events, wanted ${EVENTS}`);
  const reader = check.readers.find((r) => r.name === 'Dr Alan Turing') ?? check.readers[0];
  log(`wallet holds ${check.total_all.toLocaleString('en')} events, ${check.readers.length} readers; filter reader: ${reader.name}`);

  // Let the unlock-time sync finish, so it does not overlap the first measurement.
  await page.waitForTimeout(1500);

  // ---- 3. the measurements ----
  const nav = page.getByRole('navigation', { name: 'Main' });
  const rows = page.getByTestId('log-row');

  /**
   * Clears the marks (and the resource timings), runs `act`, waits for `endMark`, and returns the measure
   * between the two marks, split by the resource timing of the page's own `access_log` fetch into: before
   * the fetch starts (routing, mounting), the fetch (bridge + Rust, until the last byte), and after the
   * response (JSON parse, Svelte update, layout, paint, and the frame the UI waits for before its mark).
   */
  async function measureMarks(startMark, endMark, act) {
    await page.evaluate((names) => {
      names.forEach((n) => performance.clearMarks(n));
      performance.clearResourceTimings();
    }, [startMark, endMark]);
    await act();
    await page.waitForFunction((n) => performance.getEntriesByName(n, 'mark').length > 0, endMark, { polling: 'raf' });
    return page.evaluate(
      ([s, e]) => {
        const m = performance.measure(`bench ${s}→${e}`, s, e);
        performance.clearMeasures(m.name);
        const calls = performance.getEntriesByType('resource').filter((r) => r.name.endsWith('/bridge/access_log'));
        const r = calls[calls.length - 1];
        const start = m.startTime;
        const end = m.startTime + m.duration;
        return {
          total: m.duration,
          beforeFetch: r ? r.startTime - start : NaN,
          fetch: r ? r.responseEnd - r.startTime : NaN,
          afterResponse: r ? end - r.responseEnd : NaN,
          calls: calls.length,
        };
      },
      [startMark, endMark],
    );
  }

  const openMs = [];
  const openWallMs = [];
  const readerMs = [];
  const textMs = [];
  let rowsShown = 0;

  for (let i = 1; i <= RUNS; i++) {
    await nav.getByRole('link', { name: 'Home', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Home', exact: true }).waitFor();
    await page.getByRole('heading', { level: 2, name: 'Recent reads' }).waitFor();
    await page.waitForTimeout(300);

    // Open the log: marks, and an outside wall clock from the click to the first row visible.
    let wall = 0;
    const open = await measureMarks('custodia:log-open', 'custodia:log-painted', async () => {
      const link = nav.getByRole('link', { name: 'Access log', exact: true });
      await link.waitFor();
      const t0 = performance.now();
      await link.click();
      await rows.first().waitFor({ state: 'visible' });
      wall = performance.now() - t0;
    });
    openMs.push(open);
    openWallMs.push({ total: wall });
    rowsShown = await rows.count();
    if (rowsShown !== PAGE) throw new Error(`the log shows ${rowsShown} rows, wanted ${PAGE}`);

    // Filter by reader.
    const byReader = await measureMarks('custodia:filter-start', 'custodia:filter-painted', () =>
      page.getByLabel('Reader', { exact: true }).selectOption(reader.key),
    );
    readerMs.push(byReader);
    const status = await page.locator('.status-line [role="status"]').innerText();
    if (!/ of [\d,]+ events match/.test(status)) throw new Error(`after the reader filter: "${status}"`);

    // Back to anyone (not measured), then a text search.
    await measureMarks('custodia:filter-start', 'custodia:filter-painted', () =>
      page.getByLabel('Reader', { exact: true }).selectOption(''),
    );
    const byText = await measureMarks('custodia:filter-start', 'custodia:filter-painted', () =>
      page.getByLabel('Search', { exact: true }).fill(SEARCH_TEXT),
    );
    textMs.push(byText);
    const first = await rows.first().innerText();
    if (!first.includes(SEARCH_TEXT)) throw new Error(`the search shows a row without "${SEARCH_TEXT}"`);

    log(
      `run ${i}/${RUNS}: open ${open.total.toFixed(1)} ms (wall ${wall.toFixed(1)} ms), ` +
        `reader filter ${byReader.total.toFixed(1)} ms, text search ${byText.total.toFixed(1)} ms ` +
        `(of which the access_log fetch: ${open.fetch.toFixed(1)}, ${byReader.fetch.toFixed(1)}, ${byText.fetch.toFixed(1)} ms)`,
    );
  }

  // Ceilings, inside the page: the bridge alone (fetch + JSON parse), with the page's own token.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Home', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'Home', exact: true }).waitFor();
  const ceilings = await page.evaluate(
    async ({ runs, readerKey, text, limit }) => {
      const token = sessionStorage.getItem('custodia-token');
      async function call(name, args) {
        const t0 = performance.now();
        const r = await fetch(`/bridge/${name}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify(args),
          cache: 'no-store',
          credentials: 'omit',
        });
        const raw = await r.text();
        JSON.parse(raw);
        if (!r.ok) throw new Error(`${name}: HTTP ${r.status} ${raw}`);
        return { ms: performance.now() - t0, bytes: raw.length };
      }
      const out = {};
      const kinds = {
        status: ['status', {}],
        access_log_open: ['access_log', { filter: {}, offset: 0, limit }],
        access_log_reader: ['access_log', { filter: { reader: readerKey }, offset: 0, limit }],
        access_log_text: ['access_log', { filter: { text }, offset: 0, limit }],
      };
      for (const [k, [name, args]] of Object.entries(kinds)) {
        await call(name, args); // warm-up
        const ms = [];
        let bytes = 0;
        for (let i = 0; i < runs; i++) {
          const r = await call(name, args);
          ms.push(r.ms);
          bytes = r.bytes;
        }
        out[k] = { ms, bytes };
      }
      return out;
    },
    { runs: CEILING_RUNS, readerKey: reader.key, text: SEARCH_TEXT, limit: PAGE },
  );
  if (pageErrors.length) throw new Error(`page errors: ${pageErrors.join('\n')}`);

  // Where the 100,000 events cost at unlock (the unlock in the browser above took setup.unlock_ms): the
  // bridge commands one by one from Node (loopback HTTP), after locking through the bridge.
  // The page goes first, so its 15 s background sync cannot queue beside these calls.
  const unlockParts = {};
  await page.goto('about:blank');
  await app.bridge('lock');
  for (const [name, args] of [
    ['unlock', { passphrase: PASSPHRASE }],
    ['home', {}],
    ['sync', {}],
    ['sync (again, nothing new)', {}],
    ['grants', {}],
  ]) {
    const t0 = performance.now();
    await app.bridge(name.split(' ')[0], args);
    unlockParts[name] = performance.now() - t0;
  }
  log(`bridge from Node after a lock: ${Object.entries(unlockParts).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')}`);

  // ---- 4. bundle size ----
  const assetsDir = path.join(UI_DIST, 'assets');
  const bundle = [];
  for (const f of (await readdir(assetsDir)).sort()) {
    const bytes = await readFile(path.join(assetsDir, f));
    bundle.push({ file: `assets/${f}`, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length });
  }
  const totalRaw = bundle.reduce((a, b) => a + b.raw, 0);
  const totalGzip = bundle.reduce((a, b) => a + b.gzip, 0);

  // ---- 5. report ----
  const split = (xs) => ({
    total: stats(xs.map((x) => x.total)),
    ...(xs[0].fetch !== undefined
      ? {
          before_fetch: stats(xs.map((x) => x.beforeFetch)),
          access_log_fetch: stats(xs.map((x) => x.fetch)),
          after_response: stats(xs.map((x) => x.afterResponse)),
        }
      : {}),
  });
  const results = {
    open_log_marks: split(openMs),
    open_log_wall_click_to_first_row: split(openWallMs),
    filter_reader: split(readerMs),
    filter_text: split(textMs),
  };
  const ceil = {
    bridge_status_round_trip: { ...stats(ceilings.status.ms), bytes: ceilings.status.bytes },
    access_log_call_open: { ...stats(ceilings.access_log_open.ms), bytes: ceilings.access_log_open.bytes },
    access_log_call_reader: { ...stats(ceilings.access_log_reader.ms), bytes: ceilings.access_log_reader.bytes },
    access_log_call_text: { ...stats(ceilings.access_log_text.ms), bytes: ceilings.access_log_text.bytes },
  };

  const f = (x) => x.toFixed(1).padStart(8);
  const verdict = (s) =>
    s.median <= GOAL_MS && s.max <= GOAL_MS ? 'yes' : s.median <= GOAL_MS ? 'median only' : 'NO';
  const W = 58;
  const line = (name, s, goal) =>
    `  ${name.padEnd(W)} ${f(s.median)} ${f(s.max)}${goal ? `   ≤ ${GOAL_MS} ms: ${verdict(s)}` : ''}`;
  const measured = (name, r) => {
    console.log(line(name, r.total, true));
    if (r.access_log_fetch) {
      console.log(line('    of which: before the fetch (routing, mount)', r.before_fetch));
      console.log(line('    of which: the access_log fetch (bridge + Rust)', r.access_log_fetch));
      console.log(line('    of which: after the response (parse, render, paint)', r.after_response));
    }
  };
  console.log('');
  console.log(
    `Access log with ${check.total_all.toLocaleString('en')} events in the wallet; ${RUNS} runs each ` +
      `(ceilings: ${CEILING_RUNS} calls); Chromium headless, 1280x800; times in ms`,
  );
  console.log(`  ${'what'.padEnd(W)} ${'median'.padStart(8)} ${'max'.padStart(8)}   goal`);
  measured('open the log (marks log-open → log-painted)', results.open_log_marks);
  measured('open the log (wall, from Node: click → first row visible)', results.open_log_wall_click_to_first_row);
  measured(`filter: one reader (${reader.name})`, results.filter_reader);
  measured(`filter: text search "${SEARCH_TEXT}" (after the 200 ms debounce)`, results.filter_text);
  console.log('  ceilings in the same run (fetch + JSON parse inside the page, no rendering):');
  console.log(line('bridge round trip: status', ceil.bridge_status_round_trip));
  const kib = (b) => `${(b / 1024).toFixed(0)} KiB`;
  console.log(line(`access_log, no filter (${PAGE} rows, ${kib(ceil.access_log_call_open.bytes)})`, ceil.access_log_call_open));
  console.log(line(`access_log, reader filter (${kib(ceil.access_log_call_reader.bytes)})`, ceil.access_log_call_reader));
  console.log(line(`access_log, text search (${kib(ceil.access_log_call_text.bytes)})`, ceil.access_log_call_text));
  console.log('');
  console.log('Setup:');
  console.log(`  network ${(setup.network_ms / 1000).toFixed(1)} s; patient wallet ${(setup.patient_ms / 1000).toFixed(1)} s; grant ${(setup.grant_ms / 1000).toFixed(1)} s`);
  console.log(`  post ${EVENTS.toLocaleString('en')} events (CLI): ${(setup.post_ms / 1000).toFixed(1)} s`);
  console.log(`  wallet sync (CLI): ${(setup.sync_ms / 1000).toFixed(1)} s in ${rounds.length} round(s): ${rounds.map((r) => (r / 1000).toFixed(1)).join(' + ')} s`);
  console.log(`  open the page and unlock in Chromium (to Home): ${(setup.unlock_ms / 1000).toFixed(2)} s`);
  console.log(`  bridge calls from Node after a lock (page closed): ${Object.entries(unlockParts).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ')}`);
  setup.bridge_after_lock_ms = unlockParts;
  console.log('');
  console.log('UI bundle (ui/dist/assets):');
  for (const b of bundle) console.log(`  ${b.file.padEnd(32)} ${String(b.raw).padStart(9)} B raw ${String(b.gzip).padStart(9)} B gzip`);
  console.log(`  ${'total'.padEnd(32)} ${String(totalRaw).padStart(9)} B raw ${String(totalGzip).padStart(9)} B gzip`);

  const totalSeconds = (performance.now() - started) / 1000;
  const report = {
    date: new Date().toISOString(),
    events: check.total_all,
    runs: RUNS,
    ceiling_runs: CEILING_RUNS,
    goal_ms: GOAL_MS,
    page_rows: PAGE,
    filter_reader: reader.name,
    filter_text: SEARCH_TEXT,
    results_ms: results,
    ceilings_ms: ceil,
    setup_ms: setup,
    bundle: { files: bundle, total_raw: totalRaw, total_gzip: totalGzip },
    total_seconds: totalSeconds,
  };
  await mkdir(path.join(REPO_ROOT, 'target'), { recursive: true });
  const out = path.join(REPO_ROOT, 'target', 'bench-log.json');
  await writeFile(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log('');
  console.log(`Wrote ${out}. The whole benchmark took ${totalSeconds.toFixed(1)} s.`);
} finally {
  await browser?.close().catch(() => {});
  await net?.stop();
}
