import { describe, expect, it } from 'vitest';
import { base64ToBytes, bytesToBase64, safeFilename, svgDataUrl } from './download';

describe('download helpers', () => {
  it('keeps file names to one plain name', () => {
    expect(safeFilename('access-log.csv')).toBe('access-log.csv');
    expect(safeFilename('../../etc/passwd')).toBe('-..-etc-passwd');
    expect(safeFilename('a:b*c?.json')).toBe('a-b-c-.json');
    expect(safeFilename('')).toBe('custodia-export.txt');
  });

  it('encodes bytes and SVG text as base64', () => {
    expect(bytesToBase64(new Uint8Array([0, 255, 16]))).toBe('AP8Q');
    const big = new Uint8Array(100_000).fill(65);
    expect(atob(bytesToBase64(big))).toHaveLength(100_000);
    const url = svgDataUrl('<svg><title>é</title></svg>');
    expect(url.startsWith('data:image/svg+xml;base64,')).toBe(true);
    const decoded = new TextDecoder().decode(Uint8Array.from(atob(url.split(',')[1]), (c) => c.charCodeAt(0)));
    expect(decoded).toBe('<svg><title>é</title></svg>');
  });

  it('decodes base64 from the bridge to bytes for a download', () => {
    expect([...base64ToBytes('AP8Q')]).toEqual([0, 255, 16]);
    expect([...base64ToBytes('AP8')]).toEqual([0, 255]);
    expect([...base64ToBytes('')]).toEqual([]);
    // A PDF's first bytes, as create_emergency_card sends them, with line breaks allowed.
    expect(new TextDecoder().decode(base64ToBytes('JVBE\nRi0xLjQ='))).toBe('%PDF-1.4');
    const big = new Uint8Array(100_000).map((_, i) => (i * 7) % 256);
    expect(base64ToBytes(bytesToBase64(big))).toEqual(big);
    expect(() => base64ToBytes('not base64!')).toThrow();
    expect(() => base64ToBytes('AAAAA')).toThrow();
    expect(() => base64ToBytes('A=AA')).toThrow();
  });
});
