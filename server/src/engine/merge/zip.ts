/**
 * Partial zipping (ZipIt!, Stoica et al., "ZipIt! Merging Models from Different Tasks without Training", ICLR 2024),
 * restricted to the FFN: within a width budget, the FFN units whose matched pair agrees least stay unmerged, one copy
 * from each model. For such a unit i of layer l the merged FFN holds
 *
 *   anchor's intermediate row i (+ bias)   with output column λ·W_out,a[:, i]
 *   other's  intermediate row i (+ bias)   with output column (1 − λ)·W_out,b[:, i]
 *
 * in place of the interpolated unit, so intermediate_size grows by the number of unmerged units (the same in every
 * layer: one config value). At width 2 every unit is unmerged and the FFN computes exactly
 * λ·FFN_a(x) + (1 − λ)·FFN_b(x) (the output bias is the interpolated one). The other model must already be in the
 * anchor's unit order; "agree least" is the lowest matched correlation when the alignment measured one, else the
 * lowest cosine between the units' weights (intermediate row and output column).
 */
import type { EncoderConfig } from '../io/hfconfig';
import type { WeightMap } from '../model/tensor';
import { lambdaForTensor, type LambdaSpec } from './lambda';

export interface ZipInputs {
  config: EncoderConfig;
  anchor: WeightMap;
  /** The other model in the anchor's unit order. */
  other: WeightMap;
  /** The merged model (same shapes as anchor); its FFN tensors are replaced. */
  merged: WeightMap;
  lambda: LambdaSpec;
  /** FFN width as a multiple of one model's, in [1, 2]. */
  width: number;
  /** Per layer, the matched similarity of each anchor unit i with the other's unit now at i (higher: merge it). */
  similarity?: (layer: number) => Float64Array | undefined;
}

export interface ZipResult {
  weights: WeightMap;
  config: EncoderConfig;
  /** Units left unmerged per layer. */
  unmerged: number;
  /** Per layer, what each FFN unit of the result is: an interpolated unit or a copy, and its anchor-order index. */
  origins: Map<number, { kind: 'merged' | 'anchor' | 'other'; unit: number }[]>;
}

/** How many FFN units per layer stay unmerged at this width. */
export function unmergedUnits(intermediate: number, width: number): number {
  return Math.min(intermediate, Math.max(0, Math.round((width - 1) * intermediate)));
}

export function zipFeedForward(z: ZipInputs): ZipResult {
  const cfg = z.config;
  const F = cfg.intermediate;
  const D = cfg.hidden;
  const u = unmergedUnits(F, z.width);
  const origins = new Map<number, { kind: 'merged' | 'anchor' | 'other'; unit: number }[]>();
  if (u === 0) return { weights: z.merged, config: cfg, unmerged: 0, origins };
  const weights: WeightMap = new Map(z.merged);
  const ctx = { layers: cfg.layers, preLayerNorm: cfg.preLayerNorm };
  for (let l = 0; l < cfg.layers; l++) {
    const p = `encoder.layers.${l}.feed_forward`;
    const t = (m: WeightMap, name: string) => m.get(`${p}.${name}`)!.data;
    const sim =
      z.similarity?.(l) ??
      weightCosine(
        t(z.anchor, 'intermediate_dense.weight'),
        t(z.other, 'intermediate_dense.weight'),
        t(z.anchor, 'output_dense.weight'),
        t(z.other, 'output_dense.weight'),
        F,
        D,
      );
    // The u least similar units (ties by index, so the choice is deterministic).
    const order = Array.from({ length: F }, (_, i) => i).sort((a, b) => sim[a]! - sim[b]! || a - b);
    const split = new Uint8Array(F);
    for (let k = 0; k < u; k++) split[order[k]!] = 1;
    const lambda = lambdaForTensor(`${p}.output_dense.weight`, z.lambda, ctx);
    // New unit order: merged units first (in anchor order), then the anchor's copies, then the other's.
    const kept = order.slice(u).sort((a, b) => a - b);
    const splitUnits = order.slice(0, u).sort((a, b) => a - b);
    const F2 = F + u;
    const inW = new Float32Array(F2 * D);
    const inB = new Float32Array(F2);
    const outW = new Float32Array(D * F2);
    const mInW = t(z.merged, 'intermediate_dense.weight');
    const mInB = t(z.merged, 'intermediate_dense.bias');
    const mOutW = t(z.merged, 'output_dense.weight');
    const sources: { from: { inW: Float32Array; inB: Float32Array; outW: Float32Array }; unit: number; scale: number }[] = [
      ...kept.map((i) => ({ from: { inW: mInW, inB: mInB, outW: mOutW }, unit: i, scale: 1 })),
      ...splitUnits.map((i) => ({
        from: {
          inW: t(z.anchor, 'intermediate_dense.weight'),
          inB: t(z.anchor, 'intermediate_dense.bias'),
          outW: t(z.anchor, 'output_dense.weight'),
        },
        unit: i,
        scale: lambda,
      })),
      ...splitUnits.map((i) => ({
        from: {
          inW: t(z.other, 'intermediate_dense.weight'),
          inB: t(z.other, 'intermediate_dense.bias'),
          outW: t(z.other, 'output_dense.weight'),
        },
        unit: i,
        scale: 1 - lambda,
      })),
    ];
    sources.forEach(({ from, unit, scale }, j) => {
      inW.set(from.inW.subarray(unit * D, (unit + 1) * D), j * D);
      inB[j] = from.inB[unit]!;
      for (let d = 0; d < D; d++) outW[d * F2 + j] = scale * from.outW[d * F + unit]!;
    });
    origins.set(l, [
      ...kept.map((unit) => ({ kind: 'merged' as const, unit })),
      ...splitUnits.map((unit) => ({ kind: 'anchor' as const, unit })),
      ...splitUnits.map((unit) => ({ kind: 'other' as const, unit })),
    ]);
    weights.set(`${p}.intermediate_dense.weight`, { shape: [F2, D], data: inW });
    weights.set(`${p}.intermediate_dense.bias`, { shape: [F2], data: inB });
    weights.set(`${p}.output_dense.weight`, { shape: [D, F2], data: outW });
  }
  return { weights, config: { ...cfg, intermediate: F + u }, unmerged: u, origins };
}

/** Cosine of unit i's weights (intermediate row, output column) between anchor and other. */
function weightCosine(inA: Float32Array, inB: Float32Array, outA: Float32Array, outB: Float32Array, F: number, D: number): Float64Array {
  const sim = new Float64Array(F);
  for (let i = 0; i < F; i++) {
    let ab = 0;
    let aa = 0;
    let bb = 0;
    for (let d = 0; d < D; d++) {
      const x = inA[i * D + d]!;
      const y = inB[i * D + d]!;
      const s = outA[d * F + i]!;
      const v = outB[d * F + i]!;
      ab += x * y + s * v;
      aa += x * x + s * s;
      bb += y * y + v * v;
    }
    sim[i] = aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0;
  }
  return sim;
}
