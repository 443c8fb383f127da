/**
 * A model checkpoint as a set of named tensors, whatever the files: a single `model.safetensors`, shards listed by
 * `model.safetensors.index.json`, or the PyTorch equivalents `pytorch_model.bin` / `pytorch_model.bin.index.json`
 * (read without running their pickles, see torch-checkpoint.ts). Opening reads headers (and pickles) only; tensors
 * are read on demand. A folder holding both formats is read from its safetensors.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';
import type { Tensor } from '../model/tensor';
import { SafetensorsFile, type TensorInfo } from './safetensors';
import { notRegularFile, readTextFile } from './regular-file';
import { readHead, sniffTorchFormat, TorchCheckpointFile, type RawTensor } from './torch-checkpoint';

export type { TensorInfo } from './safetensors';

export interface Checkpoint {
  /** The file (single) or index file (sharded) the checkpoint was opened from. */
  readonly file: string;
  tensors(): TensorInfo[];
  has(name: string): boolean;
  info(name: string): TensorInfo | undefined;
  read(name: string): Promise<Tensor>;
  /** Stored bytes and dtype, contiguous little-endian (PyTorch checkpoints: what `convert` writes losslessly). */
  readRaw?(name: string): Promise<RawTensor>;
  close(): Promise<void>;
}

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';
const TORCH_SINGLE = 'pytorch_model.bin';
const TORCH_INDEX = 'pytorch_model.bin.index.json';
/** A shard index lists one line per tensor: a few hundred kB for the largest models. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;

/** Opens the checkpoint in a Hugging Face model folder (or a .safetensors / index file given directly). */
export async function openCheckpoint(location: string): Promise<Checkpoint> {
  const stat = await fs.stat(location).catch(() => undefined);
  if (!stat) throw new EngineError('file-not-found', `model path ${location} does not exist`, location);
  if (!stat.isFile() && !stat.isDirectory()) throw notRegularFile(location, stat, 'a model folder or a checkpoint file');
  if (stat.isFile()) {
    if (location.endsWith('.index.json'))
      return openSharded(location, /\.bin\.index\.json$/.test(location) ? TorchCheckpointFile.open : SafetensorsFile.open);
    if (!location.endsWith('.safetensors') && sniffTorchFormat(await readHead(location)) !== 'other')
      return openSingle(await TorchCheckpointFile.open(location));
    return openSingle(await SafetensorsFile.open(location));
  }
  const single = path.join(location, SINGLE);
  if (await exists(single)) return openSingle(await SafetensorsFile.open(single));
  const index = path.join(location, INDEX);
  if (await exists(index)) return openSharded(index, SafetensorsFile.open);
  const torchSingle = path.join(location, TORCH_SINGLE);
  if (await exists(torchSingle)) return openSingle(await TorchCheckpointFile.open(torchSingle));
  const torchIndex = path.join(location, TORCH_INDEX);
  if (await exists(torchIndex)) return openSharded(torchIndex, TorchCheckpointFile.open);
  const present = (await fs.readdir(location)).filter((f) => /\.(bin|pt|pth|ckpt|safetensors|json)$/.test(f));
  throw new EngineError(
    'bad-checkpoint',
    `${location} has no ${SINGLE}, ${INDEX}, ${TORCH_SINGLE} or ${TORCH_INDEX}${present.length ? ` (found: ${present.join(', ')})` : ''}`,
    location,
  );
}

/** What both formats' files offer (SafetensorsFile, TorchCheckpointFile): a one-file Checkpoint. */
type TensorFile = Checkpoint;

/** Whether anything is there: a folder or a pipe under a checkpoint's name is then refused by name when opened. */
async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then(
    () => true,
    () => false,
  );
}

function openSingle(st: TensorFile): Checkpoint {
  const readRaw = st.readRaw?.bind(st);
  return {
    file: st.file,
    tensors: () => st.tensors(),
    has: (n) => st.has(n),
    info: (n) => st.info(n),
    read: (n) => st.read(n),
    ...(readRaw && { readRaw }),
    close: () => st.close(),
  };
}

async function openSharded(indexFile: string, open: (file: string) => Promise<TensorFile>): Promise<Checkpoint> {
  let index: unknown;
  try {
    index = JSON.parse(await readTextFile(indexFile, MAX_INDEX_BYTES, 'a shard index (JSON)'));
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError('bad-checkpoint', `cannot read shard index ${indexFile}: ${(e as Error).message}`, indexFile, { cause: e });
  }
  const weightMap = (index as { weight_map?: unknown })?.weight_map;
  if (!weightMap || typeof weightMap !== 'object')
    throw new EngineError('bad-checkpoint', `shard index ${indexFile} has no "weight_map" object`, indexFile);
  const dir = path.dirname(indexFile);
  const shards = new Map<string, TensorFile>();
  const owner = new Map<string, TensorFile>();
  try {
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
        throw new EngineError(
          'bad-checkpoint',
          `shard index ${indexFile} maps ${name} to an invalid shard name ${JSON.stringify(shard)}`,
          indexFile,
        );
      }
      let file = shards.get(shard);
      if (!file) {
        file = await open(path.join(dir, shard));
        shards.set(shard, file);
      }
      if (!file.has(name))
        throw new EngineError(
          'missing-tensor',
          `shard index ${indexFile} says ${name} is in ${shard}, but it is not there`,
          path.join(dir, shard),
        );
      owner.set(name, file);
    }
  } catch (e) {
    await Promise.all([...shards.values()].map((s) => s.close()));
    throw e;
  }
  const shardOf = (n: string): TensorFile => {
    const f = owner.get(n);
    if (!f) throw new EngineError('missing-tensor', `tensor ${n} is not in ${indexFile}`, indexFile);
    return f;
  };
  const raw = [...shards.values()].every((s) => s.readRaw);
  return {
    file: indexFile,
    tensors: () => [...owner.entries()].map(([n, f]) => f.info(n)!),
    has: (n) => owner.has(n),
    info: (n) => owner.get(n)?.info(n),
    read: async (n) => shardOf(n).read(n),
    ...(raw && { readRaw: async (n: string) => shardOf(n).readRaw!(n) }),
    close: async () => {
      await Promise.all([...shards.values()].map((s) => s.close()));
    },
  };
}
