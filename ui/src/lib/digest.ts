// The daily summary: reads the patient chose to hear of once a day are counted here (in this browser's or
// app's storage, never anything but a day, a count and up to three names) and told as one notice at the
// first sync of a later day.

import { partyName } from './attention';
import type { AccessRow } from './types';

export type Digest = { day: string; reads: number; readers: string[] };

const KEY = 'custodia.daily-summary';
const MAX_NAMES = 3;

/** The local calendar day, as YYYY-MM-DD. */
export function localDay(now: Date = new Date()): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

/** Adds `events` to the digest of `day`; returns the new digest and, when the day turned, the old one to tell. */
export function addToDigest(
  stored: Digest | null,
  events: AccessRow[],
  day: string,
): { digest: Digest; due: Digest | null } {
  const turned = stored !== null && stored.day !== day;
  const due = turned && stored.reads > 0 ? stored : null;
  const base: Digest = stored && !turned ? stored : { day, reads: 0, readers: [] };
  const readers = [...base.readers];
  for (const e of events) {
    const name = partyName(e.reader);
    if (readers.length < MAX_NAMES && !readers.includes(name)) readers.push(name);
  }
  return { digest: { day, reads: base.reads + events.length, readers }, due };
}

/** The words of a day's summary. */
export function digestWords(d: Digest): { title: string; body: string } {
  const reads = d.reads === 1 ? '1 read' : `${d.reads} reads`;
  const by = d.readers.length ? ` by ${d.readers.join(', ')}${d.reads > d.readers.length ? ' and others' : ''}` : '';
  return {
    title: 'Your daily summary',
    body: `On ${d.day}: ${reads} of your records${by}. Every one is in your access log.`,
  };
}

export function loadDigest(): Digest | null {
  try {
    const raw = globalThis.localStorage?.getItem(KEY);
    const d = raw ? (JSON.parse(raw) as Digest) : null;
    return d && typeof d.day === 'string' && typeof d.reads === 'number' && Array.isArray(d.readers) ? d : null;
  } catch {
    return null;
  }
}

export function saveDigest(d: Digest): void {
  try {
    globalThis.localStorage?.setItem(KEY, JSON.stringify(d));
  } catch {
    // Storage refused (private mode): the summary is lost, the log is not.
  }
}
