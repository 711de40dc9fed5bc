// Calls `onIdle` after a stretch with no pointer or keyboard activity on a target (the window).

export const ACTIVITY_EVENTS = ['pointerdown', 'pointermove', 'keydown', 'wheel', 'touchstart', 'focusin'] as const;

export type IdleTimer = {
  /** Starts over with a new limit in minutes. */
  setMinutes(minutes: number): void;
  /** Counts now as activity. */
  poke(): void;
  stop(): void;
};

export function idleTimer(target: EventTarget, minutes: number, onIdle: () => void, now = () => Date.now()): IdleTimer {
  let limit = minutes * 60_000;
  let last = now();
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;

  const schedule = (delay: number) => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, Math.max(0, delay));
  };
  // Checks against the clock rather than trusting one long timeout (timers are throttled in the
  // background and do not run while a laptop sleeps).
  function check() {
    if (stopped) return;
    const idle = now() - last;
    if (idle >= limit) {
      stopped = true;
      remove();
      onIdle();
    } else {
      schedule(Math.min(limit - idle, 30_000));
    }
  }
  const activity = () => {
    last = now();
  };
  const remove = () => {
    for (const e of ACTIVITY_EVENTS) target.removeEventListener(e, activity);
    if (timer) clearTimeout(timer);
    timer = null;
  };
  for (const e of ACTIVITY_EVENTS) target.addEventListener(e, activity, { passive: true });
  schedule(Math.min(limit, 30_000));

  return {
    setMinutes(m: number) {
      limit = m * 60_000;
      last = now();
      if (!stopped) schedule(Math.min(limit, 30_000));
    },
    poke: activity,
    stop() {
      stopped = true;
      remove();
    },
  };
}
