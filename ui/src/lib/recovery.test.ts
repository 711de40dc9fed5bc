import { describe, expect, it } from 'vitest';
import { HOUR, MINUTE } from './time';
import {
  approvalsOf,
  codeProblem,
  formatCode,
  inboxRequestWords,
  progressWords,
  proposedThreshold,
  thresholdChoices,
  thresholdSentence,
  waitingSentence,
  waitingWords,
} from './recovery';
import type { RecoveryProgress } from './types';

const now = new Date(2025, 2, 14, 12, 0, 0).getTime();

function progress(over: Partial<RecoveryProgress> = {}): RecoveryProgress {
  return {
    request_id: 'r1',
    patient: 'cusig1patient',
    ledger: 'http://ledger',
    code: '123 456',
    entry_index: 7,
    asked_at: now - 10 * HOUR,
    release_at: now + 14 * HOUR,
    threshold: 2,
    count: 3,
    approved: [],
    received: [],
    phase: 'waiting',
    cancelled_at: null,
    ...over,
  };
}

describe('thresholds', () => {
  it('proposes a majority, from the bridge when it says', () => {
    expect([2, 3, 4, 5, 6, 10].map((n) => proposedThreshold(n))).toEqual([2, 2, 3, 3, 4, 6]);
    expect(proposedThreshold(3, [2, 3, 3])).toBe(3);
    expect(proposedThreshold(11, [2, 2])).toBe(6);
  });

  it('offers 2 to the number of guardians', () => {
    expect(thresholdChoices(2)).toEqual([2]);
    expect(thresholdChoices(4)).toEqual([2, 3, 4]);
    expect(thresholdChoices(1)).toEqual([2]);
  });

  it('explains a threshold in one sentence', () => {
    expect(thresholdSentence(2, 3)).toBe('Any 2 of your 3 guardians can help you back in; one alone cannot.');
    expect(thresholdSentence(3, 5)).toBe('Any 3 of your 5 guardians can help you back in; two together cannot.');
    expect(thresholdSentence(3, 3)).toBe(
      'All 3 of your guardians must help you back in; if one of them cannot, you cannot get back in.',
    );
  });
});

describe('the waiting period', () => {
  it('is said in plain units', () => {
    expect(waitingWords(86_400)).toBe('1 day');
    expect(waitingWords(12 * 3600)).toBe('12 hours');
    expect(waitingWords(3)).toBe('3 seconds');
    expect(waitingWords(1)).toBe('1 second');
    expect(waitingSentence(86_400)).toMatch(/^When someone asks to recover your wallet, your guardians wait 1 day before/);
    expect(waitingSentence(86_400)).toMatch(/cancel it from this device if it was not you\.$/);
  });
});

describe('progress on the new device', () => {
  it('counts approvals, falling back to the pieces received', () => {
    expect(approvalsOf({ approved: [1, 3], received: [] })).toBe(2);
    expect(approvalsOf({ received: [2] })).toBe(1);
    expect(approvalsOf({ approved: null, received: [1, 2] })).toBe(2);
    expect(approvalsOf({ approved: [1], received: [1, 2] })).toBe(2);
  });

  it('says how many approved and how long the waiting period has left', () => {
    expect(progressWords(progress({ approved: [1, 2] }), now)).toEqual({
      text: '2 of 3 guardians have approved (2 needed); 14 hours left in the waiting period.',
      tone: 'info',
      ready: false,
    });
    expect(progressWords(progress({ approved: [3] }), now).text).toBe(
      '1 of 3 guardians has approved (2 needed); 14 hours left in the waiting period.',
    );
    expect(progressWords(progress({ release_at: now + 2 * HOUR + 5 * MINUTE }), now).text).toBe(
      '0 of 3 guardians have approved (2 needed); 2 hours 5 minutes left in the waiting period.',
    );
  });

  it('after the waiting period, says what has arrived and what is missing', () => {
    const over = progress({ release_at: now - MINUTE, approved: [1], received: [1] });
    expect(progressWords(over, now).text).toBe(
      '1 of 3 guardians has approved (2 needed). The waiting period is over; 1 of the 2 pieces needed has arrived. Ask one more guardian to approve.',
    );
    const approvedAll = progress({ release_at: now - MINUTE, approved: [1, 2], received: [] });
    expect(progressWords(approvedAll, now).text).toMatch(/0 of the 2 pieces needed have arrived\. Guardians who approved send/);
  });

  it('ready, cancelled and superseded', () => {
    const ready = progressWords(progress({ phase: 'ready', approved: [1, 2], received: [1, 2] }), now);
    expect(ready).toEqual({
      text: '2 of 3 guardians have sent their piece: enough to restore your wallet. Finish now.',
      tone: 'ok',
      ready: true,
    });
    const cancelled = progressWords(progress({ phase: 'cancelled', cancelled_at: now }), now);
    expect(cancelled.tone).toBe('error');
    expect(cancelled.text).toMatch(/^This recovery was cancelled from your old device/);
    expect(progressWords(progress({ phase: 'superseded' }), now).text).toMatch(/Start again\.$/);
  });
});

describe('the code', () => {
  it('is shown in two groups of three', () => {
    expect(formatCode('123456')).toBe('123 456');
    expect(formatCode('123 456')).toBe('123 456');
    expect(formatCode(' 12-34 56 ')).toBe('123 456');
    expect(formatCode('12345')).toBe('12345');
  });

  it('is checked before it is sent', () => {
    expect(codeProblem('123 456')).toBeNull();
    expect(codeProblem('123-456')).toBeNull();
    expect(codeProblem('')).toMatch(/six-digit code/);
    expect(codeProblem('12a 456')).toBe('The code is made of digits only.');
    expect(codeProblem('1234')).toBe('The code has six digits; you typed 4.');
  });
});

describe("a guardian's inbox", () => {
  it('says what each request waits for', () => {
    expect(inboxRequestWords('awaiting_code', 'Ada', now + HOUR, now)).toMatchObject({ tag: 'Needs you', tone: 'warn' });
    expect(inboxRequestWords('awaiting_code', 'Ada', now + HOUR, now).text).toMatch(/^Call Ada on a number you know/);
    expect(inboxRequestWords('approved', 'Ada', now + 3 * HOUR, now).text).toBe(
      "Your piece goes to Ada's new device in 3 hours, when the waiting period ends, unless they cancel it from their old device.",
    );
    expect(inboxRequestWords('approved', 'Ada', now - 1, now).text).toMatch(/^The waiting period is over/);
    expect(inboxRequestWords('released', 'Ada', now, now)).toEqual({
      tag: 'Sent',
      text: "Your piece was sent to Ada's new device.",
      tone: 'ok',
    });
    expect(inboxRequestWords('cancelled', '', now, now).text).toBe("Cancelled from the patient's old device: nothing will be sent.");
    expect(inboxRequestWords('locked', 'Ada', now, now).tag).toBe('Locked');
  });
});
