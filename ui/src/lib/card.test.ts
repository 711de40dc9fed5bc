import { describe, expect, it } from 'vitest';
import {
  CARD_CHOICES,
  CARD_DEFAULT_IDS,
  CARD_DURATIONS,
  CARD_SENSITIVE,
  DEFAULT_CARD_DURATION,
  MAX_CARD_SECONDS,
  activeCards,
  cardCoverWords,
  cardDurationSeconds,
  cardGrantToSelection,
  cardProblem,
  cardSelectionToGrant,
  defaultCardSelection,
  grantTitle,
  hasActiveCard,
} from './card';
import { CATEGORIES, describeGrantScope, selectionToGrant } from './categories';
import type { GrantView } from './types';

const ALLERGIES = 'patient/AllergyIntolerance.rs';
const MED_REQUEST = 'patient/MedicationRequest.rs';
const MED_STATEMENT = 'patient/MedicationStatement.rs';
const CONDITIONS = 'patient/Condition.rs';
const BLOOD = 'patient/Observation.rs?code=http://loinc.org|882-1';
const IMMUNIZATIONS = 'patient/Immunization.rs';
const LAB = 'patient/Observation.rs?category=laboratory';

describe('what the card offers', () => {
  it('offers allergies, medications, conditions and blood type ticked, immunizations and lab results not', () => {
    expect(CARD_CHOICES.map((c) => c.label)).toEqual([
      'Allergies',
      'Medications',
      'Conditions',
      'Blood type',
      'Immunizations',
      'Lab results',
    ]);
    const selection = defaultCardSelection();
    expect(Object.keys(selection).filter((k) => selection[k])).toEqual([...CARD_DEFAULT_IDS]);
    expect(selection.immunizations).toBe(false);
    expect(selection['lab-results']).toBe(false);
  });

  it('offers every sensitive category, none ticked', () => {
    const selection = defaultCardSelection();
    expect(CARD_SENSITIVE.map((c) => c.id)).toEqual([
      'mental-health',
      'substance-use',
      'hiv',
      'sexual-reproductive',
      'abuse-violence',
      'genetic',
    ]);
    for (const c of CARD_SENSITIVE) expect(selection[c.id]).toBe(false);
  });

  it('gives the default card the scopes of `custodia card` without --scope, and no labels', () => {
    // custodia-core printable::CARD_SCOPES, plus MedicationStatement with MedicationRequest (one category).
    expect(cardSelectionToGrant(defaultCardSelection())).toEqual({
      scopes: [ALLERGIES, MED_REQUEST, MED_STATEMENT, CONDITIONS, BLOOD],
      labels: [],
    });
  });

  it('a fresh default each time (ticking one does not change the next)', () => {
    const a = defaultCardSelection();
    a.hiv = true;
    expect(defaultCardSelection().hiv).toBe(false);
  });

  it('leaves the sharing catalogue as it was', () => {
    expect(CATEGORIES.map((c) => c.id)).not.toContain('blood-type');
    expect(selectionToGrant(['lab']).scopes).toEqual([LAB, 'patient/DiagnosticReport.rs?category=LAB']);
  });
});

describe('selection to scopes and labels, and back', () => {
  it('maps each choice to its scopes', () => {
    const one = (id: string) => cardSelectionToGrant([id]).scopes;
    expect(one('allergies')).toEqual([ALLERGIES]);
    expect(one('medications')).toEqual([MED_REQUEST, MED_STATEMENT]);
    expect(one('conditions')).toEqual([CONDITIONS]);
    expect(one('blood-type')).toEqual([BLOOD]);
    expect(one('immunizations')).toEqual([IMMUNIZATIONS]);
    expect(one('lab-results')).toEqual([LAB]);
  });

  it('adds labels for sensitive categories, in the order offered, whatever the order ticked', () => {
    expect(cardSelectionToGrant(['hiv', 'allergies', 'mental-health', 'hiv'])).toEqual({
      scopes: [ALLERGIES],
      labels: ['PSY', 'MH', 'BH', 'PSYTHPN', 'HIV'],
    });
  });

  it('takes a record of checkboxes as well as a list of ids', () => {
    expect(cardSelectionToGrant({ conditions: true, allergies: false, hiv: true })).toEqual({
      scopes: [CONDITIONS],
      labels: ['HIV'],
    });
  });

  it('refuses an id it does not offer', () => {
    expect(() => cardSelectionToGrant(['vitals'])).toThrow(/unknown card choice/);
    expect(() => cardSelectionToGrant({ everything: true })).toThrow(/unknown card choice/);
  });

  it('round-trips every selection', () => {
    const ids = [...CARD_CHOICES, ...CARD_SENSITIVE].map((c) => c.id);
    for (let mask = 0; mask < 1 << ids.length; mask++) {
      const chosen = ids.filter((_, i) => (mask >> i) & 1);
      const { scopes, labels } = cardSelectionToGrant(chosen);
      const back = cardGrantToSelection(scopes, labels);
      expect(back.ids).toEqual(chosen);
      expect(back.otherScopes).toEqual([]);
      expect(back.otherLabels).toEqual([]);
    }
  });

  it('reads a grant back, keeping what it does not offer as it is', () => {
    const back = cardGrantToSelection(
      [ALLERGIES, MED_REQUEST, 'patient/Procedure.rs'],
      [{ code: 'HIV' }, { code: 'TBOO' }, 'PSY'],
    );
    expect(back.ids).toEqual(['allergies', 'hiv']);
    expect(back.otherScopes).toEqual([MED_REQUEST, 'patient/Procedure.rs']);
    expect(back.otherLabels).toEqual(['TBOO', 'PSY']);
  });

  it('words a card grant in plain words, blood type and lab results included', () => {
    const { scopes, labels } = cardSelectionToGrant(defaultCardSelection());
    expect(describeGrantScope(scopes, labels)).toBe('allergies, medications, conditions and blood type');
    const all = cardSelectionToGrant([...CARD_CHOICES.map((c) => c.id), 'genetic']);
    expect(describeGrantScope(all.scopes, all.labels)).toBe(
      'allergies, medications, conditions, immunizations, blood type, lab results and genetic records',
    );
  });
});

describe('how long', () => {
  it('offers 1 year (the default), 6 months and 3 months, all within the bridge limit', () => {
    expect(CARD_DURATIONS.map((d) => d.label)).toEqual(['1 year', '6 months', '3 months']);
    expect(DEFAULT_CARD_DURATION).toBe('1y');
    expect(cardDurationSeconds('1y')).toBe(365 * 86_400);
    expect(cardDurationSeconds('6m')).toBe(182 * 86_400);
    expect(cardDurationSeconds('3m')).toBe(91 * 86_400);
    expect(cardDurationSeconds('5y')).toBeNull();
    for (const d of CARD_DURATIONS) expect(d.seconds).toBeLessThanOrEqual(MAX_CARD_SECONDS);
  });
});

describe('what is printed', () => {
  it('words the card as custodia-core does', () => {
    const { scopes, labels } = cardSelectionToGrant(defaultCardSelection());
    expect(cardCoverWords(scopes, labels)).toBe('allergies, medications, conditions, blood type');
    expect(cardCoverWords(['patient/Procedure.rs', LAB], ['HIV'])).toBe('Procedure.rs, lab results, sensitive records (HIV)');
  });

  it('refuses what the card cannot hold, and says why', () => {
    const ok = defaultCardSelection();
    expect(cardProblem(ok, 'Ada Lovelace')).toBeNull();
    expect(cardProblem(ok, '  ')).toMatch(/Enter the name/);
    expect(cardProblem(ok, 'x'.repeat(121))).toMatch(/at most 120/);
    expect(cardProblem(ok, 'x'.repeat(120))).toBeNull();
    expect(cardProblem(ok, 'Ada\u0007')).toMatch(/control characters/);
    const none: Record<string, boolean> = { ...ok };
    for (const c of CARD_CHOICES) none[c.id] = false;
    none.hiv = true;
    expect(cardProblem(none, 'Ada')).toMatch(/at least one kind of record/);
    // Everything ticked does not fit on the card's 120 characters.
    const all: Record<string, boolean> = {};
    for (const c of [...CARD_CHOICES, ...CARD_SENSITIVE]) all[c.id] = true;
    expect(cardProblem(all, 'Ada')).toMatch(/more than the card has room/);
    // The defaults and one sensitive category do.
    expect(cardProblem({ ...ok, 'mental-health': true }, 'Ada')).toBeNull();
  });
});

describe('which grants are cards', () => {
  const grant = (over: Partial<GrantView>): GrantView => ({
    id: 'g',
    grantee: { key: 'cusig1card', name: 'Emergency card', organisation: 'any enrolled emergency provider holding the card', role: 'emergency card', verified: false },
    scopes: [ALLERGIES],
    labels: [],
    purpose: { code: 'ETREAT', display: 'emergency treatment' },
    note: 'Emergency card',
    issued_at: 1_000,
    not_before: 1_000,
    not_after: 2_000,
    max_reads: null,
    status: 'active',
    grant_index: 3,
    revocation_index: null,
    revoked_at: null,
    reads: 0,
    denied: 0,
    emergency_card: true,
    ...over,
  });

  it('counts only active cards on the ledger, newest first', () => {
    const doctor = grant({
      id: 'doctor',
      emergency_card: false,
      grantee: { key: 'cusig1dr', name: 'Dr Hopper', organisation: null, role: null, verified: true },
    });
    const old = grant({ id: 'old', issued_at: 1_000 });
    const fresh = grant({ id: 'fresh', issued_at: 5_000 });
    const revoked = grant({ id: 'revoked', status: 'revoked' });
    const expired = grant({ id: 'expired', status: 'expired' });
    const unposted = grant({ id: 'unposted', grant_index: null });
    expect(activeCards([old, doctor, revoked, fresh, expired, unposted]).map((g) => g.id)).toEqual(['fresh', 'old']);
    expect(hasActiveCard([old])).toBe(true);
    expect(hasActiveCard([doctor, revoked, expired, unposted])).toBe(false);
    expect(hasActiveCard([])).toBe(false);
  });

  it('names a card as the patient’s card, not by its grantee', () => {
    expect(grantTitle(grant({}))).toBe('Your emergency card');
    expect(
      grantTitle(
        grant({
          emergency_card: false,
          grantee: { key: 'cusig1dr', name: 'Dr Hopper', organisation: null, role: null, verified: true },
        }),
      ),
    ).toBe('Dr Hopper');
  });
});
