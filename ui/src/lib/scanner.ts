// Reading a QR code from the camera: open the back camera, take a frame every ~120 ms, decode it, and on the
// first code found stop both the loop and the camera. The parts are injected (the camera, how frames are
// taken, the decoder) so tests drive it with fakes; the screen passes navigator.mediaDevices, a <video>
// with a canvas, and jsQR, which is loaded only when the camera is first used (it is not in the main bundle).

/** One frame's pixels, RGBA, as ImageData holds them. */
export type Frame = { data: Uint8ClampedArray; width: number; height: number };
/** The text of the QR code in the frame, or null when there is none. May throw; the loop then goes on. */
export type Decode = (frame: Frame) => string | null;
/** Frames from somewhere; null while there is no picture yet. */
export type FrameSource = { grab(): Frame | null };
/** What is used of a MediaStream. */
export type StreamLike = { getTracks(): { stop(): void }[] };
/** What is used of navigator.mediaDevices. */
export type MediaDevicesLike = { getUserMedia(constraints: MediaStreamConstraints): Promise<StreamLike> };

export const SCAN_INTERVAL_MS = 120;
export const CAMERA_CONSTRAINTS: MediaStreamConstraints = { video: { facingMode: 'environment' }, audio: false };

export type ScanLoop = { stop(): void; readonly running: boolean };

/**
 * Decodes a frame from `source` every `intervalMs` (the next one is scheduled after the current one is done,
 * so slow decodes never pile up) until a code is found or `stop()`. A hit stops the loop before `onHit`.
 */
export function scanLoop(opts: {
  source: FrameSource;
  decode: Decode;
  onHit: (text: string) => void;
  onError?: (e: unknown) => void;
  intervalMs?: number;
}): ScanLoop {
  const interval = opts.intervalMs ?? SCAN_INTERVAL_MS;
  let running = true;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const tick = () => {
    timer = undefined;
    if (!running) return;
    let text: string | null = null;
    try {
      const frame = opts.source.grab();
      if (frame) text = opts.decode(frame);
    } catch (e) {
      opts.onError?.(e);
    }
    if (!running) return;
    if (text) {
      running = false;
      opts.onHit(text);
      return;
    }
    timer = setTimeout(tick, interval);
  };
  timer = setTimeout(tick, interval);

  return {
    stop() {
      running = false;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
    get running() {
      return running;
    },
  };
}

// ---- the camera ----

export type CameraProblem = 'unsupported' | 'denied' | 'not-found' | 'busy' | 'failed';

export class CameraError extends Error {
  readonly problem: CameraProblem;
  constructor(problem: CameraProblem, message = cameraMessage(problem)) {
    super(message);
    this.name = 'CameraError';
    this.problem = problem;
  }
}

/** What went wrong, from getUserMedia's DOMException name. */
export function cameraProblem(e: unknown): CameraProblem {
  if (e instanceof CameraError) return e.problem;
  const name = e && typeof e === 'object' && 'name' in e ? String((e as { name: unknown }).name) : '';
  switch (name) {
    case 'NotAllowedError':
    case 'PermissionDeniedError':
    case 'SecurityError':
      return 'denied';
    case 'NotFoundError':
    case 'DevicesNotFoundError':
    case 'OverconstrainedError':
      return 'not-found';
    case 'NotReadableError':
    case 'TrackStartError':
    case 'AbortError':
      return 'busy';
    case 'TypeError':
      return 'unsupported';
    default:
      return 'failed';
  }
}

export function cameraMessage(problem: CameraProblem): string {
  switch (problem) {
    case 'unsupported':
      return 'This device or browser cannot use a camera here. Upload a picture of the code, or paste its text.';
    case 'denied':
      return 'Custodia may not use the camera. Allow camera access for this app in your settings, or upload a picture of the code, or paste its text.';
    case 'not-found':
      return 'No camera was found. Upload a picture of the code, or paste its text.';
    case 'busy':
      return 'The camera is in use by another app, or could not start. Close the other app and try again, or upload a picture of the code.';
    case 'failed':
      return 'The camera could not be started. Upload a picture of the code, or paste its text.';
  }
}

export function stopStream(stream: StreamLike | null | undefined): void {
  for (const track of stream?.getTracks() ?? []) {
    try {
      track.stop();
    } catch {
      // Already stopped.
    }
  }
}

export type CameraScan = {
  /** Resolves once frames are being decoded (or when stopped first); rejects with a CameraError. */
  ready: Promise<void>;
  /** Stops the loop and the camera. Safe to call at any time, more than once. */
  stop(): void;
  readonly stopped: boolean;
};

/**
 * Opens the camera, shows it (`attach`), loads the decoder, and scans until the first code: then the loop and
 * every camera track are stopped and `onHit` gets the text. Whatever fails, the camera is not left on.
 */
export function startCameraScan(opts: {
  mediaDevices: MediaDevicesLike | undefined | null;
  attach: (stream: StreamLike) => Promise<FrameSource>;
  loadDecoder: () => Promise<Decode>;
  onHit: (text: string) => void;
  onDecodeError?: (e: unknown) => void;
  intervalMs?: number;
  constraints?: MediaStreamConstraints;
}): CameraScan {
  let stopped = false;
  let stream: StreamLike | null = null;
  let loop: ScanLoop | null = null;

  const stop = () => {
    stopped = true;
    loop?.stop();
    loop = null;
    stopStream(stream);
    stream = null;
  };

  const ready = (async () => {
    const devices = opts.mediaDevices;
    if (!devices || typeof devices.getUserMedia !== 'function') throw new CameraError('unsupported');
    // The decoder loads while the camera starts; a failure to load is reported once the camera is shut.
    const decoder = opts.loadDecoder();
    decoder.catch(() => {});
    let s: StreamLike;
    try {
      s = await devices.getUserMedia(opts.constraints ?? CAMERA_CONSTRAINTS);
    } catch (e) {
      throw new CameraError(cameraProblem(e));
    }
    if (stopped) {
      stopStream(s);
      return;
    }
    stream = s;
    try {
      const source = await opts.attach(s);
      const decode = await decoder;
      if (stopped) return;
      loop = scanLoop({
        source,
        decode,
        intervalMs: opts.intervalMs,
        onError: opts.onDecodeError,
        onHit: (text) => {
          stop();
          opts.onHit(text);
        },
      });
    } catch (e) {
      if (stopped) return;
      stop();
      throw e instanceof CameraError ? e : new CameraError('failed');
    }
  })();

  return {
    ready,
    stop,
    get stopped() {
      return stopped;
    },
  };
}

// ---- the browser parts ----

/** Frames from a playing <video>, scaled so the longer side is at most `maxSide` pixels. */
export function videoFrames(video: HTMLVideoElement, maxSide = 800): FrameSource {
  const canvas = document.createElement('canvas');
  let ctx: CanvasRenderingContext2D | null = null;
  return {
    grab() {
      const w = video.videoWidth;
      const h = video.videoHeight;
      if (video.readyState < 2 || !w || !h) return null;
      const scale = Math.min(1, maxSide / Math.max(w, h));
      const cw = Math.max(1, Math.round(w * scale));
      const ch = Math.max(1, Math.round(h * scale));
      if (canvas.width !== cw || canvas.height !== ch) {
        canvas.width = cw;
        canvas.height = ch;
      }
      ctx ??= canvas.getContext('2d', { willReadFrequently: true });
      if (!ctx) return null;
      ctx.drawImage(video, 0, 0, cw, ch);
      return ctx.getImageData(0, 0, cw, ch);
    },
  };
}

/** Shows a camera stream in a <video> and waits until it plays. */
export async function playStream(video: HTMLVideoElement, stream: StreamLike): Promise<FrameSource> {
  video.muted = true;
  video.playsInline = true;
  video.srcObject = stream as MediaStream;
  await video.play();
  return videoFrames(video);
}

/** jsQR, loaded on first use. */
export async function loadJsqr(): Promise<Decode> {
  const { default: jsQR } = await import('jsqr');
  return (frame) => jsQR(frame.data, frame.width, frame.height)?.data || null;
}
