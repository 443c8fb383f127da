/**
 * bench:forward — a HuBERT-base-sized random encoder (768 hidden, 12 layers, FFN 3072, 7×512 conv) on the CPU backend:
 * frames/s, seconds per minute of audio, and the fraction of this machine's onnxruntime MatMul ceiling that the
 * transformer part reaches; then the peak RSS of `merge-studio forward --summary` (the built CLI: checkpoint load,
 * session, all hidden states) on a HuBERT-base-sized random checkpoint, measured from outside, against torchaudio's
 * HuBERT-base on the same audio length (bench/forward_torchaudio.py, skipped when python3-torchaudio is missing),
 * for 10 s and 60 s of audio.
 * Usage: npm run build && npm run bench:forward [-- --seconds 10 --reps 3 --threads N --memory-seconds 10,60 --memory-only
 *   --cli path/to/cli.js --before path/to/earlier/cli.js]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeSafetensors } from '../server/src/engine/io/safetensors';
import { writeFloatWav } from '../test/helpers/wav';
import { MiB, procStatus, runMeasuredChild } from './peak-rss';
import { GraphBuilder } from '../server/src/engine/model/graph-builder';
import { EncoderSession } from '../server/src/engine/model/encoder';
import { hubertBaseConfig, randomWeights } from '../server/src/engine/model/random';
import { mulberry32 } from '../server/src/engine/random';
import { framesFor } from '../server/src/engine/model/encoder';
import { parameterCount, toStoredTensors } from '../server/src/engine/model/weights';

const arg = (k: string, d: number) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? Number(process.argv[i + 1]) : d;
};
const seconds = arg('seconds', 10);
const reps = arg('reps', 3);
const threads = arg('threads', 0) || undefined;
/** Clip lengths of the memory comparison (`--memory-seconds 10,60`). */
const memorySeconds = (() => {
  const i = process.argv.indexOf('--memory-seconds');
  return i > 0 ? process.argv[i + 1]!.split(',').map(Number) : [10, 60];
})();
const ROOT = path.resolve(__dirname, '..');
const bundleArg = (k: string) => (process.argv.includes(k) ? path.resolve(process.argv[process.argv.indexOf(k) + 1]!) : undefined);
/** The CLI bundle to measure (default: the built one), and another measured beside it in the same run (`--before`). */
const cliBundle = bundleArg('--cli');
const beforeBundle = bundleArg('--before');

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

/** A HuBERT-base-sized random checkpoint as a Hugging Face folder (config.json + model.safetensors), what `forward` loads. */
async function writeCheckpoint(dir: string): Promise<void> {
  const cfg = hubertBaseConfig();
  const config = {
    architectures: ['HubertModel'],
    model_type: 'hubert',
    hidden_size: cfg.hidden,
    num_hidden_layers: cfg.layers,
    num_attention_heads: cfg.heads,
    intermediate_size: cfg.intermediate,
    conv_dim: cfg.convDims,
    conv_kernel: cfg.convKernels,
    conv_stride: cfg.convStrides,
    num_feat_extract_layers: cfg.convDims.length,
    conv_bias: cfg.convBias,
    feat_extract_norm: cfg.featExtractNorm,
    feat_extract_activation: cfg.featExtractActivation,
    feat_proj_layer_norm: cfg.featProjLayerNorm,
    num_conv_pos_embeddings: cfg.posConvKernel,
    num_conv_pos_embedding_groups: cfg.posConvGroups,
    do_stable_layer_norm: cfg.preLayerNorm,
    layer_norm_eps: cfg.layerNormEps,
    hidden_act: cfg.hiddenAct,
  };
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const layout = { prefix: 'hubert.', posConv: 'weight_g/weight_v' as const };
  await writeSafetensors(path.join(dir, 'model.safetensors'), toStoredTensors(randomWeights(cfg, 0), layout));
}

/** A deterministic clip (tones and noise) as a float WAV at 16 kHz. */
function writeClip(file: string, clipSeconds: number): void {
  const rand = mulberry32(7);
  const x = Float32Array.from(
    { length: Math.round(clipSeconds * 16000) },
    (_, i) => 0.2 * Math.sin(i * 0.0577) + 0.1 * Math.sin(i * 0.213) + (rand() - 0.5) * 0.05,
  );
  writeFloatWav(file, x, 16000);
}

/**
 * `merge-studio forward --summary` as shipped (the built CLI, or the bundle `--cli FILE` names, e.g. a copy of an earlier
 * dist/cli.js for a before/after), its peak RSS polled from outside (the kernel's VmHWM of the child).
 */
function measureCli(args: string[], bundle = cliBundle): Promise<{ peak: number; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const launch = bundle
      ? [
          '-e',
          `require(${JSON.stringify(bundle)}).main(['node', 'merge-studio', ...process.argv.slice(1)]).then((c) => (process.exitCode = c))`,
        ]
      : [path.join(ROOT, 'bin/merge-studio.js')];
    const child = spawn(process.execPath, [...launch, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let peak = 0;
    const poll = setInterval(() => (peak = Math.max(peak, procStatus(child.pid!, 'VmHWM'))), 5);
    let err = '';
    child.stdout.resume();
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      clearInterval(poll);
      if (code !== 0) reject(new Error(`forward exited with ${code}: ${err.slice(-1000)}`));
      else resolve({ peak, seconds: (performance.now() - started) / 1000 });
    });
  });
}

/** The memory comparison's rows, each also handed to `onRow` as soon as it is measured (the runs take minutes). */
async function memoryRows(onRow: (key: string, value: string) => void = () => undefined): Promise<[string, string][]> {
  const cfg = hubertBaseConfig();
  const weightBytes = 4 * parameterCount(cfg);
  // Debian's python3-torch / python3-torchaudio live under the system python, not a pyenv or venv one on the PATH.
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const torchEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE' };
  const hasTorch = spawnSync(python, ['-c', 'import torchaudio'], { env: torchEnv }).status === 0;
  const rows: [string, string][] = [];
  const row = (k: string, v: string) => {
    rows.push([k, v]);
    onRow(k, v);
  };
  row('weights (float32)', `${MiB(weightBytes)} MiB`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-forward-'));
  try {
    await writeCheckpoint(dir);
    for (const clipSeconds of memorySeconds) {
      const wav = path.join(dir, `clip-${clipSeconds}.wav`);
      writeClip(wav, clipSeconds);
      const threadArgs = threads ? ['--threads', String(threads)] : [];
      if (beforeBundle) {
        const before = await measureCli(['forward', '--model', dir, '--audio', wav, '--summary', ...threadArgs], beforeBundle);
        row(
          `${clipSeconds} s: --before bundle's forward peak RSS`,
          `${MiB(before.peak)} MiB (${before.seconds.toFixed(1)} s wall, including load)`,
        );
      }
      const ours = await measureCli(['forward', '--model', dir, '--audio', wav, '--summary', ...threadArgs]);
      row(
        `${clipSeconds} s: merge-studio forward peak RSS`,
        `${MiB(ours.peak)} MiB = ${(ours.peak / weightBytes).toFixed(2)}× weights (${ours.seconds.toFixed(1)} s wall, including load)`,
      );
      if (!hasTorch) {
        row(`${clipSeconds} s: torchaudio HuBERT-base`, 'skipped (python3-torchaudio not installed)');
        continue;
      }
      const ref = await runMeasuredChild<{ seconds: number; params: number }>(
        path.join(__dirname, 'forward_torchaudio.py'),
        [String(clipSeconds), String(threads ?? 0)],
        { command: python, env: torchEnv },
      );
      row(
        `${clipSeconds} s: torchaudio HuBERT-base peak RSS`,
        `${MiB(ref.memory.peak)} MiB (${(ref.result.params / 1e6).toFixed(1)} M params, forward ${ref.result.seconds.toFixed(1)} s, ${ref.seconds.toFixed(1)} s wall)`,
      );
      row(`${clipSeconds} s: forward peak / torchaudio peak`, `${(ours.peak / ref.memory.peak).toFixed(2)}× (target ≤ 1.2×)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

async function main(): Promise<void> {
  if (process.argv.includes('--memory-only')) {
    await memoryRows((k, v) => console.log(`  ${k}  ${v}`));
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
