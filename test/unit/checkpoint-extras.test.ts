/**
 * The drop-in output's extra tensors: every tensor of the anchor's checkpoint outside the encoder is written;
 * masked_spec_embed (hidden space) is merged after the other model's copy follows the residual permutation; a head
 * only the anchor has is copied as is.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Checkpoint, TensorInfo } from '../../server/src/engine/io/checkpoint';
import { loadEncoderConfig } from '../../server/src/engine/io/hfconfig';
import { openCheckpoint } from '../../server/src/engine/io/checkpoint';
import { checkpointExtras } from '../../server/src/engine/model/checkpoint-extras';
import { detectLayout } from '../../server/src/engine/model/weights';
import type { Tensor } from '../../server/src/engine/model/tensor';

const fixture = path.join(__dirname, '../fixtures/hf-reference/hubert-postln-a');

/** A real checkpoint with some tensors replaced or added. */
function withTensors(base: Checkpoint, extra: Record<string, Tensor>): Checkpoint {
  const info = (name: string): TensorInfo | undefined =>
    extra[name] ? { name, dtype: 'F32', shape: extra[name]!.shape } : base.info(name);
  return {
    file: base.file,
    tensors: () => [...base.tensors().filter((t) => !extra[t.name]), ...Object.keys(extra).map((n) => info(n)!)],
    has: (n) => Boolean(info(n)),
    info,
    read: async (n) => extra[n] ?? base.read(n),
    close: () => base.close(),
  };
}

const f32 = (bytes: Uint8Array) => Array.from(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));

describe('checkpoint extras (drop-in output)', () => {
  it('merges masked_spec_embed through the residual permutation and copies an anchor-only head', async () => {
    const cfg = await loadEncoderConfig(fixture);
    const D = cfg.hidden;
    const a = Float32Array.from({ length: D }, (_, i) => i);
    const b = Float32Array.from({ length: D }, (_, i) => 100 + i);
    const head = { shape: [3, D], data: Float32Array.from({ length: 3 * D }, (_, i) => -i) };
    const anchor = withTensors(await openCheckpoint(fixture), { masked_spec_embed: { shape: [D], data: a }, 'lm_head.weight': head });
    const other = withTensors(await openCheckpoint(fixture), { masked_spec_embed: { shape: [D], data: b } });
    const layout = detectLayout(
      anchor.tensors().map((t) => t.name),
      anchor.file,
    );
    const residual = Int32Array.from({ length: D }, (_, i) => D - 1 - i); // reversed
    const extras = await checkpointExtras({
      anchor,
      anchorLayout: layout,
      other,
      otherLayout: layout,
      config: cfg,
      residual,
      merge: { method: 'linear', lambda: 0.25, layers: cfg.layers, preLayerNorm: cfg.preLayerNorm },
    });
    try {
      expect(extras.tensors.map((t) => t.name).sort()).toEqual(['lm_head.weight', 'masked_spec_embed']);
      expect(extras.merged).toEqual(['masked_spec_embed']);
      const mse = extras.tensors.find((t) => t.name === 'masked_spec_embed')!;
      const got = f32(await mse.bytes());
      // new unit i of `other` = old unit p[i] = D − 1 − i; merged = λ·anchor + (1 − λ)·other.
      got.forEach((v, i) => expect(v).toBeCloseTo(0.25 * i + 0.75 * (100 + (D - 1 - i)), 4));
      const copied = extras.tensors.find((t) => t.name === 'lm_head.weight')!;
      expect(copied.shape).toEqual([3, D]);
      expect(f32(await copied.bytes())).toEqual(Array.from(head.data));
    } finally {
      await anchor.close();
      await other.close();
    }
  });
});
