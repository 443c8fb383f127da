/** `merge.method: linear` and `slerp`: tensor-by-tensor interpolation (merge.ts, interpolate.ts). */
import { mergeWeights } from '../merge';
import type { MergeMethod } from './method';

export const linear: MergeMethod = {
  name: 'linear',
  needsProbe: false,
  interpolation: 'linear',
  merge: async (ctx) =>
    mergeWeights(ctx.anchor, ctx.other, {
      method: 'linear',
      lambda: ctx.lambda,
      layers: ctx.config.layers,
      preLayerNorm: ctx.config.preLayerNorm,
    }).weights,
};

export const slerp: MergeMethod = {
  name: 'slerp',
  needsProbe: false,
  interpolation: 'slerp',
  merge: async (ctx) =>
    mergeWeights(ctx.anchor, ctx.other, {
      method: 'slerp',
      lambda: ctx.lambda,
      layers: ctx.config.layers,
      preLayerNorm: ctx.config.preLayerNorm,
    }).weights,
};
