/** The statistics plan on GPU backends (larger batches, one pass), checked for its logic on the CPU. */
import { describe, expect, it } from 'vitest';
import { correlation } from '../../server/src/engine/align/stats';
import type { ProbeSet } from '../../server/src/engine/io/probe';
import { DEFAULT_PASS_PLAN, defaultPassPlan } from '../../server/src/engine/model/pair-graph';
import { hubertBaseConfig, randomWeights } from '../../server/src/engine/model/random';
import { planStatistics } from '../../server/src/engine/pipeline/memory-plan';
import { defaultBatchSize, tapsFor } from '../../server/src/engine/pipeline/plan';
import { collectStatistics } from '../../server/src/engine/pipeline/statistics';
import { mulberry32 } from '../../server/src/engine/random';
import { maxRelativeError } from '../helpers/reference';
import { tinyHubertConfig } from '../helpers/tiny-model';

describe('statistics plan by backend', () => {
  const base = hubertBaseConfig();
  const fiveSeconds = 5 * base.sampleRate;

  it('gives GPU backends 8× larger default batches (capped at 64) and the CPU its own', () => {
    expect(defaultBatchSize(base, fiveSeconds, 'cpu')).toBe(8);
    expect(defaultBatchSize(base, fiveSeconds)).toBe(8);
    expect(defaultBatchSize(base, fiveSeconds, 'webgpu')).toBe(64);
    expect(defaultBatchSize(base, fiveSeconds, 'cuda')).toBe(64);
    expect(defaultBatchSize(base, 30 * base.sampleRate, 'webgpu')).toBe(11);
  });

  it('runs a GPU batch in one pass, the CPU in the smallest passes', () => {
    expect(defaultPassPlan('cpu', 12)).toEqual(DEFAULT_PASS_PLAN);
    expect(defaultPassPlan('webgpu', 12)).toEqual({ frontBatch: 0, layersPerPass: 12 });
    const taps = tapsFor(base, ['cnn', 'attention', 'ffn'], 'reorder');
    const gpu = planStatistics(base, taps, fiveSeconds, { backend: 'webgpu' });
    expect(gpu.batchSize).toBe(64);
    expect(gpu.passes).toEqual({ frontBatch: 0, layersPerPass: 12 });
    const cpu = planStatistics(base, taps, fiveSeconds);
    expect(cpu.batchSize).toBe(8);
    expect(cpu.passes).toEqual(DEFAULT_PASS_PLAN);
    // A budget still shrinks the GPU batch: the estimate counts one pass's activations.
    const budget = planStatistics(base, taps, fiveSeconds, { backend: 'webgpu', memory: cpu.estimate.total * 1.5 });
    expect(budget.batchSize).toBeLessThan(64);
  });

  it('collects the same statistics in one pass as in the CPU passes', async () => {
    const cfg = tinyHubertConfig();
    const anchor = { config: cfg, weights: randomWeights(cfg, 1) };
    const other = { config: cfg, weights: randomWeights(cfg, 2) };
    const taps = tapsFor(cfg, ['cnn', 'attention', 'ffn'], 'reorder');
    const rand = mulberry32(5);
    const samples = 8000;
    const probe = {
      sampleRate: cfg.sampleRate,
      segmentSeconds: samples / cfg.sampleRate,
      segmentSamples: samples,
      segments: Array.from({ length: 6 }, (_, i) => ({
        source: 0,
        file: `s${i}`,
        offsetSamples: 0,
        offsetSeconds: 0,
        paddedSamples: 0,
        samples: Float32Array.from({ length: samples }, (_, t) => 0.3 * Math.sin(t / (7 + i)) + 0.05 * (rand() - 0.5)),
      })),
      totalSeconds: 3,
    } as unknown as ProbeSet;
    const run = (passes?: { frontBatch: number; layersPerPass: number }) =>
      collectStatistics(anchor, other, probe, taps, { device: 'cpu', batchSize: 3, ...(passes ? { passes } : {}) });
    const smallest = await run();
    const whole = await run(defaultPassPlan('webgpu', cfg.layers));
    expect([...whole.stats.keys()]).toEqual([...smallest.stats.keys()]);
    for (const [tap, s] of smallest.stats) expect(maxRelativeError(correlation(whole.stats.get(tap)!), correlation(s))).toBeLessThan(1e-5);
  });
});
