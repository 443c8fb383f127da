// A frame-rate mismatch is reported once, as a frame-rate problem, without the conv-shape cascade that follows from it.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEncoderConfig, type EncoderConfig } from '../../server/src/engine/io/hfconfig';
import { checkPairCompatible } from '../../server/src/engine/model/pair-graph';
import { rateMismatch } from '../../server/src/engine/model/rates';
import { expectedShapes } from '../../server/src/engine/model/weights';
import type { ModelInfo } from '../../server/src/engine/recipe/disk';
import { compareModels } from '../../server/src/engine/recipe/semantic';

const fixture = path.join(__dirname, '../fixtures/hf-reference/hubert-postln-a');
const info = (config: EncoderConfig): ModelInfo => ({
  dir: 'x',
  config,
  checkpointFile: 'x/model.safetensors',
  shapes: expectedShapes(config),
  tensorCount: 0,
  parameterCount: 0,
  dtypes: {},
});
const range = { start: { line: 2, character: 9 }, end: { line: 2, character: 20 } };

describe('rate mismatch', () => {
  it('a different conv stack: one error about frames per second, none about tensor shapes', async () => {
    const anchor = await loadEncoderConfig(fixture);
    // Two conv layers fewer, with other kernels: another frame rate and other conv shapes.
    const n = anchor.convDims.length - 2;
    const other: EncoderConfig = {
      ...anchor,
      convDims: anchor.convDims.slice(0, n),
      convKernels: anchor.convKernels.slice(0, n).map((k) => k + 1),
      convStrides: anchor.convStrides.slice(0, n),
    };
    other.frameRate = other.sampleRate / other.convStrides.reduce((p, s) => p * s, 1);
    const diags = compareModels(info(anchor), info(other), range as never);
    expect(diags).toHaveLength(1);
    expect(diags[0]!.message).toMatch(
      /^models\.other produces \d+ frames\/s \(conv strides \[[\d, ]+\]: one frame per \d+ samples\), models\.anchor \d+ frames\/s/,
    );
    expect(diags[0]!.message).not.toMatch(/\d+ Hz \(\d+ frames\/s\)/);
    expect(() => checkPairCompatible(anchor, other)).toThrow(/the other model produces .* frames\/s .*the frame rates must match$/);
  });

  it('a different sample rate is said as the audio rate', async () => {
    const anchor = await loadEncoderConfig(fixture);
    expect(rateMismatch(anchor, { ...anchor, sampleRate: 24000, frameRate: 75 })).toMatch(
      /^models\.other takes 24000 Hz audio, models\.anchor 16000 Hz/,
    );
    expect(rateMismatch(anchor, anchor)).toBeUndefined();
  });
});
