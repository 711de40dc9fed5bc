// What the UI says about events and things that need the patient's attention: the words of a toast or a
// desktop notification for a read, and how each kind of attention item is shown and acted on.

import { recordsPhrase } from './categories';
import type { AccessRow, Attention, Party } from './types';

/** "cusig1qw3e…x9z" for showing a key when there is no name. */
export function shortKey(key: string): string {
  return key.length <= 18 ? key : `${key.slice(0, 12)}…${key.slice(-4)}`;
}

/** A person's name, or words for an unknown key. */
export function partyName(p: Party): string {
  return p.name?.trim() || `Unknown member ${shortKey(p.key)}`;
}

/** "Dr X at St Mary's" (the organisation from the event if the party has none). */
export function partyAt(p: Party, organisation?: string | null): string {
  const org = (organisation || p.organisation || '').trim();
  return org ? `${partyName(p)} at ${org}` : partyName(p);
}

export type EventWords = {
  /** Short title for a notification. */
  title: string;
  /** The sentence. */
  body: string;
  /** Break-glass or denied: worded strongly, shown until dismissed. */
  strong: boolean;
};

/** The words for one access event: "Dr X at Org read your lab results". */
export function describeEvent(row: AccessRow): EventWords {
  const who = partyAt(row.reader, row.organisation);
  const what = `your ${recordsPhrase(row.categories, row.resources.map((r) => r.type))}`;
  if (row.break_glass && row.outcome === 'allowed') {
    // A gateway logs a read as break-glass under a grant only for a standing emergency grant: the card's.
    const how = row.grant_id ? ' with your emergency card' : ', without your grant';
    return {
      title: 'Emergency access to your records',
      body: `${who} used emergency (break-glass) access to read ${what}${how}. Check that this was expected.`,
      strong: true,
    };
  }
  if (row.outcome === 'denied') {
    const reason = row.reason ? ` (${row.reason.replace(/\.$/, '')})` : '';
    return {
      title: row.break_glass ? 'Emergency access refused' : 'Access refused',
      body: `${who} tried to read ${what} and was refused${reason}.`,
      strong: true,
    };
  }
  return { title: 'Your records were read', body: `${who} read ${what}.`, strong: false };
}

/** Several events at once (e.g. the first sync after a while): at most `max` toasts, then a summary. */
export function summariseEvents(rows: readonly AccessRow[], max = 3): EventWords[] {
  // Strong ones first, so that a break-glass read is never folded into "and 12 more".
  const ordered = [...rows].sort((a, b) => Number(describeEvent(b).strong) - Number(describeEvent(a).strong));
  const shown = ordered.slice(0, max).map(describeEvent);
  const rest = ordered.slice(max);
  if (rest.length) {
    const strong = rest.filter((r) => describeEvent(r).strong).length;
    shown.push({
      title: 'More reads of your records',
      body:
        `And ${rest.length} more ${rest.length === 1 ? 'read' : 'reads'}` +
        (strong ? `, ${strong} of them refused or emergency access` : '') +
        '. See the access log.',
      strong: strong > 0,
    });
  }
  return shown;
}

export type Severity = 'alarm' | 'warning' | 'info';

export type AttentionAction =
  | { kind: 'post'; grantId: string; label: string }
  | { kind: 'link'; href: string; label: string }
  | null;

export type AttentionView = {
  severity: Severity;
  /** A word that says what it is without colour. */
  tag: string;
  /** A symbol shown beside the tag (decorative: the tag carries the meaning). */
  icon: string;
  action: AttentionAction;
};

const SEVERITY_ORDER: Record<Severity, number> = { alarm: 0, warning: 1, info: 2 };

export function attentionView(a: Attention): AttentionView {
  switch (a.kind) {
    case 'break_glass':
      return {
        severity: 'alarm',
        tag: 'Emergency access',
        icon: '⚠',
        action: { kind: 'link', href: '#/log?bg=1', label: 'See emergency access' },
      };
    case 'denied':
      return {
        severity: 'alarm',
        tag: 'Refused',
        icon: '✕',
        action: { kind: 'link', href: '#/log?outcome=denied', label: 'See refused attempts' },
      };
    case 'expiring':
      return {
        severity: 'info',
        tag: 'Ending soon',
        icon: '◷',
        action: a.grant_id ? { kind: 'link', href: `#/grants/${encodeURIComponent(a.grant_id)}`, label: 'Open grant' } : null,
      };
    case 'unposted':
      return {
        severity: 'warning',
        tag: 'Not on the ledger',
        icon: '↻',
        action: a.grant_id ? { kind: 'post', grantId: a.grant_id, label: 'Post again' } : null,
      };
    case 'not_enrolled':
      return {
        severity: 'warning',
        tag: 'Not connected',
        icon: '⚠',
        action: { kind: 'link', href: '#/settings', label: 'Connect to a ledger' },
      };
    case 'never_synced':
      return { severity: 'info', tag: 'Not checked yet', icon: 'ℹ', action: null };
    case 'recovery_request':
      return {
        severity: 'alarm',
        tag: 'Recovery request',
        icon: '⚠',
        action: { kind: 'link', href: '#/guardians', label: 'Review and cancel' },
      };
    case 'retired':
      return { severity: 'alarm', tag: 'Replaced', icon: '⚠', action: { kind: 'link', href: '#/guardians', label: 'Details' } };
    default:
      return { severity: 'info', tag: 'Note', icon: 'ℹ', action: null };
  }
}

/** Alarms first, then warnings, then the rest; the order within each is kept. */
export function sortAttention(items: readonly Attention[]): Attention[] {
  return items
    .map((a, i) => ({ a, i, s: SEVERITY_ORDER[attentionView(a).severity] }))
    .sort((x, y) => x.s - y.s || x.i - y.i)
    .map((x) => x.a);
}
