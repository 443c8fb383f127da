import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EncoderSession, loadEncoderModel } from '../../server/src/engine/model/encoder';
import { checkPairCompatible, PairStatisticsSession } from '../../server/src/engine/model/pair-graph';
import { randomWeights } from '../../server/src/engine/model/random';
import { mulberry32 } from '../../server/src/engine/random';
import type { TapName } from '../../server/src/engine/model/taps';
import { HF_REFERENCE, maxRelativeError } from '../helpers/reference';

/** Float64 centred moments of [rows × d] activations, computed directly. */
function reference(x: Float32Array, y: Float32Array, rows: number) {
  const da = x.length / rows;
  const db = y.length / rows;
  const mean = (v: Float32Array, d: number) => {
    const m = new Float64Array(d);
    for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) m[j]! += v[r * d + j]! / rows;
    return m;
  };
  const ma = mean(x, da);
  const mb = mean(y, db);
  const m2 = (v: Float32Array, d: number, m: Float64Array) => {
    const out = new Float64Array(d);
    for (let r = 0; r < rows; r++) for (let j = 0; j < d; j++) out[j]! += (v[r * d + j]! - m[j]!) ** 2;
    return out;
  };
  const cross = new Float64Array(da * db);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < da; i++) for (let j = 0; j < db; j++) cross[i * db + j]! += (x[r * da + i]! - ma[i]!) * (y[r * db + j]! - mb[j]!);
  return { ma, mb, m2a: m2(x, da, ma), m2b: m2(y, db, mb), cross };
}

/** [batch, C, T] → [batch·T, C] */
function framesFirst(t: { dims: readonly number[]; data: unknown }): Float32Array {
  const [B, C, T] = t.dims as [number, number, number];
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length);
  for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let s = 0; s < T; s++) out[(b * T + s) * C + c] = src[(b * C + c) * T + s]!;
  return out;
}

describe('pair statistics graph', () => {
  it('reduces both encoders’ taps to the same centred moments as a float64 reference', async () => {
    const anchor = await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'));
    const other = { config: anchor.config, weights: randomWeights(anchor.config, 3) };
    const taps: TapName[] = ['conv.3', 'proj', 'layer.0.attn', 'layer.1.ffn', 'layer.2.out'];
    const rand = mulberry32(5);
    const batch = 2;
    const audio = Float32Array.from({ length: batch * 6000 }, (_, i) => 0.3 * Math.sin(i / 7) + 0.1 * (rand() - 0.5));

    // The front end on the whole batch: one moment per tap, over the rows the reference sees.
    const pair = await PairStatisticsSession.create(anchor, other, taps, { device: 'cpu', passes: { frontBatch: 0 } });
    const moments = await pair.run(audio, batch);
    // Pass by pass, with each pass's outputs collected once handed on: the same moments, copied by the sink.
    const handed: { tap: string; cross: Float32Array; meanA: Float32Array }[][] = [];
    await pair.runEach(audio, batch, (ms) => handed.push(ms.map((m) => ({ tap: m.tap, cross: m.cross.slice(), meanA: m.meanA.slice() }))));
    await pair.release();
    expect(handed.length).toBe(pair.passCount);
    expect(handed.flat().map((m) => m.tap)).toEqual(moments.map((m) => m.tap));
    handed.flat().forEach((m, i) => {
      expect(m.cross).toEqual(moments[i]!.cross);
      expect(m.meanA).toEqual(moments[i]!.meanA);
    });
    const sa = await EncoderSession.create(anchor, taps, { device: 'cpu' });
    const sb = await EncoderSession.create(other, taps, { device: 'cpu' });
    const [oa, ob] = [await sa.run(audio, batch), await sb.run(audio, batch)];
    await Promise.all([sa.release(), sb.release()]);

    for (const m of moments) {
      const ta = oa.get(m.tap)!;
      const tb = ob.get(m.tap)!;
      const x = m.tap.startsWith('conv.') ? framesFirst(ta) : (ta.data as Float32Array);
      const y = m.tap.startsWith('conv.') ? framesFirst(tb) : (tb.data as Float32Array);
      expect(m.n, m.tap).toBe(x.length / m.dimA);
      const ref = reference(x, y, m.n);
      expect(maxRelativeError(m.meanA, ref.ma), `${m.tap} mean a`).toBeLessThan(1e-4);
      expect(maxRelativeError(m.meanB, ref.mb), `${m.tap} mean b`).toBeLessThan(1e-4);
      expect(maxRelativeError(m.m2A, ref.m2a), `${m.tap} m2 a`).toBeLessThan(1e-4);
      expect(maxRelativeError(m.m2B, ref.m2b), `${m.tap} m2 b`).toBeLessThan(1e-4);
      expect(maxRelativeError(m.cross, ref.cross), `${m.tap} cross`).toBeLessThan(1e-4);
    }
  });

  it('refuses pairs with different frame rates or shapes, naming the difference', async () => {
    const a = (await loadEncoderModel(path.join(HF_REFERENCE, 'hubert-postln-a'))).config;
    expect(() => checkPairCompatible(a, { ...a, sampleRate: 24000, frameRate: 75 })).toThrow(
      /the other model takes 24000 Hz audio, the anchor 16000 Hz/,
    );
    expect(() => checkPairCompatible(a, { ...a, intermediate: 128 })).toThrow(/intermediate differs \(256 vs 128\)/);
  });
});
