import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { forward, loadEncoderModel, type EncoderModel, type ForwardResult } from '../../server/src/engine/model/encoder';
import { EmbeddingSession } from '../../server/src/engine/model/embed';
import { forwardLong, planWindows, pooledLong } from '../../server/src/engine/model/long-audio';
import { HF_REFERENCE } from '../helpers/reference';

/** Small windows (1 s, 0.2 s context) so that a 3.3 s clip needs six: the same code path as 30 s windows on hours. */
const SMALL = { windowSeconds: 1, contextSeconds: 0.2 };

function clip(seconds: number, rate: number): Float32Array {
  const n = Math.round(seconds * rate);
  const x = new Float32Array(n);
  let s = 7;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    x[i] = 0.3 * Math.sin(i * 0.05) + 0.1 * (s / 2 ** 32 - 0.5) + 0.05;
  }
  return x;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function sameBits(a: ForwardResult, b: ForwardResult): boolean {
  const eq = (x: Float32Array, y: Float32Array) =>
    Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  return (
    a.frames === b.frames &&
    eq(a.convFeatures, b.convFeatures) &&
    a.hiddenStates.every((h, k) => eq(h, b.hiddenStates[k]!)) &&
    eq(a.lastHiddenState, b.lastHiddenState)
  );
}

const load = (name: string) => loadEncoderModel(path.join(HF_REFERENCE, name));

describe('windowed forward for long audio', () => {
  it('plans windows whose kept frames tile the clip, each with its context inside the window', async () => {
    const { config } = await load('hubert-postln-a');
    for (const frames of [1, 49, 50, 51, 164, 1000, 1001]) {
      const ws = planWindows(config, frames, SMALL);
      let next = 0;
      for (const w of ws) {
        expect(w.keepStart).toBe(next);
        next = w.keepEnd;
        expect(w.start).toBeLessThanOrEqual(w.keepStart);
        expect(w.end).toBeGreaterThanOrEqual(w.keepEnd);
        expect(w.end - w.start).toBeLessThanOrEqual(50);
        // Context on each side of the kept frames, except at the clip's own edges.
        if (w.start > 0) expect(w.keepStart - w.start).toBeGreaterThanOrEqual(10);
        if (w.end < frames) expect(w.end - w.keepEnd).toBeGreaterThanOrEqual(10);
      }
      expect(next).toBe(frames);
    }
    expect(planWindows(config, 30 * 50, {})).toHaveLength(1); // 30 s at 50 Hz: one window by default
    expect(planWindows(config, 10 * 60 * 50, {})).toHaveLength(30); // 10 min: 20 s kept per window
  });

  it('audio that fits one window: bit-identical to the unwindowed forward', async () => {
    const model = await load('hubert-postln-a');
    const x = clip(0.9, model.config.sampleRate);
    const [a, b] = [await forward(model, x), await forwardLong(model, x, SMALL)];
    expect(b.windows).toBe(1);
    expect(sameBits(a, b)).toBe(true);
  });

  for (const name of ['hubert-postln-a', 'hubert-preln', 'wav2vec2-postln'] as const) {
    it(`${name}: same frame count; conv features and hidden_states[0] equal the unwindowed model's; later layers differ by attention's reach`, async () => {
      const model = await load(name);
      const x = clip(3.3, model.config.sampleRate);
      const full = await forward(model, x);
      const win = await forwardLong(model, x, SMALL);
      expect(win.windows).toBe(6);
      expect(win.frames).toBe(full.frames);
      const exact = model.config.featExtractNorm === 'layer';
      // Layer-norm front ends are bit-exact; GroupNorm ones differ only by float32 rounding of the clip statistics.
      expect(maxAbsDiff(win.convFeatures, full.convFeatures)).toBeLessThanOrEqual(exact ? 0 : 1e-5);
      expect(maxAbsDiff(win.hiddenStates[0]!, full.hiddenStates[0]!)).toBeLessThanOrEqual(exact ? 0 : 5e-5);
      const last = win.hiddenStates.length - 1;
      expect(maxAbsDiff(win.hiddenStates[last]!, full.hiddenStates[last]!)).toBeGreaterThan(1e-4); // 1-s windows: attention differs
      expect(maxAbsDiff(win.hiddenStates[last]!, full.hiddenStates[last]!)).toBeLessThan(0.1);
    });
  }

  it('do_normalize is applied with whole-clip statistics, not per window', async () => {
    const base = await load('hubert-preln');
    const model: EncoderModel = { ...base, config: { ...base.config, normalizeInput: true } };
    // A clip whose loudness grows 4× from start to end: each window's own variance differs from the clip's.
    const x = clip(3.3, model.config.sampleRate).map((v, i, a) => v * (1 + (3 * i) / a.length));
    const full = await forward(model, x);
    const win = await forwardLong(model, x, SMALL);
    expect(maxAbsDiff(win.convFeatures, full.convFeatures)).toBeLessThan(1e-4);
    // The unwindowed model on the last window alone (its own normalisation) is far from the clip's features there.
    const last = planWindows(model.config, full.frames, SMALL).at(-1)!;
    const alone = await forward(model, x.subarray(last.start * 320, (last.end - 1) * 320 + 400));
    const channels = full.convChannels;
    const tail = full.convFeatures.subarray(last.start * channels, last.end * channels);
    expect(maxAbsDiff(alone.convFeatures, tail)).toBeGreaterThan(1e-2);
  });

  it('evaluation embeddings of a clip longer than a window: the frame mean of the windowed hidden states', async () => {
    const model = await load('hubert-postln-a');
    const { layers, hidden } = model.config;
    const meanOf = (r: ForwardResult) =>
      r.hiddenStates.flatMap((h) =>
        Array.from({ length: hidden }, (_, d) => {
          let sum = 0;
          for (let t = 0; t < r.frames; t++) sum += h[t * hidden + d]!;
          return sum / r.frames;
        }),
      );
    const x = clip(3.3, model.config.sampleRate);
    const pooled = await pooledLong(model, x, SMALL);
    expect(pooled).toHaveLength((layers + 1) * hidden);
    const expected = meanOf(await forwardLong(model, x, SMALL));
    expect(maxAbsDiff(pooled, Float32Array.from(expected))).toBeLessThan(1e-5);
    // Through EmbeddingSession with the default 30-s windows: a 31-s clip is windowed, a 2-s one is not.
    const session = await EmbeddingSession.create(model);
    try {
      const long = clip(31, model.config.sampleRate);
      const short = clip(2, model.config.sampleRate);
      const e = await session.embed([short, long]);
      expect(e.shape).toEqual([2, layers + 1, hidden]);
      const row = (layers + 1) * hidden;
      expect(maxAbsDiff(e.data.subarray(row), Float32Array.from(meanOf(await forwardLong(model, long))))).toBeLessThan(1e-5);
      expect(maxAbsDiff(e.data.subarray(0, row), Float32Array.from(meanOf(await forward(model, short))))).toBeLessThan(1e-5);
    } finally {
      await session.release();
    }
  });
});
