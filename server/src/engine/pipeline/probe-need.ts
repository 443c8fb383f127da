/**
 * Which settings of a recipe need probe audio: the one rule, read from the method registries, shared by the run,
 * the recipe checks (recipe/crossfield.ts) and the CLI plan. Works on a partial recipe (any key may be missing).
 */
import { alignNeedsProbe } from '../align/methods';
import { mergeNeedsProbe } from '../merge/methods';

interface AlignPart {
  method?: string | undefined;
}
interface MergePart {
  method?: string | undefined;
  repair?: boolean | undefined;
}
export interface ProbeNeedInput {
  align?: AlignPart | undefined;
  merge?: MergePart | undefined;
  variants?: ({ align?: AlignPart | undefined; merge?: MergePart | undefined } | undefined)[] | undefined;
}

export interface ProbeNeed {
  /** Key path of the setting that needs the probe, e.g. ['variants', 1, 'merge', 'repair']. */
  path: (string | number)[];
  /** The setting as a user reads it, e.g. "align.method correlation". */
  setting: string;
}

/** The first setting (main run, then variants in order) that needs probe audio, or undefined. */
export function probeNeed(r: ProbeNeedInput): ProbeNeed | undefined {
  const parts: { prefix: (string | number)[]; align: AlignPart | undefined; merge: MergePart | undefined }[] = [
    { prefix: [], align: r.align, merge: r.merge },
  ];
  (r.variants ?? []).forEach((v, i) => v && parts.push({ prefix: ['variants', i], align: v.align, merge: v.merge }));
  for (const { prefix, align, merge } of parts) {
    const at = prefix.length ? `${prefix[0]}[${prefix[1]}].` : '';
    if (alignNeedsProbe(align?.method)) return { path: [...prefix, 'align', 'method'], setting: `${at}align.method ${align!.method}` };
    if (mergeNeedsProbe(merge?.method)) return { path: [...prefix, 'merge', 'method'], setting: `${at}merge.method ${merge!.method}` };
    if (merge?.repair === true) return { path: [...prefix, 'merge', 'repair'], setting: `${at}merge.repair` };
  }
  return undefined;
}
