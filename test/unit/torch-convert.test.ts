import { existsSync, promises as fs, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SafetensorsFile } from '../../server/src/engine/io/safetensors';
import { convertToSafetensors } from '../../server/src/engine/io/torch-convert';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import { runCli } from '../helpers/cli';
import { FIXTURES } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const TORCH = path.join(FIXTURES, 'torch');
const tempDir = useTempDirs();
const EXPECTED = JSON.parse(readFileSync(path.join(TORCH, 'expected.json'), 'utf8')) as Record<
  string,
  Record<string, { shape: number[]; values: number[] }>
>;

describe('convert to safetensors', () => {
  it('a model folder: same names, dtypes and weights; config.json copied; loads to the same model', async () => {
    const out = tempDir();
    const r = await convertToSafetensors(path.join(TORCH, 'hubert-bin'), out);
    expect(r).toMatchObject({ file: path.join(out, 'model.safetensors'), tensors: 67, copied: ['config.json'] });
    expect(readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors']);
    const st = await SafetensorsFile.open(r.file);
    expect(st.has('hubert.encoder.pos_conv_embed.conv.weight_g') && st.has('hubert.encoder.pos_conv_embed.conv.weight_v')).toBe(true);
    expect(st.metadata).toMatchObject({ format: 'pt', converted_from: 'pytorch_model.bin' });
    await st.close();
    const [a, b] = [await loadEncoderModel(out), await loadEncoderModel(path.join(TORCH, 'hubert-bin'))];
    expect(a.layout).toEqual(b.layout);
    for (const [name, t] of b.weights) expect(Array.from(a.weights.get(name)!.data), name).toEqual(Array.from(t.data));
  });

  it('keeps f16 as F16 and int64 as I64, materialises views, and writes beside a single file by default', async () => {
    const dir = tempDir();
    await fs.copyFile(path.join(TORCH, 'state-f16.bin'), path.join(dir, 'weights.pt'));
    const r = await convertToSafetensors(path.join(dir, 'weights.pt'), undefined);
    expect(r.file).toBe(path.join(dir, 'model.safetensors'));
    const st = await SafetensorsFile.open(r.file);
    expect(st.tensors().every((t) => t.dtype === 'F16')).toBe(true);
    for (const [name, e] of Object.entries(EXPECTED['state-f16']!)) expect(Array.from((await st.read(name)).data)).toEqual(e.values);
    await st.close();

    const out = tempDir();
    await convertToSafetensors(path.join(TORCH, 'noncontig.bin'), out);
    const nc = await SafetensorsFile.open(path.join(out, 'model.safetensors'));
    expect(nc.info('int64')).toEqual({ name: 'int64', dtype: 'I64', shape: [5] });
    expect(Array.from((await nc.read('permuted')).data)).toEqual(EXPECTED.noncontig!.permuted!.values);
    expect((await nc.read('empty')).shape).toEqual([0, 3]);
    await nc.close();
  });

  it('a sharded pytorch_model.bin.index.json becomes one file', async () => {
    const out = tempDir();
    const r = await convertToSafetensors(path.join(TORCH, 'sharded'), out);
    expect(r.tensors).toBe(4);
  });

  it('refuses to overwrite without force, to convert safetensors, and leaves nothing behind on a hostile file', async () => {
    const out = tempDir();
    await convertToSafetensors(path.join(TORCH, 'state-f32.bin'), out);
    await expect(convertToSafetensors(path.join(TORCH, 'state-f32.bin'), out)).rejects.toMatchObject({
      code: 'io-error',
      message: expect.stringMatching(/already exists; pass --force/),
    });
    await convertToSafetensors(path.join(TORCH, 'state-f32.bin'), out, { force: true });
    await expect(convertToSafetensors(path.join(FIXTURES, 'hf-reference', 'hubert-preln'), tempDir())).rejects.toMatchObject({
      message: expect.stringMatching(/already holds model.safetensors: nothing to convert/),
    });
    await expect(
      convertToSafetensors(path.join(FIXTURES, 'hf-reference', 'hubert-preln', 'model.safetensors'), tempDir()),
    ).rejects.toMatchObject({ message: expect.stringMatching(/not a PyTorch checkpoint/) });
    const clean = tempDir();
    await expect(convertToSafetensors(path.join(TORCH, 'hostile', 'evil-reduce.bin'), clean)).rejects.toMatchObject({
      code: 'unsafe-pickle',
    });
    expect(readdirSync(clean)).toEqual([]);
  });

  it('merge-studio convert: one line on success, a one-line reason and exit 1 on bad input', () => {
    const out = tempDir();
    const ok = runCli(['convert', path.join(TORCH, 'hubert-bin'), '--to', 'safetensors', '--out', out]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^wrote .*model\.safetensors: 67 tensors, 0\.7 MiB in [\d.]+ s; copied config\.json\n$/);
    expect(existsSync(path.join(out, 'config.json'))).toBe(true);
    const fmt = runCli(['convert', path.join(TORCH, 'hubert-bin'), '--to', 'onnx', '--out', out]);
    expect([fmt.code, fmt.stderr.trim()]).toEqual([1, 'merge-studio: --to must be "safetensors", got "onnx"']);
    const evil = runCli(['convert', path.join(TORCH, 'hostile', 'evil-reduce.bin'), '--to', 'safetensors', '--out', tempDir()]);
    expect(evil.code).toBe(1);
    expect(evil.stderr).toMatch(/refers to posix\.system/);
    expect(existsSync('/tmp/merge-studio-torch-fixture-pwned')).toBe(false);
    const hub = runCli(['convert', 'hf:org/name', '--to', 'safetensors']);
    expect(hub.stderr).toMatch(/converting a Hub reference needs --out DIR/);
  });
});
