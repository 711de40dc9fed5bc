// Saves an Export from the bridge as a file, through a Blob and a temporary link.

import type { Export } from './types';

/** A file name without path separators or control characters. */
export function safeFilename(name: string, fallback = 'custodia-export.txt'): string {
  const cleaned = name.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '-').replace(/^\.+/, '').trim();
  return cleaned || fallback;
}

export function saveExport(exp: Export): void {
  const blob = new Blob([exp.text], { type: exp.content_type || 'application/octet-stream' });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = safeFilename(exp.filename);
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
 * An SVG as a data: URL for an <img>. An image-rendered SVG runs no scripts and loads nothing, so the
 * SVG from the bridge needs no further cleaning. (The CSP needs `img-src 'self' data:`.)
 */
export function svgDataUrl(svg: string): string {
  return `data:image/svg+xml;base64,${bytesToBase64(new TextEncoder().encode(svg))}`;
}
