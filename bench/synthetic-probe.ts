/**
 * A synthetic probe set for benchmarks: `totalSeconds` of tones plus a little noise in segments of `segmentSeconds`,
 * each segment's samples made when a batch reads them (the probe's own memory is not what the statistics step is
 * measured for). Seeded per segment, so every run and every backend sees the same audio.
 */
import type { ProbeSet } from '../server/src/engine/io/probe';
import { mulberry32 } from '../server/src/engine/random';

export function syntheticProbe(totalSeconds: number, segmentSeconds: number, rate: number): ProbeSet {
  const segmentSamples = Math.round(segmentSeconds * rate);
  const n = Math.max(1, Math.round(totalSeconds / segmentSeconds));
  const segments = Array.from({ length: n }, (_, i) => ({
    source: 0,
    file: `synthetic-${i}`,
    offsetSamples: 0,
    offsetSeconds: 0,
    paddedSamples: 0,
    get samples() {
      const rand = mulberry32(3 + i);
      return Float32Array.from(
        { length: segmentSamples },
        (_, t) => 0.2 * Math.sin((2 * Math.PI * (110 + 40 * i) * t) / rate) + 0.05 * (rand() - 0.5),
      );
    },
  }));
  return {
    sampleRate: rate,
    segmentSeconds,
    segmentSamples,
    seed: 0,
    segments,
    sources: [],
    totalSegments: n,
    totalSeconds: n * segmentSeconds,
  } as unknown as ProbeSet;
}
