/**
 * Merging two aligned encoders tensor by tensor. Both WeightMaps must hold the same canonical names with the same
 * shapes (after alignment the other model is in the anchor's unit order). The positional conv is merged through its
 * EFFECTIVE weight g·v/‖v‖ — that is what WeightMap holds (model/weights.ts composes it on load and decomposes it on
 * write) — never g and v separately, whose interpolation would not be the interpolation of the conv.
 */
import { EngineError } from '../errors';
import type { WeightMap } from '../model/tensor';
import { lerpTensor, slerpTensor } from './interpolate';
import { checkLambda, lambdaForTensor, type LambdaContext, type LambdaSpec } from './lambda';

import type { MergeMethodName } from '../recipe/schema';

/** The tensor-by-tensor interpolations (the registry, methods/index.ts, adds methods that need more than two tensors). */
export type MergeMethod = Extract<MergeMethodName, 'linear' | 'slerp'>;

export interface MergeOptions extends LambdaContext {
  method: MergeMethod;
  lambda: LambdaSpec;
  /** slerp: below this sin Ω a tensor is interpolated linearly (default 1e-6). */
  slerpEpsilon?: number;
}

export interface MergeResult {
  weights: WeightMap;
  /** λ used for each tensor (for the report). */
  lambdas: Map<string, number>;
  /** slerp: tensors interpolated linearly instead (zero or (anti)parallel). */
  linearFallbacks: string[];
}

/** Refuses two maps that differ in tensor names or shapes, naming the first few differences. */
export function checkMergeable(anchor: WeightMap, other: WeightMap): void {
  const problems: string[] = [];
  for (const [name, t] of anchor) {
    const u = other.get(name);
    if (!u) problems.push(`${name} is missing from the other model`);
    else if (u.shape.length !== t.shape.length || u.shape.some((d, i) => d !== t.shape[i])) {
      problems.push(`${name} is [${t.shape.join(', ')}] in the anchor but [${u.shape.join(', ')}] in the other model`);
    }
  }
  for (const name of other.keys()) if (!anchor.has(name)) problems.push(`${name} is only in the other model`);
  if (problems.length > 0) {
    const shown = problems.slice(0, 3).join('; ');
    const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
    throw new EngineError('incompatible-models', `the models cannot be merged tensor by tensor: ${shown}${more}`);
  }
}

export function mergeWeights(anchor: WeightMap, other: WeightMap, opts: MergeOptions): MergeResult {
  checkMergeable(anchor, other);
  checkLambda(opts.lambda, opts);
  const weights: WeightMap = new Map();
  const lambdas = new Map<string, number>();
  const linearFallbacks: string[] = [];
  for (const [name, a] of anchor) {
    const b = other.get(name)!;
    const lambda = lambdaForTensor(name, opts.lambda, opts);
    lambdas.set(name, lambda);
    let data: Float32Array;
    if (opts.method === 'slerp') {
      const r = slerpTensor(a.data, b.data, lambda, opts.slerpEpsilon);
      if (r.linear) linearFallbacks.push(name);
      data = r.data;
    } else {
      data = lerpTensor(a.data, b.data, lambda);
    }
    weights.set(name, { shape: [...a.shape], data });
  }
  return { weights, lambdas, linearFallbacks };
}
