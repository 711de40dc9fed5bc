// Saves an Export from the bridge, or bytes the bridge sent as base64, as a file, through a Blob and a
// temporary link.

import type { Export } from './types';

/** A file name without path separators or control characters. */
export function safeFilename(name: string, fallback = 'custodia-export.txt'): string {
  const cleaned = name.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '-').replace(/^\.+/, '').trim();
  return cleaned || fallback;
}

export function saveExport(exp: Export): void {
  saveFile(exp.filename, exp.content_type, exp.text);
}

/** Saves text or bytes as a file named `filename`. */
export function saveFile(filename: string, contentType: string, data: string | Uint8Array<ArrayBuffer>): void {
  const blob = new Blob([data], { type: contentType || 'application/octet-stream' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = safeFilename(filename);
  a.rel = 'noopener';
  a.style.display = 'none';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Bytes as base64 (btoa needs a binary string; done in chunks so large inputs do not overflow the stack). */
export function bytesToBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

/**
 * Base64 (standard alphabet, padded or not, whitespace ignored) as bytes. Throws on anything else, so a
 * damaged answer is never saved as a file that looks fine.
 */
export function base64ToBytes(b64: string): Uint8Array<ArrayBuffer> {
  const clean = b64.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 === 1) throw new Error('not base64');
  const binary = atob(clean);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * An SVG as a data: URL for an <img>. An image-rendered SVG runs no scripts and loads nothing, so the
 * SVG from the bridge needs no further cleaning. (The CSP needs `img-src 'self' data:`.)
 */
export function svgDataUrl(svg: string): string {
  return `data:image/svg+xml;base64,${bytesToBase64(new TextEncoder().encode(svg))}`;
}
