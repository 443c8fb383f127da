/**
 * bench:forward — a HuBERT-base-sized random encoder (768 hidden, 12 layers, FFN 3072, 7×512 conv) on the CPU backend:
 * frames/s, seconds per minute of audio, and the fraction of this machine's onnxruntime MatMul ceiling that the
 * transformer part reaches; then peak RSS of one `forward` (random weights → session → all hidden states) in a child
 * process, measured from outside, against torchaudio's HuBERT-base on the same audio length (bench/forward_torchaudio.py,
 * skipped when python3-torchaudio is missing).
 * Usage: npm run bench:forward [-- --seconds 10 --reps 3 --threads N]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { forward } from '../server/src/engine/model/encoder';
import { MiB, reportFromChild, runMeasuredChild } from './peak-rss';
import { GraphBuilder } from '../server/src/engine/model/graph-builder';
import { EncoderSession } from '../server/src/engine/model/encoder';
import { hubertBaseConfig, randomWeights } from '../server/src/engine/model/random';
import { mulberry32 } from '../server/src/engine/random';
import { framesFor } from '../server/src/engine/model/encoder';
import { parameterCount } from '../server/src/engine/model/weights';

const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const seconds = arg('seconds', 10);
const reps = arg('reps', 3);
const threads = arg('threads', 0) || undefined;

async function time(fn: () => Promise<unknown>, n: number): Promise<number> {
  await fn(); // warm-up
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await fn();
    t.push((performance.now() - s) / 1000);
  }
  return t.sort((a, b) => a - b)[Math.floor(t.length / 2)]!;
}

/** MatMul ceiling: the transformer's own GEMM shapes ([T, D] × [D, F]) in one session, as GFLOP/s. */
async function matmulCeiling(T: number, D: number, F: number): Promise<number> {
  const b = new GraphBuilder();
  const x = b.input('x', [T, D]);
  const rand = mulberry32(1);
  const w = b.weight('w', { shape: [D, F], data: Float32Array.from({ length: D * F }, () => rand() - 0.5) });
  const w2 = b.weight('w2', { shape: [F, D], data: Float32Array.from({ length: D * F }, () => rand() - 0.5) });
  let y = x;
  for (let i = 0; i < 4; i++) y = b.op('MatMul', [b.op('MatMul', [y, w]), w2]);
  b.output(y, 'y');
  const opts: ort.InferenceSession.SessionOptions = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' };
  if (threads) opts.intraOpNumThreads = threads;
  const s = await ort.InferenceSession.create(b.encode(), opts);
  const feed = {
    x: new ort.Tensor(
      'float32',
      Float32Array.from({ length: T * D }, () => rand() - 0.5),
      [T, D],
    ),
  };
  const sec = await time(() => s.run(feed), reps + 2);
  await s.release();
  return (8 * 2 * T * D * F) / sec / 1e9;
}

/** Child: what `merge-studio forward` does for one clip, with random weights instead of a checkpoint. */
async function forwardOnce(): Promise<void> {
  const cfg = hubertBaseConfig();
  const weights = randomWeights(cfg, 0);
  const rand = mulberry32(7);
  const audio = Float32Array.from({ length: Math.round(seconds * cfg.sampleRate) }, () => (rand() - 0.5) * 0.2);
  const t = performance.now();
  const r = await forward({ config: cfg, weights }, audio, { device: 'cpu', threads });
  reportFromChild({ seconds: (performance.now() - t) / 1000, layers: r.hiddenStates.length });
}

async function memoryRows(): Promise<[string, string][]> {
  const cfg = hubertBaseConfig();
  const weightBytes = 4 * parameterCount(cfg);
  const ours = await runMeasuredChild<{ seconds: number }>(__filename, [
    '--forward-once',
    '--seconds',
    String(seconds),
    ...(threads ? ['--threads', String(threads)] : []),
  ]);
  const rows: [string, string][] = [
    ['weights (float32)', `${MiB(weightBytes)} MiB`],
    [
      'forward peak RSS (polled / VmHWM)',
      `${MiB(ours.memory.polledPeak)} / ${MiB(ours.memory.vmHwm)} MiB = ${(ours.memory.peak / weightBytes).toFixed(2)}× weights`,
    ],
  ];
  // Debian's python3-torch / python3-torchaudio live under the system python, not a pyenv or venv one on the PATH.
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const hasTorch = spawnSync(python, ['-c', 'import torchaudio'], { env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } }).status === 0;
  if (!hasTorch) return [...rows, ['torchaudio HuBERT-base', 'skipped (python3-torchaudio not installed)']];
  const ref = await runMeasuredChild<{ seconds: number; params: number }>(
    path.join(__dirname, 'forward_torchaudio.py'),
    [String(seconds), String(threads ?? 0)],
    { command: python, env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' } },
  );
  return [
    ...rows,
    [
      'torchaudio HuBERT-base peak RSS (polled / VmHWM)',
      `${MiB(ref.memory.polledPeak)} / ${MiB(ref.memory.vmHwm)} MiB (${(ref.result.params / 1e6).toFixed(1)} M params, forward ${ref.result.seconds.toFixed(2)} s)`,
    ],
    ['forward peak / torchaudio peak', `${(ours.memory.peak / ref.memory.peak).toFixed(2)}× (target ≤ 1.2×)`],
  ];
}

async function main(): Promise<void> {
  if (process.argv.includes('--forward-once')) return forwardOnce();
  if (process.argv.includes('--memory-only')) {
    for (const [k, v] of await memoryRows()) console.log(`  ${k}  ${v}`);
    return;
  }
  const cfg = hubertBaseConfig();
  const weights = randomWeights(cfg, 0);
  const samples = Math.round(seconds * cfg.sampleRate);
  const T = framesFor(cfg, samples);
  const rand = mulberry32(7);
  const audio = Float32Array.from({ length: samples }, () => (rand() - 0.5) * 0.2);
  const opts = { device: 'cpu' as const, threads };

  const full = await EncoderSession.create({ config: cfg, weights }, ['last_hidden_state'], opts);
  const fullSec = await time(() => full.run(audio, 1), reps);
  await full.release();
  // The same encoder without transformer layers (onnxruntime would still run unused nodes of the full graph).
  const front = await EncoderSession.create({ config: { ...cfg, layers: 0 }, weights }, ['last_hidden_state'], opts);
  const frontSec = await time(() => front.run(audio, 1), reps);
  await front.release();

  const D = cfg.hidden;
  const F = cfg.intermediate;
  const transformerFlops = cfg.layers * (2 * T * D * D * 4 + 2 * T * D * F * 2 + 2 * T * T * D * 2);
  const transformerSec = Math.max(1e-9, fullSec - frontSec);
  const ceiling = await matmulCeiling(T, D, F);
  const achieved = transformerFlops / transformerSec / 1e9;

  const rows: [string, string][] = [
    ['model', `HuBERT-base-sized random (${(parameterCount(cfg) / 1e6).toFixed(1)} M params)`],
    ['audio', `${seconds} s → ${T} frames, batch 1`],
    ['threads', String(threads ?? 'onnxruntime default')],
    ['full forward (median)', `${fullSec.toFixed(3)} s`],
    ['  conv front end, projection, pos. conv', `${frontSec.toFixed(3)} s`],
    ['  transformer layers (difference)', `${transformerSec.toFixed(3)} s`],
    ['frames/s', (T / fullSec).toFixed(0)],
    ['seconds per minute of audio', ((fullSec * 60) / seconds).toFixed(2)],
    ['real-time factor', (fullSec / seconds).toFixed(3)],
    ['transformer GFLOP/s', achieved.toFixed(1)],
    ['ORT MatMul ceiling GFLOP/s', ceiling.toFixed(1)],
    ['fraction of ceiling', `${((100 * achieved) / ceiling).toFixed(0)} %`],
  ];
  rows.push(...(await memoryRows()));
  const w = Math.max(...rows.map(([k]) => k.length));
  console.log('bench:forward (CPU backend)');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
}

void main();
