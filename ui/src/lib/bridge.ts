// The one client of the app bridge. Components and stores call `call`/`command` from here and never
// `fetch` or `invoke` directly.
//
// Tauri: `invoke(name, { args })`, errors arrive as the rejected value `{ code, message }`.
// Browser mode: `POST /bridge/{name}` with the args as the JSON body and `Authorization: Bearer <token>`; the
// token arrives once in the URL fragment (`#token=HEX`), is kept in sessionStorage and removed from the URL.

import { invoke } from '@tauri-apps/api/core';
import type { CommandName, Commands, ErrorCode } from './types';

export const TOKEN_KEY = 'custodia-token';

const ERROR_CODES: ReadonlySet<string> = new Set<ErrorCode>([
  'bad_input',
  'no_wallet',
  'wallet_exists',
  'locked',
  'wrong_passphrase',
  'busy',
  'not_enrolled',
  'not_found',
  'conflict',
  'ledger_unreachable',
  'ledger_refused',
  'verification_failed',
  'unauthorized',
  'unknown_command',
  'internal',
]);

/** An error from the bridge: `code` is one of the contract's closed set, `message` is safe to show. */
export class BridgeError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'BridgeError';
    this.code = code;
  }
}

export const UNREACHABLE_MESSAGE =
  'Could not reach the Custodia app. Check that it is still running, then try again.';

/** Turns anything thrown or returned as an error into a BridgeError. */
export function toBridgeError(value: unknown, fallback = 'Something went wrong. Please try again.'): BridgeError {
  if (value instanceof BridgeError) return value;
  if (value && typeof value === 'object') {
    const o = value as { code?: unknown; message?: unknown };
    if (typeof o.code === 'string' && ERROR_CODES.has(o.code)) {
      const message = typeof o.message === 'string' && o.message.trim() ? o.message : fallback;
      return new BridgeError(o.code as ErrorCode, message);
    }
  }
  if (typeof value === 'string' && value.trim()) return new BridgeError('internal', value);
  return new BridgeError('internal', fallback);
}

export function isTauri(): boolean {
  return typeof window !== 'undefined' && '__TAURI_INTERNALS__' in window;
}

// ---- token (browser mode) ----

let memoryToken: string | null = null;

function storage(): Storage | null {
  try {
    return typeof sessionStorage === 'undefined' ? null : sessionStorage;
  } catch {
    return null;
  }
}

/**
 * Reads `#token=…` from the URL fragment on first load, keeps it in sessionStorage and removes the
 * fragment from the address (so it is neither bookmarked nor shown). Returns the token in force.
 */
export function initToken(): string | null {
  if (typeof location !== 'undefined') {
    const m = /^#(?:.*&)?token=([^&]+)/.exec(location.hash);
    if (m) {
      const token = decodeURIComponent(m[1]);
      memoryToken = token;
      try {
        storage()?.setItem(TOKEN_KEY, token);
      } catch {
        // Storage can be full or disabled: the token stays in memory for this page.
      }
      history.replaceState(history.state, '', location.pathname + location.search);
    }
  }
  return currentToken();
}

export function currentToken(): string | null {
  try {
    return storage()?.getItem(TOKEN_KEY) ?? memoryToken;
  } catch {
    return memoryToken;
  }
}

// ---- locked ----

let lockedHandler: (() => void) | null = null;

/** Called whenever any command fails with `locked` (also after the Rust side auto-locks). */
export function onLocked(handler: (() => void) | null): void {
  lockedHandler = handler;
}

// ---- calls ----

async function viaTauri(name: string, args: object): Promise<unknown> {
  try {
    return await invoke(name, { args });
  } catch (e) {
    throw toBridgeError(e);
  }
}

async function viaHttp(name: string, args: object): Promise<unknown> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  const token = currentToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let response: Response;
  try {
    response = await fetch(`/bridge/${encodeURIComponent(name)}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(args),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new BridgeError('internal', UNREACHABLE_MESSAGE);
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    body = undefined;
  }
  if (response.ok) {
    if (body === undefined) throw new BridgeError('internal', 'The app sent an answer that could not be read.');
    return body;
  }
  if (body !== undefined) {
    const err = toBridgeError(body, '');
    if (err.message) throw err;
  }
  if (response.status === 401 || response.status === 403) {
    throw new BridgeError(
      'unauthorized',
      'This page is not connected to your wallet. Open it again from the Custodia app.',
    );
  }
  throw new BridgeError('internal', `The app answered with an error (HTTP ${response.status}).`);
}

/** Calls one bridge command. Rejects with a BridgeError. */
export async function call<T>(name: CommandName, args: object = {}): Promise<T> {
  try {
    return (await (isTauri() ? viaTauri(name, args) : viaHttp(name, args))) as T;
  } catch (e) {
    const err = toBridgeError(e);
    if (err.code === 'locked' && lockedHandler) lockedHandler();
    throw err;
  }
}

/** `call` with the argument and result types of the contract. */
export function command<N extends CommandName>(
  name: N,
  ...args: Commands[N]['args'] extends Record<string, never> ? [] : [Commands[N]['args']]
): Promise<Commands[N]['result']> {
  return call<Commands[N]['result']>(name, args[0] ?? {});
}

/** A message for any thrown value, for showing to the user. */
export function errorMessage(e: unknown): string {
  return toBridgeError(e).message;
}
