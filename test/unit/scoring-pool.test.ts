/** Systems scored in worker threads (eval/scoring-pool.ts) against the same systems scored in the main thread. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../server/src/engine/errors';
import { loadEvalTasks, type PreparedTask } from '../../server/src/engine/eval/evaluate';
import {
  MAX_SCORING_WORKERS,
  openScorer,
  SCORING_MEMORY_FACTOR,
  sharedWeights,
  workersInMemory,
  type ScoringJob,
  type SystemScorer,
} from '../../server/src/engine/eval/scoring-pool';
import { randomWeights } from '../../server/src/engine/model/random';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import type { JobEvent } from '../../server/src/engine/progress';
import { mulberry32 } from '../../server/src/engine/random';
import { tinyEmbeddingConfig } from '../helpers/tiny-model';

const config = tinyEmbeddingConfig();
const session = { device: 'cpu' as const };

/** `base` with the transformer layers of another seed: the same front end, different layers. */
function otherLayers(base: WeightMap, seed: number): WeightMap {
  const other = randomWeights(config, seed);
  return new Map([...base].map(([name, t]) => [name, name.startsWith('encoder.layers.') ? other.get(name)! : t]));
}

const job = (label: string, weights: WeightMap, cacheGroup = 'λ=0.5', progress?: (e: JobEvent) => void): ScoringJob => ({
  label,
  model: { config, weights },
  probe: { seed: 0, iterations: 20 },
  cacheGroup,
  ...(progress ? { progress } : {}),
});

describe('openScorer', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'ms-scoring-'));
  let tasks: PreparedTask[];
  let clips = 0;
  const A = randomWeights(config, 1);
  const B = randomWeights(config, 2);
  const C = otherLayers(A, 3);

  beforeAll(async () => {
    for (const name of ['tones', 'noise']) {
      for (const [split, per] of [
        ['train', 6],
        ['test', 4],
      ] as const) {
        mkdirSync(path.join(root, name, split), { recursive: true });
        const rows = ['file,label'];
        for (let c = 0; c < 3; c++)
          for (let i = 0; i < per; i++) {
            writeFileSync(path.join(root, name, split, `c${c}-${i}.wav`), '');
            rows.push(`c${c}-${i}.wav,class${c}`);
          }
        writeFileSync(path.join(root, name, split, 'labels.csv'), rows.join('\n') + '\n');
      }
    }
    // Clips of three lengths: a class's tone (or noise level) plus seeded noise.
    const audio = async (file: string) => {
      const [, c, i] = /c(\d+)-(\d+)\.wav$/.exec(file)!.map(Number);
      const rand = mulberry32(file.length * 131 + c! * 17 + i!);
      const tones = file.includes('tones');
      return Float32Array.from({ length: 400 + 80 * (i! % 3) }, (_, t) =>
        tones ? Math.sin((t * (c! + 1) * Math.PI) / 16) + 0.1 * (rand() - 0.5) : (c! + 1) * 0.3 * (rand() - 0.5),
      );
    };
    tasks = await loadEvalTasks(
      ['tones', 'noise'].map((name) => ({ name, data: path.join(root, name) })),
      audio,
    );
    clips = tasks.reduce((n, t) => n + t.train.audio.length + t.heldOut.audio.length, 0);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  async function scoreAll(scorer: SystemScorer, jobs: ScoringJob[]) {
    try {
      return await Promise.all(jobs.map((j) => scorer.score(j)));
    } finally {
      await scorer.close();
    }
  }

  it('gives every system the same scores in worker threads as in the main thread, to the last bit', async () => {
    const main = await openScorer(tasks, { session, workers: 1 });
    expect(main.workers).toBe(0);
    const inMain = await scoreAll(main, [job('A', A), job('B', B), job('C', C)]);
    const pool = await openScorer(tasks, { session, workers: 2 });
    expect(pool.workers).toBe(2);
    const inWorkers = await scoreAll(pool, [job('A', A), job('B', B), job('C', C)]);
    expect(inWorkers.map((s) => s.evaluation)).toEqual(inMain.map((s) => s.evaluation));
    expect(inMain[0]!.evaluation).not.toEqual(inMain[1]!.evaluation); // the systems differ: the comparison can fail
  });

  it('sends a system to the worker that holds its front end, within one group only', async () => {
    const pool = await openScorer(tasks, { session, workers: 2 });
    // A and B go to different workers (B to the idle one); C shares A's front end and follows A.
    const [a, b, c, cLater] = await scoreAll(pool, [job('A', A), job('B', B), job('C', C), job('C', C, 'λ=0.7')]);
    expect([a!.frontEndClips, b!.frontEndClips, c!.frontEndClips]).toEqual([clips, clips, 0]);
    expect(cLater!.frontEndClips).toBe(clips); // a new group drops the front ends kept
  });

  it("never runs more workers than systems, and reports each system's progress up to its total", async () => {
    const pool = await openScorer(tasks, { session, workers: 4, systems: 1 });
    expect(pool.workers).toBe(0); // one system: the main thread
    const events: JobEvent[] = [];
    const two = await openScorer(tasks, { session, workers: 4, systems: 2 });
    expect(two.workers).toBe(2);
    expect(two.threads).toBe(1); // this machine's cores shared out
    await scoreAll(two, [job('A', A, 'g', (e) => events.push(e))]);
    const last = events.at(-1)!;
    expect(last.type === 'progress' && last.done === last.total && last.total === clips).toBe(true);
    await pool.close();
  });

  it('shares runtime.threads out among the workers, at most MAX_SCORING_WORKERS of them', async () => {
    const eight = { ...session, threads: 8 };
    const byThreads = await openScorer(tasks, { session: eight });
    const byMemory = await openScorer(tasks, {
      session: eight,
      memory: { modelBytes: 2 ** 20, budget: 2 * SCORING_MEMORY_FACTOR * 2 ** 20 },
    });
    const one = await openScorer(tasks, { session: { ...session, threads: 1 } });
    expect([byThreads.workers, byThreads.threads]).toEqual([MAX_SCORING_WORKERS, 8 / MAX_SCORING_WORKERS]);
    expect([byMemory.workers, byMemory.threads]).toEqual([2, 4]);
    expect([one.workers, one.threads]).toEqual([0, 1]);
    await Promise.all([byThreads, byMemory, one].map((s) => s.close()));
  });

  it("fails a system with the worker's located error, as the main thread would", async () => {
    const bad = new Map(A);
    const w = A.get('encoder.layers.1.final_layer_norm.weight')!;
    bad.set('encoder.layers.1.final_layer_norm.weight', { shape: w.shape, data: new Float32Array(w.data.length).fill(NaN) });
    const main = await openScorer(tasks, { session, workers: 1 });
    const inMain = await scoreAll(main, [job('bad', bad)]).catch((e: unknown) => e);
    const pool = await openScorer(tasks, { session, workers: 2 });
    const inWorker = await scoreAll(pool, [job('bad', bad)]).catch((e: unknown) => e);
    expect(inMain).toBeInstanceOf(EngineError);
    expect(inWorker).toBeInstanceOf(EngineError);
    expect([(inWorker as EngineError).code, (inWorker as EngineError).message, (inWorker as EngineError).file]).toEqual([
      (inMain as EngineError).code,
      (inMain as EngineError).message,
      (inMain as EngineError).file,
    ]);
    expect((inWorker as EngineError).code).toBe('non-finite');
  });

  it('ends the workers when cancelled: every system still owed fails as cancelled', async () => {
    const abort = new AbortController();
    const pool = await openScorer(tasks, { session, workers: 2, signal: abort.signal });
    // Cancelled at the first progress of any system: before any has finished, while the workers are inside onnxruntime.
    const cancel = () => abort.abort();
    const jobs = [job('A', A, 'g', cancel), job('B', B, 'g', cancel), job('C', C, 'g', cancel)].map((j) =>
      pool.score(j).then(
        () => 'scored',
        (e: unknown) => (e instanceof EngineError ? e.code : 'other'),
      ),
    );
    expect(await Promise.all(jobs)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    await pool.close();
    await expect(pool.score(job('A', A))).rejects.toThrow(/cancelled/);
  });

  it('in the main thread too: cancelling fails the system running and those queued', async () => {
    const abort = new AbortController();
    const main = await openScorer(tasks, { session, workers: 1, signal: abort.signal });
    const cancel = () => abort.abort();
    const codes = [job('A', A, 'g', cancel), job('B', B)].map((j) =>
      main.score(j).then(
        () => 'scored',
        (e: unknown) => (e instanceof EngineError ? e.code : 'other'),
      ),
    );
    expect(await Promise.all(codes)).toEqual(['cancelled', 'cancelled']);
    await main.close();
  });

  it('whenRoom holds the caller back while more systems than workers are queued or running', async () => {
    const pool = await openScorer(tasks, { session, workers: 2 });
    const scored = [A, B, C, A].map((w, i) => pool.score(job(String(i), w)));
    let roomAt = -1;
    const room = pool.whenRoom().then(() => (roomAt = scored.length));
    await Promise.race([room, new Promise((r) => setTimeout(r, 50))]);
    expect(roomAt).toBe(-1); // four systems queued or running on two workers: no room yet
    await Promise.all(scored);
    await room;
    expect(roomAt).toBe(4);
    await pool.close();
  });
});

describe('workersInMemory', () => {
  it('fits as many systems as the budget holds at SCORING_MEMORY_FACTOR times their weights, and at least one', () => {
    const modelBytes = 360 * 2 ** 20; // HuBERT-base
    const per = SCORING_MEMORY_FACTOR * modelBytes;
    expect(workersInMemory({ modelBytes, budget: 3.5 * per })).toBe(3);
    expect(workersInMemory({ modelBytes, budget: 0.5 * per })).toBe(1);
    expect(workersInMemory(undefined)).toBe(Infinity);
    expect(workersInMemory({ modelBytes: 1 })).toBeGreaterThan(1); // half the free memory, for a tiny model
  });

  it('keeps the scoring in the main thread when one system is all that fits', async () => {
    const scorer = await openScorer([], { session, workers: 4, memory: { modelBytes: 2 ** 30, budget: 2 ** 30 } });
    expect(scorer.workers).toBe(0);
    await scorer.close();
  });
});

describe('sharedWeights', () => {
  it("puts a model's tensors in one shared buffer, so posting them carries only the weights", () => {
    const file = new Float32Array(1000).map((_, i) => i);
    const weights: WeightMap = new Map([
      ['a', { shape: [2, 3], data: file.subarray(10, 16) }],
      ['b', { shape: [4], data: file.subarray(500, 504) }],
    ]);
    const shared = sharedWeights(weights);
    expect([...shared.keys()]).toEqual(['a', 'b']);
    expect(Array.from(shared.get('a')!.data)).toEqual([10, 11, 12, 13, 14, 15]);
    expect(Array.from(shared.get('b')!.data)).toEqual([500, 501, 502, 503]);
    expect(shared.get('a')!.shape).toEqual([2, 3]);
    const buffer = shared.get('a')!.data.buffer;
    expect(buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(shared.get('b')!.data.buffer).toBe(buffer);
    expect(buffer.byteLength).toBe(10 * 4);
  });
});
