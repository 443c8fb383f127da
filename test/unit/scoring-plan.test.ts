/** What a run scores and how (pipeline/systems.ts, eval/scoring-pool.ts), as the run and `--dry-run` both compute it. */
import { describe, expect, it } from 'vitest';
import { MAX_SCORING_WORKERS, SCORING_MEMORY_FACTOR, scoringPlan } from '../../server/src/engine/eval/scoring-pool';
import { lambdaPoints, scoredSystemCount } from '../../server/src/engine/pipeline/systems';

describe('lambdaPoints and scoredSystemCount', () => {
  it("lists the recipe's λ and every other sweep λ once, in order; a per-layer λ first, as null", () => {
    expect(lambdaPoints(0.5, [0.7, 0.5, 0.3]).map((p) => p.lambda)).toEqual([0.3, 0.5, 0.7]);
    const perLayer = [0.4, 0.6];
    expect(lambdaPoints(perLayer, [0.9])).toEqual([
      { lambda: null, spec: perLayer },
      { lambda: 0.9, spec: 0.9 },
    ]);
  });

  it('counts the sources, then per λ the unaligned merge and each system (the main one only when it aligns)', () => {
    expect(scoredSystemCount(2, 2, true)).toBe(8); // sources + 2 × (unaligned, permuted, one variant)
    expect(scoredSystemCount(8, 4, true)).toBe(38); // examples/methods.merge.yaml
    expect(scoredSystemCount(1, 3, false)).toBe(5); // align.method none: the main settings are the unaligned merge
  });
});

describe('scoringPlan', () => {
  const session = { threads: 8 };
  it('runs up to MAX_SCORING_WORKERS workers on the CPU and shares the threads out among them', () => {
    expect(scoringPlan({ session, backend: 'cpu' })).toEqual({ workers: MAX_SCORING_WORKERS, threads: 8 / MAX_SCORING_WORKERS });
    expect(scoringPlan({ session, backend: 'cpu', systems: 3 })).toEqual({ workers: 3, threads: 2 });
  });
  it('scores in the main thread for one system, one thread, a GPU backend, or memory for one system', () => {
    expect(scoringPlan({ session, backend: 'cpu', systems: 1 }).workers).toBe(0);
    expect(scoringPlan({ session: { threads: 1 }, backend: 'cpu' })).toEqual({ workers: 0, threads: 1 });
    expect(scoringPlan({ session, backend: 'webgpu' }).workers).toBe(0);
    const memory = { modelBytes: 2 ** 30, budget: 1.5 * SCORING_MEMORY_FACTOR * 2 ** 30 };
    expect(scoringPlan({ session, backend: 'cpu', memory })).toEqual({ workers: 0, threads: 8 });
  });
});
