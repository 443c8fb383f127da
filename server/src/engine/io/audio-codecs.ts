/**
 * FLAC and MP3 through the WASM ports of libFLAC (@wasm-audio-decoders/flac) and mpg123 (mpg123-decoder).
 * Both are fed the file in 1 MiB pieces and mixed down to mono piece by piece, so memory stays at the mono
 * output (checked against the length limits of audio-types.ts as it grows) rather than all channels of the whole file, and the event
 * loop gets a turn between pieces. Neither decoder reports a cut-off file, so the lengths their headers promise
 * (FLAC STREAMINFO, the Xing/Info frame count of an MP3) are compared with what was decoded.
 */
import { FLACDecoder } from '@wasm-audio-decoders/flac';
import { MPEGDecoder } from 'mpg123-decoder';
import { EngineError, describeError } from '../errors';
import { isTooLong, mixPlanar, tooLong, type PcmAudio } from './audio-types';

const PIECE_BYTES = 1 << 20;

interface Piece {
  channelData: Float32Array[];
  samplesDecoded: number;
  sampleRate: number;
  bitDepth?: number;
  errors: { message: string; frameNumber: number }[];
}

/** Collects mono pieces, refusing to grow past the frame limit. */
class MonoSink {
  private parts: Float32Array[] = [];
  frames = 0;
  sampleRate = 0;
  constructor(
    private readonly file: string,
    private readonly codec: string,
  ) {}

  /** `rescale`: fix up each channel before the mixdown (FLAC's integer scaling, below). */
  add(p: Piece, channels: number, rescale?: (x: Float32Array, bits: number) => void): void {
    if (p.errors.length > 0) {
      const e = p.errors[0]!;
      throw new EngineError('bad-audio', `${this.file}: corrupt ${this.codec} stream at frame ${e.frameNumber}: ${e.message}`, this.file);
    }
    if (p.samplesDecoded === 0) return;
    if (this.sampleRate === 0) this.sampleRate = p.sampleRate;
    else if (p.sampleRate !== this.sampleRate) {
      throw new EngineError(
        'unsupported-audio',
        `${this.file}: ${this.codec} sample rate changes mid-stream (${this.sampleRate} → ${p.sampleRate} Hz)`,
        this.file,
      );
    }
    this.frames += p.samplesDecoded;
    if (isTooLong(this.frames, this.sampleRate)) throw tooLong(this.file, this.frames, this.sampleRate);
    const used = p.channelData.slice(0, Math.max(1, Math.min(channels, p.channelData.length)));
    if (rescale && p.bitDepth) for (const ch of used) rescale(ch.subarray(0, p.samplesDecoded), p.bitDepth);
    this.parts.push(mixPlanar(used, p.samplesDecoded));
  }

  finish(): Float32Array {
    if (this.parts.length === 1) return this.parts[0]!;
    const out = new Float32Array(this.frames);
    let o = 0;
    for (const part of this.parts) {
      out.set(part, o);
      o += part.length;
    }
    return out;
  }
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * The FLAC decoder divides b-bit integers by 2^(b-1) - 1; WAV readers (this one, soundfile, torchaudio) divide by
 * 2^(b-1). Recovering the integer and dividing by 2^(b-1) makes a FLAC decode bit-identical to its WAV, so the
 * container never changes the probe statistics.
 */
function flacToWavScale(x: Float32Array, bits: number): void {
  const full = 2 ** (bits - 1);
  const dec = full - 1;
  for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i]! * dec) / full;
}

export async function decodeFlac(bytes: Uint8Array, file: string): Promise<PcmAudio> {
  const info = readStreamInfo(bytes);
  if (info && isTooLong(info.totalFrames, info.sampleRate)) throw tooLong(file, info.totalFrames, info.sampleRate);
  const sink = new MonoSink(file, 'FLAC');
  const decoder = new FLACDecoder();
  let channels = info?.channels ?? 0;
  let guard: DecoderGuard;
  try {
    await decoder.ready;
    guard = new DecoderGuard(decoder, file, 'FLAC');
    for (let o = 0; o < bytes.length; o += PIECE_BYTES) {
      const p = (await guard.run(() => decoder.decode(bytes.subarray(o, o + PIECE_BYTES)))) as Piece;
      channels ||= p.channelData.length;
      sink.add(p, channels || p.channelData.length, flacToWavScale);
      await turn();
    }
    const last = (await guard.run(() => decoder.flush())) as Piece;
    channels ||= last.channelData.length;
    sink.add(last, channels || last.channelData.length, flacToWavScale);
  } catch (e) {
    throw wrap(e, file, 'FLAC');
  } finally {
    decoder.free();
  }
  if (sink.frames === 0) throw new EngineError('bad-audio', `${file}: FLAC stream holds no decodable audio (truncated or corrupt)`, file);
  if (info && info.totalFrames > 0 && sink.frames < info.totalFrames) {
    throw new EngineError(
      'bad-audio',
      `${file}: FLAC stream ends after ${sink.frames} of ${info.totalFrames} samples (truncated or corrupt file)`,
      file,
    );
  }
  return { samples: sink.finish(), sampleRate: sink.sampleRate, channels };
}

export async function decodeMp3(bytes: Uint8Array, file: string): Promise<PcmAudio> {
  const header = findMpegHeader(bytes);
  // mpg123-decoder always returns two channels; a mono file's second one is a copy, so the header decides.
  const channels = header?.channels ?? 2;
  const sink = new MonoSink(file, 'MP3');
  const decoder = new MPEGDecoder();
  try {
    await decoder.ready;
    const guard = new DecoderGuard(decoder, file, 'MP3');
    for (let o = 0; o < bytes.length; o += PIECE_BYTES) {
      sink.add(guard.run(() => decoder.decode(bytes.subarray(o, o + PIECE_BYTES))) as Piece, channels);
      await turn();
    }
  } catch (e) {
    throw wrap(e, file, 'MP3');
  } finally {
    decoder.free();
  }
  if (sink.frames === 0) throw new EngineError('bad-audio', `${file}: MP3 stream holds no decodable audio frames`, file);
  // The Xing/Info frame count bounds the length; encoder delay and padding take off less than two frames.
  if (header?.xingFrames) {
    const expected = header.xingFrames * header.samplesPerFrame;
    if (sink.frames < expected - 2 * header.samplesPerFrame - 1) {
      throw new EngineError(
        'bad-audio',
        `${file}: MP3 stream ends after ${sink.frames} of about ${expected} samples (truncated file)`,
        file,
      );
    }
  }
  return { samples: sink.finish(), sampleRate: sink.sampleRate, channels };
}

/** More decoder errors than this in one file means garbage, not a glitch: stop (mpg123 can otherwise loop on one). */
const MAX_DECODER_ERRORS = 256;

/**
 * Runs the WASM decoders' calls so that what they say is ours: their console.error lines (libFLAC's and mpg123's
 * own diagnostics) are captured instead of printed, and their error list is capped — the library's addError is
 * wrapped to throw past MAX_DECODER_ERRORS, which ends a decode loop that would otherwise never return.
 */
class DecoderGuard {
  private errors = 0;
  readonly said: string[] = [];

  constructor(
    decoder: object,
    private readonly file: string,
    private readonly codec: string,
  ) {
    // mpg123-decoder keeps its helper on the decoder; FLACDecoder on the inner frame decoder it wraps.
    type WithCommon = { _common?: { addError?: (...args: unknown[]) => void }; _decoder?: WithCommon };
    const common = (decoder as WithCommon)._common ?? (decoder as WithCommon)._decoder?._common;
    const addError = common?.addError;
    if (common && addError) {
      common.addError = (...args: unknown[]) => {
        if (++this.errors > MAX_DECODER_ERRORS) {
          throw new EngineError(
            'bad-audio',
            `${this.file}: corrupt ${this.codec} stream: the decoder reported more than ${MAX_DECODER_ERRORS} errors${this.said[0] ? ` (first: ${this.said[0]})` : ''}`,
            this.file,
          );
        }
        addError(...args);
      };
    }
  }

  /** Calls `fn` with console.error/warn/log captured (decoding is synchronous inside, so nothing else prints meanwhile). */
  run<T>(fn: () => T): T {
    const saved = { error: console.error, warn: console.warn, log: console.log };
    const capture = (...args: unknown[]) => {
      if (this.said.length < 8) this.said.push(args.map(String).join(' ').replace(/\s+/g, ' ').trim());
    };
    console.error = console.warn = console.log = capture;
    try {
      return fn();
    } finally {
      Object.assign(console, saved);
    }
  }
}

function wrap(e: unknown, file: string, codec: string): EngineError {
  if (e instanceof EngineError) return e;
  const why = describeError(e);
  return new EngineError('bad-audio', `${file}: ${codec} decoder failed: ${why.split('\n')[0]}`, file, { cause: e });
}

/** FLAC STREAMINFO (always the first metadata block): sample rate, channel count and total samples (0 = unknown). */
function readStreamInfo(bytes: Uint8Array): { channels: number; totalFrames: number; sampleRate: number } | undefined {
  const at = flacStart(bytes);
  if (at < 0 || bytes.length < at + 8 + 34 || (bytes[at + 4]! & 0x7f) !== 0) return undefined;
  const s = at + 8; // STREAMINFO body
  // bits: 16 min block, 16 max block, 24 min frame, 24 max frame, 20 rate, 3 channels-1, 5 bps-1, 36 total samples
  const sampleRate = (bytes[s + 10]! << 12) | (bytes[s + 11]! << 4) | (bytes[s + 12]! >> 4);
  const channels = ((bytes[s + 12]! >> 1) & 0x07) + 1;
  const totalFrames =
    (bytes[s + 13]! & 0x0f) * 2 ** 32 + ((bytes[s + 14]! << 24) >>> 0) + (bytes[s + 15]! << 16) + (bytes[s + 16]! << 8) + bytes[s + 17]!;
  return { channels, totalFrames, sampleRate };
}

function flacStart(bytes: Uint8Array): number {
  const at = id3v2Length(bytes);
  return bytes[at] === 0x66 && bytes[at + 1] === 0x4c && bytes[at + 2] === 0x61 && bytes[at + 3] === 0x43 ? at : -1;
}

/**
 * Where the audio starts: after a leading ID3v2 tag and the zero padding some taggers leave beyond its declared
 * size (0 when there is no tag).
 */
export function id3v2Length(bytes: Uint8Array): number {
  if (bytes.length < 10 || bytes[0] !== 0x49 || bytes[1] !== 0x44 || bytes[2] !== 0x33) return 0;
  const size = ((bytes[6]! & 0x7f) << 21) | ((bytes[7]! & 0x7f) << 14) | ((bytes[8]! & 0x7f) << 7) | (bytes[9]! & 0x7f);
  let at = 10 + size + (bytes[5]! & 0x10 ? 10 : 0);
  const limit = Math.min(bytes.length, at + 65536);
  while (at < limit && bytes[at] === 0) at++;
  return at;
}

export interface MpegHeader {
  version: 1 | 2 | 2.5;
  layer: 1 | 2 | 3;
  channels: 1 | 2;
  samplesPerFrame: number;
  /** Frame count from a Xing/Info tag in the first frame, when there is one. */
  xingFrames?: number;
}

/** Parses an MPEG audio frame header at `at`; undefined if these 4 bytes are not one. */
export function parseMpegHeader(bytes: Uint8Array, at: number): MpegHeader | undefined {
  if (at + 4 > bytes.length) return undefined;
  const b1 = bytes[at + 1]!,
    b2 = bytes[at + 2]!,
    b3 = bytes[at + 3]!;
  if (bytes[at] !== 0xff || (b1 & 0xe0) !== 0xe0) return undefined;
  const versionBits = (b1 >> 3) & 3;
  const layerBits = (b1 >> 1) & 3;
  if (versionBits === 1 || layerBits === 0) return undefined; // reserved version; layer 0 is AAC ADTS
  if (b2 >> 4 === 0x0f || ((b2 >> 2) & 3) === 3) return undefined; // bad bitrate index / reserved rate
  const version = versionBits === 3 ? 1 : versionBits === 2 ? 2 : 2.5;
  const layer = (4 - layerBits) as 1 | 2 | 3;
  const channels = b3 >> 6 === 3 ? 1 : 2;
  const samplesPerFrame = layer === 1 ? 384 : layer === 2 || version === 1 ? 1152 : 576;
  return { version, layer, channels, samplesPerFrame };
}

function findMpegHeader(bytes: Uint8Array): MpegHeader | undefined {
  const at = id3v2Length(bytes);
  const h = parseMpegHeader(bytes, at);
  if (!h) return undefined;
  // The Xing/Info tag sits after the side information, whose size depends on version and channel mode.
  const side = h.version === 1 ? (h.channels === 1 ? 17 : 32) : h.channels === 1 ? 9 : 17;
  const x = at + 4 + side;
  if (x + 12 <= bytes.length) {
    const tag = String.fromCharCode(bytes[x]!, bytes[x + 1]!, bytes[x + 2]!, bytes[x + 3]!);
    if ((tag === 'Xing' || tag === 'Info') && bytes[x + 7]! & 1) {
      h.xingFrames = ((bytes[x + 8]! << 24) >>> 0) + (bytes[x + 9]! << 16) + (bytes[x + 10]! << 8) + bytes[x + 11]!;
    }
  }
  return h;
}
