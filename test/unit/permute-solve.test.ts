import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEncoderModel, type EncoderModel } from '../../server/src/engine/model/encoder';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import { shutdownLapWorker } from '../../server/src/engine/align/lap-async';
import {
  applyPermutations,
  blockMap,
  fromBlocks,
  invertPermutation,
  randomPermutations,
  type Permutations,
} from '../../server/src/engine/align/permute';
import { gaussian, mulberry32 } from '../../server/src/engine/random';
import { permutationsFromCorrelations, permutationsFromWeights, type CorrelationSet } from '../../server/src/engine/align/solve';
import { buildPermutationSpec, type EncoderSummary, type PermutationSpec } from '../../server/src/engine/align/spec';
import { HF_REFERENCE, REFERENCE_MODELS } from '../helpers/reference';

afterAll(async () => {
  await shutdownLapWorker();
});

/** A correlation-like matrix whose best match for anchor unit i is other unit p[i]: 0.6 + noise there, noise elsewhere. */
function noisyMatch(p: Int32Array, rng: () => number, noise = 0.08): Float64Array {
  const n = p.length;
  const r = new Float64Array(n * n);
  for (let k = 0; k < r.length; k++) r[k] = noise * gaussian(rng);
  for (let i = 0; i < n; i++) r[i * n + p[i]!] = 0.6 + noise * gaussian(rng);
  return r;
}

function sameWeights(a: WeightMap, b: WeightMap): boolean {
  for (const [name, t] of a) {
    const u = b.get(name)!;
    for (let i = 0; i < t.data.length; i++) if (t.data[i] !== u.data[i]) return false;
  }
  return a.size === b.size;
}

const small: EncoderSummary = {
  hidden: 32,
  layers: 2,
  heads: 4,
  headDim: 8,
  intermediate: 48,
  convDims: [16, 16, 24],
  convBias: false,
  featExtractNorm: 'group',
  featProjLayerNorm: true,
  posConvGroups: 4,
  preLayerNorm: false,
};

describe('permutations from correlations', () => {
  const spec = buildPermutationSpec(small);
  const truth = randomPermutations(spec, mulberry32(21), { qkInHead: false });

  function correlations(rng: () => number): CorrelationSet {
    const taps = new Map<string, Float64Array>();
    for (const g of spec.groups) if (g.tap) taps.set(g.tap, noisyMatch(truth.get(g.name)!, rng));
    for (let l = 0; l < small.layers; l++) taps.set(`layer.${l}.out`, noisyMatch(truth.get('residual')!, rng, 0.2));
    taps.set('proj', noisyMatch(truth.get('residual')!, rng, 0.2));
    return { taps };
  }

  it('recovers a known permutation exactly from noisy correlations, every part, heads re-ordered', async () => {
    const corr = correlations(mulberry32(1));
    const { perms, report } = await permutationsFromCorrelations(spec, corr, {
      permute: ['cnn', 'attention', 'ffn', 'residual'],
      heads: 'reorder',
    });
    for (const [name, p] of truth) expect(Array.from(perms.get(name)!), name).toEqual(Array.from(p));
    const ffn = report.find((r) => r.group === 'layer.1.ffn')!;
    expect(ffn.after).toBeGreaterThan(0.5);
    expect(Math.abs(ffn.before)).toBeLessThan(0.2);
    expect(ffn.moved).toBeGreaterThan(0.8);
    expect(report.map((r) => r.group)).toEqual([
      'conv.0',
      'conv.1',
      'conv.2',
      'layer.0.ffn',
      'layer.1.ffn',
      'layer.0.attn.v',
      'layer.1.attn.v',
      'residual',
    ]);
    const res = report.find((r) => r.group === 'residual')!;
    expect(res.source).toBe('layer.0.out layer.1.out proj');
  });

  it('heads: within keeps every head in place, none leaves attention alone; parts not asked for are absent', async () => {
    const corr = correlations(mulberry32(2));
    const within = await permutationsFromCorrelations(spec, corr, { permute: ['attention'], heads: 'within' });
    expect([...within.perms.keys()].sort()).toEqual(['layer.0.attn.qk', 'layer.0.attn.v', 'layer.1.attn.qk', 'layer.1.attn.v']);
    for (const l of [0, 1]) {
      const v = within.perms.get(`layer.${l}.attn.v`)!;
      expect(Array.from(blockMap(v, 4, 8)!)).toEqual([0, 1, 2, 3]);
      expect(Array.from(within.perms.get(`layer.${l}.attn.qk`)!)).toEqual([...Array(32).keys()]);
    }
    const none = await permutationsFromCorrelations(spec, corr, { permute: ['attention', 'ffn'], heads: 'none' });
    expect([...none.perms.keys()]).toEqual(['layer.0.ffn', 'layer.1.ffn']);
  });

  it('q/k follow their heads; with Q/K correlations they also get the shared in-head permutation', async () => {
    const corr = correlations(mulberry32(3));
    const withQk = randomPermutations(spec, mulberry32(21), { qkInHead: true });
    const heads = blockMap(truth.get('layer.0.attn.v')!, 4, 8)!;
    const qkTruth = fromBlocks(
      heads,
      Array.from({ length: 4 }, (_, h) => Int32Array.from(withQk.get('layer.0.attn.qk')!.subarray(h * 8, h * 8 + 8)).map((x) => x % 8)),
      8,
    );
    const qk = new Map([
      [0, noisyMatch(qkTruth, mulberry32(4))],
      [1, noisyMatch(truth.get('layer.1.attn.qk')!, mulberry32(5))],
    ]);
    const { perms } = await permutationsFromCorrelations(spec, { ...corr, qk }, { permute: ['attention'], qkInHead: true });
    expect(Array.from(perms.get('layer.0.attn.qk')!)).toEqual(Array.from(qkTruth));
    expect(Array.from(perms.get('layer.0.attn.v')!)).toEqual(Array.from(truth.get('layer.0.attn.v')!));
    await expect(permutationsFromCorrelations(spec, corr, { permute: ['attention'], qkInHead: true })).rejects.toThrow(/Q\/K-space/);
  });

  it('names a missing tap and refuses a wrongly sized matrix', async () => {
    const corr = correlations(mulberry32(6));
    const taps = new Map(corr.taps);
    taps.delete('layer.1.ffn');
    await expect(permutationsFromCorrelations(spec, { taps }, { permute: ['ffn'] })).rejects.toThrow(/layer\.1\.ffn/);
    taps.set('layer.1.ffn', new Float64Array(10));
    await expect(permutationsFromCorrelations(spec, { taps }, { permute: ['ffn'] })).rejects.toMatchObject({ code: 'shape-mismatch' });
  });
});

describe.each(REFERENCE_MODELS)('weight matching recovers a permuted copy of %s', (name) => {
  let model: EncoderModel;
  let spec: PermutationSpec;
  beforeAll(async () => {
    model = await loadEncoderModel(path.join(HF_REFERENCE, name));
    spec = buildPermutationSpec(model.config);
  });

  const check = async (perm: Permutations, opts: Parameters<typeof permutationsFromWeights>[3]) => {
    const other = applyPermutations(model.weights, spec, perm);
    const { perms, report } = await permutationsFromWeights(spec, model.weights, other, opts);
    for (const [g, p] of perm) expect(Array.from(perms.get(g)!), g).toEqual(Array.from(invertPermutation(p)));
    expect(sameWeights(applyPermutations(other, spec, perms), model.weights)).toBe(true);
    for (const r of report) {
      expect(r.after, r.group).toBeCloseTo(1, 6); // cosine of each unit with its recovered self
      expect(r.after).toBeGreaterThanOrEqual(r.before);
    }
    return report;
  };

  it('CNN + attention (heads + in-head V) + FFN, no residual', async () => {
    const perm = randomPermutations(spec, mulberry32(8), { include: (g) => g.kind !== 'residual', qkInHead: false });
    const report = await check(perm, { permute: ['cnn', 'attention', 'ffn'], heads: 'reorder' });
    expect(report.some((r) => r.before < 0.5)).toBe(true);
  });

  it('uses a caller-supplied gram (e.g. an onnxruntime MatMul) when given, with the same result', async () => {
    const perm = randomPermutations(spec, mulberry32(10), { include: (g) => g.kind === 'ffn' || g.kind === 'cnn' });
    const other = applyPermutations(model.weights, spec, perm);
    let calls = 0;
    const gram = (a: Float64Array, b: Float64Array, rows: number, k: number) => {
      calls++;
      const out = new Float64Array(rows * rows);
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < rows; j++) for (let q = 0; q < k; q++) out[i * rows + j] += a[i * k + q]! * b[j * k + q]!;
      return out;
    };
    const withHook = await permutationsFromWeights(spec, model.weights, other, { permute: ['cnn', 'ffn'], gram });
    const plain = await permutationsFromWeights(spec, model.weights, other, { permute: ['cnn', 'ffn'] });
    expect(calls).toBeGreaterThan(0);
    for (const [g, p] of plain.perms) expect(Array.from(withHook.perms.get(g)!), g).toEqual(Array.from(p));
    for (const [g, p] of perm) expect(Array.from(plain.perms.get(g)!), g).toEqual(Array.from(invertPermutation(p)));
  });

  it('everything, residual and in-head Q/K included', async () => {
    const perm = randomPermutations(spec, mulberry32(9), { qkInHead: true });
    await check(perm, { permute: ['cnn', 'attention', 'ffn', 'residual'], heads: 'reorder', qkInHead: true, seed: 3 });
  });
});
