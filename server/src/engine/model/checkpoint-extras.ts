/**
 * The tensors of the anchor's checkpoint that are not part of the encoder the engine computes (masked_spec_embed,
 * CTC or classifier heads, quantizers …), so that the merged model is a drop-in replacement: loading it strictly
 * finds every tensor the anchor had.
 *
 * Tensors that live in the hidden space and that both models have are merged like the encoder's own: the other
 * model's copy first follows the residual permutation, then both are interpolated with the λ and method of the merge.
 * `masked_spec_embed` ([D], the vector SpecAugment writes over masked frames) is one. A head's weights are the anchor's:
 * its output space belongs to the anchor's task (vocabulary, classes).
 */
import { EngineError } from '../errors';
import type { Checkpoint } from '../io/checkpoint';
import type { TensorSource } from '../io/safetensors';
import { permuteFeatures } from '../align/permute';
import { mergeWeights, type MergeOptions } from '../merge/merge';
import type { EncoderConfig } from '../io/hfconfig';
import type { Tensor } from './tensor';
import { expectedShapes, storedNames, type CheckpointLayout } from './weights';

/** Canonical names (without the model prefix) of the extra tensors that are vectors of the hidden space. */
export const HIDDEN_SPACE_EXTRAS: readonly string[] = ['masked_spec_embed'];

export interface ExtrasInput {
  anchor: Checkpoint;
  anchorLayout: CheckpointLayout;
  other: Checkpoint;
  otherLayout: CheckpointLayout;
  config: EncoderConfig;
  /** The residual permutation applied to the other model (new unit i = old unit p[i]); undefined: not permuted. */
  residual: Int32Array | undefined;
  merge: MergeOptions;
}

export interface Extras {
  tensors: TensorSource[];
  /** Canonical names of the extras that were merged (the rest are the anchor's). */
  merged: string[];
}

/** Every stored name of the encoder's own tensors under a layout. */
function encoderNames(cfg: EncoderConfig, layout: CheckpointLayout): Set<string> {
  const names = new Set<string>();
  for (const name of expectedShapes(cfg).keys()) for (const s of storedNames(name, layout)) names.add(s);
  return names;
}

const f32Bytes = (t: Tensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** The anchor's tensors outside the encoder, as sources for the safetensors writer (read one at a time). */
export async function checkpointExtras(input: ExtrasInput): Promise<Extras> {
  const { anchor, anchorLayout, other, otherLayout, config } = input;
  const own = encoderNames(config, anchorLayout);
  const tensors: TensorSource[] = [];
  const merged: string[] = [];
  for (const info of anchor.tensors()) {
    if (own.has(info.name)) continue;
    const canonical = info.name.startsWith(anchorLayout.prefix) ? info.name.slice(anchorLayout.prefix.length) : info.name;
    const otherInfo = other.info(otherLayout.prefix + canonical);
    const hidden = HIDDEN_SPACE_EXTRAS.includes(canonical) && info.shape.length === 1 && info.shape[0] === config.hidden;
    if (hidden && otherInfo && otherInfo.shape.length === 1 && otherInfo.shape[0] === config.hidden) {
      merged.push(canonical);
      tensors.push({
        name: info.name,
        dtype: 'F32',
        shape: [config.hidden],
        bytes: async () => {
          const a = await anchor.read(info.name);
          const b = await other.read(otherLayout.prefix + canonical);
          const aligned = input.residual ? permuteFeatures(b.data, config.hidden, input.residual) : b.data;
          const out = mergeWeights(new Map([[canonical, a]]), new Map([[canonical, { shape: a.shape, data: aligned }]]), input.merge);
          return f32Bytes(out.weights.get(canonical)!);
        },
      });
      continue;
    }
    if (info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16' || info.dtype === 'F64') {
      // Written as F32 like the merged encoder (the loader casts to the model's dtype).
      tensors.push({ name: info.name, dtype: 'F32', shape: info.shape, bytes: async () => f32Bytes(await anchor.read(info.name)) });
    } else if (anchor.readRaw) {
      const readRaw = anchor.readRaw.bind(anchor);
      tensors.push({ name: info.name, dtype: info.dtype, shape: info.shape, bytes: async () => (await readRaw(info.name)).bytes });
    } else {
      throw new EngineError(
        'bad-dtype',
        `${anchor.file}: tensor ${info.name} has dtype ${info.dtype}; the output can copy only floating-point tensors of a safetensors anchor`,
        anchor.file,
      );
    }
  }
  return { tensors, merged };
}

/** Float32 tensors (the engine's) as sources for the safetensors writer. */
export function f32Sources(tensors: Map<string, Tensor>): TensorSource[] {
  return [...tensors].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, bytes: () => f32Bytes(t) }));
}
