/**
 * A small RIFF/WAVE reader: integer PCM (8-bit unsigned, 16/24/32-bit signed), IEEE float 32/64,
 * WAVE_FORMAT_EXTENSIBLE wrapping either, RF64/BW64 sizes from ds64, unknown chunks skipped with their pad byte.
 * Decodes straight into a mono mixdown (average of channels) so a stereo file never exists twice in memory.
 * Every size in the header is checked against the bytes actually present before anything is allocated.
 */
import { EngineError } from '../errors';
import { isTooLong, MAX_CHANNELS, MAX_SAMPLE_RATE, tooLong, type PcmAudio } from './audio-types';

const FORMAT_PCM = 0x0001;
/** Real files carry a handful of chunks (fmt, fact, LIST, bext, data); a file of millions of empty ones is crafted. */
const MAX_CHUNKS = 10_000;
const FORMAT_FLOAT = 0x0003;
const FORMAT_EXTENSIBLE = 0xfffe;

/** Names for the format codes people actually meet, so the message says more than a number. */
const FORMAT_NAMES: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  0x0006: 'A-law',
  0x0007: 'µ-law',
  0x0011: 'IMA ADPCM',
  0x0031: 'GSM 6.10',
  0x0050: 'MPEG',
  0x0055: 'MPEG Layer 3',
  0x0161: 'WMA',
  0x1610: 'AAC',
  0xf1ac: 'FLAC',
};

/** KSDATAFORMAT_SUBTYPE_* GUIDs are the format code followed by these 14 fixed bytes. */
const EXTENSIBLE_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];

interface WavFormat {
  code: typeof FORMAT_PCM | typeof FORMAT_FLOAT;
  channels: number;
  sampleRate: number;
  bytesPerSample: number;
}

export function decodeWav(bytes: Uint8Array, file: string): PcmAudio {
  const bad = (msg: string) => new EngineError('bad-audio', `${file}: ${msg}`, file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  if (len < 12) throw bad(`file is too short for a WAV header (${len} bytes)`);
  const form = fourcc(bytes, 0);
  const rf64 = form === 'RF64' || form === 'BW64';

  let fmt: WavFormat | undefined;
  let ds64DataSize: number | undefined;
  let dataStart = -1;
  let dataBytes = 0;
  let pos = 12;
  for (let chunks = 0; pos + 8 <= len; chunks++) {
    if (chunks >= MAX_CHUNKS) throw bad(`WAV file has more than ${MAX_CHUNKS} chunks before its data (corrupt header)`);
    const id = fourcc(bytes, pos);
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === 'data') {
      if (!fmt) throw bad('WAV data chunk comes before the fmt chunk');
      const remaining = len - body;
      // Streaming writers leave 0 or 0xFFFFFFFF here and never come back to patch it: read to end of file.
      if (rf64 && size === 0xffffffff && ds64DataSize !== undefined) dataBytes = ds64DataSize;
      else if (size === 0 || size === 0xffffffff) dataBytes = remaining;
      else dataBytes = size;
      if (dataBytes > remaining) {
        throw bad(`WAV data chunk declares ${dataBytes} bytes but only ${remaining} remain (truncated or corrupt file)`);
      }
      dataStart = body;
      break; // chunks after the samples (LIST, id3 …) carry nothing we use
    }
    if (body + size > len) {
      throw bad(`WAV "${printable(id)}" chunk at byte ${pos} declares ${size} bytes, past the end of the file (truncated header)`);
    }
    if (id === 'fmt ') fmt = parseFmt(view, body, size, file);
    else if (id === 'ds64' && rf64 && size >= 16) ds64DataSize = Number(view.getBigUint64(body + 8, true));
    pos = body + size + (size & 1); // chunks are word-aligned: an odd size is followed by one pad byte
  }
  if (!fmt) throw bad('WAV file has no fmt chunk');
  if (dataStart < 0) throw bad('WAV file has no data chunk');

  const blockAlign = fmt.channels * fmt.bytesPerSample;
  const frames = Math.floor(dataBytes / blockAlign);
  if (frames === 0) throw bad('WAV file holds no samples');
  if (isTooLong(frames, fmt.sampleRate)) throw tooLong(file, frames, fmt.sampleRate);
  return { samples: mixdown(view, dataStart, frames, fmt), sampleRate: fmt.sampleRate, channels: fmt.channels };
}

/** Checks the first 12 bytes: RIFF/RF64/BW64 container holding a WAVE form. */
export function isWav(bytes: Uint8Array): boolean {
  if (bytes.length < 12) return false;
  const form = fourcc(bytes, 0);
  return (form === 'RIFF' || form === 'RF64' || form === 'BW64') && fourcc(bytes, 8) === 'WAVE';
}

function parseFmt(view: DataView, body: number, size: number, file: string): WavFormat {
  const bad = (msg: string) => new EngineError('bad-audio', `${file}: ${msg}`, file);
  const unsupported = (msg: string) => new EngineError('unsupported-audio', `${file}: ${msg}`, file);
  if (size < 16) throw bad(`WAV fmt chunk is ${size} bytes, shorter than the 16 every WAV needs`);
  const tag = view.getUint16(body, true);
  const channels = view.getUint16(body + 2, true);
  const sampleRate = view.getUint32(body + 4, true);
  const blockAlign = view.getUint16(body + 12, true);
  const bits = view.getUint16(body + 14, true);

  let code = tag;
  if (tag === FORMAT_EXTENSIBLE) {
    if (size < 40) throw bad(`WAVE_FORMAT_EXTENSIBLE fmt chunk is ${size} bytes, shorter than 40`);
    code = view.getUint16(body + 24, true);
    for (let i = 0; i < EXTENSIBLE_GUID_TAIL.length; i++) {
      if (view.getUint8(body + 26 + i) !== EXTENSIBLE_GUID_TAIL[i]) {
        throw unsupported('WAV sub-format GUID is not a standard PCM or float one');
      }
    }
    // wValidBitsPerSample ≤ the container: samples are left-justified, so reading the container is exact.
  }
  if (code !== FORMAT_PCM && code !== FORMAT_FLOAT) {
    const name = FORMAT_NAMES[code];
    throw unsupported(
      `WAV format code 0x${code.toString(16).padStart(4, '0')}${name ? ` (${name})` : ''} is not supported; ` +
        'use integer PCM or IEEE float WAV, FLAC or MP3',
    );
  }
  if (channels < 1 || channels > MAX_CHANNELS) throw bad(`WAV header declares ${channels} channels (1–${MAX_CHANNELS} supported)`);
  if (sampleRate < 1 || sampleRate > MAX_SAMPLE_RATE) throw bad(`WAV header declares a sample rate of ${sampleRate} Hz`);
  const okBits = code === FORMAT_PCM ? [8, 16, 24, 32] : [32, 64];
  if (!okBits.includes(bits)) {
    throw unsupported(`${bits}-bit ${code === FORMAT_PCM ? 'integer PCM' : 'float'} WAV is not supported (${okBits.join('/')}-bit are)`);
  }
  const bytesPerSample = bits / 8;
  if (blockAlign !== channels * bytesPerSample) {
    throw bad(`WAV block align ${blockAlign} does not match ${channels} channels × ${bytesPerSample} bytes`);
  }
  return { code, channels, sampleRate, bytesPerSample };
}

/** Reads one sample at byte offset `p` as a float in [-1, 1). */
function sampleReader(view: DataView, fmt: WavFormat): (p: number) => number {
  if (fmt.code === FORMAT_FLOAT) {
    return fmt.bytesPerSample === 4 ? (p) => view.getFloat32(p, true) : (p) => view.getFloat64(p, true);
  }
  switch (fmt.bytesPerSample) {
    case 1:
      return (p) => (view.getUint8(p) - 128) / 128; // 8-bit WAV is unsigned
    case 2:
      return (p) => view.getInt16(p, true) / 32768;
    case 3:
      return (p) => (view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getInt8(p + 2) << 16)) / 8388608;
    default:
      return (p) => view.getInt32(p, true) / 2147483648;
  }
}

function mixdown(view: DataView, start: number, frames: number, fmt: WavFormat): Float32Array {
  const read = sampleReader(view, fmt);
  const out = new Float32Array(frames);
  const step = fmt.bytesPerSample;
  const c = fmt.channels;
  if (c === 1) {
    for (let i = 0, p = start; i < frames; i++, p += step) out[i] = read(p);
    return out;
  }
  for (let i = 0, p = start; i < frames; i++) {
    let sum = 0;
    for (let ch = 0; ch < c; ch++, p += step) sum += read(p);
    out[i] = sum / c;
  }
  return out;
}

function fourcc(bytes: Uint8Array, at: number): string {
  return String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);
}

function printable(id: string): string {
  return id.replace(/[^\x20-\x7e]/g, '?');
}
