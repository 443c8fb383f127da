/** `align.method: none`: no permutation; the merge interpolates the checkpoints as they are. */
import type { AlignMethod } from './method';

export const none: AlignMethod = {
  name: 'none',
  needsProbe: false,
  taps: () => [],
  align: async (ctx) => ({
    perms: new Map(),
    report: [],
    permuted: ctx.other.weights,
    functionPreserving: true,
    correlations: new Map(),
    dead: new Map(),
    moments: new Map(),
  }),
};
