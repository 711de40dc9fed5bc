import { describe, expect, it } from 'vitest';
import { addToDigest, digestWords, localDay } from './digest';
import type { AccessRow } from './types';

const read = (name: string): AccessRow =>
  ({ reader: { key: 'cusig1x', name, organisation: null, role: null, verified: true } }) as unknown as AccessRow;

describe('daily summary', () => {
  it('counts a day and tells it at the first sync of a later day', () => {
    let { digest, due } = addToDigest(null, [read('Dr A'), read('Dr B'), read('Dr A')], '2026-12-04');
    expect(due).toBeNull();
    expect(digest).toEqual({ day: '2026-12-04', reads: 3, readers: ['Dr A', 'Dr B'] });
    ({ digest, due } = addToDigest(digest, [read('Dr C'), read('Dr D')], '2026-12-04'));
    expect(digest.reads).toBe(5);
    expect(digest.readers).toEqual(['Dr A', 'Dr B', 'Dr C']);
    ({ digest, due } = addToDigest(digest, [], '2026-12-05'));
    expect(due?.reads).toBe(5);
    expect(digest).toEqual({ day: '2026-12-05', reads: 0, readers: [] });
    expect(digestWords(due!).body).toBe(
      'On 2026-12-04: 5 reads of your records by Dr A, Dr B, Dr C and others. Every one is in your access log.',
    );
    // A quiet day says nothing.
    expect(addToDigest(digest, [], '2026-12-06').due).toBeNull();
  });

  it('names the local day', () => {
    expect(localDay(new Date(2026, 0, 5, 23, 59))).toBe('2026-01-05');
  });
});
