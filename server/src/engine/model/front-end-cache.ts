/**
 * hidden_states[0] of evaluation clips kept across the EmbeddingSessions of one run, keyed by what computes it: the
 * config and every weight outside the transformer layers (conv blocks, projection, positional conv, norms). Systems
 * that differ only after the front end (variants at one λ whose feature extractor and projection came out the same,
 * e.g. FFN zipping or a refit of the layers) embed each clip's front end, most of an evaluation forward, once.
 * Bounded: the oldest models' rows are dropped past `maxBytes`, and a model whose rows alone exceed it keeps what fits.
 */
import { createHash } from 'node:crypto';
import type { EncoderConfig } from '../io/hfconfig';
import type { WeightMap } from './tensor';

/** Default bound: hidden_states[0] of ~10 minutes of audio for a HuBERT-base-sized model (768 × 50 frames/s × 4 B). */
export const FRONT_END_CACHE_BYTES = 256 * 2 ** 20;

export class FrontEndCache {
  private readonly models = new Map<string, Map<Float32Array, Float32Array>>();
  private bytes = 0;

  constructor(readonly maxBytes = FRONT_END_CACHE_BYTES) {}

  /** The rows of one front end (by fingerprint), most recently used last. */
  rowsOf(fingerprint: string): Map<Float32Array, Float32Array> {
    let rows = this.models.get(fingerprint);
    if (rows) this.models.delete(fingerprint);
    else rows = new Map();
    this.models.set(fingerprint, rows);
    return rows;
  }

  /** Keeps a clip's hidden_states[0] ([frames, hidden]) for a front end, dropping older front ends to make room. */
  store(fingerprint: string, clip: Float32Array, hidden0: Float32Array): void {
    const rows = this.models.get(fingerprint);
    if (!rows || rows.has(clip)) return;
    for (const [key, older] of this.models) {
      if (this.bytes + hidden0.byteLength <= this.maxBytes || key === fingerprint) break;
      for (const r of older.values()) this.bytes -= r.byteLength;
      this.models.delete(key);
    }
    if (this.bytes + hidden0.byteLength > this.maxBytes) return;
    rows.set(clip, hidden0);
    this.bytes += hidden0.byteLength;
  }

  /** Drops every row (e.g. when no later system can share the front ends held). */
  clear(): void {
    this.models.clear();
    this.bytes = 0;
  }

  /** Bytes of rows held. */
  get size(): number {
    return this.bytes;
  }
}

/** The config keys the front end reads (not the layers' sizes: an FFN zipped wider keeps its front end). */
const FRONT_END_KEYS = [
  'family',
  'hidden',
  'convDims',
  'convKernels',
  'convStrides',
  'convBias',
  'featExtractNorm',
  'featExtractActivation',
  'featProjLayerNorm',
  'posConvKernel',
  'posConvGroups',
  'preLayerNorm',
  'layerNormEps',
  'sampleRate',
  'normalizeInput',
] as const satisfies readonly (keyof EncoderConfig)[];

/** What identifies a front end: its config keys and the bytes of every weight outside `encoder.layers.*`. */
export function frontEndFingerprint(cfg: EncoderConfig, weights: WeightMap): string {
  const hash = createHash('sha256').update(JSON.stringify(FRONT_END_KEYS.map((k) => cfg[k] ?? null)));
  for (const name of [...weights.keys()].filter((n) => !n.startsWith('encoder.layers.')).sort()) {
    const t = weights.get(name)!;
    hash.update(`${name}[${t.shape.join(',')}]`).update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return hash.digest('hex');
}
