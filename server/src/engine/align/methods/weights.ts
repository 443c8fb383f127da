/** `align.method: weights`: data-free weight matching (Git Re-Basin, Ainsworth et al., ICLR 2023); see solve.ts. */
import { applyPermutations } from '../permute';
import { permutationsFromWeights } from '../solve';
import type { AlignMethod } from './method';

export const weights: AlignMethod = {
  name: 'weights',
  needsProbe: false,
  taps: () => [],
  async align(ctx) {
    ctx.stage('assign', 'weight matching');
    const { perms, report } = await permutationsFromWeights(ctx.spec, ctx.anchor.weights, ctx.other.weights, {
      permute: ctx.permute,
      heads: ctx.heads,
      seed: ctx.seed,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (done, total, what) => ctx.emit({ type: 'progress', stage: 'assign', done, total, message: what }),
    });
    if (perms.size > 0) ctx.stage('permute', `applying ${perms.size} permutations to the other model`);
    const permuted = perms.size > 0 ? applyPermutations(ctx.other.weights, ctx.spec, perms) : ctx.other.weights;
    return { perms, report, permuted, functionPreserving: true, correlations: new Map(), dead: new Map(), moments: new Map() };
  },
};
