// In-app toasts: short messages in a corner. Strong ones (break-glass, denied) stay until dismissed.

export type Toast = {
  id: number;
  title: string;
  body: string;
  tone: 'info' | 'success' | 'alarm';
  href?: string;
  /** The link's words (default: "See all reads"). */
  linkLabel?: string;
};

class Toasts {
  items = $state<Toast[]>([]);
}

export const toasts = new Toasts();

let next = 1;
const MAX = 6;

export function showToast(t: Omit<Toast, 'id'>, ms = t.tone === 'alarm' ? 0 : 8000): number {
  const id = next++;
  toasts.items = [...toasts.items, { ...t, id }].slice(-MAX);
  if (ms > 0) setTimeout(() => dismissToast(id), ms);
  return id;
}

export function dismissToast(id: number): void {
  toasts.items = toasts.items.filter((t) => t.id !== id);
}

export function clearToasts(): void {
  toasts.items = [];
}
