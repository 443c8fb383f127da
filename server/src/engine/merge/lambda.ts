/**
 * λ (the weight on the ANCHOR: merged = λ·anchor + (1 − λ)·other) per tensor, from the recipe's `merge.lambda`:
 *
 *   number                 every tensor.
 *   list (one per layer)   encoder.layers.{l}.* use list[l]. Tensors outside the layers take the λ of the layer
 *                          they sit next to in the forward pass: the feature extractor, the feature projection and
 *                          the positional conv use the first; encoder.layer_norm uses the first for post-LN models
 *                          (it normalises the embeddings before layer 0) and the last for pre-LN models (it is the
 *                          final norm after the last layer).
 *   {default, overrides}   the first override (in recipe order) whose glob matches the canonical tensor name, else
 *                          `default`; globs as recipe/glob.ts (`*` within a name part, `**` across parts), the same
 *                          function the recipe checker uses, so a check and a run agree.
 */
import { EngineError } from '../errors';
import { lambdaFor } from '../recipe/glob';

export type LambdaSpec = number | readonly number[] | { default: number; overrides?: Record<string, number> };

export interface LambdaContext {
  /** Transformer layers of the models. */
  layers: number;
  /** Pre-LN layout (decides which end encoder.layer_norm belongs to for a per-layer list). */
  preLayerNorm: boolean;
}

function checkValue(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new EngineError('bad-recipe', `merge.lambda${where}: ${String(v)} is not a number in [0, 1]`);
  }
  return v;
}

/** Checks a λ spec against the models (values in [0, 1], one per layer for a list). */
export function checkLambda(spec: LambdaSpec, ctx: LambdaContext): void {
  if (typeof spec === 'number') checkValue(spec, '');
  else if (Array.isArray(spec)) {
    if (spec.length !== ctx.layers)
      throw new EngineError('bad-recipe', `merge.lambda has ${spec.length} values; the models have ${ctx.layers} transformer layers`);
    spec.forEach((v, i) => checkValue(v, `[${i}]`));
  } else {
    const o = spec as { default: number; overrides?: Record<string, number> };
    checkValue(o.default, '.default');
    for (const [glob, v] of Object.entries(o.overrides ?? {})) checkValue(v, `.overrides["${glob}"]`);
  }
}

const LAYER = /^encoder\.layers\.(\d+)\./;

/** The λ for one canonical tensor name. */
export function lambdaForTensor(name: string, spec: LambdaSpec, ctx: LambdaContext): number {
  if (typeof spec === 'number') return spec;
  if (Array.isArray(spec)) {
    const list = spec as readonly number[];
    const m = LAYER.exec(name);
    if (m) {
      const l = Number(m[1]);
      if (l >= list.length) throw new EngineError('bad-recipe', `merge.lambda has ${list.length} values but ${name} is in layer ${l}`);
      return list[l]!;
    }
    if (name.startsWith('encoder.layer_norm.') && ctx.preLayerNorm) return list[list.length - 1]!;
    return list[0]!;
  }
  return lambdaFor(name, spec as { default: number; overrides?: Record<string, number> });
}
