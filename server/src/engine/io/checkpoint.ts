/**
 * A model checkpoint as a set of named tensors, whatever the files: a single `model.safetensors`, or shards listed by
 * `model.safetensors.index.json`. Opening reads headers only; tensors are read on demand.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { EngineError } from '../errors';
import type { Tensor } from '../model/tensor';
import { SafetensorsFile, type TensorInfo } from './safetensors';

export type { TensorInfo } from './safetensors';

export interface Checkpoint {
  /** The file (single) or index file (sharded) the checkpoint was opened from. */
  readonly file: string;
  tensors(): TensorInfo[];
  has(name: string): boolean;
  info(name: string): TensorInfo | undefined;
  read(name: string): Promise<Tensor>;
  close(): Promise<void>;
}

const SINGLE = 'model.safetensors';
const INDEX = 'model.safetensors.index.json';

/** Opens the checkpoint in a Hugging Face model folder (or a .safetensors / index file given directly). */
export async function openCheckpoint(location: string): Promise<Checkpoint> {
  const stat = await fs.stat(location).catch(() => undefined);
  if (!stat) throw new EngineError('file-not-found', `model path ${location} does not exist`, location);
  if (stat.isFile()) {
    if (location.endsWith('.index.json')) return openSharded(location);
    return openSingle(location);
  }
  const single = path.join(location, SINGLE);
  if (await exists(single)) return openSingle(single);
  const index = path.join(location, INDEX);
  if (await exists(index)) return openSharded(index);
  const present = (await fs.readdir(location)).filter((f) => /\.(bin|pt|pth|ckpt|safetensors|json)$/.test(f));
  const bin = present.find((f) => f === 'pytorch_model.bin' || f.endsWith('.bin'));
  if (bin) {
    throw new EngineError('bad-checkpoint', `${location} holds only ${bin} (a PyTorch pickle); convert it to model.safetensors first (e.g. with transformers' save_pretrained(safe_serialization=True))`, path.join(location, bin));
  }
  throw new EngineError('bad-checkpoint', `${location} has no ${SINGLE} or ${INDEX}${present.length ? ` (found: ${present.join(', ')})` : ''}`, location);
}

async function exists(file: string): Promise<boolean> {
  return fs.stat(file).then((s) => s.isFile(), () => false);
}

async function openSingle(file: string): Promise<Checkpoint> {
  const st = await SafetensorsFile.open(file);
  return {
    file,
    tensors: () => st.tensors(),
    has: (n) => st.has(n),
    info: (n) => st.info(n),
    read: (n) => st.read(n),
    close: () => st.close(),
  };
}

async function openSharded(indexFile: string): Promise<Checkpoint> {
  let index: unknown;
  try {
    index = JSON.parse(await fs.readFile(indexFile, 'utf8'));
  } catch (e) {
    throw new EngineError('bad-checkpoint', `cannot read shard index ${indexFile}: ${(e as Error).message}`, indexFile, { cause: e });
  }
  const weightMap = (index as { weight_map?: unknown })?.weight_map;
  if (!weightMap || typeof weightMap !== 'object') throw new EngineError('bad-checkpoint', `shard index ${indexFile} has no "weight_map" object`, indexFile);
  const dir = path.dirname(indexFile);
  const shards = new Map<string, SafetensorsFile>();
  const owner = new Map<string, SafetensorsFile>();
  try {
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
        throw new EngineError('bad-checkpoint', `shard index ${indexFile} maps ${name} to an invalid shard name ${JSON.stringify(shard)}`, indexFile);
      }
      let file = shards.get(shard);
      if (!file) {
        file = await SafetensorsFile.open(path.join(dir, shard));
        shards.set(shard, file);
      }
      if (!file.has(name)) throw new EngineError('missing-tensor', `shard index ${indexFile} says ${name} is in ${shard}, but it is not there`, path.join(dir, shard));
      owner.set(name, file);
    }
  } catch (e) {
    await Promise.all([...shards.values()].map((s) => s.close()));
    throw e;
  }
  return {
    file: indexFile,
    tensors: () => [...owner.entries()].map(([n, f]) => f.info(n)!),
    has: (n) => owner.has(n),
    info: (n) => owner.get(n)?.info(n),
    read: (n) => {
      const f = owner.get(n);
      if (!f) return Promise.reject(new EngineError('missing-tensor', `tensor ${n} is not in ${indexFile}`, indexFile));
      return f.read(n);
    },
    close: async () => {
      await Promise.all([...shards.values()].map((s) => s.close()));
    },
  };
}
