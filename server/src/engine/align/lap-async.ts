/**
 * `solveAssignment`: the linear assignment off the main thread, so the language server and the CLI progress bar
 * stay responsive while a 3072×3072 FFN assignment runs.
 *
 * One worker per process, created lazily and reused (requests queue in order); it is unref'd while idle so it never
 * keeps the process alive. Its script is found by engine/worker-entry.ts (bundled beside dist/*.js, or from source).
 * Tiny problems (n below `inlineBelow`) are solved in-thread: a worker round trip costs more than the solve.
 */
import { Worker } from 'node:worker_threads';
import { EngineError, type EngineErrorCode } from '../errors';
import { workerEntry, type WorkerEntry } from '../worker-entry';
import { checkScores, solveLap, type Assignment } from './lap';
import type { LapRequest, LapResponse } from './lap-worker';

export interface SolveOptions {
  /** 'auto' (default): worker for n ≥ inlineBelow; 'worker': always (fails if no worker can start); 'inline': never. */
  mode?: 'auto' | 'worker' | 'inline';
  /** Size below which 'auto' solves in-thread; default 64. */
  inlineBelow?: number;
  /**
   * Hand the score's buffer to the worker instead of copying it (saves n²·8 bytes and a copy); the caller's array is
   * then detached and must not be used again. Only when `score` spans its whole buffer.
   */
  transfer?: boolean;
  /** Aborting terminates the worker (the next call starts a new one) and rejects with EngineError('cancelled'). */
  signal?: AbortSignal;
}

export interface AsyncAssignment extends Assignment {
  /** Where the solve ran: 'worker' or 'inline'. */
  ranIn: 'worker' | 'inline';
}

interface Pending {
  resolve: (a: AsyncAssignment) => void;
  reject: (e: unknown) => void;
}

/** The worker and the requests it owes answers to (per worker: a terminated one must not fail its successor's). */
interface Handle {
  w: Worker;
  pending: Map<number, Pending>;
}
let current: Handle | null = null;
let nextId = 1;

/** The worker script (a file, or bootstrap code to eval), or null when neither the bundle's nor the source's is present. */
export function lapWorkerEntry(): WorkerEntry | null {
  return workerEntry('lap-worker', typeof __dirname === 'string' ? __dirname : undefined);
}

function failAll(h: Handle, e: unknown): void {
  for (const p of h.pending.values()) p.reject(e);
  h.pending.clear();
}

function getWorker(): Handle {
  if (current) return current;
  const entry = lapWorkerEntry();
  if (!entry)
    throw new EngineError('runtime-error', 'the linear assignment worker script (lap-worker.js) was not found next to the engine');
  const w = new Worker(entry.file, { eval: entry.eval });
  const h: Handle = { w, pending: new Map() };
  w.on('message', (msg: LapResponse) => {
    const p = h.pending.get(msg.id);
    if (!p) return;
    h.pending.delete(msg.id);
    if (h.pending.size === 0) w.unref();
    if ('error' in msg) p.reject(new EngineError((msg.error.code ?? 'runtime-error') as EngineErrorCode, msg.error.message));
    else p.resolve({ perm: msg.perm, total: msg.total, ranIn: 'worker' });
  });
  w.on('error', (e) => {
    if (current === h) current = null;
    failAll(h, new EngineError('runtime-error', `linear assignment worker failed: ${e.message}`, undefined, { cause: e }));
  });
  w.on('exit', (code) => {
    if (current === h) current = null;
    if (h.pending.size > 0) failAll(h, new EngineError('runtime-error', `linear assignment worker exited (code ${code})`));
  });
  w.unref();
  current = h;
  return h;
}

/** Maximise Σ score[i, perm[i]] (row-major n×n), off the main thread where it pays. */
export async function solveAssignment(score: Float64Array, n: number, opts: SolveOptions = {}): Promise<AsyncAssignment> {
  const mode = opts.mode ?? 'auto';
  if (opts.signal?.aborted) throw new EngineError('cancelled', 'linear assignment cancelled');
  if (mode === 'inline' || (mode === 'auto' && n < (opts.inlineBelow ?? 64))) {
    return { ...solveLap(score, n), ranIn: 'inline' };
  }
  // Validate here so a bad matrix fails with the same error whichever thread would have solved it.
  checkScores(score, n);
  const h = getWorker();
  const { w, pending } = h;
  const id = nextId++;
  const whole = score.byteOffset === 0 && score.byteLength === score.buffer.byteLength;
  const send = opts.transfer && whole ? score : score.slice();
  return new Promise<AsyncAssignment>((resolve, reject) => {
    const onAbort = () => {
      if (!pending.has(id)) return;
      pending.delete(id);
      // The worker is busy with this solve and cannot be interrupted: end it; queued requests fail with it.
      if (current === h) current = null;
      void w.terminate();
      failAll(h, new EngineError('cancelled', 'linear assignment cancelled'));
      reject(new EngineError('cancelled', 'linear assignment cancelled'));
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    pending.set(id, {
      resolve: (a) => {
        opts.signal?.removeEventListener('abort', onAbort);
        resolve(a);
      },
      reject: (e) => {
        opts.signal?.removeEventListener('abort', onAbort);
        reject(e);
      },
    });
    w.ref();
    const req: LapRequest = { id, n, buffer: send.buffer as ArrayBuffer, byteOffset: 0 };
    w.postMessage(req, [send.buffer as ArrayBuffer]);
  });
}

/** Ends the shared worker (tests, benches, shutdown). Pending requests fail. */
export async function shutdownLapWorker(): Promise<void> {
  const h = current;
  current = null;
  if (h) {
    failAll(h, new EngineError('cancelled', 'linear assignment worker shut down'));
    await h.w.terminate();
  }
}
