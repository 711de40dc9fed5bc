// A QR code picture as a video for Chromium's fake camera (`--use-file-for-fake-video-capture=FILE.y4m`):
// a small PNG decoder (node's zlib; 8-bit greyscale, grey+alpha, RGB, RGBA and palette images, which is what
// QR renderers write) and a Y4M writer that puts the picture, grey, in the middle of a white 4:2:0 frame.
// Chromium loops the file, so a few identical frames are enough.

import { inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Decodes a PNG to one grey byte per pixel (alpha composed over white). */
export function decodePngToGrey(png) {
  const buf = Buffer.from(png);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) throw new Error('not a PNG file');
  let width = 0;
  let height = 0;
  let bitDepth = 0;
  let colorType = 0;
  let interlace = 0;
  let palette = null;
  let transparency = null;
  const idat = [];
  for (let at = 8; at + 8 <= buf.length; ) {
    const length = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    const data = buf.subarray(at + 8, at + 8 + length);
    at += 12 + length;
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      bitDepth = data[8];
      colorType = data[9];
      interlace = data[12];
    } else if (type === 'PLTE') palette = data;
    else if (type === 'tRNS') transparency = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
  }
  if (!width || !height) throw new Error('PNG without IHDR');
  if (interlace !== 0) throw new Error('interlaced PNGs are not supported');
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colorType];
  if (!channels) throw new Error(`PNG colour type ${colorType} is not supported`);
  if (bitDepth !== 8 && !(bitDepth < 8 && (colorType === 0 || colorType === 3))) {
    throw new Error(`PNG bit depth ${bitDepth} with colour type ${colorType} is not supported`);
  }
  const bitsPerPixel = channels * bitDepth;
  const stride = Math.ceil((width * bitsPerPixel) / 8);
  const bpp = Math.max(1, bitsPerPixel >> 3);
  const raw = inflateSync(Buffer.concat(idat));
  if (raw.length < height * (stride + 1)) throw new Error('PNG image data is too short');

  // Undo the per-row filters.
  const rows = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = rows.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? rows.subarray((y - 1) * stride, y * stride) : null;
    for (let x = 0; x < stride; x++) {
      const a = x >= bpp ? out[x - bpp] : 0;
      const b = prev ? prev[x] : 0;
      const c = prev && x >= bpp ? prev[x - bpp] : 0;
      let v = src[x];
      switch (filter) {
        case 0:
          break;
        case 1:
          v += a;
          break;
        case 2:
          v += b;
          break;
        case 3:
          v += (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`bad PNG filter ${filter}`);
      }
      out[x] = v & 0xff;
    }
  }

  const grey = new Uint8Array(width * height);
  const over = (value, alpha) => Math.round((value * alpha + 255 * (255 - alpha)) / 255);
  for (let y = 0; y < height; y++) {
    const row = rows.subarray(y * stride, (y + 1) * stride);
    for (let x = 0; x < width; x++) {
      let value;
      if (bitDepth < 8) {
        const bit = x * bitDepth;
        const sample = (row[bit >> 3] >> (8 - bitDepth - (bit & 7))) & ((1 << bitDepth) - 1);
        if (colorType === 3) {
          value = paletteGrey(palette, transparency, sample, over);
        } else {
          value = Math.round((sample * 255) / ((1 << bitDepth) - 1));
        }
      } else {
        const i = x * channels;
        switch (colorType) {
          case 0:
            value = row[i];
            break;
          case 4:
            value = over(row[i], row[i + 1]);
            break;
          case 2:
            value = luma(row[i], row[i + 1], row[i + 2]);
            break;
          case 6:
            value = over(luma(row[i], row[i + 1], row[i + 2]), row[i + 3]);
            break;
          case 3:
            value = paletteGrey(palette, transparency, row[i], over);
            break;
        }
      }
      grey[y * width + x] = value;
    }
  }
  return { width, height, grey };
}

function luma(r, g, b) {
  return Math.round(0.299 * r + 0.587 * g + 0.114 * b);
}

function paletteGrey(palette, transparency, index, over) {
  if (!palette || index * 3 + 2 >= palette.length) throw new Error('PNG palette index out of range');
  const v = luma(palette[index * 3], palette[index * 3 + 1], palette[index * 3 + 2]);
  const alpha = transparency && index < transparency.length ? transparency[index] : 255;
  return over(v, alpha);
}

const even = (n) => n + (n % 2);

/**
 * A Y4M (YUV4MPEG2, 4:2:0) video of `frames` identical frames, white, with the grey picture in the middle,
 * enlarged by a whole factor to about `fill` of the frame. The frame is `width`x`height` (made even), or, by
 * default, 640x480 or as much larger as the picture needs, so a picture is never shrunk.
 */
export function greyToY4m({ width: w, height: h, grey }, { width, height, frames = 5, fps = 10, fill = 0.85 } = {}) {
  const W = even(width ?? Math.max(640, Math.ceil(w / fill)));
  const H = even(height ?? Math.max(480, Math.ceil(h / fill)));
  const fit = Math.min((W * fill) / w, (H * fill) / h);
  // Whole multiples when enlarging keep every QR module the same size.
  const scale = fit >= 1 ? Math.floor(fit) : fit;
  const sw = Math.max(1, Math.floor(w * scale));
  const sh = Math.max(1, Math.floor(h * scale));
  const left = Math.floor((W - sw) / 2);
  const top = Math.floor((H - sh) / 2);
  const yPlane = Buffer.alloc(W * H, 255);
  for (let y = 0; y < sh; y++) {
    const sy = Math.min(h - 1, Math.floor(y / scale));
    for (let x = 0; x < sw; x++) {
      const sx = Math.min(w - 1, Math.floor(x / scale));
      yPlane[(top + y) * W + left + x] = grey[sy * w + sx];
    }
  }
  const chroma = Buffer.alloc((W / 2) * (H / 2), 128);
  const header = Buffer.from(`YUV4MPEG2 W${W} H${H} F${fps}:1 Ip A1:1 C420\n`, 'latin1');
  const frame = Buffer.concat([Buffer.from('FRAME\n', 'latin1'), yPlane, chroma, chroma]);
  return Buffer.concat([header, ...Array.from({ length: frames }, () => frame)]);
}

/** A QR code PNG as a Y4M video for Chromium's fake camera. */
export function pngToY4m(png, options) {
  return greyToY4m(decodePngToGrey(png), options);
}

/** Chromium's flags for a fake camera that shows `y4mFile` (and a fake, auto-accepted permission prompt). */
export function fakeCameraArgs(y4mFile) {
  return [
    '--use-fake-device-for-media-stream',
    '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-video-capture=${y4mFile}`,
  ];
}
