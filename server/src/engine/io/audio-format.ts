/**
 * Format detection from the first bytes of a file, never from its extension: a FLAC saved as .wav still decodes,
 * and an Ogg or AAC file gets "not supported" instead of a confusing decoder error.
 */
import { EngineError } from '../errors';
import { id3v2Length, parseMpegHeader } from './audio-codecs';
import { isWav } from './audio-wav';

export type AudioFormat = 'wav' | 'flac' | 'mp3';

/** Containers that are audio but that this engine does not decode, by their magic bytes. */
const UNSUPPORTED: { name: string; test: (b: Uint8Array) => boolean }[] = [
  { name: 'Ogg (Vorbis/Opus)', test: (b) => ascii(b, 0, 4) === 'OggS' },
  { name: 'big-endian RIFX WAV', test: (b) => ascii(b, 0, 4) === 'RIFX' },
  { name: 'AIFF', test: (b) => ascii(b, 0, 4) === 'FORM' && /^AIF[FC]$/.test(ascii(b, 8, 4)) },
  { name: 'Sun/NeXT AU', test: (b) => ascii(b, 0, 4) === '.snd' },
  { name: 'MP4/M4A', test: (b) => ascii(b, 4, 4) === 'ftyp' },
  { name: 'Core Audio (CAF)', test: (b) => ascii(b, 0, 4) === 'caff' },
  { name: 'WavPack', test: (b) => ascii(b, 0, 4) === 'wvpk' },
  { name: "Monkey's Audio", test: (b) => ascii(b, 0, 4) === 'MAC ' },
  { name: 'AMR', test: (b) => ascii(b, 0, 5) === '#!AMR' },
  { name: 'Matroska/WebM', test: (b) => b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3 },
  { name: 'ASF/WMA', test: (b) => b[0] === 0x30 && b[1] === 0x26 && b[2] === 0xb2 && b[3] === 0x75 },
  { name: 'AAC (ADTS)', test: (b) => b[0] === 0xff && (b[1]! & 0xf6) === 0xf0 },
];

export function sniffAudioFormat(bytes: Uint8Array, file: string): AudioFormat {
  if (bytes.length === 0) throw new EngineError('bad-audio', `${file}: file is empty`, file);
  if (isWav(bytes)) return 'wav';
  // A leading ID3v2 tag is allowed before FLAC and MP3 data alike.
  const at = id3v2Length(bytes);
  if (ascii(bytes, at, 4) === 'fLaC') return 'flac';
  if (parseMpegHeader(bytes, at)) return 'mp3';
  const head = at > 0 ? bytes.subarray(at) : bytes;
  for (const u of UNSUPPORTED) {
    if (head.length >= 8 && u.test(head)) {
      throw new EngineError('unsupported-audio', `${file}: ${u.name} audio is not supported; convert it to WAV, FLAC or MP3`, file);
    }
  }
  if (ascii(bytes, 0, 4) === 'RIFF') {
    throw new EngineError('bad-audio', `${file}: RIFF file of form "${ascii(bytes, 8, 4)}", not WAVE audio`, file);
  }
  if (at > 0 && at >= bytes.length) throw new EngineError('bad-audio', `${file}: ID3 tag with no audio after it`, file);
  const first = Array.from(head.subarray(0, 8), (x) => x.toString(16).padStart(2, '0')).join(' ');
  throw new EngineError('bad-audio', `${file}: not a WAV, FLAC or MP3 file (starts with bytes ${first})`, file);
}

function ascii(b: Uint8Array, at: number, n: number): string {
  if (at + n > b.length) return '';
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(b[at + i]!);
  return s;
}
