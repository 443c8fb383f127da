/**
 * PyTorch checkpoint → `model.safetensors`, losslessly (each tensor keeps its dtype and name) and atomically (a
 * temporary file in the target folder, fsync, rename). Tensors are streamed one at a time, so converting needs the
 * memory of the largest tensor, not of the model.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';
import { openCheckpoint } from './checkpoint';
import { writeSafetensorsStream } from './safetensors';
import { readHead, sniffTorchFormat } from './torch-checkpoint';

export interface ConvertOptions {
  /** Replace an existing model.safetensors in the output folder. */
  force?: boolean;
  onProgress?: (done: number, total: number, name: string) => void;
}

export interface ConvertResult {
  /** The written model.safetensors. */
  file: string;
  tensors: number;
  bytes: number;
  /** Side files copied next to it (config.json, preprocessor_config.json). */
  copied: string[];
}

const SIDE_FILES = ['config.json', 'preprocessor_config.json'];

/** Converts a folder (pytorch_model.bin or its sharded index) or a single .bin/.pt file; `outDir` defaults to its folder. */
export async function convertToSafetensors(
  location: string,
  outDir: string | undefined,
  opts: ConvertOptions = {},
): Promise<ConvertResult> {
  const stat = await fs.stat(location).catch(() => undefined);
  if (!stat) throw new EngineError('file-not-found', `${location} does not exist`, location);
  const isDir = stat.isDirectory();
  if (isDir) {
    for (const f of ['model.safetensors', 'model.safetensors.index.json']) {
      if (
        await fs.stat(path.join(location, f)).then(
          () => true,
          () => false,
        )
      )
        throw new EngineError('bad-checkpoint', `${location} already holds ${f}: nothing to convert`, location);
    }
  } else if (!location.endsWith('.index.json') && sniffTorchFormat(await readHead(location)) === 'other') {
    throw new EngineError('bad-checkpoint', `${location} is not a PyTorch checkpoint (torch.save zip)`, location);
  }
  const srcDir = isDir ? location : path.dirname(location);
  const dir = outDir ?? srcDir;
  await fs.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  if (
    !opts.force &&
    (await fs.stat(file).then(
      () => true,
      () => false,
    ))
  )
    throw new EngineError('io-error', `${file} already exists; pass --force to replace it`, file);

  const ckpt = await openCheckpoint(location);
  try {
    const readRaw = ckpt.readRaw?.bind(ckpt);
    if (!readRaw) throw new EngineError('bad-checkpoint', `${ckpt.file} is already safetensors: nothing to convert`, ckpt.file);
    const infos = ckpt.tensors();
    const bytes = await writeSafetensorsStream(
      file,
      infos.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, bytes: async () => (await readRaw(t.name)).bytes })),
      { converted_from: path.basename(ckpt.file) },
      opts.onProgress,
    );
    const copied: string[] = [];
    if (path.resolve(dir) !== path.resolve(srcDir)) {
      for (const side of SIDE_FILES) {
        const src = path.join(srcDir, side);
        if (
          await fs.stat(src).then(
            (s) => s.isFile(),
            () => false,
          )
        ) {
          await fs.copyFile(src, path.join(dir, side));
          copied.push(side);
        }
      }
    }
    return { file, tensors: infos.length, bytes, copied };
  } finally {
    await ckpt.close();
  }
}
