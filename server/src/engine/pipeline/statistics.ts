/**
 * The statistics stage: the probe set through both encoders, batch by batch, in the pair graph; per-tap centred
 * moments combined in float64. Cancellation is checked between batches (onnxruntime cannot abort a running batch).
 * With `shards` (run --stats), the statistics are instead reduced from shards computed elsewhere (pipeline/shards.ts).
 */
import { addMoments, createPairStats, type PairStats } from '../align/stats';
import { EngineError } from '../errors';
import { iterateBatches, type ProbeSet } from '../io/probe';
import type { EncoderModel } from '../model/encoder';
import { PairStatisticsSession, tapWidth, type PassPlan } from '../model/pair-graph';
import { resolveBackend, type SessionOptions } from '../model/runtime';
import type { Recipe } from '../recipe/schema';
import { planStatistics } from './memory-plan';
import { reduceStatShards, segmentRefs, statisticsIdentity } from './shards';
import type { TapName } from '../model/taps';
import type { ProgressSink } from '../progress';

export interface StatisticsOptions extends SessionOptions {
  batchSize: number;
  /** How each batch runs through the pair (front-end group size, layers per pass); see model/pair-graph.ts. */
  passes?: Partial<PassPlan>;
  onEvent?: ProgressSink;
  signal?: AbortSignal;
  /** `runtime.memory`: batch size (at most `batchSize`) and passes are chosen to stay under it. */
  memory?: string;
  /** Reduce these statistics shards instead of running the probe (`merge-studio run --stats`). */
  shards?: ShardInput;
}

export interface ShardInput {
  dirs: readonly string[];
  recipe: Recipe;
  /** The recipe's folder: manifests name probe files relative to it. */
  baseDir: string;
  modelDirs: { anchor: string; other: string };
}

export async function collectStatistics(
  anchor: Pick<EncoderModel, 'config' | 'weights'>,
  other: Pick<EncoderModel, 'config' | 'weights'>,
  probe: ProbeSet,
  taps: readonly TapName[],
  opts: StatisticsOptions,
): Promise<{ stats: Map<TapName, PairStats>; backend: string }> {
  const stats = new Map<TapName, PairStats>();
  if (taps.length === 0) return { stats, backend: 'none' };
  if (opts.shards) return { stats: await statisticsFromShards(opts.shards, probe, taps, opts), backend: 'shards' };
  let batchSize = opts.batchSize;
  let passes = opts.passes;
  if (opts.memory) {
    const backend = await resolveBackend(opts.device ?? 'auto');
    const plan = planStatistics(anchor.config, taps, probe.segmentSamples, { batchSize, memory: opts.memory, backend });
    batchSize = plan.batchSize;
    passes = plan.passes;
    opts.onEvent?.({
      type: 'log',
      level: 'info',
      message: `runtime.memory ${opts.memory}: batches of ${batchSize}, front end ${passes.frontBatch || batchSize} segment(s) at a time, ${passes.layersPerPass} layer(s) per pass (estimated peak ${(plan.estimate.total / 2 ** 30).toFixed(2)} GiB)`,
    });
  }
  // Every tap's float64 accumulators are allocated before the first batch, together, rather than as each tap's first
  // moments arrive: in the middle of the first batch's passes they would be scattered between its activations and
  // keep those gaps of the C heap from being reused whole (see PairStatisticsSession.runEach).
  const accumulators = new Map<TapName, PairStats>();
  for (const tap of taps) accumulators.set(tap, createPairStats(tapWidth(anchor.config, tap), tapWidth(other.config, tap)));
  const session = await PairStatisticsSession.create(anchor, other, taps, { ...opts, ...(passes ? { passes } : {}) });
  try {
    const total = Math.ceil(probe.segments.length / batchSize);
    let done = 0;
    opts.onEvent?.({ type: 'progress', stage: 'statistics', done, total, message: `${taps.length} taps on ${session.backend}` });
    for (const batch of iterateBatches(probe, batchSize)) {
      if (opts.signal?.aborted) throw new EngineError('cancelled', 'cancelled while collecting statistics');
      // Each pass's moments are added as soon as it has run, so only one pass's outputs are alive at a time.
      await session.runEach(batch.data, batch.dims[0], (moments) => {
        for (const m of moments) {
          // A non-finite activation makes its unit's mean and M2 non-finite; checking those (not the d² cross, whose
          // entries are bounded by √(M2a·M2b)) keeps a serial 80 ms per FFN tap and batch off the critical path.
          assertFiniteMoments(m.tap, m.meanA, m.meanB, m.m2A, m.m2B);
          // Entered on a tap's first moments, so the map keeps arrival order (addMoments checks the sizes); the session
          // hands on moments of the requested taps only, each of which has its accumulator.
          let s = stats.get(m.tap);
          if (!s) stats.set(m.tap, (s = accumulators.get(m.tap)!));
          addMoments(s, m);
        }
      });
      done++;
      opts.onEvent?.({
        type: 'progress',
        stage: 'statistics',
        done,
        total,
        message: `${Math.min(done * batchSize, probe.segments.length)}/${probe.segments.length} segments`,
      });
    }
    return { stats, backend: session.backend };
  } finally {
    await session.release();
  }
}

async function statisticsFromShards(
  shards: ShardInput,
  probe: ProbeSet,
  taps: readonly TapName[],
  opts: StatisticsOptions,
): Promise<Map<TapName, PairStats>> {
  const total = shards.dirs.length;
  opts.onEvent?.({ type: 'progress', stage: 'statistics', done: 0, total, message: `reducing ${total} statistics shard(s)` });
  const identity = await statisticsIdentity(shards.recipe, shards.modelDirs, taps, probe);
  return reduceStatShards(shards.dirs, identity, segmentRefs(probe, shards.baseDir), (done, all, dir) => {
    if (opts.signal?.aborted) throw new EngineError('cancelled', 'cancelled while reducing statistics shards');
    opts.onEvent?.({ type: 'progress', stage: 'statistics', done, total: all, message: `shard ${dir}` });
  });
}

function assertFiniteMoments(tap: string, ...arrays: Float32Array[]): void {
  for (const a of arrays) {
    for (let i = 0; i < a.length; i++) {
      if (!Number.isFinite(a[i]!)) {
        throw new EngineError('non-finite', `activations at tap ${tap} became ${a[i]} on the probe audio (overflow in one of the models?)`);
      }
    }
  }
}
