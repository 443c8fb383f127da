/**
 * align.method paper: the engine against a float64, line-by-line JS transcription of the released code
 * (github FabianRitter/speech-ssl-merging, s3prl/), and one test per departure from function preservation (or
 * from the exact method) that the transcription shows. The transcription follows, in order:
 *   merging_utils/model_merger_new.py  ModelMerge.compute_metrics (per-batch standardisation),
 *   metric_calculators.py               CovarianceMetric.update / finalize,
 *   merging_utils/model_merger_new.py  ModelMerge.cov_to_corr, compute_transformations (chunking),
 *   matching_functions.py               match_tensors_permute, match_tensors_permute_MHA (permute_heads=True),
 *   merging_utils/model_merger_new.py  ModelMerge.apply_transformations_custom, merge_node, unmerge_node.
 * Its linear assignments are brute force (scipy's linear_sum_assignment is exact), so the sizes here are tiny;
 * the encoder-sized check below uses the engine's exact LAP for the reference's assignments.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ALIGN_METHODS, alignNeedsProbe } from '../../server/src/engine/align/methods';
import { alignPaper, applyPaperPermutations, matchHeads, matchUnits, paperSpec } from '../../server/src/engine/align/paper';
import { addStandardisedBatch, createStandardisedStats, standardisedCorrelation } from '../../server/src/engine/align/paper/statistics';
import { solveLap } from '../../server/src/engine/align/lap';
import { applyPermutations, invertPermutation, isIdentity, randomPermutations } from '../../server/src/engine/align/permute';
import { buildPermutationSpec, groupName } from '../../server/src/engine/align/spec';
import { addMoments, correlation as pearson, createPairStats } from '../../server/src/engine/align/stats';
import type { EncoderConfig } from '../../server/src/engine/io/hfconfig';
import type { ProbeSet } from '../../server/src/engine/io/probe';
import { writeSafetensors } from '../../server/src/engine/io/safetensors';
import { EncoderSession, loadEncoderModel } from '../../server/src/engine/model/encoder';
import { randomWeights } from '../../server/src/engine/model/random';
import { toStoredTensors } from '../../server/src/engine/model/weights';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import { tapName, type TapName } from '../../server/src/engine/model/taps';
import { assertSelfCheck, selfCheck, SELF_CHECK_TOLERANCE } from '../../server/src/engine/pipeline/self-check';
import { mulberry32, randomPermutation } from '../../server/src/engine/random';
import { runRecipe } from '../../server/src/engine/pipeline/run';
import type { JobEvent } from '../../server/src/engine/progress';
import { FIXTURES, HF_REFERENCE } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

type Matrix = number[][]; // rows × columns, float64

// ---------------------------------------------------------------- the released code, transcribed (float64)

/** compute_metrics + CovarianceMetric: features per batch as [units × frames] for model A and B. */
function refCovariance(batches: { A: Matrix; B: Matrix }[]): Matrix {
  let sum: number[] | null = null;
  let outer: Matrix | null = null;
  let total = 0;
  for (const { A, B } of batches) {
    const standardised = [A, B].map((X) => {
      const n = X[0]!.length;
      return X.map((row) => {
        const mean = row.reduce((s, v) => s + v, 0) / n;
        if (n === 1) return row.map((v) => v - mean);
        const std = Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)); // torch.std: unbiased
        return row.map((v) => (v - mean) / (std + 1e-7));
      });
    });
    const combined = [...standardised[0]!, ...standardised[1]!]; // torch.cat(dim=0)
    const D = combined.length;
    sum ??= new Array<number>(D).fill(0);
    outer ??= Array.from({ length: D }, () => new Array<number>(D).fill(0));
    for (let i = 0; i < D; i++) {
      sum[i]! += combined[i]!.reduce((s, v) => s + v, 0);
      for (let j = 0; j < D; j++) outer[i]![j]! += combined[i]!.reduce((s, v, k) => s + v * combined[j]![k]!, 0);
    }
    total += combined[0]!.length;
  }
  const E = sum!.map((v) => v / total);
  const cov = outer!.map((row, i) => row.map((v, j) => v / total - E[i]! * E[j]!));
  for (let i = 0; i < cov.length; i++) cov[i]![i]! += 1e-9; // finalize: cov.diagonal().add_(eps)
  return cov;
}

/** ModelMerge.cov_to_corr. */
function refCovToCorr(cov: Matrix): Matrix {
  const std = cov.map((row, i) => Math.sqrt(row[i]!));
  return cov.map((row, i) => row.map((v, j) => v / Math.max(std[i]! * std[j]!, 1e-7)));
}

function permutationsOf(n: number): number[][] {
  if (n === 0) return [[]];
  return permutationsOf(n - 1).flatMap((p) => Array.from({ length: n }, (_, k) => [...p.slice(0, k), n - 1, ...p.slice(k)]));
}

/** scipy linear_sum_assignment(maximize=True), by brute force: [row_ind, col_ind]. */
function bruteLsa(m: Matrix): { col: number[]; cost: number } {
  let best = { col: [] as number[], cost: -Infinity };
  for (const p of permutationsOf(m.length)) {
    const cost = p.reduce((s, c, r) => s + m[r]![c]!, 0);
    if (cost > best.cost) best = { col: p, cost };
  }
  return best;
}

const eye = (n: number): Matrix => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
const T = (m: Matrix): Matrix => m[0]!.map((_, j) => m.map((row) => row[j]!));
const matmul = (a: Matrix, b: Matrix): Matrix => a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const block = (m: Matrix, r0: number, r1: number, c0: number, c1: number): Matrix => m.slice(r0, r1).map((row) => row.slice(c0, c1));

/** match_tensors_permute (N = 2 models): returns merge.T [Om × 2Om] and unmerge [2Om × Om]. */
function refMatchPermute(corr: Matrix, noAbsval: boolean): { merge: Matrix; unmerge: Matrix } {
  const Om = corr.length / 2;
  let sub = block(corr, 0, Om, Om, 2 * Om);
  if (!noAbsval) sub = sub.map((r) => r.map(Math.abs));
  const { col } = bruteLsa(sub);
  const mats = [eye(Om), T(col.map((c) => eye(Om)[c]!))]; // torch.eye(Om)[col_ind].T
  const cat = [...mats[0]!, ...mats[1]!];
  return { merge: T(cat), unmerge: cat };
}

/** match_tensors_permute_MHA with permute_heads=True, head_assignments=[]. */
function refMatchPermuteMHA(corr: Matrix, nHeads: number, noAbsval: boolean): { merge: Matrix; unmerge: Matrix } {
  const Om = corr.length / 2;
  const q = Om / nHeads;
  const costs: Matrix = Array.from({ length: nHeads }, () => new Array<number>(nHeads).fill(0));
  const store: number[][][] = Array.from({ length: nHeads }, () => []);
  for (let j = 0; j < nHeads; j++) {
    for (let k = 0; k < nHeads; k++) {
      let sub = block(corr, q * j, q * (j + 1), Om + q * k, Om + q * (k + 1));
      if (!noAbsval) sub = sub.map((r) => r.map(Math.abs));
      const { col, cost } = bruteLsa(sub);
      costs[j]![k] = cost;
      store[j]![k] = col;
    }
  }
  const outer = bruteLsa(costs).col;
  const headPerms = Array.from({ length: nHeads }, (_, j) => store[j]![outer[j]!]!.map((c) => c + q * outer[j]!));
  const newMat = headPerms.flat().map((c) => eye(Om)[c]!);
  const cat = [...eye(Om), ...T(newMat)];
  return { merge: T(cat), unmerge: cat };
}

/**
 * apply_transformations_custom on the ff+attn graph of a `layers`-layer encoder, in HF weight names. Node order per
 * layer: the out_proj PREFIX (predecessor v_proj, successor out_proj), then the fc2 PREFIX (predecessor fc1,
 * successor fc2). `processed_nodes` is one set for both graphs; both graphs number their nodes alike.
 */
function refApply(models: Map<string, Matrix>[], layers: number, transforms: Map<string, { merge: Matrix; unmerge: Matrix }>): void {
  const processed = new Set<string>();
  for (let l = 0; l < layers; l++) {
    const p = `encoder.layers.${l}`;
    const nodes = [
      { key: `attn${l}`, pred: `${p}.attention.v_proj`, succ: `${p}.attention.out_proj` },
      { key: `ffn${l}`, pred: `${p}.feed_forward.intermediate_dense`, succ: `${p}.feed_forward.output_dense` },
    ];
    for (const node of nodes) {
      const t = transforms.get(node.key);
      if (!t) continue;
      const Om = t.unmerge[0]!.length;
      models.forEach((w, g) => {
        // compute_transformations: merge chunks split along dim 1, unmerge chunks along dim 0.
        const merge = t.merge.map((row) => row.slice(g * Om, (g + 1) * Om));
        const unmerge = t.unmerge.slice(g * Om, (g + 1) * Om);
        if (!processed.has(node.pred)) {
          w.set(`${node.pred}.weight`, matmul(merge, w.get(`${node.pred}.weight`)!)); // merge_node: merge @ W
          w.set(`${node.pred}.bias`, T(matmul(merge, T(w.get(`${node.pred}.bias`)!)))); // merge @ b
          processed.add(node.pred);
        }
        w.set(`${node.succ}.weight`, matmul(w.get(`${node.succ}.weight`)!, unmerge)); // unmerge_node: W @ unmerge
      });
    }
  }
}

// ---------------------------------------------------------------- helpers

function randn(rand: () => number): number {
  return Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
}

/** Centred moments of one batch ([units × frames] rows), as the pair graph emits them, in float64. */
function momentsOf(A: Matrix, B: Matrix) {
  const n = A[0]!.length;
  const centre = (X: Matrix) =>
    X.map((row) => {
      const m = row.reduce((s, v) => s + v, 0) / n;
      return { mean: m, c: row.map((v) => v - m) };
    });
  const a = centre(A);
  const b = centre(B);
  const cross = new Float64Array(A.length * B.length);
  for (let i = 0; i < A.length; i++)
    for (let j = 0; j < B.length; j++) cross[i * B.length + j] = a[i]!.c.reduce((s, v, k) => s + v * b[j]!.c[k]!, 0);
  return {
    n,
    meanA: Float64Array.from(a, (x) => x.mean),
    meanB: Float64Array.from(b, (x) => x.mean),
    m2A: Float64Array.from(a, (x) => x.c.reduce((s, v) => s + v * v, 0)),
    m2B: Float64Array.from(b, (x) => x.c.reduce((s, v) => s + v * v, 0)),
    cross,
  };
}

function engineCorrelation(batches: { A: Matrix; B: Matrix }[]): Float64Array {
  const s = createStandardisedStats(batches[0]!.A.length, batches[0]!.B.length);
  for (const { A, B } of batches) addStandardisedBatch(s, momentsOf(A, B));
  return standardisedCorrelation(s);
}

/** Other's units = anchor's units gathered by `planted`, plus noise and a per-batch offset. */
function correlatedBatches(
  rand: () => number,
  units: number,
  frames: readonly number[],
  planted: readonly number[],
  offset = 0,
): { A: Matrix; B: Matrix }[] {
  return frames.map((n, b) => {
    const A = Array.from({ length: units }, () => Array.from({ length: n }, () => randn(rand) + b * offset));
    const B = planted.map((src) => A[src]!.map((v) => 0.8 * v + 0.6 * randn(rand) + 0.5));
    return { A, B };
  });
}

const asMatrix = (flat: Float64Array, rows: number): Matrix =>
  Array.from({ length: rows }, (_, i) => Array.from(flat.subarray((i * flat.length) / rows, ((i + 1) * flat.length) / rows)));

// ---------------------------------------------------------------- tests

describe('align.method paper: engine vs the transcribed released code (float64, small data)', () => {
  const rand = mulberry32(41);
  // attention: 2 heads × 3 dims; FFN: 6 neurons; 3 batches of different lengths.
  const heads = 2;
  const headDim = 3;
  const D = heads * headDim;
  const F = 6;
  const attnPlanted = [4, 3, 5, 1, 0, 2]; // heads swapped, units shuffled within
  const ffnPlanted = [2, 0, 5, 1, 4, 3];
  const attnBatches = correlatedBatches(rand, D, [7, 11, 5], attnPlanted, 0.7);
  const ffnBatches = correlatedBatches(rand, F, [7, 11, 5], ffnPlanted, 0.7);

  it('per-batch standardised correlation equals CovarianceMetric + cov_to_corr to 1e-12', () => {
    for (const batches of [attnBatches, ffnBatches]) {
      const units = batches[0]!.A.length;
      const ref = block(refCovToCorr(refCovariance(batches)), 0, units, units, 2 * units);
      const ours = asMatrix(engineCorrelation(batches), units);
      for (let i = 0; i < units; i++) for (let j = 0; j < units; j++) expect(Math.abs(ours[i]![j]! - ref[i]![j]!)).toBeLessThan(1e-12);
    }
  });

  it('matching equals match_tensors_permute and match_tensors_permute_MHA, and the application apply_transformations_custom', async () => {
    const corrA = refCovToCorr(refCovariance(attnBatches));
    const corrF = refCovToCorr(refCovariance(ffnBatches));
    const refAttn = refMatchPermuteMHA(corrA, heads, true);
    const refFfn = refMatchPermute(corrF, true);

    const mh = matchHeads(engineCorrelation(attnBatches), heads, headDim, true);
    const mu = await matchUnits(engineCorrelation(ffnBatches), F, async (s, n) => solveLap(s, n));
    // The code's P_B = eye[col_ind].T; its gather vector is argmax over each column.
    const gatherOf = (unmerge: Matrix) =>
      block(unmerge, unmerge[0]!.length, unmerge.length, 0, unmerge[0]!.length).map((_, r, Pb) => Pb.findIndex((row) => row[r] === 1));
    expect(Array.from(mh.perm)).toEqual(gatherOf(refAttn.unmerge));
    expect(Array.from(mu.perm)).toEqual(gatherOf(refFfn.unmerge));
    // The planted structure is found (anchor unit i ↔ other unit planted⁻¹[i]).
    expect(Array.from(mh.perm)).toEqual(Array.from(invertPermutation(Int32Array.from(attnPlanted))));
    expect(Array.from(mu.perm)).toEqual(Array.from(invertPermutation(Int32Array.from(ffnPlanted))));

    // One layer; the anchor's transforms are identities, the other's as computed.
    const cfg = { layers: 1, hidden: D, heads, headDim, intermediate: F } as EncoderConfig;
    const names: [string, number[]][] = [
      ['encoder.layers.0.attention.v_proj.weight', [D, D]],
      ['encoder.layers.0.attention.v_proj.bias', [D]],
      ['encoder.layers.0.attention.out_proj.weight', [D, D]],
      ['encoder.layers.0.feed_forward.intermediate_dense.weight', [F, D]],
      ['encoder.layers.0.feed_forward.intermediate_dense.bias', [F]],
      ['encoder.layers.0.feed_forward.output_dense.weight', [D, F]],
    ];
    const weights = (seed: number): WeightMap => {
      const r = mulberry32(seed);
      return new Map(
        names.map(([n, shape]) => [
          n,
          { shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.round(randn(r) * 64) / 64 + 0) },
        ]),
      );
    };
    const toRef = (w: WeightMap) =>
      new Map(
        [...w].map(([n, t]) => [
          n,
          t.shape.length === 1
            ? [Array.from(t.data)]
            : Array.from({ length: t.shape[0]! }, (_, i) => Array.from(t.data.subarray(i * t.shape[1]!, (i + 1) * t.shape[1]!))),
        ]),
      );
    const anchorW = weights(1);
    const otherW = weights(2);
    const refModels = [toRef(anchorW), toRef(otherW)];
    refApply(
      refModels,
      1,
      new Map([
        ['attn0', refAttn],
        ['ffn0', refFfn],
      ]),
    );

    const ours = applyPaperPermutations(
      otherW,
      cfg,
      new Map([
        [groupName.attnV(0), mh.perm],
        [groupName.ffn(0), mu.perm],
      ]),
    );
    for (const [name] of names) {
      expect(toRef(ours).get(name), `other ${name}`).toEqual(refModels[1]!.get(name));
      expect(toRef(anchorW).get(name), `anchor ${name}`).toEqual(refModels[0]!.get(name)); // identity transforms
    }
  });
});

describe('align.method paper: departures from the exact method, each shown', () => {
  it('statistics: per-batch standardisation removes between-batch variation, so it is not the Pearson correlation of all frames', () => {
    // model_merger_new.py compute_metrics standardises each batch with that batch's mean and std. When batches
    // differ in level (speech batches vs music batches), the pooled correlation sees that shift, this one does not.
    const rand = mulberry32(7);
    const batches = [0, 1].map((b) => {
      const A = [Array.from({ length: 40 }, () => randn(rand) * 0.3 + 4 * b)];
      const B = [Array.from({ length: 40 }, () => randn(rand) * 0.3 + 4 * b)];
      return { A, B };
    });
    const paperCorr = engineCorrelation(batches)[0]!;
    const pooled = createPairStats(1, 1);
    for (const { A, B } of batches) addMoments(pooled, momentsOf(A, B));
    const pearsonCorr = pearson(pooled)[0]!;
    expect(pearsonCorr).toBeGreaterThan(0.95); // the shared shift dominates the pooled correlation
    expect(Math.abs(paperCorr)).toBeLessThan(0.4); // within a batch the two units are independent noise

    // With a single batch the standardisation cancels: it is the Pearson correlation (up to the ε terms).
    const one = correlatedBatches(mulberry32(8), 5, [30], [3, 0, 4, 2, 1]);
    const single = createPairStats(5, 5);
    addMoments(single, momentsOf(one[0]!.A, one[0]!.B));
    const diff = engineCorrelation(one).map((v, k) => Math.abs(v - pearson(single)[k]!));
    expect(Math.max(...diff)).toBeLessThan(1e-6);
  });

  it('application: only out_proj and output_dense columns of `other` move (processed_nodes is shared by both graphs), so its function changes; the self-check reports the deviation', async () => {
    const model = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const cfg = model.config;
    const rand = mulberry32(3);
    const ffn = randomPermutation(cfg.intermediate, rand);
    const perms = new Map([[groupName.ffn(0), ffn]]);
    const permuted = applyPaperPermutations(model.weights, cfg, perms);
    const p = 'encoder.layers.0.feed_forward';
    expect(permuted.get(`${p}.intermediate_dense.weight`)).toBe(model.weights.get(`${p}.intermediate_dense.weight`)); // merge skipped
    expect(permuted.get(`${p}.intermediate_dense.bias`)).toBe(model.weights.get(`${p}.intermediate_dense.bias`));
    expect(permuted.get(`${p}.output_dense.weight`)).not.toBe(model.weights.get(`${p}.output_dense.weight`)); // unmerge applied

    const audio = Float32Array.from({ length: 2 * 4000 }, (_, i) => 0.3 * Math.sin(i / 9) + 0.05 * randn(rand));
    const r = await selfCheck(model, permuted, perms, audio, 2, { device: 'cpu' });
    expect(r.passed).toBe(false);
    expect(r.maxRelativeError).toBeGreaterThan(100 * SELF_CHECK_TOLERANCE);
    expect(assertSelfCheck(r, false)).toMatch(/differs from the original by .* not function-preserving, so the deviation is reported/);
    expect(() => assertSelfCheck(r, true)).toThrow(/self-check failed/);

    // The same permutation applied to both sides of the FFN (the exact spec) keeps the function.
    const exact = applyPermutations(model.weights, buildPermutationSpec(cfg), perms);
    const ok = await selfCheck(model, exact, perms, audio, 2, { device: 'cpu' });
    expect(ok.passed).toBe(true);
    expect(assertSelfCheck(ok, false)).toBeNull();
  });

  it('the paper spec moves consumer columns only; q/k/v and fc1 are never named', () => {
    const cfg = { layers: 2, hidden: 8, heads: 2, headDim: 4, intermediate: 16 } as EncoderConfig;
    const moved = paperSpec(cfg).groups.flatMap((g) => g.moves.map((m) => `${m.tensor}:${m.kind === 'axis' ? m.axis : 'grouped'}`));
    expect(moved.sort()).toEqual(
      [0, 1]
        .flatMap((l) => [`encoder.layers.${l}.attention.out_proj.weight:1`, `encoder.layers.${l}.feed_forward.output_dense.weight:1`])
        .sort(),
    );
  });
});

describe('align.method paper on an encoder pair through the ONNX pair graph', () => {
  it('hooks the attention output after out_proj: a function-preserving head/value permutation is invisible to it, while its FFN tap finds the planted FFN permutation; correlations match the transcription on the tapped activations', async () => {
    const anchor = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const cfg = anchor.config;
    const spec = buildPermutationSpec(cfg);
    // other = anchor with planted, function-preserving permutations of heads (V/O with Q/K) and FFN neurons.
    const planted = randomPermutations(spec, mulberry32(17), {
      include: (g) => g.kind === 'attn-v' || g.kind === 'attn-qk' || g.kind === 'ffn',
    });
    const other = { config: cfg, weights: applyPermutations(anchor.weights, spec, planted) };

    const rand = mulberry32(23);
    const segmentSamples = 3200;
    const segments = Array.from({ length: 6 }, (_, k) => ({
      samples: Float32Array.from({ length: segmentSamples }, (_, i) => 0.3 * Math.sin((i * (k + 3)) / 40) + 0.1 * randn(rand)),
    }));
    const probe = {
      sampleRate: cfg.sampleRate,
      segmentSeconds: 0.2,
      segmentSamples,
      seed: 0,
      segments,
      sources: [],
      totalSegments: 6,
      totalSeconds: 1.2,
    } as unknown as ProbeSet;
    const batchSize = 2;
    const r = await alignPaper(anchor, other, probe, {
      device: 'cpu',
      permute: ['attention', 'ffn'],
      heads: 'reorder',
      batchSize,
      assign: async (s, n) => solveLap(s, n),
    });

    for (let l = 0; l < cfg.layers; l++) {
      // Attention: out_proj outputs of anchor and other are the same function, so the paper matches identity and
      // its before-correlation is ~1, although the value space (what it permutes) was shuffled.
      expect(isIdentity(planted.get(groupName.attnV(l))!)).toBe(false);
      expect(isIdentity(r.perms.get(groupName.attnV(l))!)).toBe(true);
      expect(r.report.find((g) => g.group === groupName.attnV(l))!.before).toBeGreaterThan(0.999);
      // FFN: the tap is the activation, so the planted permutation is recovered (as its inverse, the gather).
      expect(Array.from(r.perms.get(groupName.ffn(l))!)).toEqual(Array.from(invertPermutation(planted.get(groupName.ffn(l))!)));
    }

    // The correlations against the transcription, fed the same tapped activations batch by batch.
    const taps: TapName[] = [tapName.attnOut(1), tapName.ffn(2)];
    const [sa, sb] = await Promise.all([
      EncoderSession.create(anchor, taps, { device: 'cpu' }),
      EncoderSession.create(other, taps, { device: 'cpu' }),
    ]);
    const perTap = new Map<TapName, { A: Matrix; B: Matrix }[]>(taps.map((t) => [t, []]));
    for (let s = 0; s < segments.length; s += batchSize) {
      const audio = new Float32Array(batchSize * segmentSamples);
      for (let k = 0; k < batchSize; k++) audio.set(segments[s + k]!.samples, k * segmentSamples);
      const [oa, ob] = [await sa.run(audio, batchSize), await sb.run(audio, batchSize)];
      for (const t of taps) {
        const toUnits = (x: { dims: readonly number[]; data: unknown }) => {
          const d = x.dims[2]!;
          const data = x.data as Float32Array;
          const rows = data.length / d;
          return Array.from({ length: d }, (_, u) => Array.from({ length: rows }, (_, f) => data[f * d + u]!));
        };
        perTap.get(t)!.push({ A: toUnits(oa.get(t)!), B: toUnits(ob.get(t)!) });
      }
    }
    await Promise.all([sa.release(), sb.release()]);
    for (const t of taps) {
      const units = perTap.get(t)![0]!.A.length;
      const ref = block(refCovToCorr(refCovariance(perTap.get(t)!)), 0, units, units, 2 * units);
      const ours = asMatrix(r.correlations.get(t)!, units);
      let err = 0;
      for (let i = 0; i < units; i++) for (let j = 0; j < units; j++) err = Math.max(err, Math.abs(ours[i]![j]! - ref[i]![j]!));
      expect(err, t).toBeLessThan(1e-4); // float32 activations and GEMMs in onnxruntime
    }
  });
});

describe('align.method paper in a run', () => {
  const tempDir = useTempDirs();

  it('is in the registry, needs probe audio, hooks attn_out and ffn taps only', () => {
    expect(alignNeedsProbe('paper')).toBe(true);
    expect(ALIGN_METHODS.paper.taps({ layers: 2 } as EncoderConfig, ['cnn', 'attention', 'ffn', 'residual'], 'reorder')).toEqual([
      'layer.0.attn_out',
      'layer.0.ffn',
      'layer.1.attn_out',
      'layer.1.ffn',
    ]);
    expect(ALIGN_METHODS.paper.taps({ layers: 1 } as EncoderConfig, ['attention', 'ffn'], 'none')).toEqual(['layer.0.ffn']);
  });

  it('runs a recipe end to end: the self-check deviation is a warning in the log and the report, the merge is written', async () => {
    const dir = tempDir();
    const anchorDir = path.join(HF_REFERENCE, 'hubert-postln-a');
    const file = path.join(dir, 'paper.merge.yaml');
    // other = the anchor's architecture with random weights: a different function, as two separately trained encoders.
    const anchor = await loadEncoderModel(anchorDir);
    const otherDir = path.join(dir, 'other');
    await fs.mkdir(otherDir);
    await fs.copyFile(path.join(anchorDir, 'config.json'), path.join(otherDir, 'config.json'));
    await writeSafetensors(path.join(otherDir, 'model.safetensors'), toStoredTensors(randomWeights(anchor.config, 5), anchor.layout));
    await fs.writeFile(
      file,
      [
        'version: 1',
        'models:',
        `  anchor: ${anchorDir}`,
        `  other: ${otherDir}`,
        'probe:',
        `  audio: [${path.join(FIXTURES, 'audio', 'tone-16k.wav')}, ${path.join(FIXTURES, 'audio', 'sine440-16k-i16.wav')}]`,
        '  segment_seconds: 0.5',
        'align:',
        '  method: paper',
        '  permute: [cnn, attention, ffn]',
        'merge: { method: linear, lambda: 0.5 }',
        'output: ./out',
        'runtime: { device: cpu }',
        '',
      ].join('\n'),
    );
    const events: JobEvent[] = [];
    const { report, outputDir } = await runRecipe(file, { onEvent: (e) => events.push(e) });
    expect(report.align.method).toBe('paper');
    expect(report.align.selfCheck!.passed).toBe(false);
    expect(report.align.selfCheck!.maxRelativeError).toBeGreaterThan(SELF_CHECK_TOLERANCE);
    expect(report.align.selfCheck!.warning).toMatch(/not function-preserving/);
    const logs = events.flatMap((e) => (e.type === 'log' ? [e] : []));
    expect(logs.some((e) => e.level === 'warning' && /not function-preserving/.test(e.message))).toBe(true);
    expect(logs.some((e) => e.level === 'warning' && /cnn left as they are/.test(e.message))).toBe(true);
    expect(report.align.taps.map((t) => t.tap).sort()).toEqual([0, 1, 2].flatMap((l) => [`layer.${l}.attn.v`, `layer.${l}.ffn`]).sort());
    await expect(fs.stat(path.join(outputDir, 'model.safetensors'))).resolves.toBeTruthy();
  });
});
