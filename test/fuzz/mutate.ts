/** Byte-level mutations shared by the loader and decoder fuzz files: each returns a new buffer, the input is kept. */
import type { Rng } from './fuzz-util';

/** Values that break parsers: zero, one, sign bits, all-ones, and sizes just past what fits. */
const INTERESTING_32 = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

export type Mutation = (b: Buffer, rng: Rng) => Buffer;

export const MUTATIONS: Record<string, Mutation> = {
  flipBits(b, rng) {
    const out = Buffer.from(b);
    for (let k = rng.int(1, 8); k > 0 && out.length; k--) out[rng.int(0, out.length - 1)]! ^= 1 << rng.int(0, 7);
    return out;
  },
  randomBytes(b, rng) {
    const out = Buffer.from(b);
    if (!out.length) return out;
    const at = rng.int(0, out.length - 1);
    out.set(rng.bytes(Math.min(out.length - at, rng.int(1, 64))), at);
    return out;
  },
  interesting32(b, rng) {
    const out = Buffer.from(b);
    if (out.length < 4) return out;
    for (let k = rng.int(1, 3); k > 0; k--) out.writeUInt32LE(rng.pick(INTERESTING_32), rng.int(0, out.length - 4));
    return out;
  },
  interesting64(b, rng) {
    const out = Buffer.from(b);
    if (out.length < 8) return out;
    const v = rng.pick([
      0n,
      1n,
      0xffffffffn,
      0x100000000n,
      1n << 53n,
      (1n << 63n) - 1n,
      (1n << 64n) - 1n,
      BigInt(out.length),
      BigInt(out.length + 1),
    ]);
    out.writeBigUInt64LE(v, rng.int(0, out.length - 8));
    return out;
  },
  truncate(b, rng) {
    return b.subarray(0, rng.int(0, b.length));
  },
  insert(b, rng) {
    const at = rng.int(0, b.length);
    return Buffer.concat([b.subarray(0, at), Buffer.from(rng.bytes(rng.int(1, 256))), b.subarray(at)]);
  },
  duplicateRange(b, rng) {
    if (b.length < 2) return Buffer.from(b);
    const from = rng.int(0, b.length - 1);
    const len = rng.int(1, Math.min(4096, b.length - from));
    const at = rng.int(0, b.length);
    return Buffer.concat([b.subarray(0, at), b.subarray(from, from + len), b.subarray(at)]);
  },
  deleteRange(b, rng) {
    if (b.length < 2) return Buffer.from(b);
    const from = rng.int(0, b.length - 1);
    return Buffer.concat([b.subarray(0, from), b.subarray(Math.min(b.length, from + rng.int(1, 512)))]);
  },
  appendGarbage(b, rng) {
    return Buffer.concat([b, Buffer.from(rng.bytes(rng.int(1, 128)))]);
  },
};

/** One to three mutations drawn from `names` (default: all). */
export function mutate(b: Buffer, rng: Rng, names: readonly string[] = Object.keys(MUTATIONS)): { bytes: Buffer; applied: string[] } {
  let out = b;
  const applied: string[] = [];
  for (let k = rng.int(1, 3); k > 0; k--) {
    const name = rng.pick(names);
    applied.push(name);
    out = MUTATIONS[name]!(out, rng);
  }
  return { bytes: out, applied };
}
