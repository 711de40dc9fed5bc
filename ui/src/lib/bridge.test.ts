import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BridgeError } from './bridge';

const invoke = vi.fn();
vi.mock('@tauri-apps/api/core', () => ({ invoke: (...a: unknown[]) => invoke(...a) }));

class MemoryStorage {
  private m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, String(v));
  }
  removeItem(k: string) {
    this.m.delete(k);
  }
}

type Fetch = (url: string, init: RequestInit) => Promise<Response>;

function setup(hash = '', fetchImpl?: Fetch) {
  const replaceState = vi.fn();
  const storage = new MemoryStorage();
  vi.stubGlobal('window', {});
  vi.stubGlobal('location', { hash, pathname: '/', search: '' });
  vi.stubGlobal('history', { state: null, replaceState });
  vi.stubGlobal('sessionStorage', storage);
  const fetchMock = vi.fn(fetchImpl ?? (async () => json(200, {})));
  vi.stubGlobal('fetch', fetchMock);
  return { replaceState, storage, fetchMock };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
}

/** The error a call failed with (and a test failure if it succeeded). */
function failure(p: Promise<unknown>): Promise<BridgeError> {
  return p.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (e: unknown) => e as BridgeError,
  );
}

async function load() {
  vi.resetModules();
  return import('./bridge');
}

beforeEach(() => invoke.mockReset());
afterEach(() => vi.unstubAllGlobals());

describe('token', () => {
  it('takes the token from the fragment, keeps it, and removes it from the address', async () => {
    const { replaceState, storage } = setup('#token=00ff');
    const b = await load();
    expect(b.initToken()).toBe('00ff');
    expect(storage.getItem('custodia-token')).toBe('00ff');
    expect(replaceState).toHaveBeenCalledWith(null, '', '/');
  });

  it('keeps the stored token when the fragment has none (a reload)', async () => {
    const { replaceState, storage } = setup('#/log?bg=1');
    storage.setItem('custodia-token', 'abcd');
    const b = await load();
    expect(b.initToken()).toBe('abcd');
    expect(replaceState).not.toHaveBeenCalled();
  });
});

describe('browser mode', () => {
  it('posts the args as JSON with the bearer token', async () => {
    const { fetchMock } = setup('#token=beef', async () => json(200, { state: 'locked' }));
    const b = await load();
    b.initToken();
    const out = await b.call('status', {});
    expect(out).toEqual({ state: 'locked' });
    const [url, init] = fetchMock.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/bridge/status');
    expect(init.method).toBe('POST');
    expect((init.headers as Record<string, string>).Authorization).toBe('Bearer beef');
    expect((init.headers as Record<string, string>)['Content-Type']).toBe('application/json');
    expect(init.body).toBe('{}');
  });

  it('typed command sends its args', async () => {
    const { fetchMock } = setup('', async () => json(200, { grant: {}, reads: [] }));
    const b = await load();
    await b.command('grant', { id: 'g1' });
    expect((fetchMock.mock.calls[0] as unknown as [string, RequestInit])[1].body).toBe('{"id":"g1"}');
  });

  it('turns an error body into a BridgeError', async () => {
    setup('', async () => json(400, { code: 'wrong_passphrase', message: 'That passphrase is not right.' }));
    const b = await load();
    const err = await failure(b.call('unlock', { passphrase: 'x' }));
    expect(err).toBeInstanceOf(b.BridgeError);
    expect(err.code).toBe('wrong_passphrase');
    expect(err.message).toBe('That passphrase is not right.');
  });

  it('turns a network failure into internal with a plain message', async () => {
    setup('', async () => {
      throw new TypeError('Failed to fetch');
    });
    const b = await load();
    const err = await failure(b.call('status'));
    expect(err.code).toBe('internal');
    expect(err.message).toBe(b.UNREACHABLE_MESSAGE);
  });

  it('maps an unknown code or a body that is not JSON', async () => {
    setup('', async () => json(500, { code: 'exploded', message: 'boom' }));
    let b = await load();
    expect((await failure(b.call('status'))).code).toBe('internal');
    setup('', async () => new Response('nope', { status: 401 }));
    b = await load();
    expect((await failure(b.call('status'))).code).toBe('unauthorized');
    setup('', async () => new Response('<html>', { status: 200 }));
    b = await load();
    expect((await failure(b.call('status'))).code).toBe('internal');
  });

  it('calls the locked handler on `locked`, from any command', async () => {
    setup('', async () => json(403, { code: 'locked', message: 'The wallet is locked.' }));
    const b = await load();
    const handler = vi.fn();
    b.onLocked(handler);
    const err = await failure(b.call('home'));
    expect(err.code).toBe('locked');
    expect(handler).toHaveBeenCalledTimes(1);
  });
});

describe('Tauri mode', () => {
  it('invokes the command with { args } and maps the rejected value', async () => {
    setup();
    vi.stubGlobal('window', { __TAURI_INTERNALS__: {} });
    const b = await load();
    expect(b.isTauri()).toBe(true);
    invoke.mockResolvedValueOnce({ ok: 1 });
    expect(await b.call('purposes', {})).toEqual({ ok: 1 });
    expect(invoke).toHaveBeenCalledWith('purposes', { args: {} });
    invoke.mockRejectedValueOnce({ code: 'ledger_unreachable', message: 'The ledger did not answer.' });
    const err = await failure(b.call('sync'));
    expect(err).toMatchObject({ code: 'ledger_unreachable', message: 'The ledger did not answer.' });
    invoke.mockRejectedValueOnce('some string');
    expect(await failure(b.call('sync'))).toMatchObject({ code: 'internal', message: 'some string' });
    expect((fetch as unknown as ReturnType<typeof vi.fn>).mock.calls).toHaveLength(0);
  });
});
