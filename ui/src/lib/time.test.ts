import { describe, expect, it } from 'vitest';
import {
  DAY,
  DURATIONS,
  HOUR,
  MINUTE,
  customSeconds,
  describeDuration,
  durationSeconds,
  endsWithin,
  formatAbsolute,
  formatRelative,
  spanWords,
  timeLeft,
} from './time';

const now = new Date(2025, 2, 14, 12, 0, 0).getTime(); // 14 March 2025, noon, local time

describe('timeLeft', () => {
  it('says how long is left in at most two units', () => {
    expect(timeLeft(now + 2 * DAY + 3 * HOUR + 10 * MINUTE, now)).toBe('2 days 3 hours left');
    expect(timeLeft(now + 45 * MINUTE + 20_000, now)).toBe('45 minutes left');
    expect(timeLeft(now + 1 * DAY, now)).toBe('1 day left');
    expect(timeLeft(now + 1 * HOUR + 1 * MINUTE, now)).toBe('1 hour 1 minute left');
    expect(timeLeft(now + 3 * HOUR, now)).toBe('3 hours left');
    expect(timeLeft(now + 30_000, now)).toBe('less than a minute left');
    expect(timeLeft(now + 364 * DAY + 5 * HOUR, now)).toBe('364 days left');
  });

  it('says how long ago it expired', () => {
    expect(timeLeft(now - 3 * DAY - 2 * HOUR, now)).toBe('expired 3 days ago');
    expect(timeLeft(now - 1 * DAY, now)).toBe('expired 1 day ago');
    expect(timeLeft(now - 5 * HOUR, now)).toBe('expired 5 hours ago');
    expect(timeLeft(now - 2 * MINUTE, now)).toBe('expired 2 minutes ago');
    expect(timeLeft(now - 10_000, now)).toBe('expired just now');
    expect(timeLeft(now, now)).toBe('expired just now');
    expect(timeLeft(now - 400 * DAY, now)).toBe('expired 1 year ago');
  });

  it('spans', () => {
    expect(spanWords(0)).toBe('less than a minute');
    expect(spanWords(DAY + 59 * MINUTE)).toBe('1 day');
  });

  it('knows when something ends soon', () => {
    expect(endsWithin(now + 23 * HOUR, now, DAY)).toBe(true);
    expect(endsWithin(now + 25 * HOUR, now, DAY)).toBe(false);
    expect(endsWithin(now - HOUR, now, DAY)).toBe(false);
  });
});

describe('formatRelative', () => {
  it('is relative when close', () => {
    expect(formatRelative(now - 10_000, now)).toBe('just now');
    expect(formatRelative(now - 5 * MINUTE, now)).toBe('5 minutes ago');
    expect(formatRelative(now - 1 * MINUTE, now)).toBe('1 minute ago');
    expect(formatRelative(now - 3 * HOUR, now)).toBe('3 hours ago');
    expect(formatRelative(now - 3 * DAY, now)).toBe('3 days ago');
    expect(formatRelative(now + 2 * HOUR, now)).toBe('in 2 hours');
    expect(formatRelative(now + 3 * DAY, now)).toBe('in 3 days');
    expect(formatRelative(now + 10 * MINUTE, now)).toBe('in 10 minutes');
  });

  it('says yesterday with the time', () => {
    const yesterdayEvening = new Date(2025, 2, 13, 21, 30).getTime();
    const earlyMorning = new Date(2025, 2, 14, 7, 0).getTime();
    expect(formatRelative(yesterdayEvening, earlyMorning + 6 * HOUR, 'en-GB')).toBe('yesterday at 21:30');
  });

  it('is absolute when far', () => {
    const then = now - 30 * DAY;
    expect(formatRelative(then, now, 'en-GB')).toBe(formatAbsolute(then, 'en-GB'));
    expect(formatAbsolute(new Date(2025, 0, 5, 9, 7).getTime(), 'en-GB')).toBe('5 Jan 2025, 09:07');
  });
});

describe('durations', () => {
  it('offers the fixed choices and custom', () => {
    expect(DURATIONS.map((d) => d.label)).toEqual(['1 hour', '1 day', '1 week', '30 days', '90 days', '1 year', 'Custom']);
    expect(durationSeconds('1h')).toBe(3600);
    expect(durationSeconds('1w')).toBe(604_800);
    expect(durationSeconds('1y')).toBe(31_536_000);
    expect(durationSeconds('nope')).toBeNull();
  });

  it('computes custom durations and refuses silly ones', () => {
    expect(durationSeconds('custom', 3, 'days')).toBe(3 * 86_400);
    expect(customSeconds(2, 'weeks')).toBe(14 * 86_400);
    expect(customSeconds(36, 'hours')).toBe(36 * 3600);
    expect(customSeconds(0, 'days')).toBeNull();
    expect(customSeconds(1.5, 'days')).toBeNull();
    expect(customSeconds(Number.NaN, 'days')).toBeNull();
    expect(customSeconds(1000, 'weeks')).toBeNull();
    expect(durationSeconds('custom')).toBeNull();
  });

  it('describes a duration', () => {
    expect(describeDuration(604_800)).toBe('1 week');
    expect(describeDuration(3 * 86_400)).toBe('3 days');
    expect(describeDuration(14 * 86_400)).toBe('2 weeks');
    expect(describeDuration(36 * 3600)).toBe('36 hours');
    expect(describeDuration(90 * 60)).toBe('1 hour 30 minutes');
  });
});
