// The patient's emergency card: what it lets emergency staff see (plain-words choices over the categories
// catalogue), how long it stands, what is printed on it, and which grants are cards. The Rust side
// (`create_emergency_card`) checks everything again; this is so the screen only offers what it may send and
// says why before the patient presses the button.

import {
  BLOOD_TYPE,
  CATEGORIES,
  LAB_RESULTS,
  SENSITIVE_CATEGORIES,
  type Category,
  type SensitiveCategory,
} from './categories';
import { partyName } from './attention';
import type { GrantView } from './types';

function catalogue(id: string): Category {
  const c = CATEGORIES.find((x) => x.id === id);
  if (!c) throw new Error(`the catalogue has no category ${id}`);
  return c;
}

/** What a card may show, in the order offered. Lab results are the results only, as printed on the card. */
export const CARD_CHOICES: readonly Category[] = [
  catalogue('allergies'),
  catalogue('medications'),
  catalogue('conditions'),
  BLOOD_TYPE,
  catalogue('immunizations'),
  LAB_RESULTS,
];

/** Ticked at first: what matters when the patient cannot answer (as `custodia card` without --scope). */
export const CARD_DEFAULT_IDS: readonly string[] = ['allergies', 'medications', 'conditions', BLOOD_TYPE.id];

/** Offered apart, never ticked at first. */
export const CARD_SENSITIVE: readonly SensitiveCategory[] = SENSITIVE_CATEGORIES;

export type CardSelection = Record<string, boolean>;

/** Every choice and sensitive category, with only the defaults ticked. */
export function defaultCardSelection(): CardSelection {
  const selection: CardSelection = {};
  for (const c of CARD_CHOICES) selection[c.id] = CARD_DEFAULT_IDS.includes(c.id);
  for (const c of CARD_SENSITIVE) selection[c.id] = false;
  return selection;
}

function ticked(selection: CardSelection | Iterable<string>): Set<string> {
  const ids = Symbol.iterator in selection
    ? new Set(selection as Iterable<string>)
    : new Set(Object.keys(selection).filter((k) => (selection as CardSelection)[k]));
  for (const id of ids) {
    if (!CARD_CHOICES.some((c) => c.id === id) && !CARD_SENSITIVE.some((c) => c.id === id)) {
      throw new Error(`unknown card choice: ${id}`);
    }
  }
  return ids;
}

/** The ticked choices as the card's scopes and labels, in the order offered, no repeats. */
export function cardSelectionToGrant(selection: CardSelection | Iterable<string>): { scopes: string[]; labels: string[] } {
  const ids = ticked(selection);
  const scopes: string[] = [];
  const labels: string[] = [];
  for (const c of CARD_CHOICES) if (ids.has(c.id)) for (const s of c.scopes) if (!scopes.includes(s)) scopes.push(s);
  for (const c of CARD_SENSITIVE) if (ids.has(c.id)) for (const l of c.labels) if (!labels.includes(l)) labels.push(l);
  return { scopes, labels };
}

/**
 * The reverse, for a card's grant: the choices whose scopes (or labels) it holds in full, in the order
 * offered, and whatever else it holds, as it is.
 */
export function cardGrantToSelection(
  scopes: readonly string[],
  labels: readonly (string | { code: string })[],
): { ids: string[]; otherScopes: string[]; otherLabels: string[] } {
  const scopeSet = new Set(scopes);
  const labelSet = new Set(labels.map((l) => (typeof l === 'string' ? l : l.code)));
  const ids: string[] = [];
  const usedScopes = new Set<string>();
  const usedLabels = new Set<string>();
  for (const c of CARD_CHOICES) {
    if (!c.scopes.every((s) => scopeSet.has(s))) continue;
    ids.push(c.id);
    c.scopes.forEach((s) => usedScopes.add(s));
  }
  for (const c of CARD_SENSITIVE) {
    if (!c.labels.every((l) => labelSet.has(l))) continue;
    ids.push(c.id);
    c.labels.forEach((l) => usedLabels.add(l));
  }
  return {
    ids,
    otherScopes: [...scopeSet].filter((s) => !usedScopes.has(s)),
    otherLabels: [...labelSet].filter((l) => !usedLabels.has(l)),
  };
}

export type CardDuration = { id: string; label: string; seconds: number };

/** How long a card stands. The bridge takes at most 366 days. */
export const CARD_DURATIONS: readonly CardDuration[] = [
  { id: '1y', label: '1 year', seconds: 365 * 86_400 },
  { id: '6m', label: '6 months', seconds: 182 * 86_400 },
  { id: '3m', label: '3 months', seconds: 91 * 86_400 },
];
export const DEFAULT_CARD_DURATION = '1y';
/** `create_emergency_card` refuses longer (custodia-core's grant duration check for cards). */
export const MAX_CARD_SECONDS = 366 * 86_400;

export function cardDurationSeconds(id: string): number | null {
  return CARD_DURATIONS.find((d) => d.id === id)?.seconds ?? null;
}

/** The longest name or line of text the card prints (custodia-core printable::MAX_LABEL_CHARS). */
export const MAX_CARD_TEXT = 120;

/**
 * The words the card prints after "Shows:", as custodia-core's `printable::covered_words` makes them (kept
 * the same so the screen can refuse a list the card has no room for, before anything is signed).
 */
export function cardCoverWords(scopes: readonly string[], labels: readonly string[]): string {
  const words: string[] = [];
  for (const s of scopes) {
    const word =
      {
        'patient/AllergyIntolerance.rs': 'allergies',
        'patient/MedicationRequest.rs': 'medications',
        'patient/MedicationStatement.rs': 'medications',
        'patient/Condition.rs': 'conditions',
        'patient/Observation.rs?code=http://loinc.org|882-1': 'blood type',
        'patient/Immunization.rs': 'immunizations',
        'patient/Observation.rs?category=laboratory': 'lab results',
      }[s] ?? s.replace(/^(patient\/)+/, '');
    if (!words.includes(word)) words.push(word);
  }
  if (labels.length) words.push(`sensitive records (${labels.join(', ')})`);
  return words.join(', ');
}

/** Why the card cannot be made as chosen, in words for the patient, or null. */
export function cardProblem(selection: CardSelection, name: string): string | null {
  const { scopes, labels } = cardSelectionToGrant(selection);
  if (!scopes.length) return 'Choose at least one kind of record for the card to show.';
  const trimmed = name.trim();
  if (!trimmed) return 'Enter the name to print on the card.';
  if ([...trimmed].length > MAX_CARD_TEXT) return `The name can be at most ${MAX_CARD_TEXT} characters.`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(trimmed)) return 'The name cannot contain line breaks or control characters.';
  if ([...cardCoverWords(scopes, labels)].length > MAX_CARD_TEXT) {
    return 'That is more than the card has room to list. Untick some sensitive records, or make a second card.';
  }
  return null;
}

/** A grant that is an emergency card. */
export function isCard(g: Pick<GrantView, 'emergency_card'>): boolean {
  return g.emergency_card === true;
}

/**
 * The cards that work now: active and on the ledger (a card's grant is posted as it is made; one that is
 * not on the ledger failed to post, and its card was never shown). Newest first.
 */
export function activeCards<G extends Pick<GrantView, 'emergency_card' | 'status' | 'grant_index' | 'issued_at'>>(
  grants: readonly G[],
): G[] {
  return grants
    .filter((g) => isCard(g) && g.status === 'active' && g.grant_index !== null)
    .sort((a, b) => b.issued_at - a.issued_at);
}

export function hasActiveCard(
  grants: readonly Pick<GrantView, 'emergency_card' | 'status' | 'grant_index' | 'issued_at'>[],
): boolean {
  return activeCards(grants).length > 0;
}

/** The card files' names: `emergency-card.pdf`. */
export function cardFilename(kind: 'pdf' | 'png' | 'svg'): string {
  return `emergency-card.${kind}`;
}

export const CARD_CONTENT_TYPES = { pdf: 'application/pdf', png: 'image/png', svg: 'image/svg+xml' } as const;

/** Who holds a grant, as a list or a heading names it: "Your emergency card" for a card, else the grantee. */
export function grantTitle(g: Pick<GrantView, 'emergency_card' | 'grantee'>): string {
  return isCard(g) ? 'Your emergency card' : partyName(g.grantee);
}
