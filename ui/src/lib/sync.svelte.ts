// Background sync while unlocked: at unlock, as soon as the ledger announces a new entry for this wallet
// (`wait_news`, which follows the ledger's stream), and every 15 seconds in case the stream is down. New
// access events become toasts (and desktop notifications: the desktop app's, or the browser's with
// permission). Errors become a small banner, except a failed verification, which is an alarm.

import { command, toBridgeError } from './bridge';
import { summariseEvents } from './attention';
import { notifyDesktop } from './notify';
import { showToast } from './toasts.svelte';
import { addToDigest, digestWords, loadDigest, localDay, saveDigest } from './digest';
import type { AccessRow, News, SyncResult } from './types';

export const SYNC_INTERVAL_MS = 15_000;
/** One wait for news; the app caps a wait at 25 s, and the UI then asks again. */
export const NEWS_WAIT_MS = 20_000;
/** After news, the sync is repeated this often until a witnessed checkpoint covers the new entry. */
const COVER_RETRY_MS = 250;
const COVER_TRIES = 40;
/** When the ledger says there is more (`complete: false`), sync again at once, this many times at most. */
const MAX_FOLLOW_UPS = 5;

class SyncState {
  /** The ledger's answers did not verify: shown prominently until the patient hides it. */
  alarm = $state<string | null>(null);
  /** A passing problem (ledger unreachable, refused): a small banner, cleared by the next good sync. */
  problem = $state<string | null>(null);
  lastOk = $state<number | null>(null);
  checkpointSize = $state<number | null>(null);
  /** Goes up whenever new events arrive, so screens can reload. */
  version = $state(0);
  running = $state(false);
  /** The ledger's stream is followed: news arrives within seconds rather than at the next 15 s sync. */
  live = $state(false);
}

export const sync = new SyncState();

let timer: ReturnType<typeof setInterval> | null = null;
let generation = 0;

/** The words for a recovery request on this wallet found by a sync. */
export const RECOVERY_ALERT = {
  title: 'Someone asked to recover your wallet',
  body: 'Someone asked your guardians to recover this wallet on another device. If it was not you, cancel it now under Guardians.',
};

/** Counts the reads for the daily summary, and tells the summary of an earlier day once the day turned. */
function summarise(events: AccessRow[]): void {
  const { digest, due } = addToDigest(loadDigest(), events, localDay());
  saveDigest(digest);
  if (!due) return;
  const words = digestWords(due);
  showToast({ title: words.title, body: words.body, tone: 'info', href: '#/log' });
  notifyDesktop(words.title, words.body);
}

function announce(result: SyncResult): void {
  if (result.new_recovery_alerts.length) {
    showToast({ ...RECOVERY_ALERT, tone: 'alarm', href: '#/guardians', linkLabel: 'See the request' });
    notifyDesktop(RECOVERY_ALERT.title, RECOVERY_ALERT.body);
  }
  // Each event as the patient chose for its kind: at once, in the daily summary, or only in the log.
  const delivery = new Map((result.notices ?? []).map((n) => [n.index, n.delivery]));
  const as = (d: string) => result.new_events.filter((e) => (delivery.get(e.index) ?? 'instant') === d);
  summarise(as('summary'));
  const instant = as('instant');
  if (!instant.length) return;
  for (const words of summariseEvents(instant)) {
    showToast({
      title: words.title,
      body: words.body,
      tone: words.strong ? 'alarm' : 'info',
      href: '#/log',
    });
    notifyDesktop(words.title, words.body);
  }
}

/** One sync now (skipped when one is already running). */
export async function syncNow(): Promise<void> {
  if (sync.running) return;
  const gen = generation;
  sync.running = true;
  try {
    for (let i = 0; i <= MAX_FOLLOW_UPS; i++) {
      const result = await command('sync');
      if (gen !== generation) return;
      sync.problem = null;
      sync.lastOk = Date.now();
      sync.checkpointSize = result.checkpoint_size;
      if (result.new_events.length || result.new_recovery_alerts.length) {
        announce(result);
        sync.version++;
      } else {
        summarise([]);
      }
      if (result.complete) break;
    }
  } catch (e) {
    if (gen !== generation) return;
    const err = toBridgeError(e);
    switch (err.code) {
      case 'verification_failed':
        sync.alarm = err.message;
        break;
      case 'locked':
      case 'not_enrolled':
        // Locked: the bridge already routes to the unlock screen. Not enrolled: Home says so.
        break;
      default:
        sync.problem = err.message;
    }
  } finally {
    if (gen === generation) sync.running = false;
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Waits for the ledger's news of each new entry and syncs at once, until the generation changes. */
async function followNews(gen: number): Promise<void> {
  let after: number | null = null;
  while (gen === generation) {
    let news: News;
    try {
      news = await command('wait_news', { after, wait_ms: NEWS_WAIT_MS });
    } catch {
      // Locked, not enrolled, or the app unreachable: the periodic sync goes on; ask again later.
      if (gen === generation) sync.live = false;
      await sleep(SYNC_INTERVAL_MS);
      continue;
    }
    if (gen !== generation) return;
    sync.live = news.live;
    if (news.latest !== null && (after === null || news.latest > after)) {
      after = news.latest;
      await syncUntilCovered(news.latest, gen);
    } else if (!news.live) {
      await sleep(COVER_RETRY_MS * 4);
    }
  }
}

/** Syncs until the wallet's checkpoint covers entry `index` (the ledger publishes one a second). */
async function syncUntilCovered(index: number, gen: number): Promise<void> {
  for (let i = 0; i < COVER_TRIES && gen === generation; i++) {
    await syncNow();
    if ((sync.checkpointSize ?? 0) > index) return;
    await sleep(COVER_RETRY_MS);
  }
}

export function startSync(): void {
  stopSync();
  generation++;
  sync.running = false;
  void syncNow();
  void followNews(generation);
  timer = setInterval(() => void syncNow(), SYNC_INTERVAL_MS);
}

export function stopSync(): void {
  generation++;
  if (timer) clearInterval(timer);
  timer = null;
  sync.running = false;
  sync.problem = null;
  sync.live = false;
}

export function dismissAlarm(): void {
  sync.alarm = null;
}
