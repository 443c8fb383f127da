/**
 * The alignment methods, by their recipe name (`align.method`).
 *
 * Interface (method.ts): `{ name, needsProbe, taps(cfg, permute, heads), align(ctx) → AlignOutcome }`.
 *   needsProbe  the method reads probe audio; the recipe checks, the CLI plan and run.ts ask `alignNeedsProbe`.
 *   taps        the statistics taps it collects (plan and memory estimate).
 *   align       permutations + the other model in the anchor's unit order (+ correlations, dead units and unit
 *               moments when it measured them); `functionPreserving: false` makes the self-check report instead
 *               of failing the run.
 *
 * Adding a method: one file in this folder exporting an AlignMethod, one line below, and its name in the schema's
 * `align.method` enum (recipe/schema.ts). The `Record` type makes the compiler refuse a schema name without an
 * entry, and test/unit/method-registries.test.ts refuses an entry without a schema name.
 */
import type { AlignMethodName } from '../../recipe/schema';
import { correlation } from './correlation';
import type { AlignMethod } from './method';
import { none } from './none';
import { paper } from './paper';
import { weights } from './weights';

export type { AlignContext, AlignMethod, AlignOutcome, UnitMoments } from './method';

export const ALIGN_METHODS: Record<AlignMethodName, AlignMethod> = {
  correlation,
  paper,
  weights,
  none,
};

export function alignMethod(name: AlignMethodName): AlignMethod {
  return ALIGN_METHODS[name];
}

/** Whether `align.method` needs probe audio (unknown names: no, the schema reports them). */
export function alignNeedsProbe(name: string | undefined): boolean {
  return name !== undefined && Object.hasOwn(ALIGN_METHODS, name) && ALIGN_METHODS[name as AlignMethodName].needsProbe;
}
