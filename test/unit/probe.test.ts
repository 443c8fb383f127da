import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../server/src/engine/errors';
import { loadAudio } from '../../server/src/engine/io/audio';
import { buildProbeSet, convFrames, cutSegments, describeProbe, iterateBatches, type ProbeOptions } from '../../server/src/engine/io/probe';
import { mulberry32 } from '../../server/src/engine/random';
import { engineError } from '../helpers/errors';

const dir = path.resolve(__dirname, '../fixtures/audio');
const fx = (name: string) => path.join(dir, name);
const base: ProbeOptions = { sources: [], baseDir: dir, sampleRate: 16000, segmentSeconds: 0.1, maxSeconds: 100, seed: 0 };
const provenance = (p: { segments: { file: string; offsetSamples: number; paddedSamples: number }[] }) =>
  p.segments.map((s) => `${path.relative(dir, s.file)}@${s.offsetSamples}+${s.paddedSamples}`);

describe('convFrames', () => {
  const K = [10, 3, 3, 3, 3, 2, 2];
  const S = [5, 2, 2, 2, 2, 2, 2];
  it('matches the wav2vec2/HuBERT feature encoder', () => {
    expect(convFrames(16000, K, S)).toBe(49); // 1 s at 16 kHz → 49 frames (20 ms hop, 25 ms field)
    expect(convFrames(80000, K, S)).toBe(249); // a 5 s probe segment
    expect(convFrames(24000, K, S)).toBe(74); // 1 s for MERT-v1 at 24 kHz
    expect(convFrames(400, K, S)).toBe(1); // the receptive field
    expect(convFrames(399, K, S)).toBe(0);
    expect(convFrames(0, K, S)).toBe(0);
    expect(convFrames(100, [], [])).toBe(100);
  });
  it('agrees with the layer-by-layer definition on many lengths', () => {
    for (let n = 390; n < 5000; n += 7) {
      let m = n;
      for (let i = 0; i < K.length; i++) m = m >= K[i]! ? Math.floor((m - K[i]!) / S[i]!) + 1 : 0;
      expect(convFrames(n, K, S)).toBe(m);
    }
  });
  it('rejects mismatched or invalid layers', () => {
    expect(() => convFrames(100, [10, 3], [5])).toThrow(EngineError);
    expect(() => convFrames(100, [0], [1])).toThrow(/kernel 0/);
  });
});

describe('cutSegments', () => {
  const audio = Float32Array.from({ length: 1050 }, (_, i) => i + 1);
  it('keeps a remainder of at least half a segment, zero-padded; drops a shorter one', () => {
    const seg = cutSegments(audio, 300, 0, 'f', 1000); // 3 × 300 + 150 (exactly half: kept)
    expect(seg.map((s) => [s.offsetSamples, s.paddedSamples])).toEqual([
      [0, 0],
      [300, 0],
      [600, 0],
      [900, 150],
    ]);
    expect(seg.every((s) => s.samples.length === 300)).toBe(true);
    expect(seg[1]!.samples[0]).toBe(301);
    expect(Array.from(seg[3]!.samples.subarray(148, 152))).toEqual([1049, 1050, 0, 0]);
    expect(seg[3]!.offsetSeconds).toBe(0.9);
    const short = cutSegments(audio, 400, 0, 'f', 1000); // 2 × 400 + 250 (≥ 200: kept) → 3
    expect(short.length).toBe(3);
    expect(cutSegments(audio, 320, 0, 'f', 1000).length).toBe(3); // 3 × 320 + 90 (< 160: dropped)
    expect(cutSegments(audio.subarray(0, 100), 300, 0, 'f', 1000).length).toBe(0);
  });
});

describe('buildProbeSet', () => {
  it('cuts one file into exact segments whose samples are the resampled audio at the recorded offsets', async () => {
    const probe = await buildProbeSet({ ...base, sources: ['tone-16k.wav'], segmentSeconds: 0.4 });
    // 1.5 s = 3 × 0.4 s + 0.3 s (≥ 0.2 s: one more segment, padded with 0.1 s of zeros)
    expect(probe.segmentSamples).toBe(6400);
    expect(probe.totalSegments).toBe(4);
    expect(probe.totalSeconds).toBeCloseTo(1.6, 12);
    const audio = await loadAudio(fx('tone-16k.wav'), 16000);
    for (const s of probe.segments) {
      expect(s.file).toBe(fx('tone-16k.wav'));
      expect(s.samples.length).toBe(6400);
      const real = 6400 - s.paddedSamples;
      expect(Array.from(s.samples.subarray(0, real))).toEqual(Array.from(audio.subarray(s.offsetSamples, s.offsetSamples + real)));
      expect(s.samples.subarray(real).every((v) => v === 0)).toBe(true);
      expect(s.offsetSeconds).toBeCloseTo(s.offsetSamples / 16000, 12);
    }
    expect(probe.segments.map((s) => s.offsetSamples).sort((a, b) => a - b)).toEqual([0, 6400, 12800, 19200]);
    expect(probe.segments.find((s) => s.offsetSamples === 19200)!.paddedSamples).toBe(1600);
    expect(probe.sources[0]).toMatchObject({ source: 'tone-16k.wav', filesListed: 1, filesDecoded: 1, segments: 4, decodedSeconds: 1.5 });
    expect(probe.sources[0]!.files).toEqual([{ file: fx('tone-16k.wav'), segments: 4 }]);
  });

  it('drops a remainder shorter than half a segment', async () => {
    const probe = await buildProbeSet({ ...base, sources: ['tone-16k.wav'], segmentSeconds: 0.7 }); // 2 × 0.7 + 0.1
    expect(probe.totalSegments).toBe(2);
    expect(probe.segments.every((s) => s.paddedSamples === 0)).toBe(true);
  });

  it('resamples every file of a folder (16 kHz WAV, 16 kHz FLAC, 44.1 kHz MP3) to the probe rate', async () => {
    const probe = await buildProbeSet({ ...base, sources: ['nested'], sampleRate: 24000 });
    // 0.25 s → 2 × 0.1 s + 0.05 s (exactly half: kept); the MP3 is 0.5 s → 5 segments
    expect(probe.sources[0]!.files.map((f) => [path.relative(dir, f.file), f.segments])).toEqual([
      ['nested/a/deep/two.FLAC', 3],
      ['nested/a/one.wav', 3],
      ['nested/b/three.Mp3', 5],
    ]);
    expect(probe.segments.every((s) => s.samples.length === 2400)).toBe(true);
    expect(probe.sources[0]!.decodedSeconds).toBeCloseTo(1, 12);
  });

  it('is deterministic for a seed, and a different seed gives a different order', async () => {
    const opts = { ...base, sources: ['nested', 'tone-16k.wav'], segmentSeconds: 0.05 };
    const a = await buildProbeSet(opts);
    const b = await buildProbeSet(opts);
    expect(provenance(b)).toEqual(provenance(a));
    expect(b.segments.map((s) => Array.from(s.samples))).toEqual(a.segments.map((s) => Array.from(s.samples)));
    const c = await buildProbeSet({ ...opts, seed: 1 });
    expect(provenance(c)).not.toEqual(provenance(a));
    expect([...provenance(c)].sort()).toEqual([...provenance(a)].sort()); // uncapped: the same segments, reordered
  });

  it('caps each source at maxSeconds independently, and sources draw from independent streams', async () => {
    const capped = await buildProbeSet({ ...base, sources: ['tone-16k.wav', 'nested'], maxSeconds: 0.3 });
    expect(capped.sources.map((s) => s.segments)).toEqual([3, 3]);
    expect(capped.totalSegments).toBe(6);
    expect(capped.totalSeconds).toBeCloseTo(0.6, 12);
    expect(capped.segments.slice(0, 3).every((s) => s.source === 0 && s.file === fx('tone-16k.wav'))).toBe(true);
    expect(capped.segments.slice(3).every((s) => s.source === 1)).toBe(true);
    // the tone's segments do not depend on what other sources follow it
    const alone = await buildProbeSet({ ...base, sources: ['tone-16k.wav'], maxSeconds: 0.3 });
    expect(provenance(alone)).toEqual(provenance(capped).slice(0, 3));
    // a cap that a 1.5 s file covers stops the walk over the folder after the first file
    expect(capped.sources[1]!.filesDecoded).toBe(1);
    expect(capped.sources[1]!.filesListed).toBe(3);
  });

  it('tags each source with its probe.domains entry, as written; a source in no list has no domain', async () => {
    const sources = ['tone-16k.wav', 'nested'];
    const tagged = await buildProbeSet({ ...base, sources, maxSeconds: 0.3, domains: { anchor: ['nested'], other: ['tone-16k.wav'] } });
    expect(tagged.sources.map((s) => s.domain)).toEqual(['other', 'anchor']);
    const partly = await buildProbeSet({ ...base, sources, maxSeconds: 0.3, domains: { anchor: ['./nested'], other: ['tone-16k.wav'] } });
    expect(partly.sources.map((s) => s.domain)).toEqual(['other', undefined]);
    expect('domain' in (await buildProbeSet({ ...base, sources, maxSeconds: 0.3 })).sources[0]!).toBe(false);
  });

  it('reports progress per file and honours cancellation', async () => {
    const events: unknown[] = [];
    await buildProbeSet({ ...base, sources: ['nested'], progress: (e) => events.push(e) });
    // One event as each of the 3 files starts, and one when decoding ends: the bar ends at 3/3.
    expect(events).toHaveLength(4);
    expect(events[0]).toMatchObject({ type: 'progress', stage: 'probe', done: 0, total: 3 });
    expect(events[3]).toMatchObject({ type: 'progress', stage: 'probe', done: 3, total: 3 });
    const e = await engineError(buildProbeSet({ ...base, sources: ['nested'], signal: AbortSignal.abort() }));
    expect(e.code).toBe('cancelled');
  });

  describe('errors', () => {
    const tmp = mkdtempSync(path.join(tmpdir(), 'probe-'));
    afterAll(() => rmSync(tmp, { recursive: true, force: true }));

    it('a missing source → file-not-found naming it', async () => {
      const e = await engineError(buildProbeSet({ ...base, sources: ['nested', 'no-such-folder'] }));
      expect(e.code).toBe('file-not-found');
      expect(e.message).toMatch(/^no-such-folder: /);
    });

    it('a folder without audio, and one whose files are all too short', async () => {
      mkdirSync(path.join(tmp, 'empty'));
      let e = await engineError(buildProbeSet({ ...base, baseDir: tmp, sources: ['empty'] }));
      expect(e.code).toBe('bad-audio');
      expect(e.message).toBe('empty: no .wav, .flac or .mp3 files in this probe folder');
      e = await engineError(buildProbeSet({ ...base, sources: ['nested/a'], segmentSeconds: 1, maxSeconds: 10 }));
      expect(e.message).toMatch(/^nested\/a: every file is shorter than half a segment \(0.5 s\)/);
    });

    it('a bad file inside a source stops the build with its own message', async () => {
      mkdirSync(path.join(tmp, 'mixed'));
      copyFileSync(fx('sine440-16k-i16.wav'), path.join(tmp, 'mixed', 'good.wav'));
      copyFileSync(fx('alaw.wav'), path.join(tmp, 'mixed', 'phone.wav'));
      const e = await engineError(buildProbeSet({ ...base, baseDir: tmp, sources: ['mixed'] }));
      expect(e.code).toBe('unsupported-audio');
      expect(e.file).toBe(path.join(tmp, 'mixed', 'phone.wav'));
    });

    it('invalid options → bad-config', async () => {
      for (const bad of [
        { sources: [] },
        { sources: ['tone-16k.wav'], maxSeconds: 0.05 },
        { sources: ['tone-16k.wav'], segmentSeconds: 0 },
        { sources: ['tone-16k.wav'], sampleRate: 16000.5 },
        { sources: ['tone-16k.wav'], seed: 0.5 },
      ]) {
        const e = await engineError(buildProbeSet({ ...base, ...bad }));
        expect(e.code, JSON.stringify(bad)).toBe('bad-config');
      }
    });
  });
});

describe('describeProbe', () => {
  it('gives a JSON-safe provenance with relative paths', async () => {
    const probe = await buildProbeSet({ ...base, sources: ['nested/b', 'tone-16k.wav'], segmentSeconds: 0.4, maxSeconds: 10 });
    const d = describeProbe(probe, dir);
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
    expect(d.sources.map((s) => [s.source, s.path, s.segments, s.files])).toEqual([
      ['nested/b', 'nested/b', 1, [{ file: 'nested/b/three.Mp3', segments: 1 }]], // 0.5 s = 0.4 + 0.1 (dropped)
      ['tone-16k.wav', 'tone-16k.wav', 4, [{ file: 'tone-16k.wav', segments: 4 }]],
    ]);
    expect(d.segments).toHaveLength(5);
    expect(d.segments.filter((s) => s.paddedSeconds > 0)).toEqual([
      { source: 1, file: 'tone-16k.wav', offsetSeconds: 1.2, paddedSeconds: 0.1 },
    ]);
  });
});

describe('iterateBatches', () => {
  it('packs segments row-major into [batch, samples] with a short last batch', async () => {
    const probe = await buildProbeSet({ ...base, sources: ['tone-16k.wav'], segmentSeconds: 0.3 }); // 5 segments
    const batches = [...iterateBatches(probe, 2)];
    expect(batches.map((b) => [b.dims, b.start])).toEqual([
      [[2, 4800], 0],
      [[2, 4800], 2],
      [[1, 4800], 4],
    ]);
    for (const b of batches) {
      expect(b.data.length).toBe(b.dims[0] * b.dims[1]);
      for (let r = 0; r < b.dims[0]; r++) {
        expect(Array.from(b.data.subarray(r * 4800, (r + 1) * 4800))).toEqual(Array.from(probe.segments[b.start + r]!.samples));
      }
    }
    expect([...iterateBatches(probe, 8)].map((b) => b.dims)).toEqual([[5, 4800]]);
    expect(() => [...iterateBatches(probe, 0)]).toThrow(EngineError);
  });
});

describe('mulberry32', () => {
  it('is deterministic per seed, in [0, 1), and roughly uniform', () => {
    const a = mulberry32(42),
      b = mulberry32(42),
      c = mulberry32(43);
    const xs = Array.from({ length: 10000 }, () => a());
    expect(Array.from({ length: 10000 }, () => b())).toEqual(xs);
    expect(c()).not.toBe(xs[0]);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
  });
});
