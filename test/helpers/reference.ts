/** The transformers reference fixtures (test/fixtures/hf-reference): inputs and every hidden state. */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export const FIXTURES = path.resolve(__dirname, '../fixtures');
export const HF_REFERENCE = path.join(FIXTURES, 'hf-reference');
export const REFERENCE_MODELS = ['hubert-postln-a', 'hubert-preln', 'wav2vec2-postln'] as const;

export interface Reference {
  sample_rate: number;
  input: number[];
  conv_features: number[][];
  hidden_states: number[][][];
  last_hidden_state: number[][];
}

export function loadReference(name: string): Reference {
  return JSON.parse(readFileSync(path.join(HF_REFERENCE, name, 'reference.json'), 'utf8')) as Reference;
}

/** Max |a − b| divided by max |b|: error relative to the tensor's scale. */
export function maxRelativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (expected.length !== actual.length) throw new Error(`length ${actual.length} ≠ expected ${expected.length}`);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    err = Math.max(err, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  return err / scale;
}

/** maxRelativeError against a reference stored as rows (frames × units). */
export function relativeMaxError(actual: ArrayLike<number>, expected: number[][]): number {
  const flat = expected.flat();
  if (flat.length !== actual.length) throw new Error(`length ${actual.length} ≠ reference ${flat.length}`);
  return maxRelativeError(actual, flat);
}
