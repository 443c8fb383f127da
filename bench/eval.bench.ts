/**
 * bench:eval — seconds per evaluated system on the example (examples/: two small HuBERT-architecture encoders, five
 * probe tasks, 1200 clips), split into its parts, against the forward pass as the reference measured in the same run:
 * a system cannot be evaluated faster than its encoder embeds every clip once, so `evaluate / forward` is how close
 * evaluation is to that ceiling (1.0 = probes and bookkeeping cost nothing).
 *
 *   session    building the embedding graph and the onnxruntime session
 *   forward    embedding every clip once, in length order, 16 clips per call (what evaluateModel does)
 *   split-16   the same clips in split order, 16 per call (how evaluation batched before it embedded in length order)
 *   probes     evaluateModel on precomputed features (the weighted-sum probes of the five tasks)
 *   evaluate   evaluateModel end to end (forward + probes) on the session above, already warm
 *   fresh      what one system of a run costs: a new session, evaluateModel on it, its release (a first pass grows the
 *              session's arena and meets each shape for the first time)
 *
 * The last row is a system whose front end (conv blocks, projection, positional conv) equals the row before it while
 * its layers differ (λ = 0.5 with the layers of λ = 0.3), as variants that change only the layers are at one λ of a
 * run: its session shares a FrontEndCache that the row before filled, so it runs the layers only.
 *
 * Then a run's systems as `merge-studio run` scores them (eval/scoring-pool.ts): the sources, five λ and one variant
 * whose front end equals λ = 0.5's, in the main thread one after another and in worker threads (one per core, at
 * most 4), alternating, each on a scorer whose threads have scored one system already (run from source, a worker first
 * compiles the engine with tsx; the CLI's bundled worker starts in ~0.2 s); per system wall and CPU seconds, and
 * whether both gave the same scores.
 *
 * Wall and CPU seconds (user + system, all threads of this process) are both shown: on a shared machine the CPU
 * seconds are the steadier number. Page faults (minor: first touches of fresh pages, ~25 µs each on these VMs) are
 * counted for forward, evaluate and fresh. The last line sums it up: fresh CPU seconds per system, what each system of
 * a run costs.
 *
 * The bench runs with the engine's malloc settings (server/src/engine/process-env.ts), as `merge-studio run` does (it
 * relaunches itself with them): glibc reads them only at process start, so a bench started without them runs again in
 * a child that has them. `--plain-malloc` measures with glibc's defaults, under which each fresh session's arena takes
 * fresh pages from the kernel. Usage: npm run bench:eval [-- --reps 2 --threads N --split validation --plain-malloc]
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { evaluateModel, loadEvalTasks, type EmbedFn, type HeldOutSplit } from '../server/src/engine/eval/evaluate';
import { loadAudio } from '../server/src/engine/io/audio';
import { EmbeddingSession } from '../server/src/engine/model/embed';
import { FrontEndCache } from '../server/src/engine/model/front-end-cache';
import { loadEncoderModel } from '../server/src/engine/model/encoder';
import type { Tensor } from '../server/src/engine/model/tensor';
import { mergeWeights } from '../server/src/engine/merge/merge';
import { MAX_SCORING_WORKERS, openScorer } from '../server/src/engine/eval/scoring-pool';
import { availableParallelism } from 'node:os';
import { ENGINE_MALLOC_ENV, engineProcessEnv } from '../server/src/engine/process-env';

const arg = (k: string, d: string) => {
  const i = process.argv.indexOf(`--${k}`);
  return i > 0 ? process.argv[i + 1]! : d;
};
const reps = Number(arg('reps', '2'));
const threads = Number(arg('threads', '0')) || undefined;
const split = arg('split', 'test') as HeldOutSplit;
const plainMalloc = process.argv.includes('--plain-malloc');
const examples = path.join(__dirname, '..', 'examples');
const TASKS = ['keywords', 'voices', 'pitch', 'timbre', 'chords'];

interface Timing {
  wall: number;
  cpu: number;
  /** Minor page faults (first touches of fresh pages), thousands. */
  faults: number;
}

async function timed(fn: () => Promise<unknown>): Promise<Timing> {
  const c = process.cpuUsage();
  const f = process.resourceUsage().minorPageFault;
  const t = performance.now();
  await fn();
  const u = process.cpuUsage(c);
  const faults = (process.resourceUsage().minorPageFault - f) / 1000;
  return { wall: (performance.now() - t) / 1000, cpu: (u.user + u.system) / 1e6, faults };
}

/** Median over reps (wall and CPU taken from the same rep). */
async function median(fn: () => Promise<unknown>): Promise<Timing> {
  const runs: Timing[] = [];
  for (let r = 0; r < reps; r++) runs.push(await timed(fn));
  return runs.sort((a, b) => a.wall - b.wall)[Math.floor(runs.length / 2)]!;
}

/** The environment to measure in: the engine's (or, with --plain-malloc, glibc's defaults). */
function benchEnv(): NodeJS.ProcessEnv {
  if (!plainMalloc) return engineProcessEnv(process.env);
  const env = { ...process.env };
  for (const k of Object.keys(ENGINE_MALLOC_ENV)) delete env[k];
  return env;
}

/** Runs the bench again in a child when this process's malloc settings are not the ones to measure; its exit status. */
function relaunched(): number | undefined {
  const env = benchEnv();
  if (Object.keys(ENGINE_MALLOC_ENV).every((k) => env[k] === process.env[k])) return undefined;
  return spawnSync(process.execPath, ['--import', 'tsx', __filename, ...process.argv.slice(2)], { env, stdio: 'inherit' }).status ?? 1;
}

async function main(): Promise<void> {
  const anchor = await loadEncoderModel(path.join(examples, 'models', 'speech-encoder'));
  const other = await loadEncoderModel(path.join(examples, 'models', 'music-encoder'));
  const cfg = anchor.config;
  const tasks = await loadEvalTasks(
    TASKS.map((name) => ({ name, data: path.join(examples, 'eval', name) })),
    (f) => loadAudio(f, cfg.sampleRate),
    { split },
  );
  const bySplit = tasks.flatMap((t) => [...t.train.audio, ...t.heldOut.audio]);
  const byLength = [...bySplit].sort((a, b) => a.length - b.length);
  const seconds = bySplit.reduce((k, a) => k + a.length, 0) / cfg.sampleRate;
  console.log(
    `bench:eval — ${tasks.length} tasks, ${bySplit.length} clips (${seconds.toFixed(0)} s of audio, ${new Set(bySplit.map((a) => a.length)).size} lengths), split ${split}, ${reps} rep(s), threads ${threads ?? 'default'}, ${plainMalloc ? "glibc's default malloc" : "the engine's malloc settings"}`,
  );

  const linear = (lambda: number) =>
    mergeWeights(anchor.weights, other.weights, { method: 'linear', lambda, layers: cfg.layers, preLayerNorm: cfg.preLayerNorm }).weights;
  const half = linear(0.5);
  const layersOf03 = linear(0.3);
  const systems = [
    { name: 'anchor', weights: anchor.weights },
    { name: 'other', weights: other.weights },
    { name: 'linear λ=0.5', weights: half },
    {
      name: 'front shared',
      weights: new Map([...half].map(([k, t]) => [k, k.startsWith('encoder.layers.') ? layersOf03.get(k)! : t])),
      frontOf: half,
    },
  ];
  const cell = (t: Timing) => `${t.wall.toFixed(2).padStart(6)} ${t.cpu.toFixed(2).padStart(6)}`;
  const head = ['session', 'forward', 'split-16', 'probes', 'evaluate', 'fresh'];
  console.log(`\n${'system'.padEnd(14)} ${head.map((h) => `${h.padStart(13)}`).join(' ')}   evaluate/forward (wall, cpu)`);
  console.log(`${''.padEnd(14)} ${head.map(() => '  wall s  cpu s').join('')}`);
  const freshCpu: number[] = [];
  for (const s of systems) {
    let session: EmbeddingSession | undefined;
    let frontEnds: FrontEndCache | undefined;
    if (s.frontOf) {
      // The front end's rows as the system before would leave them in a run (not timed).
      frontEnds = new FrontEndCache();
      const before = await EmbeddingSession.create({ config: cfg, weights: s.frontOf }, { threads }, frontEnds);
      for (let i = 0; i < byLength.length; i += 16) await before.embed(byLength.slice(i, i + 16));
      await before.release();
    }
    const create = await timed(
      async () => (session = await EmbeddingSession.create({ config: cfg, weights: s.weights }, { threads }, frontEnds)),
    );
    const embed: EmbedFn = (clips) => session!.embed(clips);
    const pass = (clips: Float32Array[]) => async () => {
      for (let i = 0; i < clips.length; i += 16) await embed(clips.slice(i, i + 16));
    };
    await pass(byLength.slice(0, 32))(); // warm-up
    const forward = await median(pass(byLength));
    const old = await median(pass(bySplit));
    // Probes alone: evaluateModel over an embed that returns features computed once beforehand.
    const cache = new Map<Float32Array, Float32Array>();
    let shape: readonly number[] = [];
    for (let i = 0; i < byLength.length; i += 16) {
      const batch = byLength.slice(i, i + 16);
      const t = await embed(batch);
      shape = t.shape;
      const row = t.shape[1]! * t.shape[2]!;
      batch.forEach((a, r) => cache.set(a, t.data.slice(r * row, (r + 1) * row)));
    }
    const cached: EmbedFn = async (clips): Promise<Tensor> => {
      const row = shape[1]! * shape[2]!;
      const data = new Float32Array(clips.length * row);
      clips.forEach((a, r) => data.set(cache.get(a)!, r * row));
      return { shape: [clips.length, shape[1]!, shape[2]!], data };
    };
    let average = 0;
    const probes = await median(async () => (average = (await evaluateModel(cached, tasks)).average));
    const full = await median(() => evaluateModel(embed, tasks));
    await session!.release();
    const fresh = await median(async () => {
      const own = await EmbeddingSession.create({ config: cfg, weights: s.weights }, { threads }, frontEnds);
      try {
        await evaluateModel((clips) => own.embed(clips), tasks);
      } finally {
        await own.release();
      }
    });
    if (!s.frontOf) freshCpu.push(fresh.cpu);
    const ratio = `${(full.wall / forward.wall).toFixed(2)}, ${(full.cpu / forward.cpu).toFixed(2)}`;
    console.log(
      `${s.name.padEnd(14)} ${[create, forward, old, probes, full, fresh].map(cell).join(' ')}   ${ratio}   (average ${average.toFixed(3)}; ` +
        `page faults, thousands: forward ${forward.faults.toFixed(0)}, evaluate ${full.faults.toFixed(0)}, fresh ${fresh.faults.toFixed(0)})`,
    );
  }
  // What one system of a run costs, over the systems that embed their own front end.
  const sorted = [...freshCpu].sort((a, b) => a - b);
  console.log(`\nfresh CPU-s per system: median ${sorted[sorted.length >> 1]!.toFixed(2)} (${sorted.map((c) => c.toFixed(2)).join(', ')})`);

  // A run's systems as evaluateVariants sends them (eval/scoring-pool.ts): in the main thread, one after another, and
  // in worker threads, alternating, each rep on a fresh scorer; its start-up and a first system per thread untimed.
  const run = [
    { name: 'anchor', weights: anchor.weights, group: 'sources' },
    { name: 'other', weights: other.weights, group: 'sources' },
    ...[0.3, 0.4, 0.5, 0.6, 0.7].flatMap((l) => [
      { name: `linear λ=${l}`, weights: l === 0.5 ? half : linear(l), group: `λ=${l}` },
      ...(l === 0.5 ? [{ name: 'front shared', weights: systems[3]!.weights, group: 'λ=0.5' }] : []),
    ]),
  ];
  const job = (s: (typeof run)[number], cacheGroup = s.group) => ({
    label: s.name,
    model: { config: cfg, weights: s.weights },
    probe: {},
    cacheGroup,
  });
  /** The run's systems on a scorer whose threads have each scored one system (from source, a worker first compiles the engine). */
  const pooled = async (workers: number) => {
    const scorer = await openScorer(tasks, { session: { ...(threads ? { threads } : {}) }, workers });
    try {
      // One per thread: in one group they would all go to the thread holding their front end.
      await Promise.all(Array.from({ length: Math.max(1, scorer.workers) }, (_, i) => scorer.score(job(run[0]!, `warm-up ${i}`))));
      let averages: number[] = [];
      const time = await timed(
        async () => (averages = (await Promise.all(run.map((s) => scorer.score(job(s))))).map((r) => r.evaluation.average)),
      );
      return { workers: scorer.workers, averages, time };
    } finally {
      await scorer.close();
    }
  };
  const parallel = Math.min(availableParallelism(), MAX_SCORING_WORKERS);
  const times: Record<'main' | 'workers', Timing[]> = { main: [], workers: [] };
  let inMain: number[] = [];
  let inWorkers: number[] = [];
  let workerCount = 0;
  for (let r = 0; r < reps; r++) {
    const main = await pooled(1);
    const workers = await pooled(parallel);
    [inMain, inWorkers, workerCount] = [main.averages, workers.averages, workers.workers];
    times.main.push(main.time);
    times.workers.push(workers.time);
  }
  const mid = (ts: Timing[]) => [...ts].sort((a, b) => a.wall - b.wall)[ts.length >> 1]!;
  const [m, w] = [mid(times.main), mid(times.workers)];
  const per = (t: Timing) => `${(t.wall / run.length).toFixed(2)} s wall, ${(t.cpu / run.length).toFixed(2)} CPU-s`;
  console.log(
    `\na run's ${run.length} systems (${run.map((s) => s.name).join(', ')}), median of ${reps}, per system, after a warm-up system per thread:`,
  );
  console.log(`  main thread      ${per(m)}`);
  console.log(`  ${`${workerCount} workers`.padEnd(16)} ${per(w)}   (${(m.wall / w.wall).toFixed(2)}x the main thread's wall)`);
  console.log(`  averages ${inWorkers.every((a, i) => a === inMain[i]) ? 'identical' : 'DIFFER'} in both`);
}

const status = relaunched();
if (status !== undefined) process.exit(status);
main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
