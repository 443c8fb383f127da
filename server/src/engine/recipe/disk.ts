/**
 * What the recipe checks need to know about files, read as cheaply as possible (headers, listings, one CSV)
 * and memoised in a DiskCache: model folders (config + checkpoint header), audio folders, task datasets.
 * Every failure is a value, never a throw: the checks turn them into diagnostics.
 *
 * The language server runs these checks beside everything else it does, so none may block it: only regular files
 * are read (checked with stat first: open() on a named pipe waits for a writer forever and holds one of libuv's
 * four threads while it waits; /dev/zero never ends), small files have size limits, and every probe has a
 * deadline after which it answers "not checked" instead of waiting.
 */
import { promises as fs, type Dirent, type Stats } from 'node:fs';
import * as path from 'node:path';
import { describeError, isEngineError } from '../errors';
import { openCheckpoint, type TensorInfo } from '../io/checkpoint';
import { loadEncoderConfig, type EncoderConfig } from '../io/hfconfig';
import { numel } from '../model/tensor';
import { sniffAudioFormat } from '../io/audio-format';
import { LABELS_CSV, loadTaskDataset } from '../io/dataset';
import { describeFileKind, openRegularFile } from '../io/regular-file';
import { checkCheckpoint, expectedShapes, POS_CONV, storedNames } from '../model/weights';
import { DiskCache } from './disk-cache';

/** Size limits of the small files the checks read whole (a real config is a few kB; labels.csv ~40 bytes a row). */
export const DISK_LIMITS = {
  /** config.json and preprocessor_config.json. */
  configBytes: 1024 * 1024,
  /** Each split's labels.csv: about a million rows. */
  labelsCsvBytes: 64 * 1024 * 1024,
  /** Folders an audio folder tree is searched through for one audio file. */
  audioFolders: 10_000,
  /** Default deadline of one disk probe (a model header, a folder listing, a dataset). */
  probeTimeoutMs: 15_000,
} as const;

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

/** What is at a path; `special` is anything that is neither a regular file nor a folder (a FIFO, a socket, a device). */
export type PathKind = 'file' | 'directory' | 'missing' | 'special';

/** Extensions the engine picks up when it lists a folder (io/audio.ts). */
export const AUDIO_EXTENSIONS = ['.wav', '.flac', '.mp3'] as const;

export function isAudioFile(name: string): boolean {
  return (AUDIO_EXTENSIONS as readonly string[]).includes(path.extname(name).toLowerCase());
}

/** An evaluation dataset as the engine's own loader sees it. */
export type DatasetInspection = { ok: true; classes: string[]; train: number; test: number } | { ok: false; message: string };

export interface RecipeDiskOptions {
  /** Deadline of one disk probe, in ms (default DISK_LIMITS.probeTimeoutMs). */
  probeTimeoutMs?: number;
  /** Folders an audio tree is searched through (default DISK_LIMITS.audioFolders). */
  audioFolders?: number;
}

export class RecipeDisk {
  readonly probeTimeoutMs: number;
  readonly audioFolders: number;

  constructor(
    readonly cache: DiskCache = new DiskCache(),
    options: RecipeDiskOptions = {},
  ) {
    this.probeTimeoutMs = options.probeTimeoutMs ?? DISK_LIMITS.probeTimeoutMs;
    this.audioFolders = options.audioFolders ?? DISK_LIMITS.audioFolders;
  }

  async pathKind(p: string): Promise<PathKind> {
    return fs.stat(p).then(
      (s) => (s.isDirectory() ? 'directory' : s.isFile() ? 'file' : 'special'),
      () => 'missing',
    );
  }

  /** What a special file is, for messages ("a named pipe (FIFO)", "a device"); undefined when it is gone. */
  async describeKind(p: string): Promise<string | undefined> {
    return fs.stat(p).then(describeFileKind, () => undefined);
  }

  /** Config + checkpoint header of a model folder (no weights read). */
  inspectModel(dir: string): Promise<ModelInspection> {
    const stamps = [
      dir,
      'config.json',
      'preprocessor_config.json',
      'model.safetensors',
      'model.safetensors.index.json',
      'pytorch_model.bin',
      'pytorch_model.bin.index.json',
    ].map((f, i) => (i === 0 ? f : path.join(dir, f)));
    const key = `model:${dir}`;
    return this.cache.get(key, stamps, () =>
      this.deadline(key, inspectModelUncached(dir), (s) => ({
        ok: false,
        problem: 'bad-model',
        message: `${dir}: reading the model took longer than ${s} s (a slow or hung drive?); not checked`,
      })),
    );
  }

  /**
   * Null when a folder tree holds at least one audio file (hidden entries skipped, as the engine's listing does),
   * else why not.
   */
  audioFolderProblem(dir: string): Promise<string | null> {
    const key = `audio:${dir}`;
    return this.cache.get(key, [dir], () => {
      const walk: AudioWalk = { stopped: false, foldersLeft: this.audioFolders };
      // A folder budget keeps the answer the same every time (`probe: [/]` would list the whole disk until the deadline).
      const listed = containsAudio(dir, new Set(), walk).then((found) =>
        found
          ? null
          : walk.foldersLeft < 0
            ? `${dir}: no wav, flac or mp3 file in its first ${this.audioFolders.toLocaleString('en-US')} folders; is this the folder you meant?`
            : `${dir} holds no wav, flac or mp3 files`,
      );
      return this.deadline(key, listed, (s) => {
        walk.stopped = true;
        return `${dir}: listing it for audio took longer than ${s} s (a very large tree, or a slow drive?); not checked`;
      });
    });
  }

  /**
   * A file given explicitly as probe audio: the engine decodes it by its magic bytes whatever its name, so a
   * file without an audio extension is sniffed the same way. Null when fine, else the reason.
   */
  audioFileProblem(file: string): Promise<string | null> {
    if (isAudioFile(file)) return Promise.resolve(null);
    const key = `sniff:${file}`;
    const sniff = async () => {
      try {
        const { handle } = await openRegularFile(file, 'an audio file (wav, flac or mp3)', 'bad-audio');
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
    };
    return this.cache.get(key, [file], () =>
      this.deadline(key, sniff(), (s) => `${file}: reading it took longer than ${s} s; not checked`),
    );
  }

  /** A task folder through the engine's own dataset loader (labels.csv parsed, listed files checked, no audio decoded). */
  inspectDataset(dir: string): Promise<DatasetInspection> {
    const stamps = [dir];
    for (const split of ['train', 'test']) stamps.push(path.join(dir, split), path.join(dir, split, LABELS_CSV));
    const key = `dataset:${dir}`;
    const inspect = async (): Promise<DatasetInspection> => {
      try {
        for (const split of ['train', 'test']) {
          const csv = path.join(dir, split, LABELS_CSV);
          const problem = smallFileProblem(
            await fs.stat(csv).catch(() => undefined),
            csv,
            DISK_LIMITS.labelsCsvBytes,
            'labels.csv (header "file,label")',
          );
          if (problem) return { ok: false, message: problem };
        }
        const d = await loadTaskDataset(dir);
        return { ok: true, classes: d.classes, train: d.train.clips.length, test: d.test.clips.length };
      } catch (e) {
        return { ok: false, message: describeError(e) };
      }
    };
    return this.cache.get(key, stamps, () =>
      this.deadline(key, inspect(), (s) => ({
        ok: false,
        message: `${dir}: reading the dataset took longer than ${s} s (a slow or hung drive?); not checked`,
      })),
    );
  }

  /**
   * `work`, or `late(seconds)` once the probe's deadline passes; a late answer is not cached, so the next check
   * tries again. The work itself cannot be stopped (Node cannot interrupt a read), which is why only regular files
   * are opened at all: those reads end.
   */
  private deadline<T>(key: string, work: Promise<T>, late: (seconds: number) => T): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<T>((resolve) => {
      timer = setTimeout(() => {
        this.cache.drop(key);
        resolve(late(Math.round(this.probeTimeoutMs / 100) / 10));
      }, this.probeTimeoutMs);
      timer.unref();
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }
}

/**
 * Why a small file the checks read whole cannot be read (undefined when it can, or when it is missing: the
 * loader names a missing file itself): not a regular file, or over `limit` bytes.
 */
function smallFileProblem(st: Stats | undefined, file: string, limit: number, what: string): string | undefined {
  if (!st) return undefined;
  if (!st.isFile()) return `${file} is not a regular file (it is ${describeFileKind(st)}); expected ${what}`;
  if (st.size > limit) return `${file} is ${formatBytes(st.size)}; ${what} may be at most ${formatBytes(limit)}`;
  return undefined;
}

function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(n >= 10 * 1024 * 1024 ? 0 : 1)} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} kB`;
  return `${n} bytes`;
}

async function inspectModelUncached(dir: string): Promise<ModelInspection> {
  const st = await fs.stat(dir).catch(() => undefined);
  if (!st) return { ok: false, problem: 'path-not-found', message: `${dir} does not exist` };
  if (!st.isDirectory()) {
    const what = st.isFile() ? 'a file' : describeFileKind(st);
    return {
      ok: false,
      problem: 'not-a-directory',
      message: `${dir} is ${what}; expected a model folder with config.json and model.safetensors`,
    };
  }
  for (const name of ['config.json', 'preprocessor_config.json']) {
    const file = path.join(dir, name);
    const problem = smallFileProblem(
      await fs.stat(file).catch(() => undefined),
      file,
      DISK_LIMITS.configBytes,
      `a JSON ${name === 'config.json' ? 'model config' : 'preprocessor config'}`,
    );
    if (problem) return { ok: false, problem: 'bad-model', message: problem };
  }
  let config: EncoderConfig;
  try {
    config = await loadEncoderConfig(dir);
  } catch (e) {
    if (isEngineError(e, 'file-not-found'))
      return { ok: false, problem: 'bad-model', message: `${dir} has no config.json; expected a Hugging Face model folder` };
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
        model: {
          dir,
          config,
          checkpointFile: ckpt.file,
          shapes,
          tensorCount: all.length,
          parameterCount: countParameters(all),
          dtypes: dtypeCounts(all),
        },
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

/** A walk through an audio folder tree: stopped by its deadline, or once it has listed `foldersLeft` folders. */
interface AudioWalk {
  stopped: boolean;
  foldersLeft: number;
}

async function containsAudio(dir: string, visited: Set<string>, walk: AudioWalk): Promise<boolean> {
  if (walk.stopped) return false;
  if (walk.foldersLeft-- <= 0) {
    walk.stopped = true;
    return false;
  }
  let entries: Dirent[];
  try {
    const real = await fs.realpath(dir);
    if (visited.has(real)) return false;
    visited.add(real);
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  const visible = entries.filter((e) => !e.name.startsWith('.'));
  // Regular files (or links) only: a pipe named x.wav is not audio the engine can read.
  if (visible.some((e) => (e.isFile() || e.isSymbolicLink()) && isAudioFile(e.name))) return true;
  for (const e of visible) {
    const full = path.join(dir, e.name);
    const isDir =
      e.isDirectory() ||
      (e.isSymbolicLink() &&
        (await fs.stat(full).then(
          (st) => st.isDirectory(),
          () => false,
        )));
    if (isDir && (await containsAudio(full, visited, walk))) return true;
  }
  return false;
}
