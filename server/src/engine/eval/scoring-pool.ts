/**
 * Scores the systems of a run (sources, merges, variants at each λ), in parallel on the CPU. One system's evaluation
 * is single-threaded at heart: onnxruntime's runs are synchronous, and its intra-op threads gained little on these
 * small per-clip graphs (bench:eval on 2 cores: 2 threads 1.7–1.9 s wall per system against 2.1–2.3 with 1, for 50 %
 * more CPU). So each worker thread scores whole systems, and `workers` systems run at once, with one onnxruntime thread
 * each (more where cores outnumber workers: past MAX_SCORING_WORKERS, or fewer systems than cores).
 *
 * - Same results as scoring in the main thread: a system is embedded and probed by the same code
 *   (eval/system-scoring.ts), in the same batches, wherever it runs, and with whatever onnxruntime threads (model/embed.ts pools in one thread; tests
 *   compare them to the last bit).
 * - The tasks' audio is copied once into shared memory that every worker reads; each system's weights go to its
 *   worker on shared memory too (one copy, not one per worker).
 * - Systems whose front end is identical (variants at one λ that differ only in the layers) go to the worker that
 *   embedded it last, whose FrontEndCache then skips it; the cache is dropped when the `cacheGroup` (the λ) changes.
 * - Memory: no more workers than fit in half the free memory (or `runtime.memory`) at SCORING_MEMORY_FACTOR times a
 *   system's weights each, and at most `workers + 1` systems queued or running (`whenRoom`).
 * - Cancelling (or a failure) fails every system owed at once; each worker stops between batches, and is ended only
 *   once it has answered (ending one inside an onnxruntime call would abort the process).
 * - A failing system fails its promise with the worker's EngineError.
 *
 * `openScorer` falls back to the main thread (one system at a time) for one worker, a GPU backend (the device is
 * the parallel part there), or where no worker script can be found.
 */
import { availableParallelism, freemem } from 'node:os';
import { Worker } from 'node:worker_threads';
import { EngineError, type EngineErrorCode } from '../errors';
import { frontEndFingerprint } from '../model/front-end-cache';
import { resolveBackend, type Backend, type SessionOptions } from '../model/runtime';
import type { WeightMap } from '../model/tensor';
import { workerEntry } from '../worker-entry';
import type { PreparedTask } from './evaluate';
import type { ScoringMessage, ScoringResponse, ScoringWorkerData } from './scoring-worker';
import { SystemScoring, type ScoredSystem, type SystemRequest } from './system-scoring';

/** Default ceiling on workers: each holds a session with a system's weights. */
export const MAX_SCORING_WORKERS = 4;
/**
 * Memory of one system being scored, in multiples of its weights: its copy on shared memory, the encoded graphs and
 * onnxruntime's session (initializers and pre-packed weights), then activations. Measured for HuBERT-base (360 MiB of
 * weights, 2-s clips, peak from the kernel's high-water mark): 1.9 GiB above the process in the main thread, 1.6–1.9 GiB
 * more per worker; 6.5 leaves room for a system queued per worker.
 */
export const SCORING_MEMORY_FACTOR = 6.5;

/** A system to score (eval/system-scoring.ts). */
export type ScoringJob = SystemRequest;
export type { ScoredSystem };

export interface SystemScorer {
  /** Worker threads scoring systems (0: the main thread, one system at a time). */
  readonly workers: number;
  /** onnxruntime threads for each system (undefined: onnxruntime's default, every core). */
  readonly threads: number | undefined;
  score(job: ScoringJob): Promise<ScoredSystem>;
  /** Resolves when at most max(1, workers) systems are queued or running: build the next one then. */
  whenRoom(): Promise<void>;
  close(): Promise<void>;
}

export interface ScorerOptions {
  session: SessionOptions;
  /** Worker threads (default: `session.threads`, else every core; at most MAX_SCORING_WORKERS); ≤ 1: main thread. */
  workers?: number;
  /** Systems the run will score: no more workers than that. */
  systems?: number;
  /** Bytes of one system's weights, and the memory to fit the workers in (default: half of what the OS has free). */
  memory?: { modelBytes: number; budget?: number };
  signal?: AbortSignal;
}

export async function openScorer(tasks: readonly PreparedTask[], opts: ScorerOptions): Promise<SystemScorer> {
  const plan = scoringPlan({ ...opts, backend: await resolveBackend(opts.session.device ?? 'auto') });
  const entry = plan.workers > 1 ? workerEntry('scoring-worker', typeof __dirname === 'string' ? __dirname : undefined) : null;
  if (!entry) return new MainThreadScorer(tasks, opts);
  return new WorkerScorer(tasks, opts, plan.workers, plan.threads!, entry);
}

/**
 * How a run scores its systems (`merge-studio run --dry-run` prints it): worker threads (0: the main thread) and
 * onnxruntime threads per system (undefined: onnxruntime's default, every core).
 */
export function scoringPlan(opts: Omit<ScorerOptions, 'signal'> & { backend: Backend }): {
  workers: number;
  threads: number | undefined;
} {
  const threads = opts.session.threads ?? availableParallelism();
  const wanted = opts.workers ?? threads;
  const fit = Math.min(wanted, MAX_SCORING_WORKERS, opts.systems ?? Infinity, workersInMemory(opts.memory));
  if (opts.backend !== 'cpu' || fit <= 1) return { workers: 0, threads: opts.session.threads };
  // The cores left over when there are more than workers (large models' GEMMs do use them) are shared out.
  return { workers: fit, threads: Math.max(1, Math.floor(threads / fit)) };
}

/** How many systems fit in memory at once (at least one: the main thread scores one in any case). */
export function workersInMemory(memory: ScorerOptions['memory']): number {
  if (!memory || memory.modelBytes <= 0) return Infinity;
  const budget = memory.budget ?? freemem() / 2;
  return Math.max(1, Math.floor(budget / (SCORING_MEMORY_FACTOR * memory.modelBytes)));
}

/** One system at a time in this thread, with the session options as given. */
class MainThreadScorer implements SystemScorer {
  readonly workers = 0;
  readonly threads: number | undefined;
  private readonly scoring: SystemScoring;
  private queue: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private room: (() => void)[] = [];
  /** Aborted by close(): the systems still queued are not scored. */
  private readonly closing = new AbortController();
  private readonly signal: AbortSignal;

  constructor(tasks: readonly PreparedTask[], opts: ScorerOptions) {
    this.scoring = new SystemScoring(tasks, opts.session);
    this.threads = opts.session.threads;
    this.signal = opts.signal ? AbortSignal.any([opts.signal, this.closing.signal]) : this.closing.signal;
  }

  score(job: ScoringJob): Promise<ScoredSystem> {
    this.queued++;
    const run = this.queue.then(() => this.scoring.score(job, this.signal));
    this.queue = run.catch(() => undefined);
    return run.finally(() => {
      this.queued--;
      this.room.splice(0).forEach((f) => f());
    });
  }

  whenRoom(): Promise<void> {
    return this.queued <= 1 ? Promise.resolve() : new Promise((resolve) => this.room.push(resolve));
  }

  async close(): Promise<void> {
    this.closing.abort();
    await this.queue;
  }
}

interface Pending {
  job: ScoringJob;
  resolve: (s: ScoredSystem) => void;
  reject: (e: unknown) => void;
}

interface ScoringThread {
  worker: Worker;
  /** Callers still waiting for a system sent here (a failure rejects them at once). */
  owed: Map<number, Pending>;
  /** Systems sent here that the worker has not answered yet (it answers every one, cancelled or not). */
  inFlight: number;
  /** Called when `inFlight` reaches 0 or the worker has exited. */
  idle: (() => void)[];
  exited: boolean;
  /** The front end and group of the last system sent to it: what its FrontEndCache holds when it gets there. */
  last: { fingerprint: string; group: string } | undefined;
}

class WorkerScorer implements SystemScorer {
  private readonly pool: ScoringThread[];
  private nextId = 1;
  private room: (() => void)[] = [];
  private failure: EngineError | undefined;

  constructor(
    tasks: readonly PreparedTask[],
    private readonly opts: ScorerOptions,
    readonly workers: number,
    readonly threads: number,
    entry: { file: string; eval: boolean },
  ) {
    const workerData: ScoringWorkerData = {
      tasks: sharedTasks(tasks),
      session: { ...opts.session, device: 'cpu', threads }, // what openScorer resolved 'auto' to
    };
    this.pool = Array.from({ length: workers }, () => this.start(entry, workerData));
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private readonly onAbort = () => this.fail(new EngineError('cancelled', 'evaluation cancelled'));

  private start(entry: { file: string; eval: boolean }, workerData: ScoringWorkerData): ScoringThread {
    const worker = new Worker(entry.file, { eval: entry.eval, workerData });
    const thread: ScoringThread = { worker, owed: new Map(), inFlight: 0, idle: [], exited: false, last: undefined };
    worker.on('message', (msg: ScoringResponse) => {
      const p = thread.owed.get(msg.id);
      if (msg.type === 'progress') return p?.job.progress?.(msg.event);
      thread.owed.delete(msg.id);
      if (--thread.inFlight === 0) thread.idle.splice(0).forEach((f) => f());
      if (msg.type === 'result') p?.resolve({ evaluation: msg.result, frontEndClips: msg.frontEndClips });
      else p?.reject(new EngineError((msg.error.code ?? 'runtime-error') as EngineErrorCode, msg.error.message, msg.error.file));
      this.room.splice(0).forEach((f) => f());
    });
    worker.on('error', (e) =>
      this.fail(new EngineError('runtime-error', `evaluation worker failed: ${e.message}`, undefined, { cause: e })),
    );
    worker.on('exit', (code) => {
      thread.exited = true;
      thread.inFlight = 0;
      thread.idle.splice(0).forEach((f) => f());
      if (thread.owed.size > 0) this.fail(new EngineError('runtime-error', `evaluation worker exited (code ${code})`));
    });
    return thread;
  }

  score(job: ScoringJob): Promise<ScoredSystem> {
    if (!this.failure && this.pool.every((t) => t.exited))
      this.fail(new EngineError('runtime-error', 'every evaluation worker has exited'));
    if (this.failure) return Promise.reject(this.failure);
    const fingerprint = frontEndFingerprint(job.model.config, job.model.weights);
    const thread = this.pick(fingerprint, job.cacheGroup);
    thread.last = { fingerprint, group: job.cacheGroup };
    const id = this.nextId++;
    const message: ScoringMessage = {
      type: 'score',
      id,
      model: { config: job.model.config, weights: sharedWeights(job.model.weights) },
      label: job.label,
      probe: job.probe,
      cacheGroup: job.cacheGroup,
    };
    return new Promise<ScoredSystem>((resolve, reject) => {
      thread.owed.set(id, { job, resolve, reject });
      thread.inFlight++;
      thread.worker.postMessage(message);
    });
  }

  /** The worker whose cache will hold this front end, else the one with the fewest systems queued. */
  private pick(fingerprint: string, group: string): ScoringThread {
    const live = this.pool.filter((t) => !t.exited);
    const holder = live.find((t) => t.last?.fingerprint === fingerprint && t.last.group === group);
    return holder ?? live.reduce((best, t) => (t.inFlight < best.inFlight ? t : best));
  }

  whenRoom(): Promise<void> {
    const queued = this.pool.reduce((n, t) => n + t.inFlight, 0);
    if (this.failure || queued <= this.workers) return Promise.resolve();
    return new Promise((resolve) => this.room.push(resolve));
  }

  /** Fails every system owed (the first cause is kept) and asks the workers to stop what they run. */
  private fail(e: EngineError): void {
    this.failure ??= e;
    for (const t of this.pool) {
      for (const p of t.owed.values()) p.reject(this.failure);
      t.owed.clear();
      if (!t.exited) t.worker.postMessage({ type: 'cancel' } satisfies ScoringMessage);
    }
    this.room.splice(0).forEach((f) => f());
  }

  /** Stops the workers once each has answered what it was sent (never inside an onnxruntime call: see scoring-worker.ts). */
  async close(): Promise<void> {
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    this.fail(new EngineError('cancelled', 'evaluation scorer closed'));
    await Promise.all(
      this.pool.map(async (t) => {
        if (t.inFlight > 0 && !t.exited) await new Promise<void>((resolve) => t.idle.push(resolve));
        await t.worker.terminate();
      }),
    );
  }
}

/** The tasks with every clip's audio in one SharedArrayBuffer, so that workers read it instead of copying it. */
export function sharedTasks(tasks: readonly PreparedTask[]): PreparedTask[] {
  const clips = tasks.flatMap((t) => [...t.train.audio, ...t.heldOut.audio]);
  const memory = new Float32Array(new SharedArrayBuffer(clips.reduce((n, c) => n + c.byteLength, 0)));
  const shared = new Map<Float32Array, Float32Array>();
  let at = 0;
  for (const c of clips) {
    if (shared.has(c)) continue;
    const view = memory.subarray(at, at + c.length);
    view.set(c);
    shared.set(c, view);
    at += c.length;
  }
  const split = (s: PreparedTask['train']) => ({ ...s, audio: s.audio.map((c) => shared.get(c)!) });
  return tasks.map((t) => ({ ...t, train: split(t.train), heldOut: split(t.heldOut) }));
}

/**
 * A system's weights in one SharedArrayBuffer. Posting a typed array copies its whole underlying buffer, and a loaded
 * checkpoint's tensors are views into one file-sized buffer: posted as they are, each would carry all of it.
 */
export function sharedWeights(weights: WeightMap): WeightMap {
  let bytes = 0;
  for (const t of weights.values()) bytes += t.data.byteLength;
  const memory = new Float32Array(new SharedArrayBuffer(bytes));
  const out: WeightMap = new Map();
  let at = 0;
  for (const [name, t] of weights) {
    const data = memory.subarray(at, at + t.data.length);
    data.set(t.data);
    out.set(name, { shape: [...t.shape], data });
    at += t.data.length;
  }
  return out;
}
