import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildPermutationSpec } from '../../server/src/engine/align/spec';
import { applyPermutations, randomPermutations } from '../../server/src/engine/align/permute';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import { mulberry32 } from '../../server/src/engine/random';
import { assertSelfCheck, selfCheck } from '../../server/src/engine/pipeline/self-check';
import { HF_REFERENCE, REFERENCE_MODELS, loadReference } from '../helpers/reference';

describe.each(REFERENCE_MODELS)('function preservation: %s', (name) => {
  it('random permutations of every group (residual included) leave every hidden state unchanged to 1e-5', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, name));
    const spec = buildPermutationSpec(model.config);
    const perms = randomPermutations(spec, mulberry32(11));
    const permuted = applyPermutations(model.weights, spec, perms);
    const audio = Float32Array.from(loadReference(name).input);
    const r = await selfCheck(model, permuted, perms, audio, 1, { device: 'cpu' });
    expect(r.maxRelativeError).toBeLessThan(1e-5);
    expect(r.passed).toBe(true);
  });

  it('catches a permutation that is not function-preserving', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, name));
    const spec = buildPermutationSpec(model.config);
    const perms = randomPermutations(spec, mulberry32(12), { include: (g) => g.kind === 'ffn' });
    const broken = applyPermutations(model.weights, spec, perms);
    // Move the FFN's input rows but "forget" its output columns, as a buggy spec would.
    const w = model.weights.get('encoder.layers.0.feed_forward.output_dense.weight')!;
    broken.set('encoder.layers.0.feed_forward.output_dense.weight', w);
    const r = await selfCheck(model, broken, perms, Float32Array.from(loadReference(name).input), 1, { device: 'cpu' });
    expect(r.passed).toBe(false);
    expect(() => assertSelfCheck(r)).toThrow(/self-check failed: .* differs from the original/);
  });
});
