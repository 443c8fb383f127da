/**
 * `merge-studio stats <recipe> --shard I/N --out DIR`: one shard of a recipe's statistics. It loads the models and
 * builds the probe set exactly as a run does (same sources, seed, segments), keeps shard I of N, computes that part's
 * statistics and writes them with their manifest (pipeline/shards.ts). `run --stats DIR…` reduces the shards.
 */
import * as path from 'node:path';
import { correlationTaps } from '../align/methods/correlation';
import { EngineError } from '../errors';
import { parseHubRef } from '../io/hub';
import { buildProbeSet } from '../io/probe';
import { loadEncoderModel } from '../model/encoder';
import { checkPairCompatible } from '../model/pair-graph';
import { resolveBackend, type Device } from '../model/runtime';
import type { JobStage, ProgressSink } from '../progress';
import type { LoadedRecipe } from '../recipe/load';
import { planStatistics } from './memory-plan';
import { segmentRefs, shardProbe, shardRange, statisticsIdentity, writeStatShard, type ShardSpec } from './shards';
import { collectStatistics } from './statistics';

export interface StatShardOptions {
  device?: Device;
  threads?: number;
  onEvent?: ProgressSink;
  signal?: AbortSignal;
}

export interface StatShardResult {
  dir: string;
  segments: number;
  seconds: number;
}

export async function computeStatShard(
  loaded: LoadedRecipe,
  shard: ShardSpec,
  outDir: string,
  opts: StatShardOptions = {},
): Promise<StatShardResult> {
  const started = performance.now();
  const { recipe } = loaded;
  const emit = opts.onEvent ?? (() => undefined);
  const stage = (s: JobStage, message: string) => {
    if (opts.signal?.aborted) throw new EngineError('cancelled', 'cancelled');
    emit({ type: 'stage', stage: s, message });
  };
  if (recipe.align.method !== 'correlation') {
    throw new EngineError(
      'bad-recipe',
      `statistics shards are for align.method correlation; this recipe uses ${recipe.align.method}`,
      loaded.file,
    );
  }
  if (!recipe.probe) throw new EngineError('bad-recipe', 'align.method correlation needs a probe section', loaded.file);
  const device = opts.device ?? recipe.runtime.device;
  const threads = opts.threads ?? recipe.runtime.threads;

  stage('load', 'loading models');
  const backend = await resolveBackend(device);
  const baseDir = path.dirname(loaded.file);
  const modelRef = (ref: string) => (parseHubRef(ref) ? ref : loaded.resolve(ref));
  const anchor = await loadEncoderModel(modelRef(recipe.models.anchor), { baseDir });
  const other = await loadEncoderModel(modelRef(recipe.models.other), { baseDir });
  checkPairCompatible(anchor.config, other.config);
  const cfg = anchor.config;

  stage('probe', 'decoding and segmenting probe audio');
  const probe = await buildProbeSet({
    sources: recipe.probe.audio,
    baseDir,
    sampleRate: cfg.sampleRate,
    segmentSeconds: recipe.probe.segment_seconds,
    maxSeconds: recipe.probe.max_seconds,
    seed: recipe.runtime.seed,
    progress: emit,
    signal: opts.signal,
  });
  const [start, end] = shardRange(probe.segments.length, shard);
  const part = shardProbe(probe, shard);
  const taps = correlationTaps(cfg, recipe.align.permute, recipe.align.heads);
  const plan = planStatistics(cfg, taps, probe.segmentSamples, {
    batchSize: recipe.runtime.batch_size,
    memory: recipe.runtime.memory,
    backend,
  });
  stage(
    'statistics',
    `shard ${shard.index}/${shard.count}: segments ${start}–${end - 1} of ${probe.segments.length}, ${taps.length} taps, batches of ${plan.batchSize}`,
  );
  const { stats } = await collectStatistics(anchor, other, part, taps, {
    device,
    ...(threads ? { threads } : {}),
    precision: recipe.runtime.precision,
    batchSize: plan.batchSize,
    passes: plan.passes,
    onEvent: emit,
    signal: opts.signal,
  });

  stage('write', `writing ${outDir}`);
  const identity = await statisticsIdentity(recipe, { anchor: anchor.source, other: other.source }, taps, probe);
  await writeStatShard(outDir, shard, identity, segmentRefs(probe, baseDir, start, end), stats);
  return { dir: outDir, segments: end - start, seconds: (performance.now() - started) / 1000 };
}
