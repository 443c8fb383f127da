import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isEngineError } from '../../server/src/engine/errors';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import { shutdownLapWorker } from '../../server/src/engine/align/lap-async';
import { applyPermutations, randomPermutations } from '../../server/src/engine/align/permute';
import { gaussian, mulberry32 } from '../../server/src/engine/random';
import { permutationsFromWeights } from '../../server/src/engine/align/solve';
import { buildPermutationSpec } from '../../server/src/engine/align/spec';
import { lerpTensor, slerpTensor } from '../../server/src/engine/merge/interpolate';
import { lambdaForTensor } from '../../server/src/engine/merge/lambda';
import { checkMergeable, mergeWeights } from '../../server/src/engine/merge/merge';
import { HF_REFERENCE } from '../helpers/reference';

afterAll(async () => {
  await shutdownLapWorker();
});

const names = [
  'feature_extractor.conv_layers.0.conv.weight',
  'feature_projection.projection.weight',
  'encoder.pos_conv_embed.conv.weight',
  'encoder.layer_norm.weight',
  'encoder.layers.0.attention.q_proj.weight',
  'encoder.layers.0.feed_forward.intermediate_dense.bias',
  'encoder.layers.1.attention.q_proj.weight',
  'encoder.layers.1.feed_forward.output_dense.weight',
  'encoder.layers.2.final_layer_norm.bias',
];

function randomMap(seed: number, scale = 1): WeightMap {
  const rng = mulberry32(seed);
  return new Map(
    names.map((n, i) => [n, { shape: [3, i + 2], data: Float32Array.from({ length: 3 * (i + 2) }, () => scale * gaussian(rng)) }]),
  );
}

const norm = (x: Float32Array) => Math.sqrt(x.reduce((s, v) => s + v * v, 0));
const ctx = { layers: 3, preLayerNorm: false };

describe('linear merge', () => {
  const a = randomMap(1);
  const b = randomMap(2);

  it('λ = 1 gives the anchor and λ = 0 the other, bit for bit; λ = 0.3 the weighted mean', () => {
    for (const method of ['linear', 'slerp'] as const) {
      const one = mergeWeights(a, b, { method, lambda: 1, ...ctx }).weights;
      const zero = mergeWeights(a, b, { method, lambda: 0, ...ctx }).weights;
      for (const n of names) {
        expect(Array.from(one.get(n)!.data)).toEqual(Array.from(a.get(n)!.data));
        expect(Array.from(zero.get(n)!.data)).toEqual(Array.from(b.get(n)!.data));
      }
    }
    const m = mergeWeights(a, b, { method: 'linear', lambda: 0.3, ...ctx }).weights;
    const n = names[4]!;
    m.get(n)!.data.forEach((v, i) => expect(v).toBeCloseTo(0.3 * a.get(n)!.data[i]! + 0.7 * b.get(n)!.data[i]!, 6));
    expect(m.get(n)!.shape).toEqual(a.get(n)!.shape);
    // The inputs are not modified.
    expect(Array.from(a.get(n)!.data)).toEqual(Array.from(randomMap(1).get(n)!.data));
  });

  it('per-layer λ: layers take their own, the front takes the first, encoder.layer_norm follows the layout', () => {
    const list = [0.9, 0.5, 0.2];
    const at = (name: string, preLayerNorm = false) => lambdaForTensor(name, list, { layers: 3, preLayerNorm });
    expect(at('encoder.layers.1.attention.q_proj.weight')).toBe(0.5);
    expect(at('encoder.layers.2.final_layer_norm.bias')).toBe(0.2);
    expect(at('feature_extractor.conv_layers.0.conv.weight')).toBe(0.9);
    expect(at('feature_projection.projection.weight')).toBe(0.9);
    expect(at('encoder.pos_conv_embed.conv.weight')).toBe(0.9);
    expect(at('encoder.layer_norm.weight')).toBe(0.9);
    expect(at('encoder.layer_norm.weight', true)).toBe(0.2);
    const r = mergeWeights(a, b, { method: 'linear', lambda: list, ...ctx });
    expect(r.lambdas.get('encoder.layers.1.feed_forward.output_dense.weight')).toBe(0.5);
    let err: unknown;
    try {
      mergeWeights(a, b, { method: 'linear', lambda: [0.5, 0.5], ...ctx });
    } catch (e) {
      err = e;
    }
    expect(isEngineError(err, 'bad-recipe')).toBe(true);
    expect((err as Error).message).toMatch(/2 values; the models have 3/);
    expect(() => mergeWeights(a, b, { method: 'linear', lambda: 1.5, ...ctx })).toThrow(/\[0, 1\]/);
  });

  it('glob overrides: the first matching glob wins, `*` stays within a part, `**` crosses parts, else the default', () => {
    const spec = {
      default: 0.8,
      overrides: {
        'encoder.layers.*.attention.*.weight': 0.1,
        'encoder.layers.**': 0.4,
        'feature_*.**': 0.6,
        'encoder.*': 0.2,
        'encoder.pos_conv_embed.*.weight': 0.3,
      },
    };
    const r = mergeWeights(a, b, { method: 'linear', lambda: spec, ...ctx });
    expect(r.lambdas.get('encoder.layers.0.attention.q_proj.weight')).toBe(0.1);
    expect(r.lambdas.get('encoder.layers.0.feed_forward.intermediate_dense.bias')).toBe(0.4);
    expect(r.lambdas.get('feature_extractor.conv_layers.0.conv.weight')).toBe(0.6);
    expect(r.lambdas.get('feature_projection.projection.weight')).toBe(0.6);
    expect(r.lambdas.get('encoder.layer_norm.weight')).toBe(0.8); // `encoder.*` does not reach across the second dot
    expect(r.lambdas.get('encoder.pos_conv_embed.conv.weight')).toBe(0.3);
  });

  it('refuses models with different tensor names or shapes, naming the first mismatches', () => {
    const c = new Map(b);
    c.delete(names[3]!);
    c.set(names[5]!, { shape: [2, 9], data: new Float32Array(18) });
    c.set('encoder.extra.weight', { shape: [1], data: new Float32Array(1) });
    let err: unknown;
    try {
      checkMergeable(a, c);
    } catch (e) {
      err = e;
    }
    expect(isEngineError(err, 'incompatible-models')).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toContain('encoder.layer_norm.weight is missing from the other model');
    expect(msg).toContain('encoder.layers.0.feed_forward.intermediate_dense.bias is [3, 7] in the anchor but [2, 9]');
    expect(msg).toContain('encoder.extra.weight is only in the other model');
  });
});

describe('slerp', () => {
  it('keeps equal norms, interpolates unequal norms linearly, and follows the great circle', () => {
    const rng = mulberry32(5);
    const a = Float32Array.from({ length: 200 }, () => gaussian(rng));
    const b = Float32Array.from({ length: 200 }, () => 3 * gaussian(rng));
    for (const lambda of [0.1, 0.5, 0.9]) {
      const r = slerpTensor(a, b, lambda);
      expect(r.linear).toBe(false);
      expect(norm(r.data)).toBeCloseTo(lambda * norm(a) + (1 - lambda) * norm(b), 3);
      // Linear interpolation of diverging directions loses norm; slerp does not.
      expect(norm(lerpTensor(a, b, lambda))).toBeLessThan(norm(r.data));
    }
    // Orthogonal unit vectors at λ = 0.5: (a + b)/√2; at λ = 2/3 the direction is 30° from a.
    const e1 = new Float32Array([1, 0, 0]);
    const e2 = new Float32Array([0, 1, 0]);
    const mid = slerpTensor(e1, e2, 0.5).data;
    expect(mid[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(mid[1]).toBeCloseTo(Math.SQRT1_2, 6);
    const third = slerpTensor(e1, e2, 2 / 3).data;
    expect(third[0]).toBeCloseTo(Math.cos(Math.PI / 6), 6);
    expect(third[1]).toBeCloseTo(Math.sin(Math.PI / 6), 6);
  });

  it('falls back to linear for zero, parallel and antiparallel tensors, and says so', () => {
    const x = new Float32Array([1, 2, 3]);
    const par = slerpTensor(
      x,
      x.map((v) => 2 * v),
      0.25,
    );
    expect(par.linear).toBe(true);
    expect(Array.from(par.data)).toEqual(
      Array.from(
        lerpTensor(
          x,
          x.map((v) => 2 * v),
          0.25,
        ),
      ),
    );
    expect(
      slerpTensor(
        x,
        x.map((v) => -v),
        0.5,
      ).linear,
    ).toBe(true);
    expect(slerpTensor(new Float32Array(3), x, 0.5).linear).toBe(true);
    const m = mergeWeights(
      new Map([
        ['w', { shape: [3], data: x }],
        ['z', { shape: [2], data: new Float32Array(2) }],
        ['o', { shape: [2], data: new Float32Array([1, 0]) }],
      ]),
      new Map([
        ['w', { shape: [3], data: x.map((v) => 3 * v) }],
        ['z', { shape: [2], data: new Float32Array([1, 1]) }],
        ['o', { shape: [2], data: new Float32Array([0, 1]) }],
      ]),
      { method: 'slerp', lambda: 0.5, layers: 1, preLayerNorm: false },
    );
    expect(m.linearFallbacks).toEqual(['w', 'z']);
  });
});

describe('merging a model with an aligned permuted copy of itself', () => {
  it('gives the model back exactly after alignment, and not without it', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const spec = buildPermutationSpec(model.config);
    const perm = randomPermutations(spec, mulberry32(31), { include: (g) => g.kind !== 'residual', qkInHead: false });
    const copy = applyPermutations(model.weights, spec, perm);
    const opts = { method: 'linear' as const, lambda: 0.5, layers: model.config.layers, preLayerNorm: model.config.preLayerNorm };

    const naive = mergeWeights(model.weights, copy, opts).weights;
    const ffn = 'encoder.layers.1.feed_forward.intermediate_dense.weight';
    expect(Array.from(naive.get(ffn)!.data)).not.toEqual(Array.from(model.weights.get(ffn)!.data));

    const { perms } = await permutationsFromWeights(spec, model.weights, copy, { permute: ['cnn', 'attention', 'ffn'] });
    const aligned = applyPermutations(copy, spec, perms);
    for (const method of ['linear', 'slerp'] as const) {
      const merged = mergeWeights(model.weights, aligned, { ...opts, method }).weights;
      for (const [name, t] of model.weights) {
        const m = merged.get(name)!.data;
        let err = 0;
        for (let i = 0; i < m.length; i++) err = Math.max(err, Math.abs(m[i]! - t.data[i]!));
        expect(err, `${method} ${name}`).toBeLessThanOrEqual(method === 'linear' ? 0 : 1e-6);
      }
    }
  });
});
