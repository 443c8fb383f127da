import { execFileSync } from 'node:child_process';
import { promises as fs, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../server/src/engine/io/checkpoint';
import { TorchCheckpointFile } from '../../server/src/engine/io/torch-checkpoint';
import { FIXTURES } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';
import { locateEntry, storedZip, zipTail } from '../helpers/zip';

const TORCH = path.join(FIXTURES, 'torch');
const tempDir = useTempDirs();
const openFds = () => readdirSync('/proc/self/fd').length;

async function fixtureCopy(name = 'state-f32.bin'): Promise<{ file: string; bytes: Buffer }> {
  const file = path.join(tempDir(), 'pytorch_model.bin');
  const bytes = await fs.readFile(path.join(TORCH, name));
  return { file, bytes };
}

/** Opening must fail with a bad-checkpoint EngineError that names the file, and leave no descriptor open. */
async function expectRefused(file: string, pattern: RegExp): Promise<void> {
  const before = openFds();
  const err = await TorchCheckpointFile.open(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toMatchObject({ name: 'EngineError', code: 'bad-checkpoint' });
  expect((err as Error).message).toContain(file);
  expect((err as Error).message).toMatch(pattern);
  expect(openFds()).toBe(before);
}

describe('torch zip container: hostile end records and directories', () => {
  it('a ZIP64 locator pointing at byte 2^64 − 16 is a located refusal, not a RangeError, and closes its file', async () => {
    const { file, bytes } = await fixtureCopy();
    const { locator, eocd } = zipTail(bytes);
    expect(locator).toBeGreaterThan(0);
    bytes.writeBigUInt64LE(0xfffffffffffffff0n, locator + 8);
    bytes.writeUInt16LE(0xffff, eocd + 8);
    bytes.writeUInt32LE(0xffffffff, eocd + 16);
    await fs.writeFile(file, bytes);
    await expectRefused(file, /ZIP64 locator points at byte 18446744073709551600/);
  });

  it('the ZIP64 record disagreeing with the end record, or pointing past the file', async () => {
    const { file, bytes } = await fixtureCopy();
    const { zip64Record } = zipTail(bytes);
    const bad = Buffer.from(bytes);
    bad.writeBigUInt64LE(1n << 40n, zip64Record + 48); // directory offset: 1 TiB
    await fs.writeFile(file, bad);
    await expectRefused(file, /directory offset \(1099511627776\) is larger than the \d+-byte file/);
  });

  it('garbage after the end record, or an end record whose directory does not end where it begins', async () => {
    const { file, bytes } = await fixtureCopy();
    await fs.writeFile(file, Buffer.concat([bytes, Buffer.from('trailing garbage')]));
    await expectRefused(file, /garbage at the end of the file/);
    const { eocd } = zipTail(bytes);
    const shifted = Buffer.from(bytes);
    shifted.writeUInt16LE(shifted.readUInt16LE(eocd + 10) + 1, eocd + 10); // one entry more than there are
    await fs.writeFile(file, shifted);
    await expectRefused(file, /entry counts disagree|disagree on the entry count/);
    const size = Buffer.from(bytes);
    size.writeUInt32LE(size.readUInt32LE(eocd + 12) + 7, eocd + 12); // directory size
    await fs.writeFile(file, size);
    await expectRefused(file, /disagree on the directory size/);
    const plain = storedZip([{ name: 'archive/data.pkl', data: Buffer.from([0x80, 2, 0x7d, 0x2e]) }], { zip64: false });
    plain.writeUInt32LE(plain.readUInt32LE(plain.length - 22 + 12) + 7, plain.length - 22 + 12);
    await fs.writeFile(file, plain);
    await expectRefused(file, /does not end where the end record begins/);
  });

  it('a wrong CRC-32 on data.pkl is refused at open; on a storage, at its first read', async () => {
    const { file, bytes } = await fixtureCopy();
    const pkl = locateEntry(bytes, 'state-f32/data.pkl');
    const corrupt = Buffer.from(bytes);
    corrupt[pkl.dataStart + 3]! ^= 0x01; // inside the pickle: the CRC, not the unpickler, must catch it
    await fs.writeFile(file, corrupt);
    await expectRefused(file, /state-f32\/data.pkl fails its CRC-32 check/);

    const storage = locateEntry(bytes, 'state-f32/data/0');
    const wrongCrc = Buffer.from(bytes);
    wrongCrc.writeUInt32LE((wrongCrc.readUInt32LE(storage.central + 16) ^ 1) >>> 0, storage.central + 16);
    await fs.writeFile(file, wrongCrc);
    const ckpt = await TorchCheckpointFile.open(file);
    const reads = ckpt.tensors().map((t) =>
      ckpt.read(t.name).then(
        () => 'ok',
        (e: Error) => e.message,
      ),
    );
    const results = await Promise.all(reads);
    expect(results.some((r) => /state-f32\/data\/0 fails its CRC-32 check/.test(r) && r.includes(file))).toBe(true);
    await ckpt.close();
  });

  it('a pickle holding a 3-million-element list: no stack overflow, a message naming the file', async () => {
    const n = 3_000_000;
    const pkl = Buffer.alloc(2 + 2 + n + 2);
    pkl.set([0x80, 2, 0x5d, 0x28]); // PROTO 2, EMPTY_LIST, MARK
    pkl.fill(0x4e, 4, 4 + n); // NONE × n
    pkl.set([0x65, 0x2e], 4 + n); // APPENDS, STOP
    const file = path.join(tempDir(), 'pytorch_model.bin');
    await fs.writeFile(file, storedZip([{ name: 'archive/data.pkl', data: pkl }]));
    await expectRefused(file, /the pickle holds no tensors/);
  });

  it('a stored entry that claims to run into the central directory', async () => {
    const file = path.join(tempDir(), 'pytorch_model.bin');
    const zip = storedZip([{ name: 'archive/data.pkl', data: Buffer.from([0x80, 2, 0x7d, 0x2e]) }]);
    const at = locateEntry(zip, 'archive/data.pkl').central;
    zip.writeUInt32LE(1000, at + 20);
    zip.writeUInt32LE(1000, at + 24);
    await fs.writeFile(file, zip);
    await expectRefused(file, /overlaps the central directory/);
  });
});

describe('checkpoint files that are not regular files', () => {
  it('a folder named model.safetensors: "is not a regular file", not "has no model.safetensors"', async () => {
    const dir = tempDir();
    await fs.mkdir(path.join(dir, 'model.safetensors'));
    await expect(openCheckpoint(dir)).rejects.toMatchObject({
      code: 'bad-checkpoint',
      message: `${path.join(dir, 'model.safetensors')} is not a regular file (it is a folder); expected a safetensors checkpoint`,
    });
  });

  it('a named pipe (FIFO) named model.safetensors or pytorch_model.bin is refused at once, without blocking', async () => {
    for (const name of ['model.safetensors', 'pytorch_model.bin']) {
      const dir = tempDir();
      execFileSync('mkfifo', [path.join(dir, name)]);
      const before = openFds();
      await expect(openCheckpoint(dir)).rejects.toMatchObject({
        message: expect.stringMatching(/is not a regular file \(it is a named pipe \(FIFO\)\)/),
      });
      expect(openFds()).toBe(before);
    }
  });

  it('a shard that is a folder: a clear message, not a raw EISDIR', async () => {
    const dir = tempDir();
    await fs.mkdir(path.join(dir, 's1.safetensors'));
    await fs.writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors' } }));
    const err = (await openCheckpoint(dir).catch((e: unknown) => e)) as Error;
    expect(err.message).toBe(
      `${path.join(dir, 's1.safetensors')} is not a regular file (it is a folder); expected a safetensors checkpoint`,
    );
    expect(err.message).not.toMatch(/EISDIR/);
    const tdir = tempDir();
    await fs.mkdir(path.join(tdir, 'pytorch_model-00001.bin'));
    await fs.writeFile(path.join(tdir, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: { a: 'pytorch_model-00001.bin' } }));
    await expect(openCheckpoint(tdir)).rejects.toMatchObject({
      message: expect.stringMatching(/pytorch_model-00001.bin is not a regular file \(it is a folder\)/),
    });
  });

  it('a device as the checkpoint path or as its index', async () => {
    await expect(openCheckpoint('/dev/zero')).rejects.toMatchObject({
      message: '/dev/zero is not a regular file (it is a device); expected a model folder or a checkpoint file',
    });
    const dir = tempDir();
    await fs.symlink('/dev/zero', path.join(dir, 'model.safetensors.index.json'));
    await expect(openCheckpoint(dir)).rejects.toMatchObject({
      message: expect.stringMatching(/model.safetensors.index.json is not a regular file \(it is a device\)/),
    });
  });
});
