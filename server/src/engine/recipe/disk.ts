/**
 * What the recipe checks need to know about files, read as cheaply as possible (headers, listings, one CSV)
 * and memoised in a DiskCache: model folders (config + checkpoint header), audio folders, task datasets.
 * Every failure is a value, never a throw: the checks turn them into diagnostics.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describeError, isEngineError } from '../errors';
import { openCheckpoint, type TensorInfo } from '../io/checkpoint';
import { loadEncoderConfig, type EncoderConfig } from '../io/hfconfig';
import { numel } from '../model/tensor';
import { sniffAudioFormat } from '../io/audio-format';
import { LABELS_CSV, loadTaskDataset } from '../io/dataset';
import { checkCheckpoint, expectedShapes, POS_CONV, storedNames } from '../model/weights';
import { DiskCache } from './disk-cache';

export interface ModelInfo {
  dir: string;
  config: EncoderConfig;
  /** The checkpoint file (or shard index) the header came from. */
  checkpointFile: string;
  /** Encoder tensors by canonical name, with their stored shape (the positional conv as its effective weight). */
  shapes: Map<string, readonly number[]>;
  /** Every tensor in the checkpoint file(s), including heads the merge ignores. */
  tensorCount: number;
  parameterCount: number;
  /** Parameters per stored dtype, e.g. { F32: 94_000_000 }. */
  dtypes: Record<string, number>;
}

export type ModelInspection =
  | { ok: true; model: ModelInfo }
  /** `message` names files by absolute path; callers show them as the user wrote them. */
  | { ok: false; problem: 'path-not-found' | 'not-a-directory' | 'bad-model' | 'bad-checkpoint'; message: string };

export type PathKind = 'file' | 'directory' | 'missing';

/** Extensions the engine picks up when it lists a folder (io/audio.ts). */
export const AUDIO_EXTENSIONS = ['.wav', '.flac', '.mp3'] as const;

export function isAudioFile(name: string): boolean {
  return (AUDIO_EXTENSIONS as readonly string[]).includes(path.extname(name).toLowerCase());
}

/** An evaluation dataset as the engine's own loader sees it. */
export type DatasetInspection = { ok: true; classes: string[]; train: number; test: number } | { ok: false; message: string };

export class RecipeDisk {
  constructor(readonly cache: DiskCache = new DiskCache()) {}

  async pathKind(p: string): Promise<PathKind> {
    return fs.stat(p).then(
      (s) => (s.isDirectory() ? 'directory' : 'file'),
      () => 'missing',
    );
  }

  /** Config + checkpoint header of a model folder (no weights read). */
  inspectModel(dir: string): Promise<ModelInspection> {
    const stamps = [dir, 'config.json', 'preprocessor_config.json', 'model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json'].map((f, i) =>
      i === 0 ? f : path.join(dir, f),
    );
    return this.cache.get(`model:${dir}`, stamps, () => inspectModelUncached(dir));
  }

  /** Whether a folder tree holds at least one audio file (hidden entries skipped, as the engine's listing does). */
  hasAudio(dir: string): Promise<boolean> {
    return this.cache.get(`audio:${dir}`, [dir], () => containsAudio(dir, new Set()));
  }

  /**
   * A file given explicitly as probe audio: the engine decodes it by its magic bytes whatever its name, so a
   * file without an audio extension is sniffed the same way. Null when fine, else the reason.
   */
  audioFileProblem(file: string): Promise<string | null> {
    if (isAudioFile(file)) return Promise.resolve(null);
    return this.cache.get(`sniff:${file}`, [file], async () => {
      try {
        const handle = await fs.open(file, 'r');
        try {
          const bytes = new Uint8Array(4096);
          const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
          sniffAudioFormat(bytes.subarray(0, bytesRead), file);
          return null;
        } finally {
          await handle.close();
        }
      } catch (e) {
        return describeError(e);
      }
    });
  }

  /** A task folder through the engine's own dataset loader (labels.csv parsed, listed files checked, no audio decoded). */
  inspectDataset(dir: string): Promise<DatasetInspection> {
    const stamps = [dir];
    for (const split of ['train', 'test']) stamps.push(path.join(dir, split), path.join(dir, split, LABELS_CSV));
    return this.cache.get(`dataset:${dir}`, stamps, async (): Promise<DatasetInspection> => {
      try {
        const d = await loadTaskDataset(dir);
        return { ok: true, classes: d.classes, train: d.train.clips.length, test: d.test.clips.length };
      } catch (e) {
        return { ok: false, message: describeError(e) };
      }
    });
  }
}

async function inspectModelUncached(dir: string): Promise<ModelInspection> {
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st) return { ok: false, problem: 'path-not-found', message: `${dir} does not exist` };
  if (!st.isDirectory()) return { ok: false, problem: 'not-a-directory', message: `${dir} is a file; expected a model folder with config.json and model.safetensors` };
  let config: EncoderConfig;
  try {
    config = await loadEncoderConfig(dir);
  } catch (e) {
    if (isEngineError(e, 'file-not-found')) return { ok: false, problem: 'bad-model', message: `${dir} has no config.json; expected a Hugging Face model folder` };
    return { ok: false, problem: 'bad-model', message: describeError(e) };
  }
  try {
    const ckpt = await openCheckpoint(dir);
    try {
      const layout = checkCheckpoint(ckpt, config);
      const shapes = new Map<string, readonly number[]>();
      for (const [name] of expectedShapes(config)) {
        const stored = storedNames(name, layout);
        // The positional conv's v carries the effective weight's shape; g is a per-kernel scale.
        const info = ckpt.info(name === `${POS_CONV}.weight` ? stored[stored.length - 1]! : stored[0]!);
        if (info) shapes.set(name, info.shape);
      }
      const all = ckpt.tensors();
      return {
        ok: true,
        model: { dir, config, checkpointFile: ckpt.file, shapes, tensorCount: all.length, parameterCount: countParameters(all), dtypes: dtypeCounts(all) },
      };
    } finally {
      await ckpt.close();
    }
  } catch (e) {
    return { ok: false, problem: 'bad-checkpoint', message: describeError(e) };
  }
}

function countParameters(tensors: readonly TensorInfo[]): number {
  let n = 0;
  for (const t of tensors) n += numel(t.shape);
  return n;
}

function dtypeCounts(tensors: readonly TensorInfo[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tensors) out[t.dtype] = (out[t.dtype] ?? 0) + numel(t.shape);
  return out;
}

async function containsAudio(dir: string, visited: Set<string>): Promise<boolean> {
  let entries: import('node:fs').Dirent[];
  try {
    const real = await fs.realpath(dir);
    if (visited.has(real)) return false;
    visited.add(real);
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  const visible = entries.filter((e) => !e.name.startsWith('.'));
  if (visible.some((e) => !e.isDirectory() && isAudioFile(e.name))) return true;
  for (const e of visible) {
    const full = path.join(dir, e.name);
    const isDir = e.isDirectory() || (e.isSymbolicLink() && (await fs.stat(full).then((st) => st.isDirectory(), () => false)));
    if (isDir && (await containsAudio(full, visited))) return true;
  }
  return false;
}
