// A throwaway Custodia network for the browser tests and the UI benchmark.
//
// startNetwork() makes, in a fresh temp dir, with the `custodia` command at $CUSTODIA_BIN (default
// $CARGO_TARGET_DIR/debug/custodia, else ../target/debug/custodia from ui/): a network authority, a hospital
// gateway and a clinician ("Dr Grace Hopper", St Mary's Hospital) wallet; a ledger (init + serve on port 0) with the gateway and the
// clinician enrolled. network.startApp() then runs `custodia app serve` for a patient wallet folder (a fresh,
// empty one unless told otherwise), and network.startGateway() serves the gateway over the synthetic
// dataset. stop() ends every child process, also when the test fails or the process exits, and removes the
// temp dir (kept when CUSTODIA_E2E_KEEP=1).

import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const UI_DIR = path.resolve(here, '..');
export const REPO_ROOT = path.resolve(UI_DIR, '..');
export const UI_DIST = path.join(UI_DIR, 'dist');
export const BIN = path.resolve(
  UI_DIR,
  process.env.CUSTODIA_BIN ?? path.join(process.env.CARGO_TARGET_DIR || '../target', 'debug', 'custodia'),
);

export const PASSPHRASE = 'correct horse battery staple';
/** Where the flows' screenshots go (the README links them), and where a failing step's go. */
export const SHOTS = path.join(REPO_ROOT, 'docs', 'screenshots');
export const FAILURES = path.join(REPO_ROOT, 'target', 'e2e-failures');
export const CLINICIAN = { name: 'Dr Grace Hopper', org: "St Mary's Hospital" };
export const GATEWAY = { name: "St Mary's Hospital gateway", org: "St Mary's Hospital" };

// ---- child processes: every one is tracked and killed on stop() or exit ----

const children = new Set();
/** Temp dirs of networks not yet stopped: removed at exit too. */
const liveDirs = new Set();
let exitHooked = false;

function killAllNow() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  if (process.env.CUSTODIA_E2E_KEEP === '1') return;
  for (const d of liveDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
}

function hookExit() {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => {
      killAllNow();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

async function killChild(child, graceMs = 3000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
  children.delete(child);
}

/** Runs the CLI to completion. Rejects (with its output) on a non-zero exit unless `allowFail`. */
export function cli(args, { env = {}, allowFail = false, onStderr, cwd } = {}) {
  hookExit();
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, {
      cwd,
      env: { ...process.env, CUSTODIA_PASSPHRASE: PASSPHRASE, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => {
      stderr += d;
      onStderr?.(d);
    });
    child.on('error', (e) => {
      children.delete(child);
      reject(e);
    });
    child.on('close', (code, signal) => {
      children.delete(child);
      const result = { code, signal, stdout, stderr };
      if ((code === 0 || allowFail) && !signal) resolve(result);
      else {
        const e = new Error(`custodia ${args.join(' ')} exited ${code ?? signal}\n${stdout}\n${stderr}`);
        e.result = result;
        reject(e);
      }
    });
  });
}

/**
 * Starts a long-running CLI command (a server) and resolves with its first stdout line. Its output goes to
 * `logFile`; `tail()` returns the end of it for failure messages.
 */
function serve(args, logFile, { env = {}, timeoutMs = 30_000 } = {}) {
  hookExit();
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, {
      env: { ...process.env, CUSTODIA_PASSPHRASE: PASSPHRASE, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const log = createWriteStream(logFile);
    let recent = '';
    const keep = (d) => {
      log.write(d);
      recent = (recent + d).slice(-8000);
    };
    let firstLine = null;
    let buffer = '';
    const timer = setTimeout(() => {
      if (firstLine === null) {
        child.kill('SIGKILL');
        reject(new Error(`custodia ${args.join(' ')}: no address after ${timeoutMs} ms\n${recent}`));
      }
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d) => {
      keep(d);
      if (firstLine !== null) return;
      buffer += d;
      const nl = buffer.indexOf('\n');
      if (nl >= 0) {
        firstLine = buffer.slice(0, nl).trim();
        clearTimeout(timer);
        resolve({ child, firstLine, tail: () => recent });
      }
    });
    child.stderr.setEncoding('utf8').on('data', keep);
    child.on('error', (e) => {
      clearTimeout(timer);
      children.delete(child);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      log.end();
      if (firstLine === null) {
        clearTimeout(timer);
        children.delete(child);
        reject(new Error(`custodia ${args.join(' ')} exited ${code ?? signal} before printing its address\n${recent}`));
      }
    });
  });
}

async function makeWallet(dir, name) {
  await cli(['wallet', 'init', '--wallet', dir, '--name', name]);
  const { stdout } = await cli(['wallet', 'show', '--json', '--wallet', dir]);
  const shown = JSON.parse(stdout);
  return {
    dir,
    name,
    key: shown.signing_key,
    card: shown.contact_card,
    boxKey: shown.encryption_key,
    fingerprint: shown.fingerprint,
  };
}

/**
 * A fresh network: authority, gateway and clinician wallets, a ledger served on port 0, the gateway and the
 * clinician enrolled.
 */
export async function startNetwork({ label = 'custodia-e2e', witnesses = 0 } = {}) {
  hookExit();
  if (!existsSync(BIN)) throw new Error(`no custodia binary at ${BIN} (set CUSTODIA_BIN)`);
  if (!existsSync(path.join(UI_DIST, 'index.html'))) throw new Error(`no built UI at ${UI_DIST}: run npm run build`);
  const dir = await mkdtemp(path.join(tmpdir(), `${label}-`));
  liveDirs.add(dir);
  const logs = path.join(dir, 'logs');
  await mkdir(logs);
  const mine = new Set(); // this network's servers
  let stopped = false;

  const net = {
    dir,
    bin: BIN,
    /** Ends every server this network started and removes its folder. */
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all([...mine].map((c) => killChild(c)));
      liveDirs.delete(dir);
      if (process.env.CUSTODIA_E2E_KEEP === '1') console.log(`# kept ${dir}`);
      else await rm(dir, { recursive: true, force: true, maxRetries: 3 });
    },
  };

  try {
    const [authority, gateway, clinician] = await Promise.all([
      makeWallet(path.join(dir, 'authority'), 'Network Authority'),
      makeWallet(path.join(dir, 'gateway'), GATEWAY.name),
      makeWallet(path.join(dir, 'clinician'), CLINICIAN.name),
    ]);
    const ledgerDir = path.join(dir, 'ledger');
    const init = await cli(['ledger', 'init', '--dir', ledgerDir, '--authority', authority.key]);
    const verifierKey = /verifier key:\s*(\S+)/.exec(init.stdout)?.[1];
    if (!verifierKey) throw new Error(`ledger init printed no verifier key:\n${init.stdout}`);
    // With witnesses: each made, told of this log and served; the ledger then publishes only checkpoints they
    // all cosigned, and `net.profile` is the network profile (text and QR picture) a wallet joins with.
    const policyFile = path.join(dir, 'witness-policy.txt');
    let policy = `log ${verifierKey}\n`;
    for (let i = 1; i <= witnesses; i++) {
      const wdir = path.join(dir, `witness-${i}`);
      const made = JSON.parse(
        (await cli(['witness', 'init', '--dir', wdir, '--name', `w${i}.example`, '--json'])).stdout,
      );
      await cli(['witness', 'add-log', '--dir', wdir, '--vkey', verifierKey]);
      const w = await serve(['witness', 'serve', '--dir', wdir, '--listen', '127.0.0.1:0'], path.join(logs, `witness-${i}.log`));
      mine.add(w.child);
      const url = /^listening on (http:\/\/\S+)/.exec(w.firstLine)?.[1];
      if (!url) throw new Error(`witness serve printed: ${w.firstLine}`);
      policy += `witness W${i} ${made.vkey} ${url}\n`;
    }
    const ledgerArgs = ['ledger', 'serve', '--dir', ledgerDir, '--listen', '127.0.0.1:0', '--rate-limit', '100000'];
    if (witnesses > 0) {
      policy += `group Q all ${Array.from({ length: witnesses }, (_, i) => `W${i + 1}`).join(' ')}\nquorum Q\n`;
      await writeFile(policyFile, policy);
      ledgerArgs.push('--witness-policy', policyFile);
    }
    const ledger = await serve(ledgerArgs, path.join(logs, 'ledger.log'));
    mine.add(ledger.child);
    const ledgerUrl = /^listening on (http:\/\/\S+)/.exec(ledger.firstLine)?.[1];
    if (!ledgerUrl) throw new Error(`ledger serve printed: ${ledger.firstLine}`);

    const enroll = (member, role, org) =>
      cli([
        'ledger', 'enroll', '--wallet', authority.dir, '--ledger', ledgerUrl, '--verifier-key', verifierKey,
        '--contact', member.card, '--role', role, '--org', org,
      ]);
    await enroll(gateway, 'gateway', GATEWAY.org);
    await enroll(clinician, 'provider', CLINICIAN.org);
    let profile = null;
    if (witnesses > 0) {
      const [text, png] = [path.join(dir, 'network.txt'), path.join(dir, 'network.png')];
      const made = await cli([
        'network', 'profile', '--ledger-dir', ledgerDir, '--url', ledgerUrl, '--witness-policy', policyFile,
        '--out', text, '--qr', png, '--json',
      ]);
      profile = { text, png, fingerprint: JSON.parse(made.stdout).fingerprint };
    }

    Object.assign(net, {
      authority,
      gateway,
      clinician: { ...clinician, org: CLINICIAN.org },
      ledgerUrl,
      verifierKey,
      profile,
      ledgerLog: ledger.tail,
      passphrase: PASSPHRASE,
      /** Runs the CLI with this network's passphrase. */
      cli,

      /**
       * A member the network authority enrolls (a clinician, an emergency clinician), with a wallet made
       * with the CLI. Returns its folder, key and fingerprint.
       */
      async makeMember({ folder, name, role, org }) {
        const member = await makeWallet(path.join(dir, folder), name);
        await enroll(member, role, org);
        return member;
      },

      /** A patient wallet made with the CLI (not through the app), enrolled on the ledger. */
      async makePatient(name = 'Ada Lovelace', folder = 'patient-cli') {
        const p = await makeWallet(path.join(dir, folder), name);
        await cli(['wallet', 'enroll', '--wallet', p.dir, '--ledger', ledgerUrl, '--verifier-key', verifierKey]);
        return p;
      },

      /**
       * Logs access events about a patient as the gateway (`ledger post-access`). One allowed read by the
       * clinician by default; with `count`, that many synthetic, varied events (some denied, some break-glass).
       */
      async postAccess({
        patient,
        grant,
        resource = 'Observation/hba1c-1',
        reader = clinician.key,
        readerName = CLINICIAN.name,
        org = CLINICIAN.org,
        purpose,
        count,
        spreadDays,
        onStderr,
      }) {
        const args = [
          'ledger', 'post-access', '--wallet', gateway.dir, '--ledger', ledgerUrl, '--verifier-key', verifierKey,
          '--patient', patient, '--grant', grant, '--resource', resource, '--json',
        ];
        if (count !== undefined) {
          args.push('--count', String(count));
          if (spreadDays !== undefined) args.push('--spread-days', String(spreadDays));
        } else {
          if (reader) args.push('--reader', reader);
          args.push('--reader-name', readerName, '--org', org);
          if (purpose) args.push('--purpose', purpose);
        }
        const { stdout } = await cli(args, { onStderr });
        return JSON.parse(stdout);
      },

      /**
       * Serves the gateway's wallet as a record gateway over the shipped synthetic dataset (`gateway serve`
       * on port 0), after linking each `{ patient, fhirId }` in `links`. Resolves with its base URL.
       */
      async startGateway({ links = [] } = {}) {
        for (const { patient, fhirId } of links) {
          await cli(['gateway', 'link', '--dir', gateway.dir, '--patient', patient, '--fhir-id', fhirId]);
        }
        const served = await serve(
          ['gateway', 'serve', '--dir', gateway.dir, '--ledger', ledgerUrl, '--listen', '127.0.0.1:0'],
          path.join(logs, 'gateway.log'),
        );
        mine.add(served.child);
        const url = /^listening on (http:\/\/\S+)/.exec(served.firstLine)?.[1];
        if (!url) throw new Error(`gateway serve printed: ${served.firstLine}`);
        Object.assign(net, { gatewayUrl: url, gatewayLog: served.tail });
        return url;
      },

      /**
       * Starts `custodia app serve` on a patient wallet folder (default: a fresh, empty one, so the app
       * starts with onboarding). Returns the page URL (with the token), the origin, the token, and a bridge
       * client for calling commands from Node.
       */
      async startApp({ walletDir = path.join(dir, 'patient') } = {}) {
        const app = await serve(
          [
            'app', 'serve', '--wallet', walletDir, '--ledger', ledgerUrl, '--listen', '127.0.0.1:0',
            '--ui', UI_DIST,
          ],
          path.join(logs, `app-${path.basename(walletDir)}.log`),
        );
        mine.add(app.child);
        const m = /^open (http:\/\/127\.0\.0\.1:\d+)\/#token=([0-9a-f]+)$/.exec(app.firstLine);
        if (!m) throw new Error(`app serve printed: ${app.firstLine}`);
        const [, origin, token] = m;
        const result = {
          url: `${origin}/#token=${token}`,
          origin,
          token,
          walletDir,
          log: app.tail,
          /** Calls one bridge command from Node, as the page would. Rejects with { code, message }. */
          bridge: (name, args = {}) => bridgeCall(origin, token, name, args),
          async stop() {
            await killChild(app.child);
            mine.delete(app.child);
          },
        };
        net.app = result;
        return result;
      },
    });
    return net;
  } catch (e) {
    await net.stop();
    throw e;
  }
}

/** The fresh network plus `app serve` on a fresh patient wallet folder (onboarding first). */
export async function startHarness(options) {
  const net = await startNetwork(options);
  try {
    await net.startApp();
    return net;
  } catch (e) {
    await net.stop();
    throw e;
  }
}

export async function bridgeCall(origin, token, name, args = {}) {
  const response = await fetch(`${origin}/bridge/${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, Origin: origin, 'Content-Type': 'application/json' },
    body: JSON.stringify(args),
  });
  const body = await response.json().catch(() => undefined);
  if (!response.ok) {
    const e = new Error(`bridge ${name}: HTTP ${response.status} ${JSON.stringify(body)}`);
    e.code = body?.code;
    throw e;
  }
  return body;
}

// ---- Chromium ----

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

/** Debian's Chromium, headless; `args` adds flags (e.g. a fake camera, see y4m.mjs). */
export function launchBrowser({ args = [] } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
  });
}

export const VIEWPORTS = {
  desktop: { viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 },
  phone: { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true },
};

// ---- the flows' shared steps ----

/** Polls `fn` until it returns a truthy value. */
export async function until(fn, { timeout = 15_000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${message} (last: ${last})`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/**
 * The steps of one flow, each depending on those before: after a failure the later steps are skipped, and
 * the failing step leaves a full-page screenshot of each page `pages()` names (`{ who: page }`) in
 * target/e2e-failures, under `label`. `flow.failed` is the failed step's name, or null.
 */
export function flow(label, pages) {
  const run = {
    failed: null,
    step: (name, fn) =>
      it(name, { timeout: 120_000 }, async (t) => {
        if (run.failed) {
          t.skip(`skipped because "${run.failed}" failed`);
          return;
        }
        try {
          await fn(t);
        } catch (e) {
          run.failed = name;
          await mkdir(FAILURES, { recursive: true });
          for (const [who, page] of Object.entries(pages())) {
            const base = [label, who, name.replace(/[^a-z0-9]+/gi, '-')].filter(Boolean).join('-');
            const file = path.join(FAILURES, `${base}.png`);
            await page?.screenshot({ path: file, fullPage: true }).catch(() => {});
            console.log(`# failure screenshot: ${file}`);
          }
          throw e;
        }
      }),
  };
  return run;
}

/** Runs axe-core on `page` as the screen `screen` shows, keeps its violations in `byScreen` and prints them. */
export async function axeScreen(page, size, screen, byScreen) {
  const violations = await runAxe(page);
  byScreen.set(screen, violations);
  console.log(formatViolations(`${size} ${screen}`, violations));
}

/** Closes every toast message on the page. */
export async function dismissToasts(page) {
  const buttons = page.getByRole('button', { name: 'Dismiss message' });
  for (let n = await buttons.count(); n > 0; n = await buttons.count()) await buttons.first().click();
}

/** A full-page screenshot for docs/screenshots, `size-screen.png`, toasts closed first unless kept. */
export async function screenshot(page, size, screen, { keepToasts = false } = {}) {
  if (!keepToasts) await dismissToasts(page);
  const file = path.join(SHOTS, `${size}-${screen}.png`);
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled', caret: 'hide' });
}

// ---- axe-core ----

const AXE_PATH = fileURLToPath(new URL('../node_modules/axe-core/axe.min.js', import.meta.url));
let axeSource = null;

/**
 * Runs axe-core on the page as it is now. Returns all violations; the caller decides what fails.
 *
 * axe is injected by evaluating node_modules/axe-core/axe.min.js through the DevTools protocol, not with
 * page.addScriptTag: the app's CSP (`script-src 'self'`) refuses the inline <script> that addScriptTag
 * makes, and we keep the CSP in force (no bypassCSP) so the tests also catch CSP violations by the app.
 */
export async function runAxe(page, context = 'document') {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) {
    axeSource ??= await readFile(AXE_PATH, 'utf8');
    await page.evaluate(axeSource);
  }
  return page.evaluate(async (ctx) => {
    const r = await window.axe.run(ctx === 'document' ? document : ctx, {
      resultTypes: ['violations'],
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary })),
    }));
  }, context);
}

export function formatViolations(screen, violations) {
  if (!violations.length) return `axe ${screen}: no violations`;
  const lines = [`axe ${screen}: ${violations.length} violation(s)`];
  for (const v of violations) {
    lines.push(`  [${v.impact}] ${v.id}: ${v.help} (${v.nodes.length} node(s))`);
    for (const n of v.nodes.slice(0, 5)) lines.push(`      ${n.target}${n.summary ? ` — ${n.summary.replace(/\s+/g, ' ')}` : ''}`);
  }
  return lines.join('\n');
}
