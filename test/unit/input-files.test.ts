import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, promises as fs, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTaskDataset } from '../../server/src/engine/io/dataset';
import { loadEncoderConfig } from '../../server/src/engine/io/hfconfig';
import { HF_REFERENCE } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();

/** A model folder whose config.json is replaced by `make(file)`. */
async function modelWith(make: (file: string) => void): Promise<string> {
  const dir = path.join(tempDir(), 'model');
  cpSync(path.join(HF_REFERENCE, 'hubert-preln'), dir, { recursive: true });
  await fs.rm(path.join(dir, 'config.json'));
  make(path.join(dir, 'config.json'));
  return dir;
}

describe('configs and label files are read only when they are regular files of a sane size', () => {
  it('config.json that is /dev/zero, a FIFO or a folder: one message naming it, at once', async () => {
    const cases: [(f: string) => void, string][] = [
      [(f) => execFileSync('ln', ['-s', '/dev/zero', f]), 'a device'],
      [(f) => execFileSync('mkfifo', [f]), 'a named pipe (FIFO)'],
      [(f) => mkdirSync(f), 'a folder'],
    ];
    for (const [make, kind] of cases) {
      const dir = await modelWith(make);
      const started = Date.now();
      await expect(loadEncoderConfig(dir)).rejects.toMatchObject({
        code: 'bad-config',
        message: `${path.join(dir, 'config.json')} is not a regular file (it is ${kind}); expected a JSON config file`,
      });
      expect(Date.now() - started).toBeLessThan(5000);
    }
  });

  it('a config.json over 16 MiB is refused without being parsed', async () => {
    const dir = await modelWith((f) => writeFileSync(f, `{"pad": "${'x'.repeat(17 * 1024 * 1024)}"}`));
    await expect(loadEncoderConfig(dir)).rejects.toMatchObject({
      message: expect.stringMatching(/config.json is \d+ bytes, over the 16777216-byte limit for a JSON config file/),
    });
  });

  it('a missing preprocessor_config.json is still optional', async () => {
    const dir = await modelWith((f) => cpSync(path.join(HF_REFERENCE, 'hubert-preln', 'config.json'), f));
    await fs.rm(path.join(dir, 'preprocessor_config.json'), { force: true });
    await expect(loadEncoderConfig(dir)).resolves.toMatchObject({ sampleRate: 16000 });
  });

  it('labels.csv that is a named pipe: refused by name instead of blocking', async () => {
    const task = tempDir();
    for (const split of ['train', 'test']) mkdirSync(path.join(task, split));
    execFileSync('mkfifo', [path.join(task, 'train', 'labels.csv')]);
    await expect(loadTaskDataset(task)).rejects.toMatchObject({
      code: 'bad-dataset',
      message: expect.stringContaining(
        `${path.join(task, 'train', 'labels.csv')} is not a regular file (it is a named pipe (FIFO)); expected a labels CSV file`,
      ),
    });
  });
});
