import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  CAMERA_CONSTRAINTS,
  CameraError,
  cameraMessage,
  cameraProblem,
  scanLoop,
  startCameraScan,
  type Decode,
  type Frame,
  type FrameSource,
  type MediaDevicesLike,
} from './scanner';

const FRAME: Frame = { data: new Uint8ClampedArray(4 * 4 * 4), width: 4, height: 4 };

/** A frame source that counts grabs; `blankFor` grabs give no picture yet. */
function frames(blankFor = 0) {
  const source = {
    grabs: 0,
    grab() {
      source.grabs++;
      return source.grabs <= blankFor ? null : FRAME;
    },
  };
  return source;
}

/** A decoder that answers from a script: a string is a hit, null nothing, an Error is thrown. */
function scripted(script: (string | null | Error)[]) {
  const calls: Frame[] = [];
  const decode: Decode = (f) => {
    calls.push(f);
    const next = script.length ? script.shift()! : null;
    if (next instanceof Error) throw next;
    return next;
  };
  return { decode, calls };
}

/** A camera whose stream's tracks record being stopped. */
function fakeCamera() {
  const tracks = [{ stopped: 0, stop() { this.stopped++; } }, { stopped: 0, stop() { this.stopped++; } }];
  const stream = { getTracks: () => tracks };
  const asked: MediaStreamConstraints[] = [];
  const devices: MediaDevicesLike = {
    getUserMedia: async (c) => {
      asked.push(c);
      return stream;
    },
  };
  const allStopped = () => tracks.every((t) => t.stopped >= 1);
  return { devices, stream, tracks, asked, allStopped };
}

function domError(name: string) {
  return Object.assign(new Error(name), { name });
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('scanLoop', () => {
  it('decodes a frame every interval until a hit, then stops', async () => {
    const source = frames();
    const { decode, calls } = scripted([null, null, 'CU1:R:ABC']);
    const onHit = vi.fn();
    const loop = scanLoop({ source, decode, onHit, intervalMs: 120 });
    expect(calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(120);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(240);
    expect(calls).toHaveLength(3);
    expect(onHit).toHaveBeenCalledExactlyOnceWith('CU1:R:ABC');
    expect(loop.running).toBe(false);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toHaveLength(3);
    expect(source.grabs).toBe(3);
  });

  it('keeps scanning through decode errors and frames that are not ready', async () => {
    const source = frames(2);
    const { decode, calls } = scripted([new Error('bad frame'), null, new RangeError('odd'), 'hello']);
    const onHit = vi.fn();
    const onError = vi.fn();
    scanLoop({ source, decode, onHit, onError, intervalMs: 100 });
    await vi.advanceTimersByTimeAsync(100 * 5);
    expect(source.grabs).toBe(5);
    expect(calls).toHaveLength(3);
    expect(onError).toHaveBeenCalledTimes(2);
    expect(onHit).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(100);
    expect(onHit).toHaveBeenCalledWith('hello');
  });

  it('treats a grab that throws like a bad frame', async () => {
    let n = 0;
    const source: FrameSource = {
      grab() {
        if (++n === 1) throw new Error('canvas tainted');
        return FRAME;
      },
    };
    const onHit = vi.fn();
    scanLoop({ source, decode: () => 'x', onHit, intervalMs: 50 });
    await vi.advanceTimersByTimeAsync(100);
    expect(onHit).toHaveBeenCalledWith('x');
  });

  it('stop() ends it for good', async () => {
    const source = frames();
    const { decode, calls } = scripted([]);
    const loop = scanLoop({ source, decode, onHit: vi.fn(), intervalMs: 120 });
    await vi.advanceTimersByTimeAsync(360);
    expect(calls).toHaveLength(3);
    loop.stop();
    loop.stop();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toHaveLength(3);
    expect(loop.running).toBe(false);
  });

  it('an empty decode result is no hit', async () => {
    const onHit = vi.fn();
    scanLoop({ source: frames(), decode: () => '', onHit, intervalMs: 10 });
    await vi.advanceTimersByTimeAsync(100);
    expect(onHit).not.toHaveBeenCalled();
  });
});

describe('startCameraScan', () => {
  it('asks for the back camera, scans, and on a hit stops the loop and every camera track', async () => {
    const cam = fakeCamera();
    const source = frames();
    const { decode, calls } = scripted([null, 'CU1:R:XYZ']);
    const attach = vi.fn(async () => source);
    const onHit = vi.fn((_text: string) => {
      // By the time the screen hears of the hit, the camera is off.
      expect(cam.allStopped()).toBe(true);
    });
    const scan = startCameraScan({ mediaDevices: cam.devices, attach, loadDecoder: async () => decode, onHit, intervalMs: 120 });
    await scan.ready;
    expect(cam.asked).toEqual([CAMERA_CONSTRAINTS]);
    expect(CAMERA_CONSTRAINTS.video).toEqual({ facingMode: 'environment' });
    expect(attach).toHaveBeenCalledWith(cam.stream);
    expect(cam.allStopped()).toBe(false);

    await vi.advanceTimersByTimeAsync(240);
    expect(onHit).toHaveBeenCalledExactlyOnceWith('CU1:R:XYZ');
    expect(scan.stopped).toBe(true);
    expect(cam.tracks.map((t) => t.stopped)).toEqual([1, 1]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toHaveLength(2);
  });

  it('decode errors keep it scanning with the camera on', async () => {
    const cam = fakeCamera();
    const { decode } = scripted([new Error('x'), new Error('y'), null]);
    const onHit = vi.fn();
    const onDecodeError = vi.fn();
    const scan = startCameraScan({
      mediaDevices: cam.devices,
      attach: async () => frames(),
      loadDecoder: async () => decode,
      onHit,
      onDecodeError,
      intervalMs: 120,
    });
    await scan.ready;
    await vi.advanceTimersByTimeAsync(120 * 10);
    expect(onDecodeError).toHaveBeenCalledTimes(2);
    expect(onHit).not.toHaveBeenCalled();
    expect(scan.stopped).toBe(false);
    expect(cam.allStopped()).toBe(false);
    scan.stop();
    expect(cam.allStopped()).toBe(true);
  });

  it('stop() while the camera is opening turns it off as soon as it arrives', async () => {
    const cam = fakeCamera();
    let give: (s: typeof cam.stream) => void = () => {};
    const devices: MediaDevicesLike = { getUserMedia: () => new Promise((r) => (give = r)) };
    const attach = vi.fn(async () => frames());
    const scan = startCameraScan({ mediaDevices: devices, attach, loadDecoder: async () => () => null, onHit: vi.fn() });
    scan.stop();
    give(cam.stream);
    await scan.ready;
    expect(cam.allStopped()).toBe(true);
    expect(attach).not.toHaveBeenCalled();
  });

  it('no camera API at all: rejects with "unsupported" and asks for nothing', async () => {
    const loadDecoder = vi.fn(async () => () => null);
    for (const mediaDevices of [undefined, null, {} as MediaDevicesLike]) {
      const scan = startCameraScan({ mediaDevices, attach: vi.fn(), loadDecoder, onHit: vi.fn() });
      await expect(scan.ready).rejects.toMatchObject({ name: 'CameraError', problem: 'unsupported' });
    }
    expect(loadDecoder).not.toHaveBeenCalled();
  });

  it('no camera, or permission refused: rejects with the kind of problem and a message offering the other ways', async () => {
    const cases: [string, string][] = [
      ['NotFoundError', 'not-found'],
      ['OverconstrainedError', 'not-found'],
      ['NotAllowedError', 'denied'],
      ['SecurityError', 'denied'],
      ['NotReadableError', 'busy'],
      ['Weird', 'failed'],
    ];
    for (const [name, problem] of cases) {
      const attach = vi.fn();
      const scan = startCameraScan({
        mediaDevices: { getUserMedia: () => Promise.reject(domError(name)) },
        attach,
        loadDecoder: async () => () => null,
        onHit: vi.fn(),
      });
      const err = await scan.ready.then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CameraError);
      expect((err as CameraError).problem).toBe(problem);
      expect((err as CameraError).message).toMatch(/picture of the code/);
      expect(attach).not.toHaveBeenCalled();
    }
  });

  it('if showing the video or loading the decoder fails, the camera is turned off', async () => {
    const cam = fakeCamera();
    const scan = startCameraScan({
      mediaDevices: cam.devices,
      attach: async () => {
        throw domError('NotSupportedError');
      },
      loadDecoder: async () => () => null,
      onHit: vi.fn(),
    });
    await expect(scan.ready).rejects.toMatchObject({ problem: 'failed' });
    expect(cam.allStopped()).toBe(true);

    const cam2 = fakeCamera();
    const scan2 = startCameraScan({
      mediaDevices: cam2.devices,
      attach: async () => frames(),
      loadDecoder: () => Promise.reject(new Error('chunk failed to load')),
      onHit: vi.fn(),
    });
    await expect(scan2.ready).rejects.toBeInstanceOf(CameraError);
    expect(cam2.allStopped()).toBe(true);
  });
});

describe('camera messages', () => {
  it('maps DOMException names and always offers another way', () => {
    expect(cameraProblem(domError('PermissionDeniedError'))).toBe('denied');
    expect(cameraProblem(new TypeError('no constraints'))).toBe('unsupported');
    expect(cameraProblem('nonsense')).toBe('failed');
    expect(cameraProblem(new CameraError('busy'))).toBe('busy');
    for (const p of ['unsupported', 'denied', 'not-found', 'busy', 'failed'] as const) {
      expect(cameraMessage(p)).toMatch(/picture of the code/);
    }
    expect(cameraMessage('denied')).toMatch(/Allow camera access/);
    expect(cameraMessage('not-found')).toMatch(/No camera/);
  });
});

describe('loadJsqr', () => {
  it('loads jsQR on demand; a frame without a code decodes to nothing', async () => {
    vi.useRealTimers();
    const { loadJsqr } = await import('./scanner');
    const decode = await loadJsqr();
    const white = new Uint8ClampedArray(64 * 64 * 4).fill(255);
    expect(decode({ data: white, width: 64, height: 64 })).toBeNull();
  });
});
