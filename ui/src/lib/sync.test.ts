import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AccessRow, SyncResult } from './types';

const command = vi.fn();
const notify = vi.fn();
vi.mock('./bridge', async (orig) => ({ ...(await orig<typeof import('./bridge')>()), command: (...a: unknown[]) => command(...a) }));
vi.mock('./notify', () => ({ notifyDesktop: (...a: unknown[]) => notify(...a) }));

const { BridgeError } = await import('./bridge');
const { sync, syncNow, startSync, stopSync, dismissAlarm } = await import('./sync.svelte');
const { toasts, clearToasts } = await import('./toasts.svelte');

function event(i: number, patch: Partial<AccessRow> = {}): AccessRow {
  return {
    index: i,
    at: 1_700_000_000_000 + i,
    reader: { key: 'cusig1x', name: 'Dr X', organisation: 'Org', role: null, verified: true },
    organisation: 'Org',
    gateway: 'g',
    purpose: { code: 'TREAT', display: 'treatment' },
    outcome: 'allowed',
    break_glass: false,
    request: 'GET /Observation',
    resources: [],
    categories: ['laboratory'],
    labels: [],
    grant_id: null,
    reason: null,
    emergency_reason: null,
    what: 'your lab results (1 record)',
    why: null,
    verified: true,
    ...patch,
  };
}

const result = (
  new_events: AccessRow[],
  complete = true,
  delivery: 'instant' | 'summary' | 'never' = 'instant',
): SyncResult => ({
  checkpoint_size: 10,
  new_events,
  notices: new_events.map((e) => ({ index: e.index, kind: 'routine', delivery, text: '' })),
  complete,
  new_recovery_alerts: [],
});

beforeEach(() => {
  command.mockReset();
  notify.mockReset();
  clearToasts();
  dismissAlarm();
  stopSync();
});
afterEach(() => vi.useRealTimers());

describe('sync', () => {
  it('turns new events into toasts and desktop notifications, and bumps the version', async () => {
    command.mockResolvedValueOnce(result([event(1), event(2, { break_glass: true })]));
    const before = sync.version;
    await syncNow();
    expect(command).toHaveBeenCalledWith('sync');
    expect(toasts.items.map((t) => t.body)).toEqual([
      'Dr X at Org used emergency (break-glass) access to read your lab results, without your grant. Check that this was expected.',
      'Dr X at Org read your lab results.',
    ]);
    expect(toasts.items[0].tone).toBe('alarm');
    expect(notify).toHaveBeenCalledTimes(2);
    expect(sync.version).toBe(before + 1);
    expect(sync.problem).toBeNull();
  });

  it('interrupts only for the kinds the patient chose to hear of at once', async () => {
    command.mockResolvedValueOnce(result([event(1)], true, 'summary'));
    const before = sync.version;
    await syncNow();
    expect(toasts.items).toEqual([]);
    expect(notify).not.toHaveBeenCalled();
    expect(sync.version).toBe(before + 1);
    command.mockResolvedValueOnce(result([event(2)], true, 'never'));
    await syncNow();
    expect(toasts.items).toEqual([]);
  });

  it('warns loudly of a recovery request for this wallet', async () => {
    const alert = { index: 9, request_id: 'r1', device: 'cusig1device', asked_at: 1, cancelled_at: null };
    command.mockResolvedValueOnce({ ...result([]), new_recovery_alerts: [alert] });
    const before = sync.version;
    await syncNow();
    expect(toasts.items).toHaveLength(1);
    expect(toasts.items[0]).toMatchObject({ tone: 'alarm', href: '#/guardians', title: 'Someone asked to recover your wallet' });
    expect(notify).toHaveBeenCalledWith('Someone asked to recover your wallet', expect.stringMatching(/If it was not you, cancel it/));
    expect(sync.version).toBe(before + 1);
  });

  it('does nothing visible when there is nothing new', async () => {
    command.mockResolvedValueOnce(result([]));
    const before = sync.version;
    await syncNow();
    expect(toasts.items).toEqual([]);
    expect(sync.version).toBe(before);
  });

  it('asks again while the ledger says there is more', async () => {
    command.mockResolvedValueOnce(result([event(1)], false)).mockResolvedValueOnce(result([event(2)], true));
    await syncNow();
    expect(command).toHaveBeenCalledTimes(2);
  });

  it('shows a small banner when the ledger cannot be reached, cleared by the next good sync', async () => {
    command.mockRejectedValueOnce(new BridgeError('ledger_unreachable', 'The ledger did not answer.'));
    await syncNow();
    expect(sync.problem).toBe('The ledger did not answer.');
    expect(sync.alarm).toBeNull();
    command.mockResolvedValueOnce(result([]));
    await syncNow();
    expect(sync.problem).toBeNull();
  });

  it('raises the alarm when the ledger does not verify, and keeps it', async () => {
    command.mockRejectedValueOnce(new BridgeError('verification_failed', 'The checkpoint is not consistent.'));
    await syncNow();
    expect(sync.alarm).toBe('The checkpoint is not consistent.');
    command.mockResolvedValueOnce(result([]));
    await syncNow();
    expect(sync.alarm).toBe('The checkpoint is not consistent.');
  });

  it('says nothing for locked or not enrolled', async () => {
    command.mockRejectedValueOnce(new BridgeError('not_enrolled', 'Not enrolled.'));
    await syncNow();
    command.mockRejectedValueOnce(new BridgeError('locked', 'Locked.'));
    await syncNow();
    expect(sync.problem).toBeNull();
    expect(sync.alarm).toBeNull();
  });

  const syncs = () => command.mock.calls.filter(([name]) => name === 'sync').length;

  it('syncs at start and every 15 seconds, and stops', async () => {
    vi.useFakeTimers();
    // No news ever: only the periodic syncs.
    command.mockImplementation((name: string) => (name === 'sync' ? Promise.resolve(result([])) : new Promise(() => {})));
    startSync();
    await vi.advanceTimersByTimeAsync(0);
    expect(syncs()).toBe(1);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(syncs()).toBe(2);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(syncs()).toBe(4);
    stopSync();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(syncs()).toBe(4);
  });

  it('syncs as soon as the ledger announces an entry, until a checkpoint covers it', async () => {
    vi.useFakeTimers();
    let announced = false;
    let size = 10;
    command.mockImplementation((name: string, args?: { after: number | null }) => {
      if (name === 'wait_news') {
        if (announced) return new Promise(() => {});
        announced = true;
        expect(args?.after).toBeNull();
        return Promise.resolve({ latest: 12, live: true });
      }
      // The first two syncs find the entry not yet covered (checkpoint of 10, then 12 entries); the third reads it.
      const covered = size > 12;
      const answer = { ...result(covered ? [event(12)] : []), checkpoint_size: size };
      size++;
      return Promise.resolve(answer);
    });
    startSync();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sync.live).toBe(true);
    expect(toasts.items.map((t) => t.body)).toEqual(['Dr X at Org read your lab results.']);
    const atNews = syncs();
    await vi.advanceTimersByTimeAsync(5_000);
    // No more syncs once the entry is read, until the periodic one.
    expect(syncs()).toBe(atNews);
    stopSync();
    expect(sync.live).toBe(false);
  });
});
