/**
 * The self-check: a permutation must not change what `other` computes. Both the original and the permuted model run
 * on the same probe slice; every hidden state must agree (after gathering by the residual permutation, which moves
 * the outputs' features) within a relative tolerance, or the job fails before anything is merged or written.
 */
import { permuteFeatures, type Permutations } from '../align/permute';
import { EngineError } from '../errors';
import { EncoderSession, hiddenStateOutputs, type EncoderModel } from '../model/encoder';
import type { SessionOptions } from '../model/runtime';
import type { WeightMap } from '../model/tensor';

export const SELF_CHECK_TOLERANCE = 1e-4;

export interface SelfCheckResult {
  maxRelativeError: number;
  tolerance: number;
  passed: boolean;
  /** The output that differed most. */
  worst: string;
}

export async function selfCheck(
  other: Pick<EncoderModel, 'config' | 'weights'>,
  permuted: WeightMap,
  perms: Permutations,
  audio: Float32Array,
  batch: number,
  opts: SessionOptions = {},
): Promise<SelfCheckResult> {
  // The conv features are internal channels (moved by the CNN permutation); the hidden states are what must agree.
  const outputs = hiddenStateOutputs(other.config).filter((o) => !o.startsWith('conv.'));
  const run = async (weights: WeightMap) => {
    const s = await EncoderSession.create({ config: other.config, weights }, outputs, opts);
    try {
      return await s.run(audio, batch);
    } finally {
      await s.release();
    }
  };
  const before = await run(other.weights);
  const after = await run(permuted);
  const residual = perms.get('residual');
  let worst = { error: 0, name: outputs[0]! as string };
  for (const name of outputs) {
    let expected = before.get(name)!.data as Float32Array;
    const actual = after.get(name)!.data as Float32Array;
    if (residual) expected = permuteFeatures(expected, other.config.hidden, residual);
    const error = relativeMaxError(actual, expected);
    if (!(error <= worst.error)) worst = { error, name };
  }
  return { maxRelativeError: worst.error, tolerance: SELF_CHECK_TOLERANCE, passed: worst.error <= SELF_CHECK_TOLERANCE, worst: worst.name };
}

/**
 * Fails the run when a function-preserving method's permuted model differs beyond the tolerance. A method that
 * declares itself not function-preserving (align.method paper reproduces such code) is measured, not failed: the
 * returned warning states the deviation, for the log and the report.
 */
export function assertSelfCheck(r: SelfCheckResult, functionPreserving = true): string | null {
  if (r.passed) return null;
  const deviation = `the permuted model's ${r.worst} differs from the original by ${r.maxRelativeError.toExponential(2)} (relative), above ${r.tolerance}`;
  if (!functionPreserving)
    return `self-check: ${deviation}; this alignment method is not function-preserving, so the deviation is reported, not refused`;
  throw new EngineError(
    'self-check-failed',
    `self-check failed: ${deviation}; the permutation is not function-preserving, so nothing was merged`,
  );
}

/** max |a − b| / max |b|; NaN anywhere counts as infinitely wrong. */
export function relativeMaxError(actual: Float32Array, expected: Float32Array): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (Number.isNaN(d)) return Infinity;
    if (d > err) err = d;
    const m = Math.abs(expected[i]!);
    if (m > scale) scale = m;
  }
  return scale > 0 ? err / scale : err;
}
