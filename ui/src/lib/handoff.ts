// A contact card scanned on the Scan screen, handed to the New grant screen, which looks it up on opening.
// Kept in memory for one hand-over only.

let pendingContact: string | null = null;

export function handContact(text: string): void {
  pendingContact = text.trim() || null;
}

/** The handed contact card text, once; null when there is none. */
export function takeContact(): string | null {
  const text = pendingContact;
  pendingContact = null;
  return text;
}
