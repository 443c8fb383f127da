import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMoments, createPairStats } from '../../server/src/engine/align/stats';
import type { ProbeSet } from '../../server/src/engine/io/probe';
import { iterateBatches } from '../../server/src/engine/io/probe';
import { Gemm64 } from '../../server/src/engine/merge/methods/gemm64';
import {
  columns,
  fitSystem,
  lsq,
  residual,
  stageSystem,
  type StageStats,
  type StageSystem,
} from '../../server/src/engine/merge/methods/lsq';
import { layerStages, TripleSession, type LsqStage } from '../../server/src/engine/merge/methods/lsq-graph';
import { teacherStage, weightedSystem } from '../../server/src/engine/merge/methods/lsq-targets';
import { linear } from '../../server/src/engine/merge/methods/tensorwise';
import { ridgeSolve } from '../../server/src/engine/merge/methods/ridge';
import { addEncoder } from '../../server/src/engine/model/encoder-graph';
import { GraphBuilder } from '../../server/src/engine/model/graph-builder';
import { randomWeights } from '../../server/src/engine/model/random';
import type { TapName } from '../../server/src/engine/model/taps';
import type { WeightMap } from '../../server/src/engine/model/tensor';
import type { AlignOutcome } from '../../server/src/engine/align/methods/method';
import { zipFeedForward } from '../../server/src/engine/merge/zip';
import { buildSystem, systemsOf } from '../../server/src/engine/pipeline/systems';
import { mulberry32 } from '../../server/src/engine/random';
import type { LsqProjection, Recipe } from '../../server/src/engine/recipe/schema';
import { engineError } from '../helpers/errors';
import { maxRelativeError } from '../helpers/reference';
import { tinyHubertConfig } from '../helpers/tiny-model';

/** Float64 reference: solve A x = b by Gaussian elimination with partial pivoting. */
function gaussSolve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[piv]![c]!)) piv = r;
    [m[c], m[piv]] = [m[piv]!, m[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / m[c]![c]!;
      for (let k = c; k <= n; k++) m[r]![k]! -= f * m[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = m[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= m[r]![k]! * x[k]!;
    x[r] = s / m[r]![r]!;
  }
  return x;
}

/**
 * The normal equations of rows given in float64: centred Cov(x), Cov(x, y), means and Σ(y − ȳ)², each row counted
 * `weight[k]` times (1 without weights).
 */
function systemOf(x: number[][], y: number[][], weight?: number[]): StageSystem {
  const p = x[0]!.length;
  const q = y[0]!.length;
  const w = weight ?? x.map(() => 1);
  const n = w.reduce((s, v) => s + v, 0);
  const mean = (rows: number[][], d: number) =>
    Float64Array.from({ length: d }, (_, j) => rows.reduce((s, r, k) => s + w[k]! * r[j]!, 0) / n);
  const meanX = mean(x, p);
  const meanY = mean(y, q);
  const cxx = new Float64Array(p * p);
  const cxy = new Float64Array(p * q);
  const m2Y = new Float64Array(q);
  for (const [k, r] of x.entries()) {
    for (let c = 0; c < q; c++) m2Y[c] += w[k]! * (y[k]![c]! - meanY[c]!) ** 2;
    for (let i = 0; i < p; i++) {
      const di = w[k]! * (r[i]! - meanX[i]!);
      for (let j = 0; j < p; j++) cxx[i * p + j] += di * (r[j]! - meanX[j]!);
      for (let c = 0; c < q; c++) cxy[i * q + c] += di * (y[k]![c]! - meanY[c]!);
    }
  }
  return { n, p, q, cxx, cxy, meanX, meanY, m2Y };
}

function tinyProbe(count: number, seed = 2): ProbeSet {
  const rand = mulberry32(seed);
  const segments = Array.from({ length: count }, (_, i) => ({
    source: 0,
    file: `n${i}`,
    offsetSamples: 0,
    offsetSeconds: 0,
    paddedSamples: 0,
    samples: Float32Array.from({ length: 1600 }, (_, k) => 0.3 * Math.sin(k / (5 + i)) + 0.2 * (rand() - 0.5)),
  }));
  return {
    sampleRate: 16000,
    segmentSeconds: 0.1,
    segmentSamples: 1600,
    seed: 0,
    segments,
    sources: [],
    totalSegments: count,
    totalSeconds: count * 0.1,
  };
}

const cfg = tinyHubertConfig();

/** Float64 reference of a stage's rows: each model's input tap from its own forward graph, then the mix in JS. */
async function referenceRows(
  merged: WeightMap,
  anchor: WeightMap,
  other: WeightMap,
  stage: LsqStage,
  probe: ProbeSet,
  config = cfg,
): Promise<{ x: number[][]; y: number[][] }> {
  const tapRows = async (w: WeightMap, tap: TapName) => {
    const b = new GraphBuilder();
    const audio = b.input('audio', ['batch', 'samples']);
    b.output(addEncoder(b, config, w, audio).get(tap)!, 'tap');
    const session = await ort.InferenceSession.create(b.encode('reference_tap'));
    const rows: number[][] = [];
    for (const batch of iterateBatches(probe, 3)) {
      const out = await session.run({ audio: new ort.Tensor('float32', batch.data, batch.dims) });
      const t = out.tap!;
      const width = t.dims.at(-1)!;
      const data = t.data as Float32Array;
      for (let r = 0; r < data.length / width; r++) rows.push(Array.from(data.subarray(r * width, (r + 1) * width)));
    }
    await session.release();
    return rows;
  };
  const [x, xa, xb] = await Promise.all([merged, anchor, other].map((w) => tapRows(w, stage.input)));
  // A residual stage: the stream its output is added to is the layer input (out_proj); for output_dense the FFN input
  // (post-LN), or the layer input plus the attention output (pre-LN).
  const streamRows = async (w: WeightMap): Promise<number[][]> => {
    const l = stage.layer;
    if (stage.sites[0]!.name === 'out_proj') return tapRows(w, `hidden.${l}`);
    if (!config.preLayerNorm) return tapRows(w, `layer.${l}.ffn_in`);
    const [h, a] = [await tapRows(w, `hidden.${l}`), await tapRows(w, `layer.${l}.attn_out`)];
    return h.map((row, k) => row.map((v, j) => v + a[k]![j]!));
  };
  const [r, ra, rb] = stage.residual ? await Promise.all([merged, anchor, other].map(streamRows)) : [undefined, undefined, undefined];
  const apply = (w: WeightMap, name: string, bias: string, row: number[]) => {
    const t = w.get(name)!;
    const [q, p] = t.shape as [number, number];
    return Array.from({ length: q }, (_, c) => {
      let s = w.get(bias)!.data[c]!;
      for (let j = 0; j < p; j++) s += t.data[c * p + j]! * row[j]!;
      return s;
    });
  };
  const y = x.map((_, k) =>
    stage.sites.flatMap((s) => {
      const ya = apply(anchor, s.weight, s.bias, xa[k]!);
      const yb = apply(other, s.weight, s.bias, xb[k]!);
      if (r) return ya.map((v, c) => s.lambda * (v + ra![k]![c]!) + (1 - s.lambda) * (yb[c]! + rb![k]![c]!) - r[k]![c]!);
      return ya.map((v, c) => s.lambda * v + (1 - s.lambda) * yb[c]!);
    }),
  );
  return { x, y };
}

async function referenceSystem(...args: Parameters<typeof referenceRows>): Promise<StageSystem> {
  const { x, y } = await referenceRows(...args);
  return systemOf(x, y);
}

/** The stage's system as lsq measures it: the three models layer by layer in onnxruntime from their hidden states. */
async function measuredSystem(
  merged: WeightMap,
  anchor: WeightMap,
  other: WeightMap,
  stage: LsqStage,
  probe: ProbeSet,
  config = cfg,
): Promise<StageSystem> {
  const m = (w: WeightMap) => ({ config, weights: w });
  const models = { merged: m(merged), anchor: m(anchor), other: m(other) };
  const passThrough = async (what: Parameters<typeof TripleSession.create>[1], inputs: Parameters<TripleSession['run']>[0][]) => {
    const session = await TripleSession.create(models, what, {});
    const out = [];
    for (const input of inputs) out.push(await session.run(input));
    await session.release();
    return out;
  };
  const audio = Array.from(iterateBatches(probe, 4), (batch) => ({ audio: batch.data, batch: batch.dims[0] }));
  let states = (await passThrough({ layer: 'front', next: true }, audio)).map((o) => o.next!);
  for (let l = 0; l < stage.layer; l++) states = (await passThrough({ layer: l, next: true }, states)).map((o) => o.next!);
  let stats: StageStats | undefined;
  for (const { moments } of await passThrough({ layer: stage.layer, stage, next: false }, states)) {
    stats ??= {
      inputs: createPairStats(moments!.inputs.meanA.length, moments!.inputs.meanB.length),
      targets: createPairStats(moments!.targets.meanA.length, 0),
      ...(moments!.drift ? { drift: createPairStats(moments!.drift.meanA.length, moments!.drift.meanB.length) } : {}),
    };
    addMoments(stats.inputs, moments!.inputs);
    addMoments(stats.targets, moments!.targets);
    if (stats.drift) addMoments(stats.drift, moments!.drift!);
  }
  return stageSystem(stats!, stage, anchor, other, gemm);
}

let gemm: Gemm64;
beforeAll(async () => {
  gemm = await Gemm64.create({});
});
afterAll(async () => {
  await gemm.release();
});

/** The merge context of an lsq refit of the tiny model on `probe` (batches of 4, seed 0). */
function lsqContext(anchor: WeightMap, other: WeightMap, lambda: Parameters<typeof lsq.merge>[0]['lambda'], probe: ProbeSet) {
  return { config: cfg, anchor, other, lambda, probe, batchSize: 4, seed: 0, session: {}, emit: () => undefined, signal: undefined };
}

describe('least-squares refit (merge.method lsq)', () => {
  it('ridgeSolve matches a float64 Gaussian-elimination reference of (XᵀX + αI)Wᵀ = XᵀY + αW0ᵀ', () => {
    const rand = mulberry32(3);
    const p = 6;
    const q = 3;
    const n = 20;
    const x = Array.from({ length: n }, () => Array.from({ length: p }, () => rand() - 0.5));
    const y = Array.from({ length: n }, () => Array.from({ length: q }, () => rand() - 0.5));
    const xtx = new Float64Array(p * p);
    const xty = new Float64Array(p * q);
    for (let k = 0; k < n; k++) {
      for (let i = 0; i < p; i++) {
        for (let j = 0; j < p; j++) xtx[i * p + j] += x[k]![i]! * x[k]![j]!;
        for (let c = 0; c < q; c++) xty[i * q + c] += x[k]![i]! * y[k]![c]!;
      }
    }
    const prior = Float64Array.from({ length: q * p }, () => rand() - 0.5);
    const alpha = 0.3;
    const w = ridgeSolve(xtx, xty, p, q, alpha, prior);
    for (let c = 0; c < q; c++) {
      const a = Array.from({ length: p }, (_, i) => Array.from({ length: p }, (_, j) => xtx[i * p + j]! + (i === j ? alpha : 0)));
      const ref = gaussSolve(
        a,
        Array.from({ length: p }, (_, i) => xty[i * q + c]! + alpha * prior[c * p + i]!),
      );
      ref.forEach((v, i) => expect(Math.abs(w[c * p + i]! - v)).toBeLessThan(1e-12));
    }
  });

  it('fitSystem with a vanishing ridge is the float64 least-squares fit of [x, 1] → y, and residual() its exact SSE', async () => {
    const rand = mulberry32(8);
    const p = 5;
    const q = 3;
    const n = 60;
    const x = Array.from({ length: n }, () => Array.from({ length: p }, () => rand() - 0.5 + 0.3));
    const y = x.map((r) =>
      Array.from({ length: q }, (_, c) => r.reduce((s, v, j) => s + Math.sin(c + j) * v, 0.2 * c) + 0.1 * (rand() - 0.5)),
    );
    const all = systemOf(x, y);
    const f = fitSystem(all, 1e-12, new Float64Array(q * p));
    // Reference: normal equations of the augmented, uncentred design A = [x, 1].
    const a = x.map((r) => [...r, 1]);
    const ata = Array.from({ length: p + 1 }, (_, i) => Array.from({ length: p + 1 }, (_, j) => a.reduce((s, r) => s + r[i]! * r[j]!, 0)));
    let sse = 0;
    for (let c = 0; c < q; c++) {
      const theta = gaussSolve(
        ata,
        Array.from({ length: p + 1 }, (_, i) => a.reduce((s, r, k) => s + r[i]! * y[k]![c]!, 0)),
      );
      for (let j = 0; j < p; j++) expect(Math.abs(f.w[c * p + j]! - theta[j]!)).toBeLessThan(1e-8);
      expect(Math.abs(f.b[c]! - theta[p]!)).toBeLessThan(1e-8);
      for (const [k, r] of a.entries()) sse += (r.reduce((s, v, j) => s + v * theta[j]!, 0) - y[k]![c]!) ** 2;
    }
    expect(Math.abs((await residual(all, f.w, f.b, gemm)) - sse) / sse).toBeLessThan(1e-8);
    // A column slice is the same problem on those targets alone; a strong ridge is pulled to its prior and fits worse.
    const one = columns(all, 1, 2);
    const g = fitSystem(one, 1e-12, new Float64Array(p));
    for (let j = 0; j < p; j++) expect(Math.abs(g.w[j]! - f.w[p + j]!)).toBeLessThan(1e-9);
    const strong = fitSystem(all, 1e3, new Float64Array(q * p));
    expect(Math.max(...strong.w.map(Math.abs))).toBeLessThan(0.01);
    expect(await residual(all, strong.w, strong.b, gemm)).toBeGreaterThan(sse * 1.5);
  });

  it('groups projections that share an input into one stage, in forward order', () => {
    const stages = layerStages(1, ['output_dense', 'v_proj', 'q_proj', 'intermediate_dense'], () => 0.4);
    expect(stages.map((s) => [s.input, s.sites.map((x) => x.name)])).toEqual([
      ['layer.1.attn_in', ['q_proj', 'v_proj']],
      ['layer.1.ffn_in', ['intermediate_dense']],
      ['layer.1.ffn', ['output_dense']],
    ]);
    expect(stages[0]!.sites[1]!.weight).toBe('encoder.layers.1.attention.v_proj.weight');
  });

  it.each([
    ['layer 0 q/k/v', 0, ['q_proj', 'k_proj', 'v_proj']],
    ['layer 1 out_proj', 1, ['out_proj']],
    ['layer 1 intermediate_dense', 1, ['intermediate_dense']],
  ] as const)('stage moments from onnxruntime match a float64 reference (%s)', async (_label, layer, refit) => {
    const anchor = randomWeights(cfg, 4);
    const other = randomWeights(cfg, 5);
    const merged = randomWeights(cfg, 6);
    const stage = layerStages(layer, refit, (t) => (t.includes('v_proj') ? 0.7 : 0.3))[0]!;
    const probe = tinyProbe(7);
    const got = await measuredSystem(merged, anchor, other, stage, probe);
    const want = await referenceSystem(merged, anchor, other, stage, probe);
    expect(got.n).toBe(want.n);
    expect(got.q).toBe(want.q);
    expect(maxRelativeError(got.cxx, want.cxx)).toBeLessThan(1e-4);
    expect(maxRelativeError(got.cxy, want.cxy)).toBeLessThan(1e-4);
    expect(maxRelativeError(got.meanY, want.meanY)).toBeLessThan(1e-4);
    expect(maxRelativeError(got.m2Y, want.m2Y)).toBeLessThan(1e-4);
  });

  it.each([
    ['out_proj, post-LN', 1, 'out_proj', false],
    ['output_dense, post-LN', 0, 'output_dense', false],
    ['out_proj, pre-LN', 1, 'out_proj', true],
    ['output_dense, pre-LN', 1, 'output_dense', true],
  ] as const)('residual stage moments (%s, fit with the residual stream) match a float64 reference', async (_label, layer, proj, preLN) => {
    const config = { ...cfg, preLayerNorm: preLN };
    const anchor = randomWeights(config, 4);
    const other = randomWeights(config, 5);
    const merged = randomWeights(config, 6);
    const stage = layerStages(layer, [proj], () => 0.3, true)[0]!;
    expect(stage.residual).toBe(true);
    const probe = tinyProbe(7);
    const got = await measuredSystem(merged, anchor, other, stage, probe, config);
    const want = await referenceSystem(merged, anchor, other, stage, probe, config);
    for (const k of ['cxx', 'cxy', 'meanX', 'meanY', 'm2Y'] as const) expect(maxRelativeError(got[k], want[k]), k).toBeLessThan(1e-4);
    // Without the stream the target is the projection's output alone: a different system.
    const plain = await referenceSystem(merged, anchor, other, { ...stage, residual: false }, probe, config);
    expect(maxRelativeError(plain.meanY, want.meanY)).toBeGreaterThan(1e-2);
  });

  it.each([
    ['a ridge chosen on the held-out fifth', 'auto' as const, false],
    ['a fixed ridge', 0.01, false],
    ['a fixed ridge and residual sums', 0.01, true],
  ])(
    'is function-preserving with every projection refit and %s: two copies of one model refit to that model (1e-5)',
    async (_l, ridge, residual) => {
      const w = randomWeights(cfg, 4);
      const merged = await lsq.merge({
        config: cfg,
        anchor: w,
        other: w,
        lambda: 0.4,
        probe: tinyProbe(10),
        lsq: { refit: ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'intermediate_dense', 'output_dense'], ridge, residual },
        batchSize: 4,
        seed: 0,
        session: {},
        emit: () => undefined,
        signal: undefined,
      });
      for (const [name, t] of w) expect(maxRelativeError(merged.get(name)!.data, t.data), name).toBeLessThan(1e-5);
    },
  );

  it("fits the target better than the linear merge where both see the same input (layer 0's q/k/v)", async () => {
    const anchor = randomWeights(cfg, 4);
    const other = randomWeights(cfg, 5);
    const probe = tinyProbe(10);
    const ctx = {
      config: cfg,
      anchor,
      other,
      lambda: 0.5,
      probe,
      lsq: { refit: ['q_proj', 'k_proj', 'v_proj'] as ('q_proj' | 'k_proj' | 'v_proj')[], ridge: 1e-3 },
      batchSize: 4,
      seed: 0,
      session: {},
      emit: () => undefined,
      signal: undefined,
    };
    const lerp = await linear.merge(ctx);
    const refit = await lsq.merge(ctx);
    const stage = layerStages(0, ['q_proj', 'k_proj', 'v_proj'], () => 0.5)[0]!;
    const sse = async (w: WeightMap) => {
      const s = await measuredSystem(w, anchor, other, stage, probe);
      const flat = (suffix: 'weight' | 'bias') =>
        Float64Array.from(stage.sites.flatMap((site) => Array.from(w.get(suffix === 'weight' ? site.weight : site.bias)!.data)));
      return residual(s, flat('weight'), flat('bias'), gemm);
    };
    const [before, after] = [await sse(lerp), await sse(refit)];
    expect(after).toBeLessThan(0.9 * before);
    // Projections outside `refit` keep the linear merge.
    expect(refit.get('encoder.layers.0.feed_forward.output_dense.weight')!.data).toEqual(
      lerp.get('encoder.layers.0.feed_forward.output_dense.weight')!.data,
    );
  });

  it('refuses a probe too small to hold out a fifth, unless the ridge is fixed', async () => {
    const w = randomWeights(cfg, 4);
    const ctx = {
      config: cfg,
      anchor: w,
      other: randomWeights(cfg, 5),
      lambda: 0.5,
      probe: tinyProbe(3),
      batchSize: 4,
      seed: 0,
      session: {},
      emit: () => undefined,
      signal: undefined,
    };
    const e = await engineError(lsq.merge(ctx));
    expect(e.code).toBe('bad-recipe');
    expect(e.message).toMatch(/at least 5 probe segments.*merge\.lsq\.ridge/);
    await expect(lsq.merge({ ...ctx, lsq: { refit: ['out_proj'], ridge: 0.1 } })).resolves.toBeInstanceOf(Map);
    const cancelled = new AbortController();
    cancelled.abort();
    expect((await engineError(lsq.merge({ ...ctx, lsq: { refit: ['out_proj'], ridge: 0.1 }, signal: cancelled.signal }))).code).toBe(
      'cancelled',
    );
  });

  it('variants inherit merge.lsq and override its keys; systems whose method is not lsq carry no lsq settings', () => {
    const recipe = {
      align: { method: 'correlation', permute: ['cnn'], heads: 'reorder', self_check: true },
      merge: { method: 'linear', lambda: 0.5, repair: false, width: 1, lsq: { refit: ['out_proj'], ridge: 0.5 } },
      variants: [
        { name: 'lsq', merge: { method: 'lsq' } },
        { name: 'lsq-auto', merge: { method: 'lsq', lsq: { refit: ['v_proj', 'out_proj'], ridge: 'auto' } } },
        { name: 'lsq-ridge', merge: { method: 'lsq', lsq: { ridge: 0.01 } } },
      ],
    } as unknown as Recipe;
    const systems = systemsOf(recipe);
    expect(systems[0]!.merge.lsq).toBeUndefined();
    expect(systems[1]!.merge.lsq).toEqual({ refit: ['out_proj'], ridge: 0.5 });
    expect(systems[2]!.merge.lsq).toEqual({ refit: ['v_proj', 'out_proj'], ridge: 'auto' });
    expect(systems[3]!.merge.lsq).toEqual({ refit: ['out_proj'], ridge: 0.01 });
  });
});

describe('least-squares refit on a zipped FFN (merge.method lsq with merge.width > 1)', () => {
  const zipped = (anchor: WeightMap, other: WeightMap, lambda: number, width: number, base?: WeightMap) =>
    zipFeedForward({ config: cfg, anchor, other, merged: base ?? linearOf(anchor, other, lambda), lambda, width });
  const linearOf = (anchor: WeightMap, other: WeightMap, lambda: number) => {
    const out: WeightMap = new Map();
    for (const [name, t] of anchor) {
      const u = other.get(name)!.data;
      out.set(name, { shape: [...t.shape], data: t.data.map((v, i) => lambda * v + (1 - lambda) * u[i]!) });
    }
    return out;
  };

  it('output_dense stage moments over a wider merged FFN match a float64 reference', async () => {
    const anchor = randomWeights(cfg, 4);
    const other = randomWeights(cfg, 5);
    const z = zipped(anchor, other, 0.6, 1.5, randomWeights(cfg, 6));
    expect(z.unmerged).toBeGreaterThan(0);
    const stage = layerStages(1, ['output_dense'], () => 0.6)[0]!;
    const probe = tinyProbe(7);
    const got = await measuredSystem(z.weights, anchor, other, stage, probe);
    const want = await referenceSystem(z.weights, anchor, other, stage, probe);
    expect(got.p).toBe(cfg.intermediate + z.unmerged);
    expect(want.p).toBe(got.p);
    expect(maxRelativeError(got.cxx, want.cxx)).toBeLessThan(1e-4);
    expect(maxRelativeError(got.cxy, want.cxy)).toBeLessThan(1e-4);
    expect(maxRelativeError(got.meanX, want.meanX)).toBeLessThan(1e-4);
    expect(maxRelativeError(got.meanY, want.meanY)).toBeLessThan(1e-4);
    expect(maxRelativeError(got.m2Y, want.m2Y)).toBeLessThan(1e-4);
  });

  it('is function-preserving: two copies of one model, zipped, refit to the zipped weights (1e-5)', async () => {
    const w = randomWeights(cfg, 4);
    const z = zipped(w, w, 0.4, 1.5);
    const merged = await lsq.merge({ ...lsqContext(w, w, 0.4, tinyProbe(10)), start: z, lsq: { refit: ['out_proj', 'output_dense'] } });
    for (const [name, t] of z.weights) {
      expect(merged.get(name)!.shape, name).toEqual(t.shape);
      expect(maxRelativeError(merged.get(name)!.data, t.data), name).toBeLessThan(1e-5);
    }
  });

  it('fits the output_dense target better than the zipped start, and refuses to refit intermediate_dense on it', async () => {
    const anchor = randomWeights(cfg, 4);
    const other = randomWeights(cfg, 5);
    const probe = tinyProbe(10);
    const z = zipped(anchor, other, 0.5, 1.25);
    const refit = await lsq.merge({ ...lsqContext(anchor, other, 0.5, probe), start: z, lsq: { refit: ['output_dense'], ridge: 1e-3 } });
    const stage = layerStages(0, ['output_dense'], () => 0.5)[0]!;
    const sse = async (w: WeightMap) => {
      const s = await measuredSystem(w, anchor, other, stage, probe);
      const site = stage.sites[0]!;
      return residual(s, Float64Array.from(w.get(site.weight)!.data), Float64Array.from(w.get(site.bias)!.data), gemm);
    };
    expect(await sse(refit)).toBeLessThan(0.9 * (await sse(z.weights)));
    const e = await engineError(lsq.merge({ ...lsqContext(anchor, other, 0.5, probe), start: z, lsq: { refit: ['intermediate_dense'] } }));
    expect(e.code).toBe('bad-recipe');
    expect(e.message).toMatch(/intermediate_dense cannot be refit on a zipped FFN.*merge\.width: 1/);
  });

  it('buildSystem zips the linear merge first and refits that (lsq), but zips a linear merge after merging', async () => {
    const anchor = randomWeights(cfg, 4);
    const other = randomWeights(cfg, 5);
    const probe = tinyProbe(10);
    const aligned = {
      perms: new Map(),
      report: [],
      permuted: other,
      functionPreserving: false,
      correlations: new Map(),
      dead: new Map(),
      moments: new Map(),
    } as unknown as AlignOutcome;
    const c = {
      anchor: { config: cfg, weights: anchor },
      other: { config: cfg, weights: other },
      probe,
      batchSize: 4,
      seed: 0,
      session: {},
      emit: () => undefined,
      signal: undefined,
    } as unknown as Parameters<typeof buildSystem>[3];
    const settings = (method: 'lsq' | 'linear') => ({
      name: method,
      align: { method: 'correlation', permute: [], heads: 'reorder' } as unknown as Recipe['align'],
      merge: { method, repair: false, width: 1.25, lsq: { refit: ['output_dense' as const], ridge: 0.01 } },
    });
    const built = await buildSystem(settings('lsq'), aligned, 0.5, c);
    const z = zipped(anchor, other, 0.5, 1.25);
    const want = await lsq.merge({ ...lsqContext(anchor, other, 0.5, probe), start: z, lsq: { refit: ['output_dense'], ridge: 0.01 } });
    expect(built.config.intermediate).toBe(z.config.intermediate);
    const name = 'encoder.layers.1.feed_forward.output_dense.weight';
    expect(built.weights.get(name)!.shape).toEqual([cfg.hidden, z.config.intermediate]);
    expect(maxRelativeError(built.weights.get(name)!.data, want.get(name)!.data)).toBeLessThan(1e-6);
    const plain = await buildSystem(settings('linear'), aligned, 0.5, c);
    expect(maxRelativeError(plain.weights.get(name)!.data, z.weights.get(name)!.data)).toBeLessThan(1e-6);
  });
});

describe('least-squares refit with routed targets (merge.lsq.targets routed)', () => {
  /**
   * A probe of two sources, `anchor`'s domain (the first half of the segments) and `other`'s (the second half); with
   * `same`, both halves are the same audio in the same order (so the held-out fifth holds the same audio of each too).
   */
  const routedProbe = (count: number, same = false): ProbeSet => {
    const half = count / 2;
    const base = tinyProbe(same ? half : count, 3);
    const segments = Array.from({ length: count }, (_, i) => ({ ...base.segments[same ? i % half : i]!, source: i < half ? 0 : 1 }));
    const source = (name: string, domain: 'anchor' | 'other') => ({
      source: name,
      path: name,
      filesListed: 1,
      filesDecoded: 1,
      decodedSeconds: 1,
      segments: count / 2,
      seconds: 1,
      files: [],
      domain,
    });
    return { ...base, segments, sources: [source('speech', 'anchor'), source('music', 'other')], totalSegments: count };
  };
  const onlySource = (probe: ProbeSet, source: number): ProbeSet => {
    const segments = probe.segments.filter((s) => s.source === source);
    return { ...probe, segments, totalSegments: segments.length };
  };

  it('weightedSystem gives the normal equations of the weighted loss: its fit is the float64 weighted least squares of [x, 1] → y', async () => {
    const rand = mulberry32(11);
    const p = 4;
    const q = 2;
    const rows = (n: number, shift: number) => Array.from({ length: n }, () => Array.from({ length: p }, () => rand() - 0.5 + shift));
    const [xa, xb] = [rows(30, 0.4), rows(25, -0.2)];
    const [ya, yb] = [xa, xb].map((x, d) =>
      x.map((r) => Array.from({ length: q }, (_, c) => r.reduce((s, v, j) => s + Math.cos(c + j + d) * v, d - c) + 0.1 * (rand() - 0.5))),
    );
    const lambda = 0.3;
    const w = [...xa.map(() => lambda), ...xb.map(() => 1 - lambda)];
    const got = weightedSystem([
      { system: systemOf(xa, ya!), weight: lambda },
      { system: systemOf(xb, yb!), weight: 1 - lambda },
    ]);
    const want = systemOf([...xa, ...xb], [...ya!, ...yb!], w);
    expect(got.n).toBeCloseTo(want.n, 12);
    for (const k of ['cxx', 'cxy', 'meanX', 'meanY', 'm2Y'] as const) expect(maxRelativeError(got[k], want[k]), k).toBeLessThan(1e-12);
    // The fit: weighted normal equations of the augmented, uncentred design A = [x, 1].
    const a = [...xa, ...xb].map((r) => [...r, 1]);
    const y = [...ya!, ...yb!];
    const f = fitSystem(got, 1e-12, new Float64Array(q * p));
    let sse = 0;
    for (let c = 0; c < q; c++) {
      const ata = Array.from({ length: p + 1 }, (_, i) =>
        Array.from({ length: p + 1 }, (_, j) => a.reduce((s, r, k) => s + w[k]! * r[i]! * r[j]!, 0)),
      );
      const theta = gaussSolve(
        ata,
        Array.from({ length: p + 1 }, (_, i) => a.reduce((s, r, k) => s + w[k]! * r[i]! * y[k]![c]!, 0)),
      );
      for (let j = 0; j < p; j++) expect(Math.abs(f.w[c * p + j]! - theta[j]!)).toBeLessThan(1e-8);
      expect(Math.abs(f.b[c]! - theta[p]!)).toBeLessThan(1e-8);
      for (const [k, r] of a.entries()) sse += w[k]! * (r.reduce((s, v, j) => s + v * theta[j]!, 0) - y[k]![c]!) ** 2;
    }
    expect(Math.abs((await residual(got, f.w, f.b, gemm)) - sse) / sse).toBeLessThan(1e-8);
    // One part of weight 1 is that part's system.
    const one = systemOf(xa, ya!);
    expect(weightedSystem([{ system: one, weight: 1 }])).toBe(one);
  });

  it("refits each projection to its domain's model, weighted λ and 1 − λ: layer 0's q/k/v match a float64 reference (per-projection λ)", async () => {
    const anchor = randomWeights(cfg, 4);
    const other = randomWeights(cfg, 5);
    const probe = routedProbe(10);
    const lambda = { default: 0.3, overrides: { 'encoder.layers.*.attention.v_proj.*': 0.8 } };
    const ctx = {
      ...lsqContext(anchor, other, lambda, probe),
      lsq: { refit: ['q_proj', 'k_proj', 'v_proj'] as LsqProjection[], ridge: 0.01, targets: 'routed' as const },
    };
    const got = await lsq.merge(ctx);
    const lerp = await linear.merge(ctx);
    const stage = layerStages(0, ['q_proj', 'k_proj', 'v_proj'], (t) => (t.includes('v_proj') ? 0.8 : 0.3))[0]!;
    // Reference: the rows of each domain with its own model's outputs as targets, weighted in float64.
    const [a, b] = [
      await referenceRows(lerp, anchor, other, teacherStage(stage, 'anchor'), onlySource(probe, 0)),
      await referenceRows(lerp, anchor, other, teacherStage(stage, 'other'), onlySource(probe, 1)),
    ];
    let from = 0;
    for (const site of stage.sites) {
      const q = cfg.hidden;
      const cols = (rows: number[][]) => rows.map((r) => r.slice(from, from + q));
      const weights = [...a.x.map(() => site.lambda), ...b.x.map(() => 1 - site.lambda)];
      const want = fitSystem(systemOf([...a.x, ...b.x], [...cols(a.y), ...cols(b.y)], weights), 0.01, lerp.get(site.weight)!.data);
      expect(maxRelativeError(got.get(site.weight)!.data, want.w), site.name).toBeLessThan(1e-4);
      expect(maxRelativeError(got.get(site.bias)!.data, want.b), site.name).toBeLessThan(1e-4);
      from += q;
    }
  });

  it.each([
    ['a fixed ridge', 0.01],
    ['a ridge chosen on the held-out fifth', 'auto' as const],
  ])('with both domains given identical audio it is the mix form (every projection, %s)', async (_l, ridge) => {
    const anchor = randomWeights(cfg, 4);
    const other = randomWeights(cfg, 5);
    // Each segment twice, once per domain: routed fits each copy to one model, mix fits both to the λ-mix.
    const probe = routedProbe(20, true);
    const refit: LsqProjection[] = ['q_proj', 'k_proj', 'v_proj', 'out_proj', 'intermediate_dense', 'output_dense'];
    const mix = await lsq.merge({ ...lsqContext(anchor, other, 0.4, probe), lsq: { refit, ridge, targets: 'mix' } });
    const routed = await lsq.merge({ ...lsqContext(anchor, other, 0.4, probe), lsq: { refit, ridge, targets: 'routed' } });
    // Equal up to float32 rounding: the two measure the same frames in different batches.
    for (const [name, t] of mix) expect(maxRelativeError(routed.get(name)!.data, t.data), name).toBeLessThan(1e-4);
    // Different audio per domain gives a different fit.
    const apart = await lsq.merge({ ...lsqContext(anchor, other, 0.4, routedProbe(20)), lsq: { refit, ridge, targets: 'routed' } });
    const name = 'encoder.layers.1.feed_forward.output_dense.weight';
    expect(maxRelativeError(apart.get(name)!.data, mix.get(name)!.data)).toBeGreaterThan(1e-3);
  });

  it('refuses routed targets when a probe source has no domain, naming it', async () => {
    const w = randomWeights(cfg, 4);
    const probe = routedProbe(10);
    probe.sources[1] = { ...probe.sources[1]!, domain: undefined };
    const e = await engineError(lsq.merge({ ...lsqContext(w, w, 0.5, probe), lsq: { ridge: 0.1, targets: 'routed' } }));
    expect(e.code).toBe('bad-recipe');
    expect(e.message).toMatch(/probe\.audio "music" has no domain.*probe\.domains\.anchor or probe\.domains\.other/);
  });
});
