import { describe, expect, it } from 'vitest';
import type { ProbeSet } from '../../server/src/engine/io/probe';
import { foldCorrection, mixTargets, repairSites, repairStatistics, unitMoments } from '../../server/src/engine/merge/repair';
import { unmergedUnits, zipFeedForward } from '../../server/src/engine/merge/zip';
import { mergeWeights } from '../../server/src/engine/merge/merge';
import { EncoderSession } from '../../server/src/engine/model/encoder';
import { randomWeights } from '../../server/src/engine/model/random';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import { tapName } from '../../server/src/engine/model/taps';
import { parameterCount } from '../../server/src/engine/model/weights';
import { mulberry32 } from '../../server/src/engine/random';
import { tinyHubertConfig } from '../helpers/tiny-model';

const cfg = tinyHubertConfig();
const anchor = randomWeights(cfg, 1);
const other = randomWeights(cfg, 2);

/** GELU (tanh form; any fixed nonlinearity serves: both sides use the same one). */
const act = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/** A layer's FFN in float64 JS: x [D] → W_out·act(W_in·x + b_in) + b_out. */
function ffn(w: WeightMap, layer: number, x: Float64Array): Float64Array {
  const p = `encoder.layers.${layer}.feed_forward`;
  const inW = w.get(`${p}.intermediate_dense.weight`)!;
  const inB = w.get(`${p}.intermediate_dense.bias`)!.data;
  const outW = w.get(`${p}.output_dense.weight`)!.data;
  const outB = w.get(`${p}.output_dense.bias`)!.data;
  const [F, D] = inW.shape as [number, number];
  const h = new Float64Array(F);
  for (let i = 0; i < F; i++) {
    let s = inB[i]!;
    for (let d = 0; d < D; d++) s += inW.data[i * D + d]! * x[d]!;
    h[i] = act(s);
  }
  const y = new Float64Array(D);
  for (let d = 0; d < D; d++) {
    let s = outB[d]!;
    for (let i = 0; i < F; i++) s += outW[d * F + i]! * h[i]!;
    y[d] = s;
  }
  return y;
}

function probeOf(segments: number, samples: number, seed: number): ProbeSet {
  const rand = mulberry32(seed);
  const segs = Array.from({ length: segments }, (_, i) => ({
    source: 0,
    file: `noise${i}`,
    offsetSamples: 0,
    offsetSeconds: 0,
    paddedSamples: 0,
    samples: Float32Array.from({ length: samples }, (_, k) => 0.3 * Math.sin(k / (7 + i)) + 0.2 * (rand() - 0.5)),
  }));
  return {
    sampleRate: cfg.sampleRate,
    segmentSeconds: samples / cfg.sampleRate,
    segmentSamples: samples,
    seed,
    segments: segs,
    sources: [],
    totalSegments: segments,
    totalSeconds: (segments * samples) / cfg.sampleRate,
  };
}

describe('partial zipping (merge.width)', () => {
  const lambda = 0.3;
  const merged = mergeWeights(anchor, other, { method: 'linear', lambda, layers: cfg.layers, preLayerNorm: cfg.preLayerNorm }).weights;

  it('at width 2 every FFN is exactly the λ-mixture of both FFNs', () => {
    const z = zipFeedForward({ config: cfg, anchor, other, merged, lambda, width: 2 });
    expect(z.config.intermediate).toBe(2 * cfg.intermediate);
    const rand = mulberry32(5);
    for (let l = 0; l < cfg.layers; l++) {
      for (let trial = 0; trial < 5; trial++) {
        const x = Float64Array.from({ length: cfg.hidden }, () => 2 * rand() - 1);
        const got = ffn(z.weights, l, x);
        const a = ffn(anchor, l, x);
        const b = ffn(other, l, x);
        let err = 0;
        let scale = 0;
        got.forEach((g, d) => {
          const want = lambda * a[d]! + (1 - lambda) * b[d]!;
          err = Math.max(err, Math.abs(g - want));
          scale = Math.max(scale, Math.abs(want));
        });
        expect(err / scale).toBeLessThan(1e-5);
      }
    }
  });

  it('at width 1.25 leaves the least similar quarter unmerged, grows intermediate_size and the parameter count', () => {
    const u = unmergedUnits(cfg.intermediate, 1.25);
    expect(u).toBe(12);
    // Similarity: unit index (so units 0..11 are the weakest and get split).
    const z = zipFeedForward({
      config: cfg,
      anchor,
      other,
      merged,
      lambda,
      width: 1.25,
      similarity: () => Float64Array.from({ length: cfg.intermediate }, (_, i) => i),
    });
    expect(z.config.intermediate).toBe(cfg.intermediate + u);
    const origins = z.origins.get(0)!;
    expect(origins.filter((o) => o.kind === 'anchor').map((o) => o.unit)).toEqual(Array.from({ length: u }, (_, i) => i));
    expect(origins.filter((o) => o.kind === 'merged').map((o) => o.unit)).toEqual(
      Array.from({ length: cfg.intermediate - u }, (_, i) => i + u),
    );
    // The copied anchor unit's output column is λ times the anchor's; its input row is the anchor's.
    const F2 = cfg.intermediate + u;
    const j = origins.findIndex((o) => o.kind === 'anchor' && o.unit === 3);
    const outA = anchor.get('encoder.layers.0.feed_forward.output_dense.weight')!.data;
    const outZ = z.weights.get('encoder.layers.0.feed_forward.output_dense.weight')!.data;
    expect(outZ[5 * F2 + j]).toBeCloseTo(lambda * outA[5 * cfg.intermediate + 3]!, 6);
    const extra = cfg.layers * u * (2 * cfg.hidden + 1);
    expect(parameterCount(z.config)).toBe(parameterCount(cfg) + extra);
    for (const [name, t] of z.weights) expect(t.data.length, name).toBe(t.shape.reduce((a, b) => a * b, 1));
  });

  it('a zipped model runs through the encoder graph with its own intermediate size', async () => {
    const z = zipFeedForward({ config: cfg, anchor, other, merged, lambda, width: 1.5 });
    const s = await EncoderSession.create({ config: z.config, weights: z.weights }, [tapName.ffn(1), 'last_hidden_state']);
    try {
      const out = await s.run(
        new Float32Array(2 * 800).map((_, i) => Math.sin(i / 9)),
        2,
      );
      expect(out.get(tapName.ffn(1))!.dims.at(-1)).toBe(cfg.intermediate + unmergedUnits(cfg.intermediate, 1.5));
    } finally {
      await s.release();
    }
  });
});

describe('statistics repair (merge.repair)', () => {
  it('folds h ↦ a⊙h + c into the consumer exactly (float64 reference)', () => {
    const rand = mulberry32(9);
    const units = 5;
    const out = 3;
    const W = Float32Array.from({ length: out * units }, () => rand() - 0.5);
    const B = Float32Array.from({ length: out }, () => rand() - 0.5);
    const measured = {
      mean: Float64Array.from({ length: units }, () => rand()),
      variance: Float64Array.from({ length: units }, () => 0.5 + rand()),
    };
    const target = {
      mean: Float64Array.from({ length: units }, () => rand() - 0.5),
      std: Float64Array.from({ length: units }, () => 0.2 + rand()),
    };
    const folded = foldCorrection(W, B, units, measured, target);
    const h = Float64Array.from({ length: units }, () => 2 * rand() - 1);
    for (let o = 0; o < out; o++) {
      let want = B[o]!;
      let got = folded.bias[o]!;
      for (let i = 0; i < units; i++) {
        const a = target.std[i]! / Math.sqrt(measured.variance[i]!);
        const c = target.mean[i]! - a * measured.mean[i]!;
        want += W[o * units + i]! * (a * h[i]! + c);
        got += folded.weight[o * units + i]! * h[i]!;
      }
      expect(Math.abs(got - want)).toBeLessThan(1e-6);
    }
  });

  it('mixes the endpoints: μ = λμa + (1 − λ)μb, σ = λσa + (1 − λ)σb', () => {
    const t = mixTargets(
      { mean: Float64Array.of(1, 2), variance: Float64Array.of(4, 9) },
      { mean: Float64Array.of(3, 0), variance: Float64Array.of(16, 1) },
      0.25,
    );
    expect([...t.mean]).toEqual([0.25 * 1 + 0.75 * 3, 0.25 * 2]);
    expect([...t.std]).toEqual([0.25 * 2 + 0.75 * 4, 0.25 * 3 + 0.75 * 1]);
  });

  const probe = probeOf(6, 1200, 3);
  const opts = { batchSize: 4 };

  it('measures per-unit moments in onnxruntime as a float64 reference does', async () => {
    const taps = [tapName.ffn(1), tapName.attn(0)];
    const got = await unitMoments({ config: cfg, weights: anchor }, probe, taps, opts);
    const s = await EncoderSession.create({ config: cfg, weights: anchor }, taps);
    try {
      const sums = taps.map((t) => ({ t, n: 0, s1: [] as number[], s2: [] as number[] }));
      for (const seg of probe.segments) {
        const out = await s.run(seg.samples, 1);
        for (const acc of sums) {
          const x = out.get(acc.t)!;
          const d = x.dims.at(-1)! as number;
          const data = x.data as Float32Array;
          for (let k = 0; k < data.length; k++) {
            const i = k % d;
            acc.s1[i] = (acc.s1[i] ?? 0) + data[k]!;
            acc.s2[i] = (acc.s2[i] ?? 0) + data[k]! * data[k]!;
          }
          acc.n += data.length / d;
        }
      }
      for (const acc of sums) {
        const m = got.get(acc.t)!;
        acc.s1.forEach((v, i) => {
          const mean = v / acc.n;
          expect(m.mean[i]).toBeCloseTo(mean, 4);
          expect(m.variance[i]).toBeCloseTo(acc.s2[i]! / acc.n - mean * mean, 3);
        });
      }
    } finally {
      await s.release();
    }
  });

  it('is the identity (to 1e-5) when the merged model already has the target statistics', async () => {
    // Merging a model with itself: its measured moments are the targets, so a = 1 and c = 0 everywhere.
    const sites = repairSites(cfg);
    const measured = await unitMoments(
      { config: cfg, weights: anchor },
      probe,
      sites.map((s) => s.tap),
      opts,
    );
    const repaired = await repairStatistics({
      config: cfg,
      merged: anchor,
      lambda: 0.5,
      targets: (tap) => mixTargets(measured.get(tap)!, measured.get(tap)!, 0.5),
      probe,
      moments: opts,
    });
    for (const [name, t] of anchor) {
      const r = repaired.get(name)!.data;
      let err = 0;
      let scale = 0;
      t.data.forEach((v, i) => {
        err = Math.max(err, Math.abs(r[i]! - v));
        scale = Math.max(scale, Math.abs(v));
      });
      expect(err / scale, name).toBeLessThan(1e-5);
    }
  });

  it('gives the repaired units the target mean and std (first layer: its inputs do not move)', async () => {
    const lambda = 0.5;
    const merged = mergeWeights(anchor, other, { method: 'linear', lambda, layers: cfg.layers, preLayerNorm: cfg.preLayerNorm }).weights;
    const taps = repairSites(cfg).map((s) => s.tap);
    const a = await unitMoments({ config: cfg, weights: anchor }, probe, taps, opts);
    const b = await unitMoments({ config: cfg, weights: other }, probe, taps, opts);
    const targets = (tap: (typeof taps)[number], l: number) => mixTargets(a.get(tap)!, b.get(tap)!, l);
    const repaired = await repairStatistics({ config: cfg, merged, lambda, targets, probe, moments: opts });
    // The unit the consumer sees is W_rep·h + b_rep = W·(a⊙h + c) + b; with h's moments unchanged in layer 0,
    // recover a and c per unit from the folded weights and check a·σ_h = σ_target, a·μ_h + c = μ_target.
    const h = await unitMoments({ config: cfg, weights: repaired }, probe, [tapName.ffn(0)], opts);
    const W = merged.get('encoder.layers.0.feed_forward.output_dense.weight')!.data;
    const Wr = repaired.get('encoder.layers.0.feed_forward.output_dense.weight')!.data;
    const t = targets(tapName.ffn(0), lambda);
    const F = cfg.intermediate;
    for (let i = 0; i < F; i++) {
      const scale = Wr[i]! / W[i]!; // row 0, column i
      expect(scale * Math.sqrt(h.get(tapName.ffn(0))!.variance[i]!)).toBeCloseTo(t.std[i]!, 4);
    }
  });
});
