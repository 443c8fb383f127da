/**
 * bench:gpu — the GPU backends against the CPU on a HuBERT-base-sized random pair (the same models as bench:align):
 *
 *   forward      every hidden state of one clip: seconds per minute of audio, and each GPU backend's largest
 *                deviation from the CPU's output (max |Δ| / max |x| over all 13 hidden states and the conv features)
 *   statistics   the statistics step (paper taps: CNN + attention + FFN) on a probe: seconds per minute of probe audio
 *                after the first batch (shader compilation is reported apart), peak RSS measured from outside, and
 *                whether the permutations solved from each backend's statistics equal the CPU's
 *
 * Each (backend, precision, part) runs in its own child process (peak RSS from outside: bench/peak-rss.ts). A backend
 * that is unavailable here is listed with the reason instead of failing the bench. `--precision fp16` adds a
 * half-precision forward row for GPU backends (statistics stay float32 in the graph, float64 in JS).
 * Usage: npm run bench:gpu [-- --backends cpu,webgpu --audio 20 --probe 120 --segment 5 --threads N --precision fp16]
 * (`--small` swaps in a 2-layer, 64-wide model: a smoke test of the bench itself, e.g. on a software WebGPU adapter).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { solveLap } from '../server/src/engine/align/lap';
import { permutationsFromCorrelations } from '../server/src/engine/align/solve';
import { buildPermutationSpec } from '../server/src/engine/align/spec';
import { correlation } from '../server/src/engine/align/stats';
import { EncoderSession, hiddenStateOutputs } from '../server/src/engine/model/encoder';
import { hubertBaseConfig, randomWeights } from '../server/src/engine/model/random';
import { probeBackend, type Backend, type Precision } from '../server/src/engine/model/runtime';
import { parameterCount } from '../server/src/engine/model/weights';
import { defaultBatchSize, tapsFor } from '../server/src/engine/pipeline/plan';
import { collectStatistics } from '../server/src/engine/pipeline/statistics';
import { mulberry32 } from '../server/src/engine/random';
import { syntheticProbe } from './synthetic-probe';
import { MiB, reportFromChild, runMeasuredChild } from './peak-rss';

const argOf = (k: string, d: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1]! : d;
};
const backends = argOf('backends', 'cpu,webgpu').split(',') as Backend[];
const audioSeconds = Number(argOf('audio', '20'));
const probeSeconds = Number(argOf('probe', '120'));
const segment = Number(argOf('segment', '5'));
const threads = Number(argOf('threads', '0')) || undefined;
const precisions = ['fp32', ...(argOf('precision', '') === 'fp16' ? ['fp16'] : [])] as Precision[];
const reps = Number(argOf('reps', '3'));
const parts = argOf('parts', 'forward,statistics').split(',');
const small = process.argv.includes('--small');
const modelConfig = () =>
  small
    ? hubertBaseConfig({
        hidden: 64,
        heads: 4,
        intermediate: 128,
        layers: 2,
        convDims: Array(7).fill(32),
        posConvKernel: 16,
        posConvGroups: 4,
      })
    : hubertBaseConfig();
/** When this file runs bundled (the device pack), children are the same bundle under plain node. */
const bundled = __filename.endsWith('.cjs');

function waveform(seconds: number, rate: number, seed: number, pitch = 110): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from(
    { length: Math.round(seconds * rate) },
    (_, t) =>
      0.2 * Math.sin((2 * Math.PI * pitch * t) / rate) + 0.1 * Math.sin((2 * Math.PI * 3.7 * pitch * t) / rate) + 0.05 * (rand() - 0.5),
  );
}

interface ForwardResult {
  kind: 'forward';
  backend: string;
  secPerMinute: number;
  firstRunSec: number;
  outputs: string[];
}

interface StatisticsResult {
  kind: 'statistics';
  backend: string;
  firstBatchSec: number;
  secPerMinute: number;
  batches: number;
  batchSize: number;
  perms: Record<string, number[]>;
  matched: Record<string, number>;
}

/** Child: one clip through the encoder on `backend`; the outputs go to `dir` for the parent to compare. */
async function forwardChild(backend: Backend, precision: Precision, dir: string): Promise<ForwardResult> {
  const cfg = modelConfig();
  const model = { config: cfg, weights: randomWeights(cfg, 1) };
  const outputs = hiddenStateOutputs(cfg).filter((o) => o !== 'last_hidden_state');
  const session = await EncoderSession.create(model, outputs, { device: backend, threads, precision });
  const audio = waveform(audioSeconds, cfg.sampleRate, 7);
  let t = performance.now();
  let out = await session.run(audio, 1);
  const firstRunSec = (performance.now() - t) / 1000;
  t = performance.now();
  for (let i = 0; i < reps; i++) out = await session.run(audio, 1);
  const sec = (performance.now() - t) / 1000 / reps;
  for (const [name, tensor] of out) {
    const data = tensor.data as Float32Array;
    writeFileSync(path.join(dir, `${backend}-${precision}-${name}.f32`), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  await session.release();
  return { kind: 'forward', backend, secPerMinute: (sec * 60) / audioSeconds, firstRunSec, outputs: [...out.keys()] };
}

/** Child: the statistics step on `backend`, then the permutations solved from its statistics (in-thread LAP). */
async function statisticsChild(backend: Backend, precision: Precision, batch: number, plan: string): Promise<StatisticsResult> {
  const cfg = modelConfig();
  const anchor = { config: cfg, weights: randomWeights(cfg, 1) };
  const other = { config: cfg, weights: randomWeights(cfg, 2) };
  const taps = tapsFor(cfg, ['cnn', 'attention', 'ffn'], 'reorder');
  const probe = syntheticProbe(probeSeconds, segment, cfg.sampleRate);
  const batchSize = batch || defaultBatchSize(cfg, probe.segmentSamples);
  const times: number[] = [];
  let last = performance.now();
  const { stats } = await collectStatistics(anchor, other, probe, taps, {
    device: backend,
    threads,
    precision,
    batchSize,
    // `whole`: the batch through the front end at once and every layer in one pass (no hidden state crosses to JS).
    ...(plan === 'whole' ? { passes: { frontBatch: 0, layersPerPass: cfg.layers } } : {}),
    onEvent: (e) => {
      if (e.type !== 'progress') return;
      const now = performance.now();
      if (e.done > 0) times.push((now - last) / 1000);
      last = now;
    },
  });
  const rest = times.slice(1);
  const restSeconds = (rest.length * batchSize * segment) | 0;
  const corr = new Map<string, Float64Array>();
  for (const [tap, st] of stats) corr.set(tap, correlation(st));
  const { perms, report } = await permutationsFromCorrelations(
    buildPermutationSpec(cfg),
    { taps: corr },
    { permute: ['cnn', 'attention', 'ffn'], heads: 'reorder', assign: async (score, n) => solveLap(score, n) },
  );
  return {
    kind: 'statistics',
    backend,
    firstBatchSec: times[0] ?? 0,
    // One batch only: its time includes compilation, and stands in for the steady rate (the table says so).
    secPerMinute: rest.length
      ? (rest.reduce((a, b) => a + b, 0) * 60) / Math.min(restSeconds, probe.totalSeconds)
      : ((times[0] ?? 0) * 60) / probe.totalSeconds,
    batches: times.length,
    batchSize,
    perms: Object.fromEntries([...perms].map(([k, p]) => [k, [...p]])),
    matched: Object.fromEntries(report.map((r) => [r.group, r.after])),
  };
}

function maxRelativeDeviation(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return diff / (scale || 1);
}

function readF32(file: string): Float32Array {
  const buf = readFileSync(file);
  return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
}

function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => `  ${r.map((c, i) => c.padStart(widths[i]!)).join('  ')}`;
  console.log(fmt(head));
  for (const r of rows) console.log(fmt(r));
}

async function main(): Promise<void> {
  const child = argOf('child', '');
  if (child) {
    const backend = argOf('backend', 'cpu') as Backend;
    const precision = argOf('child-precision', 'fp32') as Precision;
    reportFromChild(
      child === 'forward'
        ? await forwardChild(backend, precision, argOf('dir', os.tmpdir()))
        : await statisticsChild(backend, precision, Number(argOf('batch', '0')), argOf('plan', 'default')),
    );
    return;
  }
  const cfg = modelConfig();
  const weightBytes = 4 * parameterCount(cfg);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-gpu-'));
  const run = <T>(args: string[]) =>
    runMeasuredChild<T>(
      __filename,
      [
        ...args,
        ...(threads ? ['--threads', String(threads)] : []),
        '--audio',
        String(audioSeconds),
        '--probe',
        String(probeSeconds),
        '--segment',
        String(segment),
        '--reps',
        String(reps),
        ...(small ? ['--small'] : []),
      ],
      bundled ? { command: process.execPath } : {},
    );
  console.log(
    `bench:gpu — ${small ? 'small (--small) ' : 'HuBERT-base-sized '}random models (${(parameterCount(cfg) / 1e6).toFixed(1)} M params, ${MiB(weightBytes)} MiB of weights each); forward on ${audioSeconds} s of audio, statistics on ${probeSeconds} s of probe (${segment} s segments, batches of ${defaultBatchSize(cfg, segment * cfg.sampleRate)}); ${os.cpus().length} CPU cores`,
  );
  const available: Backend[] = [];
  for (const b of backends) {
    const status = await probeBackend(b);
    console.log(`  ${b}: ${status.available ? 'available' : 'unavailable'} (${status.detail})`);
    if (status.available) available.push(b);
  }
  try {
    const forwardRows: string[][] = [];
    let cpuForward: number | undefined;
    for (const b of parts.includes('forward') ? available : []) {
      for (const precision of precisions) {
        if (precision === 'fp16' && b === 'cpu') continue;
        try {
          const { result, memory } = await run<ForwardResult>([
            '--child',
            'forward',
            '--backend',
            b,
            '--child-precision',
            precision,
            '--dir',
            dir,
          ]);
          if (b === 'cpu') cpuForward = result.secPerMinute;
          let worst = 0;
          let worstName = '—';
          if (b !== 'cpu' && available.includes('cpu')) {
            for (const name of result.outputs) {
              const dev = maxRelativeDeviation(
                readF32(path.join(dir, `cpu-fp32-${name}.f32`)),
                readF32(path.join(dir, `${b}-${precision}-${name}.f32`)),
              );
              if (dev >= worst) [worst, worstName] = [dev, name];
            }
          }
          forwardRows.push([
            b,
            precision,
            result.firstRunSec.toFixed(2),
            result.secPerMinute.toFixed(2),
            cpuForward ? (cpuForward / result.secPerMinute).toFixed(2) : '—',
            b === 'cpu' ? '(reference)' : `${worst.toExponential(1)} (${worstName})`,
            MiB(memory.peak),
          ]);
        } catch (e) {
          forwardRows.push([b, precision, 'failed', reason(e), '', '', '']);
        }
      }
    }
    if (forwardRows.length) {
      console.log('\nforward (every hidden state of one clip):');
      table(
        ['backend', 'precision', 'first run s', 's per min of audio', '× cpu speed', 'max |Δ| / max |x| vs cpu', 'peak RSS MiB'],
        forwardRows,
      );
    }

    const statRows: string[][] = [];
    let cpuStats: StatisticsResult | undefined;
    // --stat-runs backend:batch:plan:precision,… (batch 0 = the default; plan default | whole); otherwise each
    // available backend at its defaults (and fp16 on GPU backends with --precision fp16). The first cpu run is the reference.
    const statRuns = argOf('stat-runs', '')
      ? argOf('stat-runs', '')
          .split(',')
          .map((r) => r.split(':'))
          .filter(([b]) => available.includes(b as Backend))
          .map(
            ([b, batch, plan, precision]) => [b as Backend, (precision ?? 'fp32') as Precision, batch ?? '0', plan ?? 'default'] as const,
          )
      : available.flatMap((b) => precisions.filter((p) => b !== 'cpu' || p === 'fp32').map((p) => [b, p, '0', 'default'] as const));
    for (const [b, precision, batch, plan] of statRuns) {
      try {
        const { result, memory } = await run<StatisticsResult>([
          ...['--child', 'statistics', '--backend', b, '--child-precision', precision],
          ...['--batch', batch, '--plan', plan],
        ]);
        const reference = !cpuStats && b === 'cpu';
        if (reference) cpuStats = result;
        let agree = reference ? '(reference)' : '—';
        if (!reference && cpuStats) {
          const groups = Object.keys(cpuStats.perms);
          const same = groups.filter((g) => JSON.stringify(cpuStats!.perms[g]) === JSON.stringify(result.perms[g])).length;
          const maxMatched = Math.max(
            0,
            ...groups.map((g) => Math.abs(cpuStats!.matched[g]! - result.matched[g]!)).filter(Number.isFinite),
          );
          agree = `${same}/${groups.length} groups identical; max |Δ matched corr| ${maxMatched.toExponential(1)}`;
        }
        statRows.push([
          b,
          precision,
          `${result.batchSize} × ${segment} s`,
          plan,
          result.firstBatchSec.toFixed(1),
          result.secPerMinute.toFixed(2),
          cpuStats ? (cpuStats.secPerMinute / result.secPerMinute).toFixed(2) : '—',
          MiB(memory.peak),
          (memory.peak / (2 * weightBytes)).toFixed(2),
          agree,
        ]);
      } catch (e) {
        statRows.push([b, precision, batch, plan, 'failed', reason(e), '', '', '', '']);
      }
    }
    console.log('\nstatistics step (both models, paper taps):');
    table(
      [
        'backend',
        'precision',
        'batch',
        'passes',
        'first batch s',
        's per min of probe',
        '× cpu speed',
        'peak RSS MiB',
        'peak / weights',
        'permutations vs cpu',
      ],
      statRows,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The child's own error line (printed last on its stderr), not the stack around it. */
const ERROR_MARK = '@@bench-error@@';
const reason = (e: unknown) => {
  const text = String((e as Error).message ?? e);
  const marked = text.split('\n').find((l) => l.includes(ERROR_MARK));
  return (marked ? marked.slice(marked.indexOf(ERROR_MARK) + ERROR_MARK.length) : text.split('\n')[0]!).slice(0, 200);
};

void main().catch((e) => {
  if (argOf('child', '')) console.error(`${ERROR_MARK}${(e as Error).message ?? e}`);
  else console.error(e);
  process.exit(1);
});
