/**
 * Statistics shards: the probe set split into N disjoint, deterministic parts (contiguous ranges of the seeded probe
 * order), each part's per-tap statistics written by `merge-studio stats --shard I/N` as float64 safetensors plus a
 * manifest, and reduced by `merge-studio run --stats DIR…` with Chan's parallel formula (align/stats.ts addMoments).
 * The reduction adds shards in shard-index order, so the result does not depend on the order the folders are given.
 *
 * A manifest names what the statistics depend on — the statistics-relevant part of the recipe (models, probe, align,
 * seed), both checkpoints' content hashes, the taps, and every probe segment covered (file and offset) — and the
 * reduction refuses shards that overlap, leave segments out, or were computed for another recipe or model.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { addMoments, createPairStats, type PairStats } from '../align/stats';
import { EngineError } from '../errors';
import type { ProbeSet } from '../io/probe';
import { writeSafetensorsStream, type TensorSource } from '../io/safetensors';
import type { TapName } from '../model/taps';
import type { Recipe } from '../recipe/schema';
import { modelContentHash } from './content-hash';

export const SHARD_FORMAT = 1;
export const SHARD_MANIFEST = 'manifest.json';
export const SHARD_TENSORS = 'statistics.safetensors';

export interface ShardSpec {
  /** 0 … count − 1 (as SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX count). */
  index: number;
  count: number;
}

/** Parses `I/N` (I from 0 to N − 1). */
export function parseShard(text: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new EngineError('bad-shard', `--shard ${text}: expected I/N, e.g. 0/4 (I from 0 to N−1)`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) throw new EngineError('bad-shard', `--shard ${text}: the number of shards must be at least 1`);
  if (index >= count)
    throw new EngineError('bad-shard', `--shard ${text}: the index must be below ${count} (shards are numbered 0 to ${count - 1})`);
  return { index, count };
}

/** The probe segments [start, end) of shard I of N: contiguous, disjoint, covering all, sizes differing by ≤ 1. */
export function shardRange(total: number, spec: ShardSpec): [number, number] {
  return [Math.floor((spec.index * total) / spec.count), Math.floor(((spec.index + 1) * total) / spec.count)];
}

/** The probe set restricted to one shard's segments. */
export function shardProbe(probe: ProbeSet, spec: ShardSpec): ProbeSet {
  const [start, end] = shardRange(probe.segments.length, spec);
  const segments = probe.segments.slice(start, end);
  return { ...probe, segments, totalSegments: segments.length, totalSeconds: segments.length * probe.segmentSeconds };
}

/** What a shard's statistics depend on; two shards reduce together only when these are equal. */
export interface StatisticsIdentity {
  /** sha256 of the statistics-relevant recipe fields (models, probe, align, runtime.seed) as canonical JSON. */
  recipeKey: string;
  models: { anchor: string; other: string };
  taps: TapName[];
  probe: { sampleRate: number; segmentSamples: number; totalSegments: number };
}

/** A probe segment as manifests name it: its index in the probe order, file (relative to the recipe) and offset. */
export interface SegmentRef {
  index: number;
  file: string;
  offsetSamples: number;
}

export interface ShardManifest {
  format: number;
  shard: ShardSpec;
  identity: StatisticsIdentity;
  segments: SegmentRef[];
  taps: { tap: TapName; n: number; dimA: number; dimB: number }[];
  createdAt: string;
}

export async function statisticsIdentity(
  recipe: Recipe,
  modelDirs: { anchor: string; other: string },
  taps: readonly TapName[],
  probe: ProbeSet,
): Promise<StatisticsIdentity> {
  const align = recipe.align ?? {};
  const relevant = {
    models: recipe.models,
    probe: recipe.probe ?? null,
    align: { method: align.method, permute: align.permute, heads: align.heads },
    seed: recipe.runtime?.seed ?? 0,
  };
  const [anchor, other] = await Promise.all([modelContentHash(modelDirs.anchor), modelContentHash(modelDirs.other)]);
  return {
    recipeKey: createHash('sha256').update(canonicalJson(relevant)).digest('hex'),
    models: { anchor, other },
    taps: [...taps],
    probe: { sampleRate: probe.sampleRate, segmentSamples: probe.segmentSamples, totalSegments: probe.segments.length },
  };
}

export function segmentRefs(probe: ProbeSet, baseDir: string, start = 0, end = probe.segments.length): SegmentRef[] {
  return probe.segments
    .slice(start, end)
    .map((s, i) => ({ index: start + i, file: path.relative(baseDir, s.file).split(path.sep).join('/'), offsetSamples: s.offsetSamples }));
}

/** Writes one shard (float64 tensors + manifest) into `dir`, replacing a previous shard there. */
export async function writeStatShard(
  dir: string,
  shard: ShardSpec,
  identity: StatisticsIdentity,
  segments: SegmentRef[],
  stats: ReadonlyMap<TapName, PairStats>,
): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const f64 = (a: Float64Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const tensors: TensorSource[] = [];
  for (const [tap, s] of stats) {
    tensors.push(
      { name: `${tap}/mean_a`, dtype: 'F64', shape: [s.dimA], bytes: () => f64(s.meanA) },
      { name: `${tap}/mean_b`, dtype: 'F64', shape: [s.dimB], bytes: () => f64(s.meanB) },
      { name: `${tap}/m2_a`, dtype: 'F64', shape: [s.dimA], bytes: () => f64(s.m2A) },
      { name: `${tap}/m2_b`, dtype: 'F64', shape: [s.dimB], bytes: () => f64(s.m2B) },
      { name: `${tap}/cross`, dtype: 'F64', shape: [s.dimA, s.dimB], bytes: () => f64(s.cross) },
    );
  }
  // The manifest is written last: a folder with a manifest holds a complete shard.
  await fs.rm(path.join(dir, SHARD_MANIFEST), { force: true });
  await writeSafetensorsStream(path.join(dir, SHARD_TENSORS), tensors, { merge_studio_shard: `${shard.index}/${shard.count}` });
  const manifest: ShardManifest = {
    format: SHARD_FORMAT,
    shard,
    identity,
    segments,
    taps: [...stats].map(([tap, s]) => ({ tap, n: s.n, dimA: s.dimA, dimB: s.dimB })),
    createdAt: new Date().toISOString(),
  };
  const tmp = path.join(dir, `.${SHARD_MANIFEST}.${process.pid}.tmp`);
  await fs.writeFile(tmp, `${JSON.stringify(manifest, null, 1)}\n`);
  await fs.rename(tmp, path.join(dir, SHARD_MANIFEST));
}

async function readManifest(dir: string): Promise<ShardManifest> {
  const file = path.join(dir, SHARD_MANIFEST);
  const text = await fs.readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    const why =
      e.code === 'ENOENT'
        ? `${dir} holds no ${SHARD_MANIFEST} (not a statistics shard, or its job has not finished)`
        : `cannot read ${file}: ${e.code ?? e.message}`;
    throw new EngineError('bad-shard', why, file);
  });
  let m: ShardManifest;
  try {
    m = JSON.parse(text) as ShardManifest;
  } catch {
    throw new EngineError('bad-shard', `${file} is not valid JSON`, file);
  }
  if (m?.format !== SHARD_FORMAT || !m.shard || !m.identity || !Array.isArray(m.segments) || !Array.isArray(m.taps)) {
    throw new EngineError('bad-shard', `${file} is not a merge-studio statistics manifest (format ${SHARD_FORMAT})`, file);
  }
  return m;
}

/** Refuses a set of shards that cannot stand for this run's statistics, naming the first problem. */
export function checkShards(
  shards: { dir: string; manifest: ShardManifest }[],
  expected: StatisticsIdentity,
  segments: readonly SegmentRef[],
): void {
  if (shards.length === 0) throw new EngineError('bad-shard', '--stats needs at least one shard folder');
  for (const { dir, manifest: m } of shards) {
    const id = m.identity;
    if (id.recipeKey !== expected.recipeKey)
      throw new EngineError(
        'bad-shard',
        `${dir} was computed for another recipe (its models, probe, align or seed differ from this recipe's)`,
        dir,
      );
    for (const side of ['anchor', 'other'] as const) {
      if (id.models[side] !== expected.models[side])
        throw new EngineError(
          'bad-shard',
          `${dir} was computed with another ${side} model (checkpoint content hash ${id.models[side].slice(0, 12)}…, this recipe's is ${expected.models[side].slice(0, 12)}…)`,
          dir,
        );
    }
    if (id.taps.join(',') !== expected.taps.join(','))
      throw new EngineError(
        'bad-shard',
        `${dir} holds statistics for other taps (${id.taps.length} taps, this run needs ${expected.taps.length})`,
        dir,
      );
    if (
      id.probe.segmentSamples !== expected.probe.segmentSamples ||
      id.probe.sampleRate !== expected.probe.sampleRate ||
      id.probe.totalSegments !== expected.probe.totalSegments
    ) {
      throw new EngineError(
        'bad-shard',
        `${dir} was cut from another probe set (${id.probe.totalSegments} segments of ${id.probe.segmentSamples} samples, this run has ${expected.probe.totalSegments} of ${expected.probe.segmentSamples})`,
        dir,
      );
    }
  }
  const owner = new Map<number, string>();
  for (const { dir, manifest } of shards) {
    for (const s of manifest.segments) {
      const want = segments[s.index];
      if (!want || want.file !== s.file || want.offsetSamples !== s.offsetSamples) {
        throw new EngineError(
          'bad-shard',
          `${dir}: probe segment ${s.index} (${s.file} at sample ${s.offsetSamples}) is not this run's segment ${s.index}${want ? ` (${want.file} at sample ${want.offsetSamples})` : ''}`,
          dir,
        );
      }
      const other = owner.get(s.index);
      if (other !== undefined)
        throw new EngineError(
          'bad-shard',
          `shards overlap: ${other} and ${dir} both cover probe segment ${s.index} (${s.file} at sample ${s.offsetSamples})`,
          dir,
        );
      owner.set(s.index, dir);
    }
  }
  const missing = segments.filter((s) => !owner.has(s.index));
  if (missing.length > 0) {
    const first = missing[0]!;
    throw new EngineError(
      'bad-shard',
      `the shards leave ${missing.length} of ${segments.length} probe segments out (first: segment ${first.index}, ${first.file} at sample ${first.offsetSamples}); is a shard folder missing?`,
    );
  }
}

/**
 * Reads and checks the shards in `dirs`, then adds them in shard-index order (so any order of `dirs` gives the same
 * bits). Statistics are read one tensor at a time into the accumulators.
 */
export async function reduceStatShards(
  dirs: readonly string[],
  expected: StatisticsIdentity,
  segments: readonly SegmentRef[],
  onShard?: (done: number, total: number, dir: string) => void,
): Promise<Map<TapName, PairStats>> {
  const shards = await Promise.all(dirs.map(async (dir) => ({ dir, manifest: await readManifest(dir) })));
  checkShards(shards, expected, segments);
  shards.sort((a, b) => a.manifest.shard.index - b.manifest.shard.index || a.manifest.segments[0]!.index - b.manifest.segments[0]!.index);
  const out = new Map<TapName, PairStats>();
  for (const [i, { dir, manifest }] of shards.entries()) {
    const file = await F64Tensors.open(path.join(dir, SHARD_TENSORS));
    try {
      for (const t of manifest.taps) {
        if (t.n === 0) continue;
        let acc = out.get(t.tap);
        if (!acc) out.set(t.tap, (acc = createPairStats(t.dimA, t.dimB)));
        const read = (k: string, len: number) => file.read(`${t.tap}/${k}`, len);
        addMoments(acc, {
          n: t.n,
          meanA: await read('mean_a', t.dimA),
          meanB: await read('mean_b', t.dimB),
          m2A: await read('m2_a', t.dimA),
          m2B: await read('m2_b', t.dimB),
          cross: await read('cross', t.dimA * t.dimB),
        });
      }
    } finally {
      await file.close();
    }
    onShard?.(i + 1, shards.length, dir);
  }
  return out;
}

/** The float64 tensors of a shard file, read by name (the file is ours; offsets are still checked). */
class F64Tensors {
  private constructor(
    private readonly file: string,
    private readonly handle: fs.FileHandle,
    private readonly header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>,
    private readonly dataStart: number,
    private readonly size: number,
  ) {}

  static async open(file: string): Promise<F64Tensors> {
    const handle = await fs.open(file, 'r').catch((e: NodeJS.ErrnoException) => {
      throw new EngineError('bad-shard', `cannot open ${file}: ${e.code ?? e.message}`, file);
    });
    try {
      const { size } = await handle.stat();
      const len = Buffer.alloc(8);
      await handle.read(len, 0, 8, 0);
      const n = Number(len.readBigUInt64LE());
      if (size < 8 || n > size - 8) throw new EngineError('bad-shard', `${file} is truncated or not a safetensors file`, file);
      const buf = Buffer.alloc(n);
      await handle.read(buf, 0, n, 8);
      return new F64Tensors(file, handle, JSON.parse(buf.toString('utf8')), 8 + n, size);
    } catch (e) {
      await handle.close();
      if (e instanceof EngineError) throw e;
      throw new EngineError('bad-shard', `${file} has an unreadable header`, file);
    }
  }

  async read(name: string, length: number): Promise<Float64Array> {
    const e = this.header[name];
    if (!e || e.dtype !== 'F64') throw new EngineError('bad-shard', `${this.file} has no float64 tensor ${name}`, this.file);
    const [begin, end] = e.data_offsets;
    if (end - begin !== length * 8 || this.dataStart + end > this.size)
      throw new EngineError(
        'bad-shard',
        `${this.file}: tensor ${name} has ${(end - begin) / 8} values, expected ${length} (or the file is truncated)`,
        this.file,
      );
    const out = new Float64Array(length);
    await this.handle.read(new Uint8Array(out.buffer), 0, end - begin, this.dataStart + begin);
    return out;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

/** JSON with object keys sorted, so that equal values hash equally whatever order they were written in. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
