/**
 * bench:align — the statistics step on a HuBERT-base-sized random pair (768 hidden, 12 layers, FFN 3072, 7×512 conv)
 * with the paper's taps (CNN + attention + FFN): seconds per minute of probe audio (wall and CPU), the GEMM rate of
 * the step as a fraction of this machine's onnxruntime MatMul ceiling (measured in the same child right after its
 * batches, wall and per CPU-second, so that a loaded machine slows both alike), the assignment time, and peak RSS
 * against the size of both models' weights at several probe lengths (it should not grow with the probe). Each probe
 * length runs in its own child process; its peak RSS is measured from outside (bench/peak-rss.ts). The synthetic
 * probe audio is generated segment by segment as batches read it, so the peak is the statistics step's own (a real
 * run also holds its decoded probe: 220 MiB per hour of audio).
 * The child runs with the engine's malloc settings (server/src/engine/process-env.ts), as every engine process the
 * product starts on Linux does; `--plain-malloc` measures without them (glibc's defaults: fresh pages per run).
 * Usage: npm run bench:align [-- --lengths 40,240 --segment 5 --threads N --memory 3GB --no-assign --plain-malloc]
 */
import * as ort from 'onnxruntime-node';
import { permutationsFromCorrelations } from '../server/src/engine/align/solve';
import { buildPermutationSpec } from '../server/src/engine/align/spec';
import { correlation } from '../server/src/engine/align/stats';
import { shutdownLapWorker } from '../server/src/engine/align/lap-async';
import { framesFor } from '../server/src/engine/model/encoder';
import { GraphBuilder } from '../server/src/engine/model/graph-builder';
import { tapWidth } from '../server/src/engine/model/pair-graph';
import { hubertBaseConfig, randomWeights } from '../server/src/engine/model/random';
import { mulberry32 } from '../server/src/engine/random';
import { ENGINE_MALLOC_ENV, engineProcessEnv } from '../server/src/engine/process-env';
import { parameterCount } from '../server/src/engine/model/weights';
import { planStatistics } from '../server/src/engine/pipeline/memory-plan';
import { defaultBatchSize, tapsFor } from '../server/src/engine/pipeline/plan';
import { collectStatistics } from '../server/src/engine/pipeline/statistics';
import { syntheticProbe } from './synthetic-probe';
import { MiB, reportFromChild, runMeasuredChild } from './peak-rss';

const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const segment = arg('segment', 5);
const threads = arg('threads', 0) || undefined;
const memoryArg = process.argv.indexOf('--memory');
/** A runtime.memory budget for the run (e.g. 2.5GB); without it the default batch size and pass plan. */
const memory = memoryArg > 0 ? process.argv[memoryArg + 1] : undefined;
const lengthsArg = process.argv.indexOf('--lengths');
const lengths = lengthsArg > 0 ? process.argv[lengthsArg + 1]!.split(',').map(Number) : [40, 240];
/** Without the engine's malloc settings: the figure before the product set them. */
const plainMalloc = process.argv.includes('--plain-malloc');

/** The child's environment: the product's engine environment, or glibc's defaults with --plain-malloc. */
function childEnv(): NodeJS.ProcessEnv {
  if (!plainMalloc) return engineProcessEnv(process.env);
  const env = { ...process.env };
  for (const k of Object.keys(ENGINE_MALLOC_ENV)) delete env[k];
  return env;
}

/** GFLOP/s of onnxruntime's MatMul at the FFN tap's shape: per wall second and per CPU second of this process. */
async function matmulCeiling(rows: number, d: number): Promise<{ wall: number; cpu: number }> {
  const b = new GraphBuilder();
  const x = b.input('x', [rows, d]);
  const y = b.input('y', [rows, d]);
  // Summed inside the graph: onnxruntime-node copies every output into a fresh buffer, and faulting in the d×d product's
  // pages each run (36 MiB at the FFN tap) made the ceiling itself vary (74–140 GFLOP/s on one machine in one session).
  b.output(b.op('ReduceSum', [b.op('MatMul', [b.op('Transpose', [x], { perm: [1, 0] }), y])], { keepdims: 0 }), 'c');
  const opts: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' };
  if (threads) opts.intraOpNumThreads = threads;
  const s = await ort.InferenceSession.create(b.encode(), opts);
  const rand = mulberry32(9);
  const feed = {
    x: new ort.Tensor(
      'float32',
      Float32Array.from({ length: rows * d }, () => rand() - 0.5),
      [rows, d],
    ),
    y: new ort.Tensor(
      'float32',
      Float32Array.from({ length: rows * d }, () => rand() - 0.5),
      [rows, d],
    ),
  };
  await s.run(feed);
  // The best of three blocks of runs: a ceiling is what the machine can do, not its average under other load.
  let sec = Infinity;
  let cpu = Infinity;
  for (let block = 0; block < 3; block++) {
    const t = performance.now();
    const c = process.cpuUsage();
    const runs = 3;
    for (let i = 0; i < runs; i++) await s.run(feed);
    sec = Math.min(sec, (performance.now() - t) / 1000 / runs);
    const used = process.cpuUsage(c);
    cpu = Math.min(cpu, (used.user + used.system) / 1e6 / runs);
  }
  await s.release();
  const flop = 2 * rows * d * d;
  return { wall: flop / sec / 1e9, cpu: flop / cpu / 1e9 };
}

/** One probe length, measured in its own process so that peak RSS is this run's alone. */
interface Measured {
  row: string[];
  secPerMinute: number;
  /** CPU seconds (all threads) per minute of probe audio. */
  cpuPerMinute: number;
  gflops: number;
  /** GEMM work per CPU second, GFLOP. */
  gflopPerCpuSecond: number;
  /** The MatMul ceiling measured right after this length's batches. */
  ceiling: { wall: number; cpu: number };
  assignSec: number | null;
  /**
   * The batches after the first, where there are any: the first also pays one-time costs (its float64 accumulators,
   * 1 GiB for the paper's taps, and the heap are first-touched, fresh pages at ~25 µs each on a VM), so these are the
   * rates an hour of probe runs at.
   */
  warm: { secPerMinute: number; cpuPerMinute: number; gflops: number; gflopPerCpuSecond: number } | null;
  /** The memory plan's estimate of the peak, bytes, and the plan. */
  estimate: number;
  plan: string;
}

async function measure(total: number, withAssignment: boolean): Promise<Measured> {
  const cfg = hubertBaseConfig();
  const anchor = { config: cfg, weights: randomWeights(cfg, 1) };
  const other = { config: cfg, weights: randomWeights(cfg, 2) };
  const weightBytes = 2 * 4 * parameterCount(cfg);
  const taps = tapsFor(cfg, ['cnn', 'attention', 'ffn'], 'reorder');
  const segmentSamples = segment * cfg.sampleRate;
  const batchSize = defaultBatchSize(cfg, segmentSamples);
  const plan = planStatistics(cfg, taps, segmentSamples, { batchSize, ...(memory ? { memory } : {}) });
  const probe = syntheticProbe(total, segment, cfg.sampleRate);
  const t = performance.now();
  let firstBatch = 0;
  let cpuAtFirstBatch = process.cpuUsage();
  let secondBatch = 0;
  let cpuAtSecondBatch = process.cpuUsage();
  const { stats } = await collectStatistics(anchor, other, probe, taps, {
    device: 'cpu',
    threads,
    batchSize: plan.batchSize,
    passes: plan.passes,
    // The first progress event comes once the session exists: split graph build + session creation from batches.
    onEvent: (e) => {
      if (e.type === 'progress' && e.done === 0) {
        firstBatch = performance.now();
        cpuAtFirstBatch = process.cpuUsage();
      }
      if (e.type === 'progress' && e.done === 1) {
        secondBatch = performance.now();
        cpuAtSecondBatch = process.cpuUsage();
      }
    },
  });
  const end = performance.now();
  const cpuUsed = process.cpuUsage(cpuAtFirstBatch);
  const cpuSec = (cpuUsed.user + cpuUsed.system) / 1e6;
  const warmCpuUsed = process.cpuUsage(cpuAtSecondBatch);
  const warmCpuSec = (warmCpuUsed.user + warmCpuUsed.system) / 1e6;
  const warmSec = (end - secondBatch) / 1000;
  const ceiling = await matmulCeiling(plan.batchSize * framesFor(cfg, segmentSamples), cfg.intermediate);
  const setup = (firstBatch - t) / 1000;
  const sec = (end - firstBatch) / 1000;
  // GEMM work of the step: both forwards + the cross products of every tap.
  const T = framesFor(cfg, segmentSamples);
  let crossFlops = 0;
  for (const tap of taps) {
    const d = tapWidth(cfg, tap);
    const tapFrames = tap.startsWith('conv.') ? convFrames(cfg, segmentSamples, Number(tap.slice(5))) : T;
    crossFlops += 2 * tapFrames * probe.segments.length * d * d;
  }
  const D = cfg.hidden;
  const F = cfg.intermediate;
  // Per segment and model: the layers (q, k, v, out projections; the FFN; scores and context), the conv blocks, the
  // feature projection and the positional conv (grouped: D/groups inputs per output, K taps).
  const frontFlops =
    convFlops(cfg, segmentSamples) + 2 * T * cfg.convDims.at(-1)! * D + 2 * T * D * (D / cfg.posConvGroups) * cfg.posConvKernel;
  const forwardFlops = 2 * probe.segments.length * (cfg.layers * (2 * T * D * D * 4 + 2 * T * D * F * 2 + 2 * T * T * D * 2) + frontFlops);
  const row = [
    `${total} s`,
    `${probe.segments.length} × ${segment} s`,
    setup.toFixed(1),
    sec.toFixed(1),
    ((sec * 60) / total).toFixed(1),
    ((cpuSec * 60) / total).toFixed(1),
    ((crossFlops + forwardFlops) / sec / 1e9).toFixed(1),
    `${((100 * (crossFlops + forwardFlops)) / sec / 1e9 / ceiling.wall).toFixed(0)} %`,
    `${((100 * (crossFlops + forwardFlops)) / cpuSec / 1e9 / ceiling.cpu).toFixed(0)} %`,
  ];
  let assignSec: number | null = null;
  if (withAssignment) {
    const spec = buildPermutationSpec(cfg);
    const corr = new Map<string, Float64Array>();
    for (const [tap, st] of stats) corr.set(tap, correlation(st));
    const a = performance.now();
    await permutationsFromCorrelations(spec, { taps: corr }, { permute: ['cnn', 'attention', 'ffn'], heads: 'reorder' });
    assignSec = (performance.now() - a) / 1000;
    await shutdownLapWorker();
  }
  void weightBytes;
  // Segments after the first batch (the work is per segment) and their probe seconds.
  const warmSegments = probe.segments.length - Math.min(plan.batchSize, probe.segments.length);
  const warmShare = warmSegments / probe.segments.length;
  const warmAudio = warmSegments * segment;
  return {
    row,
    secPerMinute: (sec * 60) / total,
    cpuPerMinute: (cpuSec * 60) / total,
    gflops: (crossFlops + forwardFlops) / sec / 1e9,
    gflopPerCpuSecond: (crossFlops + forwardFlops) / cpuSec / 1e9,
    ceiling,
    assignSec,
    warm:
      warmSegments > 0
        ? {
            secPerMinute: (warmSec * 60) / warmAudio,
            cpuPerMinute: (warmCpuSec * 60) / warmAudio,
            gflops: (warmShare * (crossFlops + forwardFlops)) / warmSec / 1e9,
            gflopPerCpuSecond: (warmShare * (crossFlops + forwardFlops)) / warmCpuSec / 1e9,
          }
        : null,
    estimate: plan.estimate.total,
    plan: `batch ${plan.batchSize}, front ${plan.passes.frontBatch || plan.batchSize}, ${plan.passes.layersPerPass} layers/pass`,
  };
}

async function main(): Promise<void> {
  const only = arg('only', 0);
  if (only > 0) {
    reportFromChild(await measure(only, process.argv.includes('--assign')));
    return;
  }
  const cfg = hubertBaseConfig();
  const weightBytes = 2 * 4 * parameterCount(cfg);
  const rows: string[][] = [];
  const results: Measured[] = [];
  for (const [i, total] of lengths.entries()) {
    const args = [
      '--only',
      String(total),
      '--segment',
      String(segment),
      ...(memory ? ['--memory', memory] : []),
      ...(threads ? ['--threads', String(threads)] : []),
      ...(i === 0 && !process.argv.includes('--no-assign') ? ['--assign'] : []),
    ];
    const { result, memory: peak } = await runMeasuredChild<Measured>(__filename, args, { env: childEnv() });
    results.push(result);
    rows.push([
      ...result.row,
      MiB(peak.polledPeak),
      MiB(peak.vmHwm),
      (peak.peak / weightBytes).toFixed(2),
      MiB(result.estimate),
      result.plan,
    ]);
  }
  const batchSize = defaultBatchSize(cfg, segment * cfg.sampleRate);
  const taps = tapsFor(cfg, ['cnn', 'attention', 'ffn'], 'reorder');
  console.log(
    `bench:align — HuBERT-base-sized random pair (${(parameterCount(cfg) / 1e6).toFixed(1)} M params each, ${MiB(weightBytes)} MiB of weights for both), ${taps.length} taps, batches of ${batchSize} × ${segment} s, CPU${threads ? `, ${threads} threads` : ''}, ${
      plainMalloc
        ? "glibc's default malloc (--plain-malloc)"
        : `the engine's malloc settings (${Object.entries(ENGINE_MALLOC_ENV)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')})`
    }; each probe length in its own child process, peak RSS measured from outside`,
  );
  const head = [
    'probe',
    'segments',
    'session s',
    'batches s',
    's per min of audio',
    'CPU-s per min',
    'GFLOP/s',
    'of ceiling',
    'per CPU-s of ceiling',
    'polled peak MiB',
    'VmHWM MiB',
    'peak / weights',
    'estimate MiB',
    'plan',
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => `  ${r.map((c, i) => c.padStart(widths[i]!)).join('  ')}`;
  console.log(fmt(head));
  for (const r of rows) console.log(fmt(r));
  for (const r of results)
    console.log(
      `  ${r.row[0]}: ORT MatMul ceiling (XᵀY at the FFN tap's shape, right after the batches): ${r.ceiling.wall.toFixed(1)} GFLOP/s, ${r.ceiling.cpu.toFixed(1)} GFLOP per CPU-s → statistics step at ${((100 * r.gflops) / r.ceiling.wall).toFixed(0)} % (wall), ${((100 * r.gflopPerCpuSecond) / r.ceiling.cpu).toFixed(0)} % (per CPU-s)${
        r.warm
          ? `; batches after the first: ${r.warm.secPerMinute.toFixed(1)} s and ${r.warm.cpuPerMinute.toFixed(1)} CPU-s per min of probe, ${r.warm.gflops.toFixed(1)} GFLOP/s, ${((100 * r.warm.gflops) / r.ceiling.wall).toFixed(0)} % (wall), ${((100 * r.warm.gflopPerCpuSecond) / r.ceiling.cpu).toFixed(0)} % (per CPU-s)`
          : ''
      }`,
    );
  const assign = results.find((r) => r.assignSec !== null);
  if (assign)
    console.log(
      `  assignment (12 FFN LAPs n=3072, 12 attention layers, 7 conv LAPs n=512; unrelated random models, the hard case): ${assign.assignSec!.toFixed(1)} s`,
    );
}

function convFrames(cfg: ReturnType<typeof hubertBaseConfig>, samples: number, upTo: number): number {
  let n = samples;
  for (let i = 0; i <= upTo; i++) n = Math.floor((n - cfg.convKernels[i]!) / cfg.convStrides[i]!) + 1;
  return n;
}

function convFlops(cfg: ReturnType<typeof hubertBaseConfig>, samples: number): number {
  let n = samples;
  let cin = 1;
  let flops = 0;
  cfg.convDims.forEach((c, i) => {
    n = Math.floor((n - cfg.convKernels[i]!) / cfg.convStrides[i]!) + 1;
    flops += 2 * n * c * cin * cfg.convKernels[i]!;
    cin = c;
  });
  return flops;
}

void main();
