/**
 * The statistics step's memory: an estimate of its peak resident memory for a batch size and pass plan
 * (model/pair-graph.ts), and the choice of both under `runtime.memory`. bench:align prints the estimate beside the
 * peak it measures from outside the process, which is where the constants below come from.
 */
import { EngineError } from '../errors';
import type { EncoderConfig } from '../io/hfconfig';
import { framesFor } from '../model/encoder';
import { defaultPassPlan, layerPasses, tapLayer, tapWidth, type PassPlan } from '../model/pair-graph';
import type { Backend } from '../model/runtime';
import type { TapName } from '../model/taps';
import { parameterCount } from '../model/weights';
import { defaultBatchSize } from './plan';

/** Node, V8 and onnxruntime's own code and buffers before any model (measured: ~110 MiB). */
const RUNTIME_BYTES = 160 * 2 ** 20;
/**
 * The weights inside onnxruntime's sessions: on the CPU only those that are not Linear weights (conv stack, positional
 * conv, norms, biases; the Linear weights are fed from the engine's own copy at each run, model/pair-graph.ts), held
 * in optimised layouts besides onnxruntime's own buffers: measured 174 MiB of session memory for the HuBERT-base pair
 * (VmRSS before and after creating the sessions), whose non-Linear weights are 69 MiB.
 */
const SESSION_WEIGHT_FACTOR = 2.5;
/**
 * Live copies of the first conv block's output (per segment and model) at the front end's peak (the conv output, its
 * norm and activation, the centred copy for the conv.0 tap overlap), fitted to bench:align's measured peaks.
 */
const FRONT_COPIES = 1.5;
/**
 * onnxruntime frees each activation back to the C heap, which keeps it for the next pass (measured: between batches
 * the process stays about one pass's activations above the rest), so the peak holds the activations about twice.
 */
const HEAP_RETENTION = 2;
/**
 * The C heap can also fragment: a pass's largest tensors (an FFN activation or a batch's attention scores, 23 MiB each
 * for the HuBERT-base pair at 8 × 5 s) then find no free piece large enough and extend the heap. With a session per
 * layer (likely because each allocated its state in the middle of the first batch's activations) peaks over 40 minutes of
 * probe passed the estimate without this allowance by up to 51 MiB (2599 against 2548 MiB). One session now runs every
 * layer pass (model/pair-graph.ts) and no such steps were measured, but the heap's layout also depends on whatever else
 * the process allocates, so the estimate still allows four such tensors.
 */
const FRAGMENTED_TENSORS = 4;

export interface StatisticsMemory {
  /** Both models' float32 weights held by the engine (JS) — the anchor and the other. */
  weights: number;
  /** The weights inside onnxruntime's sessions (the non-Linear ones, re-laid-out, and onnxruntime's buffers). */
  sessionWeights: number;
  /** float64 accumulators of every tap + one pass's float32 results (onnxruntime's and the copy in JS). */
  statistics: number;
  /** The larger of the front end's and one layer pass's activations, with what the C heap keeps of them and its fragmentation. */
  activations: number;
  runtime: number;
  total: number;
}

export function estimateStatisticsMemory(
  cfg: EncoderConfig,
  taps: readonly TapName[],
  segmentSamples: number,
  batch: number,
  plan: PassPlan,
): StatisticsMemory {
  const weights = 2 * 4 * parameterCount(cfg);
  let accumulators = 0;
  for (const t of taps) {
    const d = tapWidth(cfg, t);
    accumulators += 8 * (d * d + 4 * d);
  }
  const passOutputs = Math.max(
    0,
    ...layerPasses(taps, plan.layersPerPass).map(([from, to]) =>
      taps.filter((t) => tapLayer(t) >= from && tapLayer(t) < to).reduce((s, t) => s + 4 * tapWidth(cfg, t) ** 2, 0),
    ),
  );
  const frontBatch = plan.frontBatch > 0 ? Math.min(plan.frontBatch, batch) : batch;
  const conv0Frames = Math.floor((segmentSamples - cfg.convKernels[0]!) / cfg.convStrides[0]!) + 1;
  const front = 2 * FRONT_COPIES * 4 * cfg.convDims[0]! * conv0Frames * frontBatch;
  const T = framesFor(cfg, segmentSamples);
  const rows = batch * T;
  // A pass keeps every tapped layer's FFN and attention activations until its reductions, plus one layer's transients
  // (the FFN's intermediate twice, the attention scores twice), for both models.
  const held = 4 * rows * (cfg.intermediate + cfg.hidden) * Math.min(plan.layersPerPass, cfg.layers);
  const transient = 4 * (2 * rows * cfg.intermediate + 2 * batch * cfg.heads * T * T);
  const layers = 2 * (held + transient);
  const largestTensor = 4 * Math.max(rows * cfg.intermediate, batch * cfg.heads * T * T);
  const activations = HEAP_RETENTION * Math.max(front, layers) + FRAGMENTED_TENSORS * largestTensor;
  const statistics = accumulators + 2 * passOutputs;
  const sessionWeights = SESSION_WEIGHT_FACTOR * 2 * 4 * (parameterCount(cfg) - linearParameterCount(cfg));
  return {
    weights,
    sessionWeights,
    statistics,
    activations,
    runtime: RUNTIME_BYTES,
    total: weights + sessionWeights + statistics + activations + RUNTIME_BYTES,
  };
}

/** Parameters of the Linear weights (attention projections, FFN, feature projection): fed to the sessions, not held. */
function linearParameterCount(cfg: EncoderConfig): number {
  const D = cfg.hidden;
  return cfg.layers * (4 * D * D + 2 * D * cfg.intermediate) + cfg.convDims.at(-1)! * D;
}

export interface StatisticsPlan {
  batchSize: number;
  passes: PassPlan;
  estimate: StatisticsMemory;
  /** The budget the plan was fitted to, bytes (undefined: none given). */
  budget?: number;
}

/** `4GB`, `3.5 GiB`, `800MB` → bytes (GB and GiB both mean 2³⁰: what `free -g` and schedulers show). */
export function parseMemory(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT])i?B?\s*$/i.exec(text);
  if (!m) throw new EngineError('bad-config', `runtime.memory "${text}": expected a size such as 4GB, 3.5GiB or 800MB`);
  const power = { K: 1, M: 2, G: 3, T: 4 }[m[2]!.toUpperCase() as 'K' | 'M' | 'G' | 'T'];
  return Math.round(Number(m[1]) * 1024 ** power);
}

/**
 * Batch size and pass plan for the statistics step: always the backend's default passes (on the CPU the smallest,
 * which are no slower than larger ones; on a GPU one pass: model/pair-graph.ts). Without a budget: the recipe's batch
 * size (or the backend's default). With one: the largest batch (up to the recipe's or the default) whose estimate
 * fits; refused with the smallest estimate when none does.
 */
export function planStatistics(
  cfg: EncoderConfig,
  taps: readonly TapName[],
  segmentSamples: number,
  opts: { batchSize?: number; memory?: string | number; backend?: Backend } = {},
): StatisticsPlan {
  const backend = opts.backend ?? 'cpu';
  const maxBatch = opts.batchSize ?? defaultBatchSize(cfg, segmentSamples, backend);
  const passes = { ...defaultPassPlan(backend, cfg.layers) };
  if (opts.memory === undefined) {
    return { batchSize: maxBatch, passes, estimate: estimateStatisticsMemory(cfg, taps, segmentSamples, maxBatch, passes) };
  }
  const budget = typeof opts.memory === 'number' ? opts.memory : parseMemory(opts.memory);
  const halvings = (n: number) => {
    const out: number[] = [];
    for (let v = n; v >= 1; v = Math.floor(v / 2)) out.push(v);
    if (out.at(-1) !== 1) out.push(1);
    return out;
  };
  for (const batch of halvings(maxBatch)) {
    const estimate = estimateStatisticsMemory(cfg, taps, segmentSamples, batch, passes);
    if (estimate.total <= budget) return { batchSize: batch, passes, estimate, budget };
  }
  const least = estimateStatisticsMemory(cfg, taps, segmentSamples, 1, passes);
  throw new EngineError(
    'bad-config',
    `runtime.memory ${formatGiB(budget)} is too small: the statistics step needs about ${formatGiB(least.total)} even one segment at a time (both models' weights ${formatGiB(least.weights)}, held by the engine and by onnxruntime, statistics ${formatGiB(least.statistics)})`,
  );
}

function formatGiB(n: number): string {
  return `${(n / 2 ** 30).toFixed(2)} GiB`;
}
