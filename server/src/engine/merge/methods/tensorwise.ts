/** `merge.method: linear` and `slerp`: tensor-by-tensor interpolation (merge.ts, interpolate.ts). */
import { mergeWeights } from '../merge';
import type { MergeMethod } from './method';

function tensorwise(name: 'linear' | 'slerp'): MergeMethod {
  return {
    name,
    needsProbe: false,
    interpolation: name,
    refinesStart: false,
    merge: async (ctx) =>
      mergeWeights(ctx.anchor, ctx.other, {
        method: name,
        lambda: ctx.lambda,
        layers: ctx.config.layers,
        preLayerNorm: ctx.config.preLayerNorm,
      }).weights,
  };
}

export const linear = tensorwise('linear');
export const slerp = tensorwise('slerp');
