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

export const AUDIO_EXTENSIONS = ['.wav', '.flac', '.mp3'] as const;

export function isAudioFile(name: string): boolean {
  return (AUDIO_EXTENSIONS as readonly string[]).includes(path.extname(name).toLowerCase());
}

/** One split (`train/` or `test/`) of an evaluation dataset. */
export interface SplitInspection {
  split: 'train' | 'test';
  /** Problems in document order, each naming the file and line; empty when the split is well formed. */
  problems: string[];
  rows: number;
  labels: number;
}

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
    const stamps = [dir, 'config.json', 'preprocessor_config.json', 'model.safetensors', 'model.safetensors.index.json'].map((f, i) =>
      i === 0 ? f : path.join(dir, f),
    );
    return this.cache.get(`model:${dir}`, stamps, () => inspectModelUncached(dir));
  }

  /** Number of audio files in a folder tree (up to a few levels deep; stops counting at `limit`). */
  countAudio(dir: string, limit = 1000): Promise<number> {
    return this.cache.get(`audio:${dir}`, [dir], () => countAudioFiles(dir, 4, limit));
  }

  /** Checks `train/` and `test/` of a task folder: labels.csv header `file,label`, rows, files present. */
  inspectDataset(dir: string): Promise<SplitInspection[]> {
    const stamps = [dir];
    for (const split of ['train', 'test']) stamps.push(path.join(dir, split), path.join(dir, split, 'labels.csv'));
    return this.cache.get(`dataset:${dir}`, stamps, () => Promise.all((['train', 'test'] as const).map((s) => inspectSplit(dir, s))));
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

async function countAudioFiles(dir: string, depth: number, limit: number): Promise<number> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let n = 0;
  for (const e of entries) {
    if (n >= limit) break;
    if (e.isFile() && isAudioFile(e.name)) n++;
    else if (e.isDirectory() && depth > 0 && !e.name.startsWith('.')) n += await countAudioFiles(path.join(dir, e.name), depth - 1, limit - n);
  }
  return n;
}

const MAX_REPORTED = 3;

async function inspectSplit(dir: string, split: 'train' | 'test'): Promise<SplitInspection> {
  const splitDir = path.join(dir, split);
  const csvName = `${split}/labels.csv`;
  const result: SplitInspection = { split, problems: [], rows: 0, labels: 0 };
  const st = await fs.stat(splitDir).catch(() => undefined);
  if (!st?.isDirectory()) {
    result.problems.push(`has no ${split}/ folder`);
    return result;
  }
  let text: string;
  try {
    text = await fs.readFile(path.join(splitDir, 'labels.csv'), 'utf8');
  } catch {
    result.problems.push(`has no ${csvName}`);
    return result;
  }
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const header = parseCsvLine(lines[0] ?? '');
  if (header === null || header.length !== 2 || header[0]!.trim() !== 'file' || header[1]!.trim() !== 'label') {
    result.problems.push(`${csvName} line 1: header must be "file,label", found ${JSON.stringify(lines[0] ?? '')}`);
    return result;
  }
  let present: Set<string>;
  try {
    present = new Set(await fs.readdir(splitDir));
  } catch {
    present = new Set();
  }
  const labels = new Set<string>();
  const seen = new Map<string, number>();
  const problems: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const where = `${csvName} line ${i + 1}`;
    const fields = parseCsvLine(line);
    if (fields === null) {
      problems.push(`${where}: unbalanced quotes`);
      continue;
    }
    if (fields.length !== 2) {
      problems.push(`${where}: expected 2 fields (file,label), found ${fields.length}`);
      continue;
    }
    const [file, label] = fields.map((f) => f.trim()) as [string, string];
    if (file === '' || label === '') {
      problems.push(`${where}: empty ${file === '' ? 'file' : 'label'}`);
      continue;
    }
    const firstLine = seen.get(file);
    if (firstLine !== undefined) {
      problems.push(`${where}: ${file} is already listed on line ${firstLine}`);
      continue;
    }
    seen.set(file, i + 1);
    result.rows++;
    labels.add(label);
    const exists = file.includes('/') || file.includes('\\') ? await fs.stat(path.join(splitDir, file)).then((s) => s.isFile(), () => false) : present.has(file);
    if (!exists) problems.push(`${where}: audio file ${file} does not exist`);
    else if (!isAudioFile(file)) problems.push(`${where}: ${file} is not a wav, flac or mp3 file`);
  }
  result.labels = labels.size;
  if (result.rows === 0 && problems.length === 0) problems.push(`${csvName} has no rows`);
  else if (split === 'train' && labels.size === 1 && problems.length === 0) problems.push(`${csvName} has a single label (${[...labels][0]}); a probe needs at least two`);
  if (problems.length > MAX_REPORTED) {
    const more = problems.length - MAX_REPORTED;
    result.problems.push(...problems.slice(0, MAX_REPORTED), `…and ${more} more problem${more === 1 ? '' : 's'} in ${csvName}`);
  } else result.problems.push(...problems);
  return result;
}

/** One CSV record (RFC 4180 quoting, no embedded newlines); null when the quotes do not balance. */
export function parseCsvLine(line: string): string[] | null {
  const fields: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"' && cur.trim() === '') {
      quoted = true;
      cur = '';
    } else if (c === ',') {
      fields.push(cur);
      cur = '';
    } else cur += c;
  }
  if (quoted) return null;
  fields.push(cur);
  return fields;
}
