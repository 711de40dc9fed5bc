import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { idleTimer } from './idle';

describe('idleTimer', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('fires after the limit with no activity, once', () => {
    const target = new EventTarget();
    const onIdle = vi.fn();
    idleTimer(target, 2, onIdle, () => Date.now());
    vi.advanceTimersByTime(119_000);
    expect(onIdle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(31_000);
    expect(onIdle).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(600_000);
    expect(onIdle).toHaveBeenCalledTimes(1);
  });

  it('starts over on keyboard or pointer activity', () => {
    const target = new EventTarget();
    const onIdle = vi.fn();
    idleTimer(target, 1, onIdle, () => Date.now());
    vi.advanceTimersByTime(50_000);
    target.dispatchEvent(new Event('keydown'));
    vi.advanceTimersByTime(50_000);
    target.dispatchEvent(new Event('pointerdown'));
    vi.advanceTimersByTime(50_000);
    expect(onIdle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(40_000);
    expect(onIdle).toHaveBeenCalledTimes(1);
  });

  it('notices time that passed while timers did not run (a sleeping laptop)', () => {
    let now = 0;
    const onIdle = vi.fn();
    idleTimer(new EventTarget(), 5, onIdle, () => now);
    now = 6 * 60_000;
    vi.advanceTimersByTime(30_000);
    expect(onIdle).toHaveBeenCalledTimes(1);
  });

  it('stops', () => {
    const onIdle = vi.fn();
    const t = idleTimer(new EventTarget(), 1, onIdle, () => Date.now());
    t.stop();
    vi.advanceTimersByTime(10 * 60_000);
    expect(onIdle).not.toHaveBeenCalled();
  });
});
