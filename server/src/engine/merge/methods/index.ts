/**
 * The merge methods, by their recipe name (`merge.method`).
 *
 * Interface (method.ts): `{ name, needsProbe, merge(ctx) → WeightMap }`; ctx holds the anchor, the aligned other,
 * the λ spec, the config and (for methods that need it) the probe audio.
 *
 * Adding a method: one file in this folder exporting a MergeMethod, one line below, and its name in the schema's
 * `merge.method` enum (recipe/schema.ts). The `Record` type makes the compiler refuse a schema name without an
 * entry, and test/unit/method-registries.test.ts refuses an entry without a schema name.
 */
import type { MergeMethodName } from '../../recipe/schema';
import type { MergeMethod } from './method';
import { lsq } from './lsq';
import { linear, slerp } from './tensorwise';

export type { MergeContext, MergeMethod } from './method';

export const MERGE_METHODS: Record<MergeMethodName, MergeMethod> = {
  linear,
  slerp,
  lsq,
};

export function mergeMethod(name: MergeMethodName): MergeMethod {
  return MERGE_METHODS[name];
}

/** Whether `merge.method` needs probe audio (unknown names: no, the schema reports them). */
export function mergeNeedsProbe(name: string | undefined): boolean {
  return name !== undefined && Object.hasOwn(MERGE_METHODS, name) && MERGE_METHODS[name as MergeMethodName].needsProbe;
}
