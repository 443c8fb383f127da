import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { forward, loadEncoderModel } from '../../server/src/engine/model/encoder';
import { HF_REFERENCE, REFERENCE_MODELS, loadReference, relativeMaxError } from '../helpers/reference';

describe.each(REFERENCE_MODELS)('parity with transformers: %s', (name) => {
  it('matches conv features and every hidden state within 1e-4 of the tensor scale', async () => {
    const ref = loadReference(name);
    const model = await loadEncoderModel(path.join(HF_REFERENCE, name));
    const out = await forward(model, Float32Array.from(ref.input), { device: 'cpu' });

    expect(out.frames).toBe(ref.last_hidden_state.length);
    expect(relativeMaxError(out.convFeatures, ref.conv_features)).toBeLessThan(1e-4);
    expect(out.hiddenStates).toHaveLength(ref.hidden_states.length);
    out.hiddenStates.forEach((h, k) => {
      expect(relativeMaxError(h, ref.hidden_states[k]!), `hidden_states[${k}]`).toBeLessThan(1e-4);
    });
    expect(relativeMaxError(out.lastHiddenState, ref.last_hidden_state)).toBeLessThan(1e-4);
  });
});
