import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isEngineError } from '../../server/src/engine/errors';
import { forward, loadEncoderModel, type EncoderModel } from '../../server/src/engine/model/encoder';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import {
  applyPermutations,
  blockMap,
  composePermutations,
  fromBlocks,
  identityPermutation,
  invertPermutations,
  permuteFeatures,
  permutationsFromJson,
  permutationsToJson,
  randomPermutations,
  validatePermutations,
  type Permutations,
} from '../../server/src/engine/align/permute';
import { buildPermutationSpec, type PermutationSpec } from '../../server/src/engine/align/spec';
import { mulberry32, randomPermutation } from '../../server/src/engine/random';
import { HF_REFERENCE, REFERENCE_MODELS, loadReference, maxRelativeError } from '../helpers/reference';

function sameWeights(a: WeightMap, b: WeightMap): boolean {
  if (a.size !== b.size) return false;
  for (const [name, t] of a) {
    const u = b.get(name);
    if (!u || u.shape.join() !== t.shape.join() || u.data.length !== t.data.length) return false;
    for (let i = 0; i < t.data.length; i++) if (!Object.is(t.data[i], u.data[i])) return false;
  }
  return true;
}

describe.each(REFERENCE_MODELS)('permutations of %s', (name) => {
  let model: EncoderModel;
  let spec: PermutationSpec;
  beforeAll(async () => {
    model = await loadEncoderModel(path.join(HF_REFERENCE, name));
    spec = buildPermutationSpec(model.config);
  });

  it('spec: every moved axis exists with the group size, and the groups cover the model', () => {
    const moved = new Set<string>();
    for (const g of spec.groups) {
      expect(g.moves.length).toBeGreaterThan(0);
      if (g.blocks) expect(g.blocks.count * g.blocks.size).toBe(g.size);
      for (const m of g.moves) {
        const t = model.weights.get(m.tensor);
        expect(t, `${g.name} → ${m.tensor}`).toBeDefined();
        if (m.kind === 'axis') expect(t!.shape[m.axis], `${g.name} → ${m.tensor}[${m.axis}]`).toBe(g.size);
        else expect([t!.shape[0], t!.shape[1]! * m.groups]).toEqual([g.size, g.size]);
        moved.add(`${m.tensor}#${m.axis}`);
      }
    }
    const cfg = model.config;
    const kinds = spec.groups.map((g) => g.kind);
    expect(kinds.filter((k) => k === 'cnn')).toHaveLength(cfg.convDims.length);
    expect(kinds.filter((k) => k === 'ffn')).toHaveLength(cfg.layers);
    expect(kinds.filter((k) => k === 'attn-v')).toHaveLength(cfg.layers);
    // Every axis of every tensor that is not the conv kernel or the raw audio input is moved by some group.
    for (const [tname, t] of model.weights) {
      t.shape.forEach((len, axis) => {
        const kernel = t.shape.length === 3 && axis === 2;
        const audioIn = tname === 'feature_extractor.conv_layers.0.conv.weight' && axis === 1;
        if (!kernel && !audioIn) expect(moved.has(`${tname}#${axis}`), `${tname} axis ${axis} (${len})`).toBe(true);
      });
    }
  });

  it('applying random permutations then their inverses returns identical weights; composition composes', () => {
    const rng = mulberry32(11);
    const p = randomPermutations(spec, rng);
    const q = randomPermutations(spec, rng);
    const moved = applyPermutations(model.weights, spec, p);
    expect(sameWeights(moved, model.weights)).toBe(false);
    expect(sameWeights(applyPermutations(moved, spec, invertPermutations(p)), model.weights)).toBe(true);
    const pq = composePermutations(p, q);
    validatePermutations(spec, pq);
    expect(sameWeights(applyPermutations(moved, spec, q), applyPermutations(model.weights, spec, pq))).toBe(true);
    // The input map is left as it was.
    expect(sameWeights(applyPermutations(model.weights, spec, new Map()), model.weights)).toBe(true);
    // permutations.json round trip
    expect(
      sameWeights(applyPermutations(model.weights, spec, permutationsFromJson(JSON.parse(JSON.stringify(permutationsToJson(p))))), moved),
    ).toBe(true);
  });

  it('leaves what the model computes unchanged (≤ 1e-5 relative), outputs gathered by the residual permutation', async () => {
    const ref = loadReference(name);
    const input = Float32Array.from(ref.input);
    const base = await forward(model, input, { device: 'cpu' });
    const perms = randomPermutations(spec, mulberry32(5));
    const permuted = await forward({ config: model.config, weights: applyPermutations(model.weights, spec, perms) }, input, {
      device: 'cpu',
    });
    const D = model.config.hidden;
    const res = perms.get('residual')!;
    const lastConv = perms.get(`conv.${model.config.convDims.length - 1}`)!;
    expect(maxRelativeError(permuted.convFeatures, permuteFeatures(base.convFeatures, base.convChannels, lastConv))).toBeLessThan(1e-5);
    base.hiddenStates.forEach((h, k) => {
      expect(maxRelativeError(permuted.hiddenStates[k]!, permuteFeatures(h, D, res)), `hidden_states[${k}]`).toBeLessThan(1e-5);
    });
    expect(maxRelativeError(permuted.lastHiddenState, permuteFeatures(base.lastHiddenState, D, res))).toBeLessThan(1e-5);

    // Without the residual group, outputs are unchanged as they are.
    const inner = randomPermutations(spec, mulberry32(6), { include: (g) => g.kind !== 'residual' && g.kind !== 'cnn' });
    const p2 = await forward({ config: model.config, weights: applyPermutations(model.weights, spec, inner) }, input, { device: 'cpu' });
    expect(maxRelativeError(p2.lastHiddenState, base.lastHiddenState)).toBeLessThan(1e-5);
  });

  it("a broken permutation would change the function: heads re-ordered on V/O only (the research code's bug)", async () => {
    const ref = loadReference(name);
    const input = Float32Array.from(ref.input).subarray(0, 4000);
    const base = await forward(model, input, { device: 'cpu' });
    const H = model.config.heads;
    const hd = model.config.headDim;
    const heads = randomPermutation(H, mulberry32(2));
    if (heads.every((h, i) => h === i)) heads.reverse();
    const vOnly: Permutations = new Map([['layer.0.attn.v', fromBlocks(heads, [], hd)]]);
    // Bypass validation deliberately by building the weights through a spec without the coupling.
    const loose: PermutationSpec = { summary: spec.summary, groups: spec.groups.map((g) => ({ ...g, coupledWith: undefined })) };
    const broken = await forward({ config: model.config, weights: applyPermutations(model.weights, loose, vOnly) }, input, {
      device: 'cpu',
    });
    expect(maxRelativeError(broken.lastHiddenState, base.lastHiddenState)).toBeGreaterThan(1e-3);
    expect(() => validatePermutations(spec, vOnly)).toThrow(/move heads together/);
  });
});

describe('permutation constraints', () => {
  const spec = buildPermutationSpec({
    hidden: 8,
    layers: 1,
    heads: 2,
    headDim: 4,
    intermediate: 6,
    convDims: [3, 3],
    convBias: true,
    featExtractNorm: 'layer',
    featProjLayerNorm: true,
    posConvGroups: 2,
    preLayerNorm: false,
  });

  it('refuses permutations that split heads or positional-conv groups, wrong sizes and non-permutations', () => {
    const split = Int32Array.from([0, 1, 2, 4, 3, 5, 6, 7]);
    expect(blockMap(split, 2, 4)).toBeNull();
    expect(() => validatePermutations(spec, new Map([['residual', split]]))).toThrow(/positional-conv group/);
    expect(() => validatePermutations(spec, new Map([['layer.0.attn.v', split]]))).toThrow(/head/);
    expect(() => validatePermutations(spec, new Map([['conv.0', Int32Array.from([0, 0, 1])]]))).toThrow(/not a permutation/);
    expect(() => validatePermutations(spec, new Map([['layer.0.ffn', identityPermutation(5)]]))).toThrow(/6 units/);
    expect(() => validatePermutations(spec, new Map([['layer.9.ffn', identityPermutation(6)]]))).toThrow(/unknown group/);
    const swapHeads = Int32Array.from([4, 5, 6, 7, 0, 1, 2, 3]);
    validatePermutations(
      spec,
      new Map([
        ['layer.0.attn.v', swapHeads],
        ['layer.0.attn.qk', Int32Array.from([5, 4, 6, 7, 1, 0, 3, 2])],
      ]),
    );
  });

  it('names the missing tensor or mismatched axis', () => {
    const w: WeightMap = new Map([['feature_extractor.conv_layers.0.conv.weight', { shape: [3, 1, 2], data: new Float32Array(6) }]]);
    let err: unknown;
    try {
      applyPermutations(w, spec, new Map([['conv.0', Int32Array.from([2, 0, 1])]]));
    } catch (e) {
      err = e;
    }
    expect(isEngineError(err, 'missing-tensor')).toBe(true);
    expect((err as Error).message).toContain('feature_extractor.conv_layers.0.conv.bias');
  });
});
