import { describe, expect, it } from 'vitest';
import { notARequestMessage, qrKind } from './qrkind';

describe('qrKind', () => {
  it('tells the kinds apart by their prefix', () => {
    expect(qrKind('CU1:R:AEBAGBAF')).toBe('request');
    expect(qrKind('CU1:C:6LCHQRXK3BFOYG')).toBe('contact');
    expect(qrKind('CU1:E:MFRGGZDF')).toBe('emergency');
  });

  it('accepts lower case and surrounding whitespace, as the Rust reader does', () => {
    expect(qrKind('  cu1:r:aebagbaf\n')).toBe('request');
    expect(qrKind('\tCu1:c:abc ')).toBe('contact');
  });

  it('knows a Custodia code of another kind or version from something else', () => {
    expect(qrKind('CU1:Z:AAAA')).toBe('other-custodia');
    expect(qrKind('CU2:R:AAAA')).toBe('other-custodia');
    expect(qrKind('https://example.org/CU1:R:')).toBe('not-custodia');
    expect(qrKind('CU1R:AAAA')).toBe('not-custodia');
    expect(qrKind('cusig17tz8s3h2mp9wcxsnt0h5e505dq')).toBe('not-custodia');
    expect(qrKind('   ')).toBe('empty');
  });

  it('says what to do with a code that is not a request', () => {
    expect(notARequestMessage('request')).toBeNull();
    expect(notARequestMessage('contact')).toMatch(/contact card.*New grant/);
    expect(notARequestMessage('emergency')).toMatch(/emergency card.*not for your own wallet/);
    for (const k of ['other-custodia', 'not-custodia', 'empty'] as const) expect(notARequestMessage(k)).toBeTruthy();
  });
});
