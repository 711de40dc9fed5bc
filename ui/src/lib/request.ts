// An access request (an emergency room's or a clinician's QR code) in plain words, and the patient's answer:
// which kinds of records it asks for, narrowing them, the durations offered, and the time left to answer.
// The Rust side checks the answer again (a subset of the asked scopes, no longer than asked); this is so
// the screen only offers what it may send.

import { CATEGORIES, joinWords, type Category } from './categories';
import { describeDuration } from './time';
import type { AccessRequestView, AnswerRequestArgs, Party } from './types';

/** One thing the request asks to see, as a checkbox: a catalogue category, or a scope the catalogue lacks. */
export type AskedItem =
  | { id: string; kind: 'category'; category: Category; /** The asked scopes in this category. */ scopes: string[] }
  | { id: string; kind: 'scope'; scope: string };

/**
 * The asked scopes as checkboxes: each catalogue category that any asked scope belongs to (in catalogue
 * order), then each asked scope that is in no category, as it is (in the order asked).
 */
export function askedItems(scopes: readonly string[]): AskedItem[] {
  const asked = [...new Set(scopes)];
  const items: AskedItem[] = [];
  const covered = new Set<string>();
  for (const c of CATEGORIES) {
    const mine = asked.filter((s) => c.scopes.includes(s));
    if (!mine.length) continue;
    mine.forEach((s) => covered.add(s));
    items.push({ id: c.id, kind: 'category', category: c, scopes: mine });
  }
  for (const s of asked) if (!covered.has(s)) items.push({ id: `scope:${s}`, kind: 'scope', scope: s });
  return items;
}

/** The words for one item: "lab results", or the scope itself. */
export function itemPhrase(item: AskedItem): string {
  return item.kind === 'category' ? item.category.phrase : item.scope;
}

/** "allergies, medications and conditions" for a list of scopes (unknown scopes as they are). */
export function scopesPhrase(scopes: readonly string[]): string {
  const words = askedItems(scopes).map(itemPhrase);
  return words.length ? joinWords(words) : 'nothing';
}

/**
 * The scopes to grant for the ticked items: the union of the ticked categories' scopes and the ticked
 * uncategorised scopes, intersected with the asked scopes, in the order asked and without repeats.
 */
export function narrowScopes(asked: readonly string[], ticked: Iterable<string>): string[] {
  const ids = new Set(ticked);
  const allowed = new Set<string>();
  for (const c of CATEGORIES) if (ids.has(c.id)) c.scopes.forEach((s) => allowed.add(s));
  for (const id of ids) if (id.startsWith('scope:')) allowed.add(id.slice('scope:'.length));
  return [...new Set(asked)].filter((s) => allowed.has(s));
}

/** True when every chosen scope was asked for. */
export function isSubset(chosen: readonly string[], asked: readonly string[]): boolean {
  const a = new Set(asked);
  return chosen.every((s) => a.has(s));
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((s) => sb.has(s));
}

export type DurationOption = { seconds: number; label: string };

/** Standard lengths offered below the asked one. */
export const STANDARD_DURATIONS: readonly number[] = [
  3600,
  4 * 3600,
  12 * 3600,
  86_400,
  3 * 86_400,
  7 * 86_400,
  30 * 86_400,
  90 * 86_400,
  365 * 86_400,
];

/** The asked duration first ("12 hours (as asked)"), then each shorter standard one, longest first. */
export function durationChoices(askedSeconds: number): DurationOption[] {
  const shorter = STANDARD_DURATIONS.filter((s) => s < askedSeconds)
    .sort((a, b) => b - a)
    .map((seconds) => ({ seconds, label: describeDuration(seconds) }));
  return [{ seconds: askedSeconds, label: `${describeDuration(askedSeconds)} (as asked)` }, ...shorter];
}

/**
 * The `answer_request` arguments for approving with the ticked items and the chosen duration, or the reason
 * it cannot be sent. `scopes` and `duration_seconds` are left out when they are what was asked.
 */
export function approveArgs(
  view: Pick<AccessRequestView, 'id' | 'scopes' | 'duration_seconds'>,
  ticked: Iterable<string>,
  durationSeconds: number,
): { ok: true; args: AnswerRequestArgs } | { ok: false; error: string } {
  const scopes = narrowScopes(view.scopes, ticked);
  if (!scopes.length) return { ok: false, error: 'Leave at least one kind of record ticked, or decline the request.' };
  if (!Number.isInteger(durationSeconds) || durationSeconds < 1 || durationSeconds > view.duration_seconds) {
    return { ok: false, error: 'Choose a time no longer than they asked for.' };
  }
  const args: AnswerRequestArgs = { id: view.id, approve: true };
  if (!sameSet(scopes, view.scopes)) args.scopes = scopes;
  if (durationSeconds !== view.duration_seconds) args.duration_seconds = durationSeconds;
  return { ok: true, args };
}

/** "enrolled emergency provider", "enrolled provider" (empty for no role). */
export function roleWords(role: string | null): string {
  if (!role) return '';
  if (role === 'emergency') return 'enrolled emergency provider';
  if (role === 'provider') return 'enrolled provider';
  return `enrolled ${role}`;
}

/** "Dr X, St Mary's Hospital (enrolled emergency provider)". */
export function requesterLine(p: Party): string {
  const name = p.name?.trim() || 'Someone without a name';
  const org = p.organisation?.trim();
  const role = roleWords(p.role);
  return `${name}${org ? `, ${org}` : ''}${role ? ` (${role})` : ''}`;
}

/** Milliseconds left to answer (0 when expired). */
export function answerTimeLeft(expiresAt: number, now: number): number {
  return Math.max(0, expiresAt - now);
}

/** "Answer within 4 minutes" (rounded down, so never more than there is), or that it has expired. */
export function answerWithin(expiresAt: number, now: number): string {
  const left = answerTimeLeft(expiresAt, now);
  if (left <= 0) return 'This request has expired. Ask them to show a new code.';
  const minutes = Math.floor(left / 60_000);
  if (minutes < 1) return 'Answer within less than a minute';
  return `Answer within ${minutes} minute${minutes === 1 ? '' : 's'}`;
}
