// Social recovery in plain words: what a threshold means, the waiting period, the new device's progress, the
// six-digit code, and what each request in a guardian's inbox is waiting for. Every function that depends on
// the time takes `now` so it can be tested; callers pass Date.now() (or the clock's).

import { describeDuration, spanWords } from './time';
import type { InboxRequestState, RecoveryProgress } from './types';

/** The fewest and most guardians a wallet may have (custodia-core MIN_GUARDIANS, MAX_GUARDIANS). */
export const MIN_GUARDIANS = 2;
export const MAX_GUARDIANS = 10;
/** The default waiting period (custodia-core DEFAULT_WAITING_SECONDS): a day. */
export const DEFAULT_WAITING_SECONDS = 86_400;

const NUMBER_WORDS = ['no', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten'];

/** "two" for 2; digits from eleven on. */
export function numberWord(n: number): string {
  return NUMBER_WORDS[n] ?? String(n);
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * The threshold proposed for `count` guardians: a majority, as the wallet proposes it. `defaults` is the
 * bridge's list (`Guardians.default_thresholds`, index 0 for two guardians); without it, the same rule.
 */
export function proposedThreshold(count: number, defaults?: readonly number[]): number {
  const fromBridge = defaults?.[count - MIN_GUARDIANS];
  if (fromBridge !== undefined) return fromBridge;
  return Math.min(Math.max(Math.floor(count / 2) + 1, MIN_GUARDIANS), Math.max(count, MIN_GUARDIANS));
}

/** The thresholds a patient may choose for `count` guardians: 2 to `count`. */
export function thresholdChoices(count: number): number[] {
  const out: number[] = [];
  for (let k = MIN_GUARDIANS; k <= Math.max(count, MIN_GUARDIANS); k++) out.push(k);
  return out;
}

/**
 * One plain sentence on what a threshold means: "Any 2 of your 3 guardians can help you back in; one alone
 * cannot." When all are needed: "All 3 of your guardians must help you back in; if one is unreachable, you
 * cannot get back in."
 */
export function thresholdSentence(threshold: number, count: number): string {
  if (threshold >= count) {
    return `All ${count} of your guardians must help you back in; if one of them cannot, you cannot get back in.`;
  }
  const fewer = threshold - 1;
  const cannot = fewer === 1 ? 'one alone cannot' : `${numberWord(fewer)} together cannot`;
  return `Any ${threshold} of your ${count} guardians can help you back in; ${cannot}.`;
}

/** "1 day", "12 hours", "3 seconds". */
export function waitingWords(seconds: number): string {
  if (seconds < 60) return plural(Math.max(0, Math.round(seconds)), 'second');
  return describeDuration(seconds);
}

/** The waiting period in a sentence, for choosing it. */
export function waitingSentence(seconds: number): string {
  return (
    `When someone asks to recover your wallet, your guardians wait ${waitingWords(seconds)} before sending ` +
    'their pieces, so you can cancel it from this device if it was not you.'
  );
}

export type WaitingChoice = { seconds: number; label: string };

/** The waiting periods offered; a day is the default. */
export const WAITING_CHOICES: readonly WaitingChoice[] = [
  { seconds: 3600, label: '1 hour' },
  { seconds: 12 * 3600, label: '12 hours' },
  { seconds: 86_400, label: '24 hours (recommended)' },
  { seconds: 3 * 86_400, label: '3 days' },
  { seconds: 7 * 86_400, label: '1 week' },
];

/** Guardians who have approved so far: those the new device heard approve, or at least those who sent a piece. */
export function approvalsOf(p: Pick<RecoveryProgress, 'received'> & { approved?: readonly number[] | null }): number {
  return Math.max(p.approved?.length ?? 0, p.received.length);
}

export type ProgressWords = {
  /** The sentence: "2 of 3 guardians have approved (2 needed); 14 hours left in the waiting period." */
  text: string;
  tone: 'info' | 'ok' | 'error';
  /** Enough pieces are in: Finish works. */
  ready: boolean;
};

/** Where a recovery on a new device stands, in one or two sentences. */
export function progressWords(p: RecoveryProgress, now: number): ProgressWords {
  const approvals = approvalsOf(p);
  const received = p.received.length;
  switch (p.phase) {
    case 'cancelled':
      return {
        text:
          'This recovery was cancelled from your old device, so your guardians will not send anything for it. ' +
          'If you did not cancel it, someone else may have your old device: start again and tell your guardians.',
        tone: 'error',
        ready: false,
      };
    case 'superseded':
      return {
        text: 'Your guardians were changed after this recovery started, so it can no longer succeed. Start again.',
        tone: 'error',
        ready: false,
      };
    case 'ready':
      return {
        text: `${received} of ${p.count} guardians have sent their piece: enough to restore your wallet. Finish now.`,
        tone: 'ok',
        ready: true,
      };
    case 'waiting': {
      const who = `${approvals} of ${p.count} guardians ${approvals === 1 ? 'has' : 'have'} approved (${p.threshold} needed)`;
      if (now < p.release_at) {
        return { text: `${who}; ${spanWords(p.release_at - now)} left in the waiting period.`, tone: 'info', ready: false };
      }
      const arrived = `${received} of the ${p.threshold} pieces needed ${received === 1 ? 'has' : 'have'} arrived`;
      const more =
        approvals < p.threshold
          ? `Ask ${numberWord(p.threshold - approvals)} more ${p.threshold - approvals === 1 ? 'guardian' : 'guardians'} to approve.`
          : 'Guardians who approved send their piece the next time their app checks its inbox.';
      return { text: `${who}. The waiting period is over; ${arrived}. ${more}`, tone: 'info', ready: false };
    }
  }
}

/** "123 456" from the code as the wallet gives it (already grouped) or as digits. */
export function formatCode(code: string): string {
  const digits = code.replace(/\D/g, '');
  return digits.length === 6 ? `${digits.slice(0, 3)} ${digits.slice(3)}` : code.trim();
}

/** What is wrong with a typed code (null when it is six digits; spaces and dashes are ignored). */
export function codeProblem(typed: string): string | null {
  const t = typed.replace(/[\s-]/g, '');
  if (!t) return 'Type the six-digit code the patient reads from their new device.';
  if (!/^\d+$/.test(t)) return 'The code is made of digits only.';
  if (t.length !== 6) return `The code has six digits; you typed ${t.length}.`;
  return null;
}

export type InboxWords = {
  /** A word that says what it is without colour. */
  tag: string;
  text: string;
  tone: 'warn' | 'info' | 'ok' | 'muted' | 'error';
};

/** What a recovery request in a guardian's inbox waits for. */
export function inboxRequestWords(state: InboxRequestState, name: string, releaseAt: number, now: number): InboxWords {
  const who = name.trim() || 'the patient';
  switch (state) {
    case 'awaiting_code':
      return {
        tag: 'Needs you',
        text: `Call ${who} on a number you know is theirs. If they asked for this, they read you a six-digit code from their new device.`,
        tone: 'warn',
      };
    case 'approved':
      return {
        tag: 'Approved',
        text:
          now < releaseAt
            ? `Your piece goes to ${who}'s new device in ${spanWords(releaseAt - now)}, when the waiting period ends, unless they cancel it from their old device.`
            : `The waiting period is over: your piece goes to ${who}'s new device the next time your inbox is checked.`,
        tone: 'info',
      };
    case 'released':
      return { tag: 'Sent', text: `Your piece was sent to ${who}'s new device.`, tone: 'ok' };
    case 'cancelled':
      return { tag: 'Cancelled', text: `Cancelled from ${who}'s old device: nothing will be sent.`, tone: 'muted' };
    case 'locked':
      return {
        tag: 'Locked',
        text: 'Too many wrong codes were typed, so this request can no longer be approved. If it really is them, they start again.',
        tone: 'error',
      };
  }
}
