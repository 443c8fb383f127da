/**
 * What the registry needs to know about the paper's method without loading its compute (onnxruntime): the taps it
 * hooks and whether its permuted model keeps the function.
 */
import { tapName, type TapName } from '../../model/taps';
import type { HeadsMode, PermutePart } from '../../recipe/schema';

/** The released code keeps the permuted model's function only approximately: the self-check reports, not fails. */
export const PAPER_FUNCTION_PRESERVING = false;

/** The taps the released code hooks, for the parts asked for. */
export function paperTaps(layers: number, permute: readonly PermutePart[], heads: HeadsMode): TapName[] {
  const taps: TapName[] = [];
  for (let l = 0; l < layers; l++) {
    if (permute.includes('attention') && heads !== 'none') taps.push(tapName.attnOut(l));
    if (permute.includes('ffn')) taps.push(tapName.ffn(l));
  }
  return taps;
}
