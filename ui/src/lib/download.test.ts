import { describe, expect, it } from 'vitest';
import { bytesToBase64, safeFilename, svgDataUrl } from './download';

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
});
