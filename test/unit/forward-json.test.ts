import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeForwardJson } from '../../server/src/cli/forward';
import type { ForwardResult } from '../../server/src/engine/model/encoder';
import { mulberry32 } from '../../server/src/engine/random';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();

/** A result with float32 values of every magnitude: large enough that the text spans several write chunks. */
function result(frames: number, hidden: number, layers: number): ForwardResult & { windows: number } {
  const rand = mulberry32(5);
  const values = (n: number) => Float32Array.from({ length: n }, () => (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 6));
  return {
    frames,
    frameRate: 50,
    convFeatures: values(frames * 24),
    convChannels: 24,
    hiddenStates: Array.from({ length: layers + 1 }, () => values(frames * hidden)),
    lastHiddenState: values(frames * hidden),
    hidden,
    backend: 'cpu',
    windows: 2,
  };
}

/** The document as a whole, stringified at once (what the streamed text must equal). */
function wholeDocument(r: ForwardResult & { windows: number }): string {
  const rows = (data: Float32Array) => {
    const dim = data.length / r.frames;
    return Array.from({ length: r.frames }, (_, t) => Array.from(data.subarray(t * dim, (t + 1) * dim)));
  };
  return JSON.stringify({
    frame_rate: r.frameRate,
    frames: r.frames,
    backend: r.backend,
    windows: r.windows,
    conv_features: rows(r.convFeatures),
    hidden_states: r.hiddenStates.map(rows),
    last_hidden_state: rows(r.lastHiddenState),
  });
}

describe('forward --out JSON, written a row at a time', () => {
  it('is exactly the text of the whole document stringified at once', async () => {
    const r = result(400, 64, 3);
    const file = path.join(tempDir(), 'out.json');
    await writeForwardJson(file, r);
    const text = readFileSync(file, 'utf8');
    expect(text.length).toBeGreaterThan(2 << 20); // more than two 1-MiB chunks
    expect(text).toBe(wholeDocument(r));
    expect(readdirSync(path.dirname(file))).toEqual(['out.json']);
  });

  it('leaves nothing behind when the file cannot be written', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'missing-folder', 'out.json');
    await expect(writeForwardJson(file, result(4, 8, 1))).rejects.toThrow(/ENOENT/);
    expect(existsSync(path.dirname(file))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});
