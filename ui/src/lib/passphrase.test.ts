import { describe, expect, it } from 'vitest';
import { acceptable, newPassphraseProblem, strength } from './passphrase';

describe('strength', () => {
  it('rates an empty passphrase very weak and says how long it should be', () => {
    const s = strength('');
    expect(s.score).toBe(0);
    expect(s.label).toBe('Very weak');
    expect(s.hint).toMatch(/10 characters/);
  });

  it('rates common passwords very weak, also in leetspeak or with digits', () => {
    for (const pw of ['password', 'password123', 'P@ssw0rd!', 'letmein2024', 'qwertyuiop', 'iloveyou!!']) {
      expect(strength(pw).score, pw).toBe(0);
    }
    expect(strength('password123').hint).toMatch(/common/);
  });

  it('sees through repeats and sequences', () => {
    expect(strength('aaaaaaaaaaaaaaaa').score).toBe(0);
    expect(strength('abcdefghijklmnop').score).toBe(0);
    expect(strength('1234567890123').score).toBe(0);
    expect(strength('hellohellohello').score).toBeLessThanOrEqual(1);
    expect(strength('aaaaaaaaaaaaaaaa').hint).toMatch(/repeat/i);
    expect(strength('abcdefghijklmnop').hint).toMatch(/sequence/i);
  });

  it('rates short passphrases at most weak', () => {
    expect(strength('Xk#9p!').score).toBeLessThanOrEqual(1);
  });

  it('rates a few unrelated words strong', () => {
    const s = strength('correct horse battery staple');
    expect(s.score).toBe(4);
    expect(s.label).toBe('Strong');
    expect(strength('violet kettle orbit').score).toBeGreaterThanOrEqual(3);
  });

  it('rates a random mix of kinds of characters well', () => {
    expect(strength('mR7#qz!Lw2').score).toBeGreaterThanOrEqual(3);
  });

  it('is monotone in adding an unrelated word', () => {
    const a = strength('maple river');
    const b = strength('maple river copper');
    expect(b.bits).toBeGreaterThan(a.bits);
    expect(b.score).toBeGreaterThanOrEqual(a.score);
  });

  it('copes with characters outside ASCII', () => {
    const s = strength('Grüße aus Köln 🌷 heute');
    expect(s.score).toBeGreaterThanOrEqual(3);
  });
});

describe('acceptable', () => {
  it('needs at least 10 characters and a score of 2', () => {
    expect(acceptable('correct horse battery staple')).toBe(true);
    expect(acceptable('mR7#qz!Lw2')).toBe(true);
    expect(acceptable('mR7#qz!L')).toBe(false); // too short, however random
    expect(acceptable('password12345')).toBe(false);
    expect(acceptable('aaaaaaaaaaaa')).toBe(false);
  });

  it('explains what is missing', () => {
    expect(newPassphraseProblem('short', 'short')).toMatch(/10 characters/);
    expect(newPassphraseProblem('password1234', 'password1234')).toMatch(/easy to guess/);
    expect(newPassphraseProblem('correct horse battery staple', 'correct horse battery')).toMatch(/do not match/);
    expect(newPassphraseProblem('correct horse battery staple', 'correct horse battery staple')).toBeNull();
  });
});
