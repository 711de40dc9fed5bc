// What a scanned or pasted QR text is, from its prefix alone (the Rust side decodes and verifies it): `CU1:R:`
// an access request, `CU1:C:` a contact card, `CU1:E:` an emergency card. Like the Rust reader, this accepts
// lower case and surrounding whitespace, which some scanners and clipboards introduce.

export type QrKind = 'request' | 'contact' | 'emergency' | 'other-custodia' | 'not-custodia' | 'empty';

const KINDS: Record<string, QrKind> = { R: 'request', C: 'contact', E: 'emergency' };

export function qrKind(text: string): QrKind {
  const t = text.trim().toUpperCase();
  if (!t) return 'empty';
  const m = /^CU(\d+):([A-Z]):/.exec(t);
  if (!m) return 'not-custodia';
  if (m[1] !== '1') return 'other-custodia';
  return KINDS[m[2]] ?? 'other-custodia';
}

/**
 * What to tell the patient about a code that is not an access request (null for a request, which is opened).
 * `contact` says what to do instead; the screen offers the way there.
 */
export function notARequestMessage(kind: QrKind): string | null {
  switch (kind) {
    case 'request':
      return null;
    case 'contact':
      return 'This is a contact card, not a request for access. To share your records with this person, choose who they are in New grant.';
    case 'emergency':
      return 'This is an emergency card. It is for emergency staff to scan if you cannot answer yourself, not for your own wallet.';
    case 'other-custodia':
      return 'This Custodia code is of a kind or version this app does not know. Check that the app is up to date.';
    case 'not-custodia':
      return 'This is not a Custodia code. Ask them to show the access request code from their Custodia screen.';
    case 'empty':
      return 'There is no text to read. Paste the text of the QR code.';
  }
}
