// Performance marks for the access-log benchmark. Each mark replaces any earlier mark of the same name.

export const LOG_OPEN = 'custodia:log-open';
export const LOG_PAINTED = 'custodia:log-painted';
export const FILTER_START = 'custodia:filter-start';
export const FILTER_PAINTED = 'custodia:filter-painted';

export function mark(name: string): void {
  if (typeof performance === 'undefined' || !performance.mark) return;
  performance.clearMarks?.(name);
  performance.mark(name);
}

/** Resolves after the next frame has been painted (a frame callback, then a task after it). */
export function afterPaint(): Promise<void> {
  return new Promise((resolve) => {
    if (typeof requestAnimationFrame === 'undefined') {
      setTimeout(resolve, 0);
      return;
    }
    requestAnimationFrame(() => setTimeout(resolve, 0));
  });
}
