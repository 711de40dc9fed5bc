import { beforeEach, describe, expect, it, vi } from 'vitest';

const command = vi.fn();
const navigate = vi.fn();
vi.mock('./bridge', async (orig) => ({ ...(await orig<typeof import('./bridge')>()), command: (...a: unknown[]) => command(...a) }));
vi.mock('./router.svelte', () => ({ navigate: (...a: unknown[]) => navigate(...a) }));

const bridge = await import('./bridge');
const s = await import('./session.svelte');

const summary = { name: 'Ada', key: 'k', fingerprint: 'f', created_at: 0, ledger: null, auto_lock_minutes: 7, recovering: false };

beforeEach(() => {
  command.mockReset();
  navigate.mockReset();
});

describe('session', () => {
  it('follows the wallet state from status', async () => {
    command.mockResolvedValueOnce({ state: 'none', wallet_dir: '/w', default_ledger: null, auto_lock_minutes: 10, summary: null });
    await s.loadStatus();
    expect(s.session.phase).toBe('none');
    command.mockResolvedValueOnce({ state: 'locked', wallet_dir: '/w', default_ledger: null, auto_lock_minutes: 10, summary: null });
    await s.loadStatus();
    expect(s.session.phase).toBe('locked');
    command.mockResolvedValueOnce({ state: 'unlocked', wallet_dir: '/w', default_ledger: null, auto_lock_minutes: 10, summary });
    await s.loadStatus();
    expect(s.session.phase).toBe('unlocked');
    expect(s.autoLockMinutes()).toBe(7);
  });

  it('shows a problem page when the bridge refuses or is away', async () => {
    command.mockRejectedValueOnce(new bridge.BridgeError('unauthorized', 'Open it again from the app.'));
    await s.loadStatus();
    expect(s.session.phase).toBe('disconnected');
    expect(s.session.problem).toBe('Open it again from the app.');
  });

  it('lands on Home after unlock', () => {
    s.enterUnlocked(summary);
    expect(s.session.phase).toBe('unlocked');
    expect(navigate).toHaveBeenCalledWith('#/home');
  });

  it('goes to the unlock screen on a `locked` error from any command', async () => {
    s.installLockedHandler();
    s.enterUnlocked(summary);
    // The real call() runs the handler; here the bridge answers `locked` through fetch.
    vi.stubGlobal('window', {});
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ code: 'locked', message: 'Locked.' }), { status: 403 }));
    await bridge.call('home').catch(() => {});
    vi.unstubAllGlobals();
    expect(s.session.phase).toBe('locked');
    expect(s.session.summary).toBeNull();
    expect(s.session.lockNotice).toMatch(/locked/);
  });

  it('shows the recovery screen, not Home, while a new device waits for guardians', async () => {
    const recovering = { ...summary, recovering: true };
    command.mockResolvedValueOnce({ state: 'unlocked', wallet_dir: '/w', default_ledger: null, auto_lock_minutes: 10, summary: recovering });
    await s.loadStatus();
    expect(s.session.phase).toBe('recovering');
    s.enterUnlocked(recovering);
    expect(s.session.phase).toBe('recovering');
    expect(navigate).not.toHaveBeenCalled();

    s.recoveryAbandoned();
    expect(s.session.phase).toBe('none');
    expect(s.session.summary).toBeNull();

    const progress = { request_id: 'r', phase: 'waiting' } as unknown as import('./types').RecoveryProgress;
    s.recoveryStarted(recovering, progress);
    expect(s.session.phase).toBe('recovering');
    expect(s.session.recovery).toBe(progress);
    // Finished: the restored wallet lands on Home.
    s.enterUnlocked(summary);
    expect(s.session.phase).toBe('unlocked');
    expect(s.session.recovery).toBeNull();
    expect(navigate).toHaveBeenCalledWith('#/home');
  });

  it('locks on request even if the lock call fails', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    s.enterUnlocked(summary);
    command.mockRejectedValueOnce(new bridge.BridgeError('internal', 'x'));
    await s.lockNow('Locked after 7 minutes without activity.');
    expect(s.session.phase).toBe('locked');
    expect(s.session.lockNotice).toBe('Locked after 7 minutes without activity.');
  });
});
