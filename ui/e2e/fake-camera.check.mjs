// Checks the camera path without the rest of the app: a QR code PNG becomes a Y4M video (y4m.mjs), Chromium
// shows it as its fake camera, and a tiny page built from src/lib/scanner.ts (getUserMedia, <video>,
// canvas, jsQR loaded lazily) must read the code's text and then turn the camera off.
//
//   node e2e/fake-camera.check.mjs                          # a contact card QR made with the custodia CLI
//   node e2e/fake-camera.check.mjs --png FILE --text TEXT   # any QR code PNG and the text it holds
//
// Needs /usr/bin/chromium (or CHROMIUM_PATH) and, without --png, target/debug/custodia (or CUSTODIA_BIN).
// Not part of `npm run e2e`.

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { after, before, it } from 'node:test';
import { build } from 'vite';
import { UI_DIR, cli, launchBrowser } from './harness.mjs';
import { decodePngToGrey, fakeCameraArgs, pngToY4m } from './y4m.mjs';

const { values: opts } = parseArgs({ options: { png: { type: 'string' }, text: { type: 'string' } }, strict: false });
if (!!opts.png !== !!opts.text) throw new Error('give both --png FILE and --text TEXT, or neither');

let dir;
let server;
let browser;

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'custodia-fake-camera-'));
});

after(async () => {
  await browser?.close().catch(() => {});
  server?.close();
  if (dir && process.env.CUSTODIA_E2E_KEEP !== '1') await rm(dir, { recursive: true, force: true });
  else if (dir) console.log(`# kept ${dir}`);
});

/** A fresh wallet's contact card from the CLI, as QR text and PNG. */
async function contactCard(name) {
  const wallet = path.join(dir, `wallet-${name.length}`);
  const file = path.join(dir, `card-${name.length}.png`);
  await cli(['wallet', 'init', '--wallet', wallet, '--name', name]);
  const { stdout } = await cli(['wallet', 'show', '--json', '--wallet', wallet, '--qr', file]);
  return { png: await readFile(file), text: JSON.parse(stdout).contact_card };
}

// A short name gives a small code; a long one (names may have 64 bytes) a code of about 220 characters,
// near an access request's (about 260).
const CODES = opts.png
  ? [{ label: opts.png, get: async () => ({ png: await readFile(opts.png), text: opts.text }) }]
  : [
      { label: 'a small contact card', get: () => contactCard('Dr Fake Camera') },
      {
        label: 'a dense contact card (a 63-byte name)',
        get: () => contactCard('Dr Fake Camera, Consultant in Emergency Medicine, City Hospital'),
      },
    ];

/** The test page: src/lib/scanner.ts against the real camera API, built by Vite as the app is. */
async function buildPage() {
  const src = path.join(dir, 'page');
  const out = path.join(dir, 'page-dist');
  await mkdir(src);
  await writeFile(
    path.join(src, 'index.html'),
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>scanner check</title></head>' +
      '<body><video></video><script type="module" src="./main.js"></script></body></html>',
  );
  const scanner = path.join(UI_DIR, 'src', 'lib', 'scanner.ts');
  await writeFile(
    path.join(src, 'main.js'),
    `import { loadJsqr, playStream, startCameraScan } from ${JSON.stringify(scanner)};
const video = document.querySelector('video');
let stream = null;
let decodeErrors = 0;
const started = performance.now();
window.scanned = new Promise((resolve, reject) => {
  const scan = startCameraScan({
    mediaDevices: { getUserMedia: async (c) => (stream = await navigator.mediaDevices.getUserMedia(c)) },
    attach: (s) => playStream(video, s),
    loadDecoder: loadJsqr,
    onDecodeError: () => decodeErrors++,
    onHit: (text) => {
      const track = stream.getVideoTracks()[0];
      resolve({
        text,
        ms: Math.round(performance.now() - started),
        camera: track.label,
        size: video.videoWidth + 'x' + video.videoHeight,
        tracks: stream.getTracks().map((t) => t.readyState),
        decodeErrors,
        stopped: scan.stopped,
      });
    },
  });
  scan.ready.catch((e) => reject(new Error(e.name + ': ' + e.message)));
});
`,
  );
  await build({
    root: src,
    configFile: false,
    base: './',
    logLevel: 'warn',
    build: { outDir: out, emptyOutDir: true, target: 'es2022', modulePreload: { polyfill: false } },
  });
  return out;
}

function serveDir(root) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
  return new Promise((resolve) => {
    const s = createServer(async (req, res) => {
      const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
      const file = path.join(root, rel);
      if (!file.startsWith(root + path.sep)) return void res.writeHead(404).end();
      try {
        const body = await readFile(file);
        res.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream' }).end(body);
      } catch {
        res.writeHead(404).end();
      }
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

let pageUrl;

it('builds a page from src/lib/scanner.ts, with jsQR in a chunk of its own', { timeout: 60_000 }, async () => {
  const out = await buildPage();
  const assets = await readdir(path.join(out, 'assets'));
  assert.ok(assets.some((f) => /^jsQR-.*\.js$/.test(f)), `jsQR is its own chunk, loaded on first use: ${assets.join(', ')}`);
  server = await serveDir(out);
  pageUrl = `http://127.0.0.1:${server.address().port}/`;
});

for (const code of CODES) it(`reads ${code.label} from Chromium’s fake camera, then turns the camera off`, { timeout: 120_000 }, async () => {
  assert.ok(pageUrl, 'the page was built');
  const { png, text } = await code.get();
  const { width, height } = decodePngToGrey(png);
  const y4mFile = path.join(dir, `qr-${width}.y4m`);
  const y4m = pngToY4m(png);
  await writeFile(y4mFile, y4m);
  const frame = /W(\d+) H(\d+)/.exec(y4m.subarray(0, 64).toString('latin1')).slice(1).join('x');
  console.log(`# QR ${width}x${height} PNG -> ${y4mFile} (${y4m.length} bytes, ${frame}); expecting ${text.length} characters`);

  await browser?.close();
  browser = await launchBrowser({ args: fakeCameraArgs(y4mFile) });
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(pageUrl);
  const result = await page.evaluate(
    () => Promise.race([window.scanned, new Promise((_, no) => setTimeout(() => no(new Error('no code read in 20 s')), 20_000))]),
  );
  console.log(`# ${JSON.stringify(result)}`);
  assert.equal(result.text, text, 'the decoded text is the QR code’s');
  assert.deepEqual(result.tracks, ['ended'], 'the camera is off after the hit');
  assert.equal(result.stopped, true);
  assert.equal(result.size, frame, 'frames came from the Y4M file');
  assert.deepEqual(errors, []);
});
