/**
 * Audio input for probing and evaluation: decode WAV/FLAC/MP3 (format from magic bytes), mix down to mono,
 * resample to the model's rate, and list the audio files in folders. Every bad input is an EngineError whose
 * one-line message starts with the file's path.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';
import { decodeFlac, decodeMp3 } from './audio-codecs';
import { sniffAudioFormat } from './audio-format';
import { resample, type ResampleQuality } from './audio-resample';
import type { PcmAudio } from './audio-types';
import { notRegularFile, openRegularFile } from './regular-file';
import { decodeWav } from './audio-wav';

export { resample, type ResampleQuality } from './audio-resample';
export { MAX_AUDIO_SECONDS } from './audio-types';
export type { AudioFormat } from './audio-format';

export interface DecodedAudio {
  /** Mono: the average of the file's channels. */
  samples: Float32Array;
  sampleRate: number;
  /** Channels in the file, before the mixdown. */
  channels: number;
  durationSeconds: number;
}

/** Extensions picked up when a folder is listed (files named explicitly are decoded whatever their name). */
export const AUDIO_EXTENSIONS = ['.wav', '.flac', '.mp3'] as const;

/** Node's readFile refuses more than 2 GiB; say so plainly instead. */
const MAX_FILE_BYTES = 2 ** 31 - 1;

export async function decodeAudioFile(file: string): Promise<DecodedAudio> {
  const bytes = await readAudioBytes(file);
  const format = sniffAudioFormat(bytes, file);
  const pcm: PcmAudio =
    format === 'wav' ? decodeWav(bytes, file) : format === 'flac' ? await decodeFlac(bytes, file) : await decodeMp3(bytes, file);
  assertFinite(pcm, file);
  return { ...pcm, durationSeconds: pcm.samples.length / pcm.sampleRate };
}

/** Decode, mix down to mono and resample to `targetRate` (quality: see audio-resample.ts; default medium). */
export async function loadAudio(file: string, targetRate: number, opts: { quality?: ResampleQuality } = {}): Promise<Float32Array> {
  const audio = await decodeAudioFile(file);
  try {
    return await resample(audio.samples, audio.sampleRate, targetRate, opts);
  } catch (e) {
    if (e instanceof EngineError && !e.file) throw new EngineError(e.code, `${file}: ${e.message}`, file, { cause: e });
    throw e;
  }
}

/**
 * Expands files and folders (recursively) into audio file paths, resolved against `baseDir` (default: the current
 * directory). The result keeps the order of `paths`; each folder's files are sorted by their path relative to it,
 * compared by code unit (not locale), so the order is the same on every machine. Hidden entries (dot-files and
 * dot-folders, e.g. macOS `._x.wav` resource forks, which carry a .wav name but no audio) are skipped, folder
 * symlink cycles are followed once, and a file listed twice appears once.
 */
export async function listAudioFiles(paths: string[], baseDir: string = process.cwd()): Promise<string[]> {
  const out: string[] = [];
  const seen = new Set<string>();
  const push = (f: string) => {
    if (!seen.has(f)) {
      seen.add(f);
      out.push(f);
    }
  };
  for (const p of paths) {
    const abs = path.resolve(baseDir, p);
    const st = await statOrThrow(abs, p);
    if (st.isDirectory()) {
      const found: string[] = [];
      await walk(abs, found, new Set());
      found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      found.forEach(push);
    } else {
      push(abs);
    }
  }
  return out;
}

async function walk(dir: string, found: string[], visited: Set<string>): Promise<void> {
  const real = await fs.realpath(dir);
  if (visited.has(real)) return;
  visited.add(real);
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new EngineError('io-error', `${dir}: cannot read folder (${(e as NodeJS.ErrnoException).code ?? e})`, dir, { cause: e });
  }
  for (const ent of entries) {
    if (ent.name.startsWith('.')) continue;
    const full = path.join(dir, ent.name);
    let isDir = ent.isDirectory();
    let isFile = ent.isFile();
    if (ent.isSymbolicLink()) {
      const st = await fs.stat(full).catch(() => undefined); // a dangling link is skipped, like any non-audio entry
      isDir = st?.isDirectory() ?? false;
      isFile = st?.isFile() ?? false;
    }
    if (isDir) await walk(full, found, visited);
    else if (isFile && (AUDIO_EXTENSIONS as readonly string[]).includes(path.extname(ent.name).toLowerCase())) found.push(full);
  }
}

async function statOrThrow(abs: string, shown: string) {
  try {
    return await fs.stat(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new EngineError('file-not-found', `${shown}: no such file or folder${shown === abs ? '' : ` (${abs})`}`, abs, { cause: e });
    }
    throw new EngineError('io-error', `${shown}: cannot read (${code ?? e})`, abs, { cause: e });
  }
}

/**
 * Checks that `file` can be an audio input (exists, is a regular file, within the size limit) without opening it:
 * stat never blocks on a named pipe, and a device such as /dev/zero is refused before a byte is read. Callers that
 * do expensive work first (the `forward` command loads a model) check their audio up front with it.
 */
export async function assertAudioFile(file: string): Promise<void> {
  const st = await statOrThrow(file, file);
  if (st.isDirectory()) throw new EngineError('bad-audio', `${file}: is a folder, not an audio file`, file);
  if (!st.isFile()) throw notRegularFile(file, st, 'an audio file (WAV, FLAC or MP3)', 'bad-audio');
  checkSize(file, st.size);
}

function checkSize(file: string, size: number): void {
  if (size > MAX_FILE_BYTES) {
    throw new EngineError(
      'unsupported-audio',
      `${file}: ${(size / 2 ** 30).toFixed(1)} GiB is over the 2 GiB limit for one audio file; split it`,
      file,
    );
  }
}

async function readAudioBytes(file: string): Promise<Uint8Array> {
  await assertAudioFile(file);
  // Opened non-blocking and checked again on the descriptor: the path may have changed since the stat.
  const { handle, size } = await openRegularFile(file, 'an audio file (WAV, FLAC or MP3)', 'bad-audio');
  try {
    checkSize(file, size);
    const buf = Buffer.alloc(size);
    let done = 0;
    while (done < size) {
      const { bytesRead } = await handle.read(buf, done, size - done, done);
      if (bytesRead === 0) break; // the file shrank while it was read: decode what is there
      done += bytesRead;
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, done);
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError('io-error', `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? e})`, file, { cause: e });
  } finally {
    await handle.close();
  }
}

function assertFinite(pcm: PcmAudio, file: string): void {
  const s = pcm.samples;
  for (let i = 0; i < s.length; i++) {
    const v = s[i]!;
    if (!Number.isFinite(v)) {
      throw new EngineError(
        'bad-audio',
        `${file}: sample ${i} (at ${(i / pcm.sampleRate).toFixed(4)} s) is ${Number.isNaN(v) ? 'NaN' : v > 0 ? '+Infinity' : '-Infinity'}`,
        file,
      );
    }
  }
}
