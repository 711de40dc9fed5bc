// Time in plain words: how long a grant has left, when something happened, and the durations a patient
// chooses from. Every function takes `now` so it can be tested; callers pass Date.now().

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

function plural(n: number, unit: string): string {
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

/** A positive span in at most two units: "2 days 3 hours", "3 hours 20 minutes", "45 minutes". */
export function spanWords(ms: number): string {
  const minutes = Math.floor(ms / MINUTE);
  if (minutes < 1) return 'less than a minute';
  const days = Math.floor(minutes / (24 * 60));
  const hours = Math.floor((minutes % (24 * 60)) / 60);
  const mins = minutes % 60;
  if (days >= 30) return plural(days, 'day');
  if (days > 0) return hours ? `${plural(days, 'day')} ${plural(hours, 'hour')}` : plural(days, 'day');
  if (hours > 0) return mins ? `${plural(hours, 'hour')} ${plural(mins, 'minute')}` : plural(hours, 'hour');
  return plural(mins, 'minute');
}

/** The largest unit only, for the past: "3 days", "5 hours", "12 minutes". */
function roughSpan(ms: number): string {
  if (ms >= 365 * DAY) return plural(Math.floor(ms / (365 * DAY)), 'year');
  if (ms >= DAY) return plural(Math.floor(ms / DAY), 'day');
  if (ms >= HOUR) return plural(Math.floor(ms / HOUR), 'hour');
  return plural(Math.max(1, Math.floor(ms / MINUTE)), 'minute');
}

/** "2 days 3 hours left", "45 minutes left", "expired 3 days ago". */
export function timeLeft(notAfter: number, now: number): string {
  const left = notAfter - now;
  if (left > 0) return `${spanWords(left)} left`;
  if (now - notAfter < MINUTE) return 'expired just now';
  return `expired ${roughSpan(now - notAfter)} ago`;
}

/** True when a time limit ends within the next `within` ms (and has not yet ended). */
export function endsWithin(notAfter: number, now: number, within: number): boolean {
  return notAfter > now && notAfter - now <= within;
}

function sameDay(a: Date, b: Date): boolean {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

// Intl.DateTimeFormat is slow to make and quick to use: one per locale and style (the log formats hundreds).
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(locale: string | undefined, options: Intl.DateTimeFormatOptions): Intl.DateTimeFormat {
  const key = `${locale ?? ''}|${JSON.stringify(options)}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, options);
    formatters.set(key, f);
  }
  return f;
}

/** "14 Mar 2025, 09:30" in the reader's locale (or the one given). */
export function formatAbsolute(ms: number, locale?: string): string {
  return formatter(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(ms);
}

/** "14 Mar 2025". */
export function formatDate(ms: number, locale?: string): string {
  return formatter(locale, { dateStyle: 'medium' }).format(ms);
}

/** "09:30". */
export function formatClock(ms: number, locale?: string): string {
  return formatter(locale, { timeStyle: 'short' }).format(ms);
}

/**
 * Relative when close, absolute otherwise: "just now", "5 minutes ago", "3 hours ago", "yesterday at 09:30",
 * "3 days ago", "in 2 hours", "in 3 days"; beyond a week, the date and time.
 */
export function formatRelative(ms: number, now: number, locale?: string): string {
  const diff = now - ms;
  const abs = Math.abs(diff);
  if (abs < MINUTE) return 'just now';
  if (diff > 0) {
    if (diff < HOUR) return `${plural(Math.floor(diff / MINUTE), 'minute')} ago`;
    if (diff < 12 * HOUR || sameDay(new Date(ms), new Date(now)))
      return `${plural(Math.floor(diff / HOUR), 'hour')} ago`;
    const yesterday = new Date(now);
    yesterday.setDate(yesterday.getDate() - 1);
    if (sameDay(new Date(ms), yesterday)) return `yesterday at ${formatClock(ms, locale)}`;
    if (diff < 7 * DAY) return `${plural(Math.max(2, Math.round(diff / DAY)), 'day')} ago`;
    return formatAbsolute(ms, locale);
  }
  if (abs < HOUR) return `in ${plural(Math.ceil(abs / MINUTE), 'minute')}`;
  if (abs < DAY) return `in ${plural(Math.round(abs / HOUR), 'hour')}`;
  if (abs < 7 * DAY) return `in ${plural(Math.round(abs / DAY), 'day')}`;
  return formatAbsolute(ms, locale);
}

export type DurationChoice = { id: string; label: string; seconds: number | null };

/** The durations offered for a grant; `custom` has no fixed length. */
export const DURATIONS: readonly DurationChoice[] = [
  { id: '1h', label: '1 hour', seconds: 3600 },
  { id: '1d', label: '1 day', seconds: 86_400 },
  { id: '1w', label: '1 week', seconds: 7 * 86_400 },
  { id: '30d', label: '30 days', seconds: 30 * 86_400 },
  { id: '90d', label: '90 days', seconds: 90 * 86_400 },
  { id: '1y', label: '1 year', seconds: 365 * 86_400 },
  { id: 'custom', label: 'Custom', seconds: null },
];

export const DEFAULT_DURATION = '1w';

export type CustomUnit = 'hours' | 'days' | 'weeks';
export const CUSTOM_UNITS: readonly CustomUnit[] = ['hours', 'days', 'weeks'];
const UNIT_SECONDS: Record<CustomUnit, number> = { hours: 3600, days: 86_400, weeks: 7 * 86_400 };

/** The longest grant the UI offers (5 years). */
export const MAX_DURATION_SECONDS = 5 * 365 * 86_400;

/** Seconds for a custom amount, or null when the amount is not a whole number from 1 up to the limit. */
export function customSeconds(amount: number, unit: CustomUnit): number | null {
  if (!Number.isInteger(amount) || amount < 1) return null;
  const s = amount * UNIT_SECONDS[unit];
  return s > MAX_DURATION_SECONDS ? null : s;
}

/** Seconds for a choice id (with the custom fields when it is `custom`), or null when invalid. */
export function durationSeconds(id: string, amount?: number, unit?: CustomUnit): number | null {
  const choice = DURATIONS.find((d) => d.id === id);
  if (!choice) return null;
  if (choice.seconds !== null) return choice.seconds;
  return amount === undefined || unit === undefined ? null : customSeconds(amount, unit);
}

/** "1 week", "3 days", "36 hours", "1 year". */
export function describeDuration(seconds: number): string {
  const fixed = DURATIONS.find((d) => d.seconds === seconds);
  if (fixed) return fixed.label;
  if (seconds % (7 * 86_400) === 0) return plural(seconds / (7 * 86_400), 'week');
  if (seconds % 86_400 === 0) return plural(seconds / 86_400, 'day');
  if (seconds % 3600 === 0) return plural(seconds / 3600, 'hour');
  return spanWords(seconds * 1000);
}
