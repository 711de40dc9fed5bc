import { describe, expect, it } from 'vitest';
import { href, parseHash, section } from './routes';

describe('routes', () => {
  it('parses each route', () => {
    expect(parseHash('')).toEqual({ name: 'home' });
    expect(parseHash('#/')).toEqual({ name: 'home' });
    expect(parseHash('#/home')).toEqual({ name: 'home' });
    expect(parseHash('#/scan')).toEqual({ name: 'scan' });
    expect(parseHash('#/scan/')).toEqual({ name: 'scan' });
    expect(parseHash('#/grants')).toEqual({ name: 'grants' });
    expect(parseHash('#/grants/new')).toEqual({ name: 'new-grant' });
    expect(parseHash('#/grants/abc%2F1')).toEqual({ name: 'grant', id: 'abc/1' });
    expect(parseHash('#/log')).toEqual({ name: 'log', query: '' });
    expect(parseHash('#/log?outcome=denied&bg=1')).toEqual({ name: 'log', query: 'outcome=denied&bg=1' });
    expect(parseHash('#/settings/')).toEqual({ name: 'settings' });
    expect(parseHash('#/card')).toEqual({ name: 'card' });
    expect(parseHash('#/guardians')).toEqual({ name: 'guardians' });
    expect(parseHash('#/inbox/')).toEqual({ name: 'inbox' });
    expect(parseHash('#/nowhere')).toEqual({ name: 'not-found', path: '/nowhere' });
    expect(parseHash('#/grants/%E0%A4%A')).toMatchObject({ name: 'not-found' });
  });

  it('round-trips through href', () => {
    for (const h of ['#/home', '#/scan', '#/grants', '#/grants/new', '#/grants/a%20b', '#/log', '#/log?q=x', '#/settings', '#/card', '#/guardians', '#/inbox']) {
      expect(href(parseHash(h))).toBe(h);
    }
  });

  it('puts a grant under Grants in the nav', () => {
    expect(section(parseHash('#/grants/x'))).toBe('grants');
    expect(section(parseHash('#/log?bg=1'))).toBe('log');
    expect(section(parseHash('#/scan'))).toBe('scan');
    expect(section(parseHash('#/zzz'))).toBeNull();
    expect(section(parseHash('#/card'))).toBeNull();
    expect(section(parseHash('#/guardians'))).toBe('settings');
    expect(section(parseHash('#/inbox'))).toBe('settings');
  });
});
