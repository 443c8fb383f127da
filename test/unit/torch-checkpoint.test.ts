import { existsSync, promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../server/src/engine/io/checkpoint';
import { TorchCheckpointFile } from '../../server/src/engine/io/torch-checkpoint';
import { FIXTURES } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const TORCH = path.join(FIXTURES, 'torch');
const tempDir = useTempDirs();

interface Expected {
  dtype: string;
  shape: number[];
  values: number[];
}
const EXPECTED = JSON.parse(readFileSync(path.join(TORCH, 'expected.json'), 'utf8')) as Record<string, Record<string, Expected>>;
const DTYPES: Record<string, string> = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', int64: 'I64' };

/** Every float tensor of a fixture reads back exactly as torch had it (contiguous, row-major). */
async function expectMatches(file: string, expected: Record<string, Expected>): Promise<void> {
  const ckpt = await openCheckpoint(file);
  try {
    expect(
      ckpt
        .tensors()
        .map((t) => t.name)
        .sort(),
    ).toEqual(Object.keys(expected).sort());
    for (const [name, e] of Object.entries(expected)) {
      expect(ckpt.info(name), name).toEqual({ name, dtype: DTYPES[e.dtype], shape: e.shape });
      if (e.dtype === 'int64') continue;
      const t = await ckpt.read(name);
      expect(t.shape, name).toEqual(e.shape);
      expect(Array.from(t.data), name).toEqual(e.values.map((v) => Math.fround(v)));
    }
  } finally {
    await ckpt.close();
  }
}

describe('torch.save checkpoints', () => {
  it.each([
    ['state-f32.bin', 'state-f32'],
    ['state-f32-p4.bin', 'state-f32'],
    ['state-f32-p5.bin', 'state-f32'],
    ['state-f16.bin', 'state-f16'],
    ['state-bf16.bin', 'state-bf16'],
    ['state-f32-bigendian.bin', 'state-f32'],
  ])(
    '%s reads every tensor exactly (pickle protocol 2/4/5, f32/f16/bf16, zip64 directory; big-endian with a deflated data.pkl)',
    async (file, key) => {
      await expectMatches(path.join(TORCH, file), EXPECTED[key]!);
    },
  );

  it('materialises non-contiguous views: transposes, slices with storage offsets, steps, expands, permutes, scalars, empties', async () => {
    await expectMatches(path.join(TORCH, 'noncontig.bin'), EXPECTED.noncontig!);
  });

  it('keeps int64 tensors raw (readRaw) and refuses them as float weights', async () => {
    const ckpt = await openCheckpoint(path.join(TORCH, 'noncontig.bin'));
    const raw = await ckpt.readRaw!('int64');
    expect(raw.dtype).toBe('I64');
    expect(
      Array.from(new BigInt64Array(raw.bytes.buffer.slice(raw.bytes.byteOffset, raw.bytes.byteOffset + raw.bytes.byteLength))),
    ).toEqual([0n, 1n, 2n, 3n, 4n]);
    await expect(ckpt.read('int64')).rejects.toMatchObject({ code: 'bad-dtype' });
    const half = await ckpt.readRaw!('half_transposed');
    expect(half.bytes.length).toBe(6 * 2);
    await ckpt.close();
  });

  it('reads a sharded pytorch_model.bin.index.json (folder or index file)', async () => {
    await expectMatches(path.join(TORCH, 'sharded'), EXPECTED['state-f32']!);
    await expectMatches(path.join(TORCH, 'sharded', 'pytorch_model.bin.index.json'), EXPECTED['state-f32']!);
  });

  it('a folder with both formats is read from its safetensors', async () => {
    const dir = tempDir();
    await fs.copyFile(path.join(TORCH, 'state-f16.bin'), path.join(dir, 'pytorch_model.bin'));
    await fs.copyFile(path.join(FIXTURES, 'hf-reference', 'hubert-preln', 'model.safetensors'), path.join(dir, 'model.safetensors'));
    const ckpt = await openCheckpoint(dir);
    expect(ckpt.file).toBe(path.join(dir, 'model.safetensors'));
    expect(ckpt.readRaw).toBeUndefined();
    await ckpt.close();
    await fs.rm(path.join(dir, 'model.safetensors'));
    const bin = await openCheckpoint(dir);
    expect(bin.file).toBe(path.join(dir, 'pytorch_model.bin'));
    await bin.close();
  });

  it('reads storages lazily: opening touches the pickle only, each read one tensor', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'pytorch_model.bin');
    await fs.copyFile(path.join(TORCH, 'state-f32.bin'), file);
    const ckpt = await TorchCheckpointFile.open(file);
    // Overwrite one storage's bytes after opening: only a read that happens later can see the change, and it sees
    // it as a storage whose CRC-32 no longer matches the directory's.
    const bytes = await fs.readFile(file);
    const at = bytes.indexOf(Buffer.from(Float32Array.from(EXPECTED['state-f32']!['encoder.layer_norm.weight']!.values).buffer));
    expect(at).toBeGreaterThan(0);
    const h = await fs.open(file, 'r+');
    await h.write(Buffer.from(new Float32Array([42]).buffer), 0, 4, at);
    await h.close();
    await expect(ckpt.read('encoder.layer_norm.weight')).rejects.toThrow(/state-f32\/data\/\d+ fails its CRC-32 check/);
    // The other storages were not read at open (each is checked when first read) and are intact.
    expect((await ckpt.read('encoder.layers.0.attention.q_proj.bias')).data.length).toBeGreaterThan(0);
    await ckpt.close();
  });
});

describe('hostile and broken checkpoints are refused without running anything', () => {
  const MARKER = '/tmp/merge-studio-torch-fixture-pwned';
  const hostile = (f: string) => path.join(TORCH, 'hostile', f);

  it('a __reduce__ to os.system: refused at the global, nothing runs', async () => {
    await fs.rm(MARKER, { force: true });
    await expect(openCheckpoint(hostile('evil-reduce.bin'))).rejects.toMatchObject({
      code: 'unsafe-pickle',
      message: expect.stringMatching(/refers to posix\.system, which a PyTorch state dict never needs.*nothing in the file was executed/),
    });
    expect(existsSync(MARKER)).toBe(false);
  });

  it('an unknown global (argparse.Namespace in a training checkpoint) is named', async () => {
    await expect(openCheckpoint(hostile('unknown-global.bin'))).rejects.toMatchObject({
      code: 'unsafe-pickle',
      message: expect.stringContaining('argparse.Namespace'),
    });
  });

  it('a storage offset past the end of its storage', async () => {
    await expect(openCheckpoint(hostile('offset-past-end.bin'))).rejects.toMatchObject({
      code: 'bad-checkpoint',
      message: expect.stringMatching(/tensor weight \[4\] at storage offset 100 .*runs past the end of its 32-byte storage/),
    });
  });

  it('a stride-0 view that would expand 4 bytes to 8 GiB', async () => {
    await expect(openCheckpoint(hostile('expand-bomb.bin'))).rejects.toMatchObject({
      code: 'bad-checkpoint',
      message: expect.stringMatching(/tensor weight \[2147483648\] expands its 4-byte storage 0 to 8589934592 bytes/),
    });
  });

  it('a truncated zip', async () => {
    await expect(openCheckpoint(hostile('truncated.bin'))).rejects.toMatchObject({
      code: 'bad-checkpoint',
      message: expect.stringMatching(/truncated or incomplete download/),
    });
  });

  it('the legacy (pre-1.6) format, with the conversion hint', async () => {
    await expect(openCheckpoint(hostile('legacy.bin'))).rejects.toMatchObject({
      code: 'bad-checkpoint',
      message: expect.stringMatching(/legacy \(pre-1\.6\) PyTorch format.*weights_only=True/),
    });
  });

  it('a storage entry shorter than the pickle says, and a missing one', async () => {
    const dir = tempDir();
    const bytes = await fs.readFile(path.join(TORCH, 'state-f32.bin'));
    // Rename entry data/3 → data/9 in both headers (same length): the pickle's storage "3" no longer exists.
    const renamed = Buffer.from(bytes.toString('latin1').replaceAll('state-f32/data/3', 'state-f32/data/9'), 'latin1');
    await fs.writeFile(path.join(dir, 'missing.bin'), renamed);
    await expect(openCheckpoint(path.join(dir, 'missing.bin'))).rejects.toMatchObject({
      message: expect.stringMatching(/uses storage 3, but the archive has no state-f32\/data\/3/),
    });
  });

  it('a compressed storage entry (torch never writes one) is named', async () => {
    const ckpt = await openCheckpoint(hostile('deflated-storage.bin'));
    await expect(ckpt.read('encoder.layer_norm.weight')).rejects.toMatchObject({
      message: expect.stringMatching(/deflated-storage\/data\/3 is compressed \(method 8\)/),
    });
    await ckpt.close();
  });

  it('not a checkpoint at all', async () => {
    const dir = tempDir();
    await fs.writeFile(path.join(dir, 'x.pt'), 'hello');
    await expect(openCheckpoint(path.join(dir, 'x.pt'))).rejects.toMatchObject({ code: 'bad-checkpoint' });
    await fs.writeFile(path.join(dir, 'pytorch_model.bin'), '');
    await expect(openCheckpoint(dir)).rejects.toMatchObject({ message: expect.stringMatching(/not a PyTorch checkpoint .*empty/) });
  });
});
