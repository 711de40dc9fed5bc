import { describe, expect, it } from 'vitest';
import { attentionView, describeEvent, partyAt, partyName, shortKey, sortAttention, summariseEvents } from './attention';
import type { AccessRow, Attention, Party } from './types';

const hopper: Party = {
  key: 'cusig1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq',
  name: 'Dr Grace Hopper',
  organisation: "St Mary's",
  role: 'provider',
  verified: true,
};

function row(patch: Partial<AccessRow> = {}): AccessRow {
  return {
    index: 7,
    at: 1_700_000_000_000,
    reader: hopper,
    organisation: "St Mary's",
    gateway: 'cusig1gw',
    purpose: { code: 'TREAT', display: 'treatment' },
    outcome: 'allowed',
    break_glass: false,
    request: 'GET /Observation?category=laboratory',
    resources: [{ type: 'Observation', id: 'o1', labels: [], category: 'laboratory' }],
    categories: ['laboratory'],
    labels: [],
    grant_id: 'g1',
    reason: null,
    emergency_reason: null,
    what: 'your lab results (1 record)',
    why: null,
    verified: true,
    ...patch,
  };
}

describe('describeEvent', () => {
  it('says who read what, in plain words', () => {
    const w = describeEvent(row());
    expect(w.body).toBe("Dr Grace Hopper at St Mary's read your lab results.");
    expect(w.strong).toBe(false);
  });

  it('words break-glass reads strongly', () => {
    const w = describeEvent(row({ break_glass: true, grant_id: null }));
    expect(w.strong).toBe(true);
    expect(w.title).toMatch(/Emergency/);
    expect(w.body).toMatch(/emergency \(break-glass\) access/);
    expect(w.body).toMatch(/without your grant/);
  });

  it('says a break-glass read under a grant was made with the emergency card', () => {
    const w = describeEvent(row({ break_glass: true, grant_id: 'card1' }));
    expect(w.strong).toBe(true);
    expect(w.body).toBe(
      "Dr Grace Hopper at St Mary's used emergency (break-glass) access to read your lab results with your emergency card. Check that this was expected.",
    );
  });

  it('words denied attempts strongly, with the reason', () => {
    const w = describeEvent(row({ outcome: 'denied', reason: 'label not allowed: HIV.' }));
    expect(w.strong).toBe(true);
    expect(w.body).toBe("Dr Grace Hopper at St Mary's tried to read your lab results and was refused (label not allowed: HIV).");
  });

  it('names an unknown reader by a short key', () => {
    const p: Party = { ...hopper, name: null, organisation: null };
    expect(partyName(p)).toMatch(/^Unknown member cusig1qqqqqq…qqqq$/);
    expect(partyAt(p)).toBe(partyName(p));
    expect(partyAt(p, 'General')).toBe(`${partyName(p)} at General`);
    expect(shortKey('short')).toBe('short');
  });
});

describe('summariseEvents', () => {
  it('shows a few and sums up the rest, strong ones first', () => {
    const rows = [row({ index: 1 }), row({ index: 2 }), row({ index: 3 }), row({ index: 4, break_glass: true }), row({ index: 5 })];
    const out = summariseEvents(rows, 3);
    expect(out).toHaveLength(4);
    expect(out[0].strong).toBe(true);
    expect(out[3].body).toBe('And 2 more reads. See the access log.');
  });

  it('never hides a strong event without saying so', () => {
    const rows = [1, 2, 3, 4].map((i) => row({ index: i, outcome: 'denied' }));
    const out = summariseEvents(rows, 3);
    expect(out[3].strong).toBe(true);
    expect(out[3].body).toMatch(/1 of them refused or emergency access/);
  });

  it('is empty for no events', () => {
    expect(summariseEvents([])).toEqual([]);
  });
});

describe('attention', () => {
  const item = (kind: Attention['kind'], grant_id: string | null = null): Attention => ({
    kind,
    message: kind,
    grant_id,
    index: null,
  });

  it('offers Post again for a grant not yet on the ledger', () => {
    expect(attentionView(item('unposted', 'g9')).action).toEqual({ kind: 'post', grantId: 'g9', label: 'Post again' });
  });

  it('links to the filtered log and to settings', () => {
    expect(attentionView(item('break_glass')).action).toMatchObject({ href: '#/log?bg=1' });
    expect(attentionView(item('denied')).action).toMatchObject({ href: '#/log?outcome=denied' });
    expect(attentionView(item('not_enrolled')).action).toMatchObject({ href: '#/settings' });
    expect(attentionView(item('expiring', 'a b')).action).toMatchObject({ href: '#/grants/a%20b' });
  });

  it('sends a recovery request and a retired wallet to Guardians, as alarms', () => {
    expect(attentionView(item('recovery_request'))).toMatchObject({
      severity: 'alarm',
      tag: 'Recovery request',
      action: { kind: 'link', href: '#/guardians', label: 'Review and cancel' },
    });
    expect(attentionView(item('retired'))).toMatchObject({ severity: 'alarm', action: { href: '#/guardians' } });
  });

  it('puts alarms first and keeps order otherwise', () => {
    const items = [item('expiring', 'x'), item('unposted', 'y'), item('denied'), item('never_synced'), item('break_glass')];
    expect(sortAttention(items).map((a) => a.kind)).toEqual(['denied', 'break_glass', 'unposted', 'expiring', 'never_synced']);
  });
});
