/** Evaluation embeddings shared between systems with an identical front end (model/front-end-cache.ts). */
import { describe, expect, it, vi } from 'vitest';
import { EmbeddingSession } from '../../server/src/engine/model/embed';
import { FrontEndCache, frontEndFingerprint } from '../../server/src/engine/model/front-end-cache';
import { randomWeights } from '../../server/src/engine/model/random';
import { tinyEmbeddingConfig } from '../helpers/tiny-model';
import type { Session } from '../../server/src/engine/model/runtime';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import { mulberry32 } from '../../server/src/engine/random';

const config = tinyEmbeddingConfig();

/** `base` with the transformer layers of another seed: the same front end, different layers. */
function otherLayers(base: WeightMap, seed: number): WeightMap {
  const other = randomWeights(config, seed);
  return new Map([...base].map(([name, t]) => [name, name.startsWith('encoder.layers.') ? other.get(name)! : t]));
}

function clip(n: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rand() - 0.5);
}

async function embedWith(weights: WeightMap, clips: Float32Array[], cache?: FrontEndCache) {
  const session = await EmbeddingSession.create({ config, weights }, { device: 'cpu' }, cache);
  const front = vi.spyOn((session as unknown as { front: Session }).front, 'run');
  try {
    return { pooled: (await session.embed(clips)).data, frontRuns: front.mock.calls.length };
  } finally {
    await session.release();
  }
}

describe('frontEndFingerprint', () => {
  const weights = randomWeights(config, 1);
  it('is the same for models that differ only in their transformer layers or FFN width', () => {
    expect(frontEndFingerprint(config, otherLayers(weights, 2))).toBe(frontEndFingerprint(config, weights));
    expect(frontEndFingerprint({ ...config, intermediate: 30 }, weights)).toBe(frontEndFingerprint(config, weights));
  });
  it('differs when a front-end weight or setting differs', () => {
    const changed = new Map(weights);
    const conv = weights.get('feature_extractor.conv_layers.1.conv.weight')!;
    const data = Float32Array.from(conv.data);
    data[5] = data[5]! + 1e-6;
    changed.set('feature_extractor.conv_layers.1.conv.weight', { shape: conv.shape, data });
    expect(frontEndFingerprint(config, changed)).not.toBe(frontEndFingerprint(config, weights));
    expect(frontEndFingerprint({ ...config, normalizeInput: true }, weights)).not.toBe(frontEndFingerprint(config, weights));
  });
});

describe('FrontEndCache', () => {
  it('drops the oldest front end to make room, and keeps what fits of one larger than the bound', () => {
    const cache = new FrontEndCache(3 * 400);
    const clips = [clip(10, 1), clip(10, 2), clip(10, 3), clip(10, 4)];
    const rows = () => new Float32Array(100); // 400 bytes
    cache.rowsOf('a');
    cache.store('a', clips[0]!, rows());
    cache.store('a', clips[1]!, rows());
    cache.rowsOf('b');
    cache.store('b', clips[0]!, rows());
    expect(cache.size).toBe(1200);
    cache.store('b', clips[1]!, rows()); // over the bound: 'a' goes
    expect(cache.size).toBe(800);
    expect(cache.rowsOf('a').size).toBe(0);
    cache.rowsOf('b'); // most recent again
    for (const c of clips) cache.store('b', c, rows()); // 'a' (empty) goes, then 'b' alone fills the bound
    expect(cache.rowsOf('b').size).toBe(3);
    expect(cache.size).toBe(1200);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.rowsOf('b').size).toBe(0);
  });
});

describe('EmbeddingSession with a shared FrontEndCache', () => {
  const weights = randomWeights(config, 3);
  const clips = [clip(2000, 1), clip(2000, 2), clip(1500, 3)];

  it('a second system with the same front end runs only its layers, with the values it computes alone', async () => {
    const cache = new FrontEndCache();
    const first = await embedWith(weights, clips, cache);
    expect(first.frontRuns).toBe(2); // one run per length
    const held = cache.size;
    expect(held).toBeGreaterThan(0);

    const layers = otherLayers(weights, 4);
    const shared = await embedWith(layers, clips, cache);
    expect(shared.frontRuns).toBe(0);
    expect(cache.size).toBe(held);
    const alone = await embedWith(layers, clips);
    expect(alone.frontRuns).toBe(2);
    expect(shared.pooled).toEqual(alone.pooled);
    expect(shared.pooled).not.toEqual(first.pooled);
  });

  it('a system with a different front end computes its own', async () => {
    const cache = new FrontEndCache();
    await embedWith(weights, clips, cache);
    const other = await embedWith(randomWeights(config, 5), clips, cache);
    expect(other.frontRuns).toBe(2);
  });
});
