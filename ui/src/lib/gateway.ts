// The hospital gateway the patient last used for their own records or a preview, remembered on this device.

const KEY = 'custodia.preview-gateway';

export function rememberedGateway(): string {
  try {
    return globalThis.localStorage?.getItem(KEY) ?? '';
  } catch {
    return '';
  }
}

export function rememberGateway(url: string): void {
  try {
    globalThis.localStorage?.setItem(KEY, url);
  } catch {
    // Not remembered; nothing else depends on it.
  }
}
