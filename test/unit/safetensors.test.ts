import { promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../server/src/engine/io/checkpoint';
import { MAX_HEADER_BYTES, SafetensorsFile, writeSafetensors } from '../../server/src/engine/io/safetensors';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();

/** Builds a safetensors file by hand so that tests control every byte. */
function safetensorsBytes(header: object, data: Uint8Array, opts: { declaredLength?: bigint } = {}): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.declaredLength ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

async function write(bytes: Buffer, name = 'model.safetensors'): Promise<string> {
  const file = path.join(tempDir(), name);
  await fs.writeFile(file, bytes);
  return file;
}

const f32 = (...v: number[]) => new Uint8Array(new Float32Array(v).buffer);

describe('safetensors reader', () => {
  it('reads F32, F16 and BF16 tensors lazily, upcast to float32', async () => {
    const f16 = new Uint16Array([0x3c00, 0xc000, 0x3555]); // 1, -2, 0.333
    const bf16 = new Uint16Array([0x3f80, 0x4049]); // 1, 3.140625
    const data = Buffer.concat([Buffer.from(f32(1.5, -2.25)), Buffer.from(f16.buffer), Buffer.from(bf16.buffer)]);
    const file = await write(
      safetensorsBytes(
        {
          __metadata__: { format: 'pt' },
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          h: { dtype: 'F16', shape: [3], data_offsets: [8, 14] },
          b: { dtype: 'BF16', shape: [1, 2], data_offsets: [14, 18] },
        },
        data,
      ),
    );
    const st = await SafetensorsFile.open(file);
    expect(
      st
        .tensors()
        .map((t) => t.name)
        .sort(),
    ).toEqual(['a', 'b', 'h']);
    expect(st.metadata.format).toBe('pt');
    expect(Array.from((await st.read('a')).data)).toEqual([1.5, -2.25]);
    const h = (await st.read('h')).data;
    expect(h[0]).toBe(1);
    expect(h[1]).toBe(-2);
    expect(h[2]).toBeCloseTo(0.333, 3);
    const b = await st.read('b');
    expect(b.shape).toEqual([1, 2]);
    expect(Array.from(b.data)).toEqual([1, 3.140625]);
    await st.close();
  });

  it('round-trips through the atomic writer and leaves no temporary file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'model.safetensors');
    await writeSafetensors(
      file,
      [
        ['w', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
        ['b', { shape: [3], data: Float32Array.from([-1, 0, 1]) }],
      ],
      { note: 'x' },
    );
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
    const st = await SafetensorsFile.open(file);
    expect(st.metadata.note).toBe('x');
    expect(Array.from((await st.read('w')).data)).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await st.read('b')).shape).toEqual([3]);
    await st.close();
  });

  it('a failed write leaves neither the target nor a temporary file', async () => {
    const dir = tempDir();
    const missing = path.join(dir, 'no-such-folder', 'model.safetensors');
    await expect(writeSafetensors(missing, [['w', { shape: [1], data: Float32Array.from([1]) }]])).rejects.toThrow(/cannot write/);
    expect(readdirSync(dir)).toEqual([]);
    // The rename fails when the target is a folder: the temporary file must go too.
    const target = path.join(dir, 'model.safetensors');
    await fs.mkdir(path.join(target, 'occupied'), { recursive: true });
    await expect(writeSafetensors(target, [['w', { shape: [1], data: Float32Array.from([1]) }]])).rejects.toMatchObject({
      code: 'io-error',
    });
    expect(readdirSync(dir)).toEqual(['model.safetensors']);
  });

  const corrupt: [string, () => Buffer, RegExp][] = [
    ['a file shorter than the length prefix', () => Buffer.from([1, 2, 3]), /shorter than the 8-byte header length/],
    [
      'a header length past the end of the file',
      () => safetensorsBytes({}, new Uint8Array(), { declaredLength: 4096n }),
      /runs past the end of the .*truncated/,
    ],
    [
      'a huge header length',
      () => safetensorsBytes({}, new Uint8Array(), { declaredLength: BigInt(MAX_HEADER_BYTES) + 1n }),
      /exceeds the .*-byte limit/,
    ],
    [
      'a header that is not JSON',
      () => Buffer.concat([Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{nope')]),
      /header is not valid JSON/,
    ],
    ['a header that is a list', () => safetensorsBytes([1, 2] as unknown as object, new Uint8Array()), /not a JSON object/],
    ['an unknown dtype', () => safetensorsBytes({ a: { dtype: 'Q4', shape: [1], data_offsets: [0, 4] } }, f32(1)), /unknown dtype "Q4"/],
    ['a negative dimension', () => safetensorsBytes({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, f32(1)), /invalid shape/],
    [
      'offsets past the data section (truncated)',
      () => safetensorsBytes({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, f32(1)),
      /past the 4-byte data section/,
    ],
    [
      'offsets that do not match the shape',
      () => safetensorsBytes({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, f32(1, 2)),
      /needs 8 bytes but data_offsets give 4/,
    ],
    ['backwards offsets', () => safetensorsBytes({ a: { dtype: 'F32', shape: [0], data_offsets: [4, 0] } }, f32(1)), /run backwards/],
    [
      'overlapping tensors',
      () =>
        safetensorsBytes(
          { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } },
          f32(1, 2, 3),
        ),
      /overlap/,
    ],
  ];
  it.each(corrupt)('refuses %s with a clear message', async (_, bytes, message) => {
    const file = await write(bytes());
    const err = await SafetensorsFile.open(file).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'EngineError', code: 'bad-checkpoint', file });
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).toContain(file);
  });

  it('refuses to read an integer tensor as weights', async () => {
    const file = await write(safetensorsBytes({ steps: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)));
    const st = await SafetensorsFile.open(file);
    await expect(st.read('steps')).rejects.toMatchObject({ code: 'bad-dtype', message: expect.stringMatching(/steps .* has dtype I64/) });
    await expect(st.read('missing')).rejects.toMatchObject({ code: 'missing-tensor' });
    await st.close();
  });
});

describe('safetensors descriptors', () => {
  it('concurrent first reads share one descriptor, and close() releases it', async () => {
    const file = path.join(tempDir(), 'model.safetensors');
    await writeSafetensors(file, [
      ['a', { shape: [1], data: Float32Array.from([1]) }],
      ['b', { shape: [2], data: Float32Array.from([2, 3]) }],
    ]);
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const st = await SafetensorsFile.open(file);
    expect(fds()).toBe(before);
    await Promise.all(['a', 'b', 'a', 'b', 'a'].map((n) => st.read(n)));
    expect(fds()).toBe(before + 1);
    await st.close();
    expect(fds()).toBe(before);
  });
});

describe('checkpoint folders', () => {
  it('opens sharded checkpoints through model.safetensors.index.json', async () => {
    const dir = tempDir();
    await writeSafetensors(path.join(dir, 'model-00001-of-00002.safetensors'), [['a', { shape: [1], data: Float32Array.from([1]) }]]);
    await writeSafetensors(path.join(dir, 'model-00002-of-00002.safetensors'), [['b', { shape: [2], data: Float32Array.from([2, 3]) }]]);
    await fs.writeFile(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }),
    );
    const ckpt = await openCheckpoint(dir);
    expect(
      ckpt
        .tensors()
        .map((t) => t.name)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(Array.from((await ckpt.read('b')).data)).toEqual([2, 3]);
    await ckpt.close();
  });

  it('refuses an index that names a tensor its shard lacks, or a shard outside the folder', async () => {
    const dir = tempDir();
    await writeSafetensors(path.join(dir, 's1.safetensors'), [['a', { shape: [1], data: Float32Array.from([1]) }]]);
    await fs.writeFile(
      path.join(dir, 'model.safetensors.index.json'),
      JSON.stringify({ weight_map: { a: 's1.safetensors', z: 's1.safetensors' } }),
    );
    await expect(openCheckpoint(dir)).rejects.toMatchObject({
      code: 'missing-tensor',
      message: expect.stringMatching(/says z is in s1.safetensors/),
    });
    await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: '../../etc/passwd' } }));
    await expect(openCheckpoint(dir)).rejects.toMatchObject({
      code: 'bad-checkpoint',
      message: expect.stringMatching(/invalid shard name/),
    });
  });

  it('explains a folder without safetensors', async () => {
    const dir = tempDir();
    await fs.writeFile(path.join(dir, 'pytorch_model.bin'), 'x');
    await expect(openCheckpoint(dir)).rejects.toMatchObject({
      message: expect.stringMatching(/pytorch_model.bin is not a PyTorch checkpoint/),
    });
    await expect(openCheckpoint(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'file-not-found' });
    const empty = tempDir();
    await expect(openCheckpoint(empty)).rejects.toMatchObject({
      message: expect.stringMatching(
        /has no model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json/,
      ),
    });
  });
});
