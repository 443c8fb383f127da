import { describe, expect, it } from 'vitest';
import { halfBits, halfValue, toHalf } from '../../server/src/engine/model/half';
import { buildEncoderOnnx, hiddenStateOutputs } from '../../server/src/engine/model/encoder';
import { DataType, ModelProto } from '../../server/src/engine/model/onnx-proto';
import { randomWeights } from '../../server/src/engine/model/random';
import { createSession } from '../../server/src/engine/model/runtime';
import { tinyHubertConfig } from '../helpers/tiny-model';
import { engineError } from '../helpers/errors';

describe('float32 → float16 conversion', () => {
  it('round-trips every finite half exactly, and keeps ±Inf and NaN', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const v = halfValue(bits);
      if (Number.isNaN(v)) expect(Number.isNaN(halfValue(halfBits(v)))).toBe(true);
      else expect(halfBits(v)).toBe(bits);
    }
  });

  it('rounds to the nearest half, ties to even (as numpy astype(float16))', () => {
    // Between 1 and the next half (1 + 2^-10): below, at and above the midpoint.
    expect(halfBits(1 + 2 ** -11 - 2 ** -20)).toBe(0x3c00);
    expect(halfBits(1 + 2 ** -11)).toBe(0x3c00); // tie → even (1.0)
    expect(halfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie → even (1 + 2^-9)
    expect(halfBits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    // Subnormals: the smallest is 2^-24; half of it ties to zero, a bit more rounds up.
    expect(halfBits(2 ** -24)).toBe(0x0001);
    expect(halfBits(2 ** -25)).toBe(0x0000);
    expect(halfBits(2 ** -25 * 1.01)).toBe(0x0001);
    expect(halfBits(-(2 ** -14))).toBe(0x8400);
    // The largest half, rounding up into infinity, and overflow.
    expect(halfBits(65504)).toBe(0x7bff);
    expect(halfBits(65520)).toBe(0x7c00);
    expect(halfBits(1e6)).toBe(0x7c00);
    expect(halfBits(-1e6)).toBe(0xfc00);
  });

  it('agrees with a float64 nearest-value search on random values', () => {
    const values = Float32Array.from({ length: 2000 }, (_, i) => Math.sin(i * 12.9898) * 10 ** ((i % 11) - 7));
    const bits = toHalf(values);
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      const mine = halfValue(bits[i]!);
      // No other half is strictly closer (neighbours of the chosen one).
      for (const n of [bits[i]! - 1, bits[i]! + 1]) {
        if (n < 0 || n > 0xffff || (n & 0x7c00) === 0x7c00) continue;
        expect(Math.abs(halfValue(n) - v)).toBeGreaterThanOrEqual(Math.abs(mine - v));
      }
    }
  });
});

describe('runtime.precision fp16 graphs', () => {
  const cfg = tinyHubertConfig();
  const model = { config: cfg, weights: randomWeights(cfg, 1) };
  const outputs = hiddenStateOutputs(cfg);

  it('stores every float initializer as float16 and keeps a float32 interface (casts at the edges)', () => {
    const proto = ModelProto.decode(buildEncoderOnnx(model, outputs, { precision: 'fp16' })) as unknown as {
      graph: {
        initializer: { dataType: number; name: string }[];
        input: { name: string; type: { tensorType: { elemType: number } } }[];
        output: { name: string; type: { tensorType: { elemType: number } } }[];
        node: { opType: string; input: string[]; output: string[] }[];
      };
    };
    const g = proto.graph;
    const floatTypes = g.initializer.filter((t) => t.dataType === DataType.FLOAT || t.dataType === DataType.FLOAT16);
    expect(floatTypes.length).toBeGreaterThan(20);
    expect(floatTypes.every((t) => t.dataType === DataType.FLOAT16)).toBe(true);
    expect(g.input.map((i) => i.type.tensorType.elemType)).toEqual([DataType.FLOAT]);
    const consumers = g.node.filter((n) => n.input.includes('audio'));
    expect(consumers.map((n) => n.opType)).toEqual(['Cast']);
    expect(g.output.map((o) => o.name)).toEqual(outputs);
    for (const o of g.output) {
      expect(o.type.tensorType.elemType).toBe(DataType.FLOAT);
      expect(g.node.find((n) => n.output.includes(o.name))!.opType).toBe('Cast');
    }
    // The float32 graph has none of this.
    const plain = ModelProto.decode(buildEncoderOnnx(model, outputs)) as unknown as typeof proto;
    expect(plain.graph.node.some((n) => n.opType === 'Cast')).toBe(false);
    expect(plain.graph.initializer.some((t) => t.dataType === DataType.FLOAT16)).toBe(false);
  });

  it('is refused on the CPU backend with a message that says what to use', async () => {
    const e = await engineError(
      createSession(buildEncoderOnnx(model, outputs, { precision: 'fp16' }), { device: 'cpu', precision: 'fp16' }),
    );
    expect(e.code).toBe('backend-unavailable');
    expect(e.message).toMatch(/precision fp16 needs a GPU backend \(webgpu or cuda\).*Use precision fp32/);
  });
});
