import { describe, expect, it } from 'vitest';
import {
  answerWithin,
  approveArgs,
  askedItems,
  durationChoices,
  isSubset,
  narrowScopes,
  requesterLine,
  roleWords,
  scopesPhrase,
} from './request';

const ALLERGIES = 'patient/AllergyIntolerance.rs';
const MED_REQ = 'patient/MedicationRequest.rs';
const MED_STMT = 'patient/MedicationStatement.rs';
const CONDITIONS = 'patient/Condition.rs';
const BLOOD_GROUP = 'patient/Observation.rs?code=http://loinc.org|882-1';
const PATIENT = 'patient/Patient.rs';

/** The emergency room's usual request. */
const ER = [ALLERGIES, MED_REQ, CONDITIONS];

describe('askedItems', () => {
  it('maps asked scopes to catalogue categories, even when only part of a category is asked', () => {
    const items = askedItems(ER);
    expect(items.map((i) => i.id)).toEqual(['allergies', 'medications', 'conditions']);
    const meds = items[1];
    expect(meds.kind === 'category' && meds.scopes).toEqual([MED_REQ]);
    expect(meds.kind === 'category' && meds.category.label).toBe('Medications');
  });

  it('lists scopes that match no category as they are, after the categories, in the order asked', () => {
    const items = askedItems([PATIENT, CONDITIONS, BLOOD_GROUP, CONDITIONS]);
    expect(items).toEqual([
      expect.objectContaining({ id: 'conditions', kind: 'category', scopes: [CONDITIONS] }),
      { id: `scope:${PATIENT}`, kind: 'scope', scope: PATIENT },
      { id: `scope:${BLOOD_GROUP}`, kind: 'scope', scope: BLOOD_GROUP },
    ]);
  });

  it('gives nothing for nothing', () => {
    expect(askedItems([])).toEqual([]);
    expect(scopesPhrase([])).toBe('nothing');
  });

  it('puts a request in plain words', () => {
    expect(scopesPhrase(ER)).toBe('allergies, medications and conditions');
    expect(scopesPhrase([ALLERGIES, PATIENT])).toBe(`allergies and ${PATIENT}`);
  });
});

describe('narrowScopes', () => {
  it('keeps everything asked when everything is ticked', () => {
    expect(narrowScopes(ER, ['allergies', 'medications', 'conditions'])).toEqual(ER);
  });

  it('drops the scopes of an unticked category', () => {
    expect(narrowScopes(ER, ['allergies', 'conditions'])).toEqual([ALLERGIES, CONDITIONS]);
  });

  it('never adds a scope that was not asked, even when its category is ticked', () => {
    // Medications is MedicationRequest and MedicationStatement; only the first was asked.
    const narrowed = narrowScopes(ER, ['medications']);
    expect(narrowed).toEqual([MED_REQ]);
    expect(narrowed).not.toContain(MED_STMT);
    expect(isSubset(narrowed, ER)).toBe(true);
    // A ticked category the request does not touch adds nothing either.
    expect(narrowScopes(ER, ['lab', 'imaging'])).toEqual([]);
  });

  it('handles uncategorised scopes one by one', () => {
    const asked = [ALLERGIES, PATIENT, BLOOD_GROUP];
    expect(narrowScopes(asked, ['allergies', `scope:${BLOOD_GROUP}`])).toEqual([ALLERGIES, BLOOD_GROUP]);
    expect(narrowScopes(asked, [`scope:${PATIENT}`])).toEqual([PATIENT]);
    expect(narrowScopes(asked, ['scope:patient/Other.rs'])).toEqual([]);
  });

  it('keeps the order asked and drops repeats', () => {
    expect(narrowScopes([CONDITIONS, ALLERGIES, CONDITIONS], ['allergies', 'conditions'])).toEqual([CONDITIONS, ALLERGIES]);
  });

  it('isSubset', () => {
    expect(isSubset([], ER)).toBe(true);
    expect(isSubset([ALLERGIES], ER)).toBe(true);
    expect(isSubset([ALLERGIES, MED_STMT], ER)).toBe(false);
  });
});

describe('durationChoices', () => {
  it('offers the asked duration first, then the shorter standard ones, longest first', () => {
    expect(durationChoices(12 * 3600)).toEqual([
      { seconds: 43_200, label: '12 hours (as asked)' },
      { seconds: 14_400, label: '4 hours' },
      { seconds: 3600, label: '1 hour' },
    ]);
  });

  it('never offers anything longer than asked', () => {
    for (const asked of [60, 1800, 3600, 5400, 86_400, 3 * 86_400, 400 * 86_400]) {
      const choices = durationChoices(asked);
      expect(choices[0].seconds).toBe(asked);
      for (const c of choices) expect(c.seconds).toBeLessThanOrEqual(asked);
      expect(new Set(choices.map((c) => c.seconds)).size).toBe(choices.length);
    }
    expect(durationChoices(3600)).toEqual([{ seconds: 3600, label: '1 hour (as asked)' }]);
    expect(durationChoices(1800)).toEqual([{ seconds: 1800, label: '30 minutes (as asked)' }]);
    expect(durationChoices(7 * 86_400).map((c) => c.label)).toEqual([
      '1 week (as asked)',
      '3 days',
      '1 day',
      '12 hours',
      '4 hours',
      '1 hour',
    ]);
  });
});

describe('approveArgs', () => {
  const view = { id: 'req-1', scopes: ER, duration_seconds: 12 * 3600 };

  it('leaves out scopes and duration when the patient grants what was asked', () => {
    expect(approveArgs(view, ['allergies', 'medications', 'conditions'], 12 * 3600)).toEqual({
      ok: true,
      args: { id: 'req-1', approve: true },
    });
  });

  it('sends the narrowed scopes and the shorter duration', () => {
    expect(approveArgs(view, ['allergies', 'conditions'], 3600)).toEqual({
      ok: true,
      args: { id: 'req-1', approve: true, scopes: [ALLERGIES, CONDITIONS], duration_seconds: 3600 },
    });
  });

  it('refuses an empty choice and a longer duration', () => {
    expect(approveArgs(view, [], 3600)).toEqual({ ok: false, error: expect.stringMatching(/at least one/) });
    expect(approveArgs(view, ['lab'], 3600).ok).toBe(false);
    expect(approveArgs(view, ['allergies'], 13 * 3600)).toEqual({ ok: false, error: expect.stringMatching(/no longer/) });
    expect(approveArgs(view, ['allergies'], 0).ok).toBe(false);
  });
});

describe('words', () => {
  const party = { key: 'cusig1x', name: 'Dr Ines Ruiz', organisation: 'St Mary’s A&E', role: 'emergency', verified: true };

  it('names the requester with their enrollment', () => {
    expect(requesterLine(party)).toBe('Dr Ines Ruiz, St Mary’s A&E (enrolled emergency provider)');
    expect(requesterLine({ ...party, role: 'provider', organisation: null })).toBe('Dr Ines Ruiz (enrolled provider)');
    expect(roleWords(null)).toBe('');
    expect(roleWords('gateway')).toBe('enrolled gateway');
  });

  it('says how long is left to answer, rounded down', () => {
    const now = 1_000_000;
    expect(answerWithin(now + 4 * 60_000 + 59_000, now)).toBe('Answer within 4 minutes');
    expect(answerWithin(now + 60_000, now)).toBe('Answer within 1 minute');
    expect(answerWithin(now + 30_000, now)).toBe('Answer within less than a minute');
    expect(answerWithin(now, now)).toMatch(/expired/);
    expect(answerWithin(now - 1, now)).toMatch(/expired/);
  });
});
