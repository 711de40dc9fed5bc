// "Now", refreshed every 30 seconds, so that "time left" and "5 minutes ago" stay current.

class Clock {
  now = $state(Date.now());
}

export const clock = new Clock();

let started = false;

export function startClock(): void {
  if (started) return;
  started = true;
  setInterval(() => (clock.now = Date.now()), 30_000);
}
