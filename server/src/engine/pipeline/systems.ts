/**
 * The merged systems a run builds and compares: the main settings and each of the recipe's `variants` (their align
 * and merge keys override the main ones). Alignments are shared between systems that align the same way, and a
 * system's weights at one λ are: the merge method (merge/methods/) → partial zipping when `width` > 1
 * (merge/zip.ts) → statistics repair when `repair` (merge/repair.ts). A method that refines a start (lsq) runs after
 * the zipping instead, on the zipped interpolation.
 */
import { alignMethod, type AlignContext, type AlignOutcome } from '../align/methods';
import { groupName } from '../align/spec';
import type { EncoderConfig } from '../io/hfconfig';
import type { ProbeSet } from '../io/probe';
import { mergeMethod } from '../merge/methods';
import type { LambdaSpec } from '../merge/lambda';
import { mixTargets, unitMoments, type Moments, type UnitTargets } from '../merge/repair';
import { repairStatistics } from '../merge/repair';
import { zipFeedForward } from '../merge/zip';
import { EngineError } from '../errors';
import type { EncoderModel } from '../model/encoder';
import type { WeightMap } from '../model/tensor';
import { tapName, type TapName } from '../model/taps';
import { parameterCount } from '../model/weights';
import type { LsqSettings, Recipe } from '../recipe/schema';
import { parseMemory } from './memory-plan';
import { defaultBatchSize } from './plan';

export interface SystemSettings {
  /** Row label in the report: `permuted` for the main settings, else the variant's name. */
  name: string;
  align: Recipe['align'];
  /** `lsq` only on systems whose method is lsq (the report lists the settings a system used). */
  merge: Pick<Recipe['merge'], 'method' | 'repair' | 'width'> & { lsq?: Partial<LsqSettings> };
}

/** The main settings first, then each variant with its overrides applied. */
export function systemsOf(recipe: Recipe): SystemSettings[] {
  const main: SystemSettings = {
    name: 'permuted',
    align: recipe.align,
    merge: { method: recipe.merge.method, repair: recipe.merge.repair, width: recipe.merge.width },
  };
  // A variant's merge.lsq overrides some of the main merge.lsq keys.
  const withLsq = ({ lsq, ...rest }: SystemSettings['merge']) =>
    rest.method === 'lsq' ? { ...rest, lsq: { ...recipe.merge.lsq, ...definedOnly(lsq ?? {}) } } : rest;
  return [
    { ...main, merge: withLsq({ ...main.merge, lsq: recipe.merge.lsq }) },
    ...(recipe.variants ?? []).map((v) => ({
      name: v.name,
      align: { ...main.align, ...definedOnly(v.align ?? {}) },
      merge: withLsq({ ...main.merge, ...definedOnly(v.merge ?? {}) }),
    })),
  ];
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Systems that align the same way share one alignment. */
export function alignmentKey(a: Recipe['align']): string {
  return JSON.stringify([a.method, [...a.permute].sort(), a.heads]);
}

export interface BuildContext {
  anchor: EncoderModel;
  other: EncoderModel;
  probe: ProbeSet | undefined;
  batchSize: number | undefined;
  seed: number;
  session: AlignContext['session'];
  emit: AlignContext['emit'];
  signal: AlignContext['signal'];
}

export interface BuiltSystem {
  weights: WeightMap;
  config: EncoderConfig;
  parameters: number;
}

/** Endpoint moments at the repair taps, in the merged model's unit order (cached per alignment). */
type EndpointMoments = { anchor: Map<TapName, Moments>; other: Map<TapName, Moments> };
const endpointCache = new WeakMap<AlignOutcome, Promise<EndpointMoments>>();

export async function buildSystem(s: SystemSettings, aligned: AlignOutcome, lambda: LambdaSpec, c: BuildContext): Promise<BuiltSystem> {
  const cfg = c.anchor.config;
  const method = mergeMethod(s.merge.method);
  const mergeCtx = {
    config: cfg,
    anchor: c.anchor.weights,
    other: aligned.permuted,
    lambda,
    probe: c.probe,
    lsq: s.merge.lsq,
    batchSize: c.batchSize,
    seed: c.seed,
    session: c.session,
    emit: c.emit,
    signal: c.signal,
  };
  // A method that refines a start (lsq) is handed the zipped interpolation, so its refit covers the unmerged units;
  // any other method's merge is zipped afterwards.
  const zipFirst = s.merge.width > 1 && method.refinesStart;
  let weights = await (zipFirst ? mergeMethod(method.interpolation) : method).merge(mergeCtx);
  let config = cfg;
  // Which endpoint unit each FFN unit of the merged model stands for (zipping splits some), for repair's targets.
  let ffnOrigins: ((l: number) => { kind: 'merged' | 'anchor' | 'other'; unit: number }[]) | undefined;
  if (s.merge.width > 1) {
    const zipped = zipFeedForward({
      config: cfg,
      anchor: c.anchor.weights,
      other: aligned.permuted,
      merged: weights,
      lambda,
      width: s.merge.width,
      similarity: (l) => matchedCorrelation(aligned, l, cfg.intermediate),
    });
    weights = zipFirst ? await method.merge({ ...mergeCtx, start: zipped }) : zipped.weights;
    config = zipped.config;
    ffnOrigins = (l) => zipped.origins.get(l)!;
  }
  if (s.merge.repair) {
    if (!c.probe) throw new EngineError('bad-recipe', `merge.repair (${s.name}) needs a probe section`);
    const probe = c.probe;
    const moments = { ...c.session, batchSize: c.batchSize ?? defaultBatchSize(cfg, probe.segmentSamples), signal: c.signal };
    let cached = endpointCache.get(aligned);
    if (!cached) endpointCache.set(aligned, (cached = endpointMoments(c, aligned, probe, moments)));
    const ends = await cached;
    const targets = (tap: TapName, lam: number): UnitTargets => {
      const a = ends.anchor.get(tap)!;
      const b = ends.other.get(tap)!;
      const layer = Number(/^layer\.(\d+)\.ffn$/.exec(tap)?.[1] ?? -1);
      if (layer < 0 || !ffnOrigins) return mixTargets(a, b, lam);
      // Zipped FFN: a split unit keeps the moments of the model it was copied from.
      const origins = ffnOrigins(layer);
      const pick = (m: Moments, i: number): Moments => ({ mean: Float64Array.of(m.mean[i]!), variance: Float64Array.of(m.variance[i]!) });
      const mean = new Float64Array(origins.length);
      const std = new Float64Array(origins.length);
      origins.forEach(({ kind, unit }, j) => {
        const t =
          kind === 'merged'
            ? mixTargets(pick(a, unit), pick(b, unit), lam)
            : mixTargets(pick(kind === 'anchor' ? a : b, unit), pick(kind === 'anchor' ? a : b, unit), 1);
        mean[j] = t.mean[0]!;
        std[j] = t.std[0]!;
      });
      return { mean, std };
    };
    weights = await repairStatistics({ config, merged: weights, lambda, targets, probe, moments });
  }
  return { weights, config, parameters: parameterCount(config) };
}

/** Matched correlation of each anchor FFN unit with the other's unit now in its place, when the alignment has it. */
function matchedCorrelation(aligned: AlignOutcome, layer: number, n: number): Float64Array | undefined {
  const r = aligned.correlations.get(tapName.ffn(layer));
  if (!r || r.length !== n * n || !aligned.functionPreserving) return undefined;
  const p = aligned.perms.get(groupName.ffn(layer));
  return Float64Array.from({ length: n }, (_, i) => r[i * n + (p ? p[i]! : i)]!);
}

/**
 * The endpoints' moments at the repair taps: the alignment's own statistics when it measured them on the models it
 * permuted function-preservingly (the permuted other's moments are the other's, gathered by the permutation), else a
 * pass of each endpoint.
 */
async function endpointMoments(
  c: BuildContext,
  aligned: AlignOutcome,
  probe: ProbeSet,
  opts: Parameters<typeof unitMoments>[3],
): Promise<EndpointMoments> {
  const cfg = c.anchor.config;
  const taps: TapName[] = [];
  for (let l = 0; l < cfg.layers; l++) taps.push(tapName.attn(l), tapName.ffn(l));
  const anchor = new Map<TapName, Moments>();
  const other = new Map<TapName, Moments>();
  const missing: TapName[] = [];
  for (const tap of taps) {
    const m = aligned.functionPreserving ? aligned.moments.get(tap) : undefined;
    if (!m) {
      missing.push(tap);
      continue;
    }
    const layer = Number(tap.split('.')[1]);
    const p = aligned.perms.get(tap.endsWith('.ffn') ? groupName.ffn(layer) : groupName.attnV(layer));
    const gather = (x: Float64Array) => (p ? Float64Array.from(p, (j) => x[j]!) : x);
    anchor.set(tap, { mean: m.meanA, variance: m.varA });
    other.set(tap, { mean: gather(m.meanB), variance: gather(m.varB) });
  }
  if (missing.length) {
    for (const [tap, m] of await unitMoments(c.anchor, probe, missing, opts)) anchor.set(tap, m);
    for (const [tap, m] of await unitMoments({ config: cfg, weights: aligned.permuted }, probe, missing, opts)) other.set(tap, m);
  }
  return { anchor, other };
}

/** Aligns the way `s` says, reusing an alignment already computed the same way. */
export async function alignmentFor(
  s: SystemSettings,
  cache: Map<string, Promise<AlignOutcome>>,
  ctx: Omit<AlignContext, 'permute' | 'heads'>,
): Promise<AlignOutcome> {
  const key = alignmentKey(s.align);
  let a = cache.get(key);
  if (!a) cache.set(key, (a = alignMethod(s.align.method).align({ ...ctx, permute: s.align.permute, heads: s.align.heads })));
  return a;
}

/** The λ points a run scores: the recipe's λ (null when it is per layer) and every other sweep λ, in order. */
export function lambdaPoints(lambda: LambdaSpec, sweep: readonly number[]): { lambda: number | null; spec: LambdaSpec }[] {
  const points: { lambda: number | null; spec: LambdaSpec }[] = [{ lambda: typeof lambda === 'number' ? lambda : null, spec: lambda }];
  for (const l of sweep) if (l !== lambda) points.push({ lambda: l, spec: l });
  return points.sort((a, b) => (a.lambda ?? -1) - (b.lambda ?? -1));
}

/**
 * Systems a run scores: the two sources, then at each λ the unaligned merge and each system (the main settings only
 * when they align: unaligned, they are the unaligned merge).
 */
export function scoredSystemCount(systems: number, points: number, aligned: boolean): number {
  return 2 + points * (1 + systems - (aligned ? 0 : 1));
}

/**
 * What the scoring workers must fit in: the widest system's weights (zipping grows the FFN; counted as the whole model
 * grown, to be safe) and `runtime.memory`, if the recipe sets it.
 */
export function scoringMemory(cfg: EncoderConfig, systems: readonly SystemSettings[], budget: string | undefined) {
  const widest = Math.max(1, ...systems.map((s) => s.merge.width ?? 1));
  return { modelBytes: 4 * parameterCount(cfg) * widest, ...(budget ? { budget: parseMemory(budget) } : {}) };
}
