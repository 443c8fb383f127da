/**
 * The probe set: the audio both models hear while their activations are correlated. Every source (a folder or a
 * file) is decoded, resampled to the models' rate, cut into equal segments, shuffled with a seeded generator and
 * capped per source, so the same recipe and seed always give the same probe, and the report can say exactly which
 * audio (file and offset) was used.
 *
 * Segments: a file of n samples gives floor(n / S) segments of S samples. A remainder of at least S/2 becomes one
 * more segment, padded at its end with zeros (the silence the encoders see at the end of any clip); a shorter one
 * is dropped, so padding never makes up more than half of a segment.
 *
 * Per source, files are visited in a seeded random order and decoding stops as soon as the segments collected
 * cover the cap: a folder of hundreds of hours is not decoded to take ten minutes from it. The collected segments
 * are then shuffled and the first `maxSeconds / segmentSeconds` kept.
 */
import * as path from 'node:path';
import { EngineError } from '../errors';
import type { ProgressSink } from '../progress';
import { mulberry32 } from '../random';
import { listAudioFiles, loadAudio } from './audio';

export interface ProbeOptions {
  /** Folders (searched recursively for wav/flac/mp3) or files, relative to baseDir. */
  sources: string[];
  baseDir: string;
  /** The models' input rate (16000 for HuBERT/MERT-v0, 24000 for MERT-v1). */
  sampleRate: number;
  segmentSeconds: number;
  /** Cap per source. */
  maxSeconds: number;
  seed: number;
  /** `probe.domains`: which entries of `sources` (as written) are whose domain; tags each source's summary. */
  domains?: { anchor: readonly string[]; other: readonly string[] };
  progress?: ProgressSink;
  signal?: AbortSignal;
}

/** Whose domain a probe source is (`probe.domains`), for methods that treat the domains differently. */
export type ProbeDomain = 'anchor' | 'other';

export interface ProbeSegment {
  /** Index into ProbeSet.sources. */
  source: number;
  /** Absolute path of the audio file. */
  file: string;
  /** Where the segment starts in the file, in samples at the probe rate and in seconds. */
  offsetSamples: number;
  offsetSeconds: number;
  /** Zeros appended at the end (0 unless this is a file's padded last segment). */
  paddedSamples: number;
  /** Exactly segmentSamples long. */
  samples: Float32Array;
}

export interface ProbeSourceSummary {
  /** The source as written in the recipe, and resolved. */
  source: string;
  path: string;
  filesListed: number;
  filesDecoded: number;
  /** Audio decoded from this source, in seconds at the probe rate. */
  decodedSeconds: number;
  segments: number;
  seconds: number;
  /** Files that contributed at least one segment, sorted, with how many each. */
  files: { file: string; segments: number }[];
  /** Present when the recipe's `probe.domains` lists this source. */
  domain?: ProbeDomain;
}

export interface ProbeSet {
  sampleRate: number;
  segmentSeconds: number;
  segmentSamples: number;
  seed: number;
  /** Source by source, each source's segments in their shuffled order. */
  segments: ProbeSegment[];
  sources: ProbeSourceSummary[];
  totalSegments: number;
  totalSeconds: number;
}

export async function buildProbeSet(opts: ProbeOptions): Promise<ProbeSet> {
  const { sampleRate, segmentSeconds, maxSeconds, seed } = opts;
  const segmentSamples = Math.round(segmentSeconds * sampleRate);
  checkOptions(opts, segmentSamples);
  const cap = Math.floor(maxSeconds / segmentSeconds + 1e-9);

  const segments: ProbeSegment[] = [];
  const sources: ProbeSourceSummary[] = [];
  for (let si = 0; si < opts.sources.length; si++) {
    const source = opts.sources[si]!;
    const files = await listAudioFiles([source], opts.baseDir);
    const where = path.resolve(opts.baseDir, source);
    if (files.length === 0) {
      throw new EngineError('bad-audio', `${source}: no .wav, .flac or .mp3 files in this probe folder`, where);
    }
    const rng = mulberry32(sourceSeed(seed, si));
    const order = shuffle(files.slice(), rng);

    const pool: ProbeSegment[] = [];
    let decodedSamples = 0;
    let filesDecoded = 0;
    for (const file of order) {
      if (pool.length >= cap) break;
      if (opts.signal?.aborted) throw new EngineError('cancelled', 'probe set cancelled');
      opts.progress?.({ type: 'progress', stage: 'probe', done: filesDecoded, total: files.length, message: path.basename(file) });
      const audio = await loadAudio(file, sampleRate);
      filesDecoded++;
      decodedSamples += audio.length;
      for (const s of cutSegments(audio, segmentSamples, si, file, sampleRate)) pool.push(s);
    }
    // The bar ends where decoding ended (every file, or enough audio before the last).
    opts.progress?.({
      type: 'progress',
      stage: 'probe',
      done: filesDecoded,
      total: files.length,
      message: filesDecoded < files.length ? `enough audio after ${filesDecoded} of ${files.length} files` : where,
    });
    if (pool.length === 0) {
      throw new EngineError(
        'bad-audio',
        `${source}: every file is shorter than half a segment (${segmentSeconds / 2} s), so there is nothing to probe with`,
        where,
      );
    }
    const kept = shuffle(pool, rng).slice(0, cap);
    // Own the kept samples so the decoded files they were cut from can be freed.
    for (const s of kept) if (s.paddedSamples === 0) s.samples = s.samples.slice();
    segments.push(...kept);
    sources.push({
      source,
      path: where,
      filesListed: files.length,
      filesDecoded,
      decodedSeconds: decodedSamples / sampleRate,
      segments: kept.length,
      seconds: kept.length * segmentSeconds,
      files: countByFile(kept),
      ...domainOf(source, opts.domains),
    });
  }
  return {
    sampleRate,
    segmentSeconds,
    segmentSamples,
    seed,
    segments,
    sources,
    totalSegments: segments.length,
    totalSeconds: segments.length * segmentSeconds,
  };
}

function domainOf(source: string, domains: ProbeOptions['domains']): { domain?: ProbeDomain } {
  if (domains?.anchor.includes(source)) return { domain: 'anchor' };
  if (domains?.other.includes(source)) return { domain: 'other' };
  return {};
}

/** Cuts one decoded file into segments (views into `audio`, except a padded last one). */
export function cutSegments(audio: Float32Array, size: number, source: number, file: string, rate: number): ProbeSegment[] {
  const out: ProbeSegment[] = [];
  const full = Math.floor(audio.length / size);
  const seg = (offset: number, samples: Float32Array, padded: number): ProbeSegment => ({
    source,
    file,
    offsetSamples: offset,
    offsetSeconds: offset / rate,
    paddedSamples: padded,
    samples,
  });
  for (let i = 0; i < full; i++) out.push(seg(i * size, audio.subarray(i * size, (i + 1) * size), 0));
  const rest = audio.length - full * size;
  if (rest > 0 && rest * 2 >= size) {
    const padded = new Float32Array(size);
    padded.set(audio.subarray(full * size));
    out.push(seg(full * size, padded, size - rest));
  }
  return out;
}

/** What a report says about the probe: JSON-safe (no samples), paths relative to `baseDir` with '/' separators. */
export interface ProbeDescription {
  sampleRate: number;
  segmentSeconds: number;
  seed: number;
  totalSegments: number;
  totalSeconds: number;
  sources: (Omit<ProbeSourceSummary, 'path'> & { path: string })[];
  segments: { source: number; file: string; offsetSeconds: number; paddedSeconds: number }[];
}

export function describeProbe(probe: ProbeSet, baseDir: string): ProbeDescription {
  const rel = (f: string) => path.relative(baseDir, f).split(path.sep).join('/');
  return {
    sampleRate: probe.sampleRate,
    segmentSeconds: probe.segmentSeconds,
    seed: probe.seed,
    totalSegments: probe.totalSegments,
    totalSeconds: probe.totalSeconds,
    sources: probe.sources.map((s) => ({
      ...s,
      path: rel(s.path),
      files: s.files.map((f) => ({ file: rel(f.file), segments: f.segments })),
    })),
    segments: probe.segments.map((s) => ({
      source: s.source,
      file: rel(s.file),
      offsetSeconds: s.offsetSeconds,
      paddedSeconds: s.paddedSamples / probe.sampleRate,
    })),
  };
}

export interface ProbeBatch {
  /** Row-major [batch, segmentSamples], ready to wrap as an ONNX float32 tensor with `dims`. */
  data: Float32Array;
  dims: [number, number];
  /** Index of the first segment of this batch in probe.segments. */
  start: number;
}

/** Consecutive batches of `batchSize` segments; the last one holds what is left (it is never padded). */
export function* iterateBatches(probe: ProbeSet, batchSize: number): Generator<ProbeBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new EngineError('bad-config', `batch size must be a positive integer, got ${batchSize}`);
  }
  const S = probe.segmentSamples;
  for (let start = 0; start < probe.segments.length; start += batchSize) {
    const n = Math.min(batchSize, probe.segments.length - start);
    const data = new Float32Array(n * S);
    for (let i = 0; i < n; i++) data.set(probe.segments[start + i]!.samples, i * S);
    yield { data, dims: [n, S], start };
  }
}

/**
 * Output length of a wav2vec2-style conv feature encoder (no padding): each layer maps n to
 * floor((n - kernel) / stride) + 1, and an input shorter than a kernel gives 0 frames.
 * HuBERT/MERT-v0: kernels [10,3,3,3,3,2,2], strides [5,2,2,2,2,2,2] → 16000 samples give 49 frames.
 */
export function convFrames(numSamples: number, kernels: readonly number[], strides: readonly number[]): number {
  if (kernels.length !== strides.length) {
    throw new EngineError('bad-config', `conv stack has ${kernels.length} kernels but ${strides.length} strides`);
  }
  let n = Math.floor(numSamples);
  for (let i = 0; i < kernels.length; i++) {
    const k = kernels[i]!,
      s = strides[i]!;
    if (!(k >= 1 && s >= 1)) throw new EngineError('bad-config', `conv layer ${i} has kernel ${k} and stride ${s}; both must be ≥ 1`);
    if (n < k) return 0;
    n = Math.floor((n - k) / s) + 1;
  }
  return n;
}

/** Fisher–Yates in place. */
function shuffle<T>(xs: T[], rng: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = xs[i]!;
    xs[i] = xs[j]!;
    xs[j] = t;
  }
  return xs;
}

/** An independent stream per source, so adding a source never changes the segments drawn from the others. */
function sourceSeed(seed: number, index: number): number {
  return (Math.imul(seed >>> 0, 0x85ebca6b) ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
}

function countByFile(segments: ProbeSegment[]): { file: string; segments: number }[] {
  const counts = new Map<string, number>();
  for (const s of segments) counts.set(s.file, (counts.get(s.file) ?? 0) + 1);
  return [...counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([file, n]) => ({ file, segments: n }));
}

function checkOptions(opts: ProbeOptions, segmentSamples: number): void {
  const bad = (msg: string) => new EngineError('bad-config', `probe: ${msg}`);
  if (opts.sources.length === 0) throw bad('no audio sources given');
  if (!Number.isInteger(opts.sampleRate) || opts.sampleRate < 1)
    throw bad(`sample rate must be a positive integer, got ${opts.sampleRate}`);
  if (!(opts.segmentSeconds > 0) || segmentSamples < 1) throw bad(`segment length must be positive, got ${opts.segmentSeconds} s`);
  if (!(opts.maxSeconds >= opts.segmentSeconds)) {
    throw bad(`max_seconds (${opts.maxSeconds}) must be at least one segment (${opts.segmentSeconds} s)`);
  }
  if (!Number.isInteger(opts.seed)) throw bad(`seed must be an integer, got ${opts.seed}`);
}
