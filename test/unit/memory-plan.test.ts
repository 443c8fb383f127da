import { describe, expect, it } from 'vitest';
import { hubertBaseConfig } from '../../server/src/engine/model/random';
import { estimateStatisticsMemory, parseMemory, planStatistics } from '../../server/src/engine/pipeline/memory-plan';
import { tapsFor } from '../../server/src/engine/pipeline/plan';

const cfg = hubertBaseConfig();
const taps = tapsFor(cfg, ['cnn', 'attention', 'ffn'], 'reorder');
const segment = 5 * cfg.sampleRate;

describe('statistics memory plan', () => {
  it('parses sizes', () => {
    expect(parseMemory('4GB')).toBe(4 * 2 ** 30);
    expect(parseMemory('3.5 GiB')).toBe(3.5 * 2 ** 30);
    expect(parseMemory('800MB')).toBe(800 * 2 ** 20);
    expect(() => parseMemory('lots')).toThrow(/runtime.memory "lots": expected a size such as 4GB/);
  });

  it('fewer layers per pass and smaller front-end groups need less; the fixed part does not shrink', () => {
    const big = estimateStatisticsMemory(cfg, taps, segment, 8, { frontBatch: 0, layersPerPass: 12 });
    const small = estimateStatisticsMemory(cfg, taps, segment, 8, { frontBatch: 1, layersPerPass: 1 });
    expect(small.activations).toBeLessThan(big.activations);
    expect(small.weights).toBe(big.weights);
    expect(small.total).toBeGreaterThan(small.weights + small.sessionWeights);
  });

  it('fits the plan to runtime.memory, largest batch first, and refuses a budget below the models alone', () => {
    const none = planStatistics(cfg, taps, segment);
    expect(none.budget).toBeUndefined();
    for (const gib of [3.1, 3.4, 4, 8]) {
      const plan = planStatistics(cfg, taps, segment, { memory: `${gib}GB` });
      expect(plan.estimate.total).toBeLessThanOrEqual(gib * 2 ** 30);
      expect(plan.batchSize).toBeLessThanOrEqual(none.batchSize);
    }
    // More memory never gives a smaller plan.
    const tight = planStatistics(cfg, taps, segment, { memory: '3.1GB' });
    const roomy = planStatistics(cfg, taps, segment, { memory: '8GB' });
    expect(roomy.batchSize).toBeGreaterThanOrEqual(tight.batchSize);
    expect(roomy.passes.layersPerPass).toBeGreaterThanOrEqual(tight.passes.layersPerPass);
    expect(() => planStatistics(cfg, taps, segment, { memory: '2GB' })).toThrow(
      /runtime.memory 2.00 GiB is too small: the statistics step needs about \d\.\d\d GiB even one segment at a time/,
    );
  });
});
