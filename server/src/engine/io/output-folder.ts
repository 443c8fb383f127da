/**
 * Facts about an output folder before anything is written to it, shared by the recipe checker (diagnostics on
 * `output:`), the run's start (refusal before any compute) and the publish step (a last look before replacing):
 * whether the tool may replace what is there, whether it overlaps an input, whether its parent can be written,
 * and how much space is free. Every answer is a value; nothing here throws on user input.
 *
 * Ownership: Merge Studio replaces only a folder it wrote itself. Such a folder holds a report.json whose
 * `tool.mergeStudio` field names the tool's version (every report has carried it since REPORT_VERSION 1, so
 * outputs of earlier releases are recognised too) and no file besides the ones the tool writes there.
 */
import { constants, promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { describeError } from '../errors';

/** The files a run writes into its output folder. */
export const OUTPUT_FILES = ['config.json', 'preprocessor_config.json', 'model.safetensors', 'permutations.json', 'report.json'] as const;
/** Files desktop environments drop into any folder that was opened; harmless to replace. */
const DESKTOP_LITTER = new Set(['.DS_Store', 'Thumbs.db', 'desktop.ini']);
/** A report this large is not one the tool wrote (real ones are a few MiB, heatmaps included). */
const MAX_REPORT_BYTES = 64 * 1024 * 1024;
/** Entries read from an existing folder: enough to name a few foreign ones without listing a whole home folder. */
const LISTED_ENTRIES = 200;
const NAMED_ENTRIES = 3;

export type OutputFolderState =
  | { kind: 'missing' }
  | { kind: 'empty' }
  /** Written by Merge Studio and holding nothing else: the tool may replace it. */
  | { kind: 'tool-output' }
  /** Anything else: `reason` completes "output X …". */
  | { kind: 'refused'; reason: string };

/** What exists at `dir`, and whether the tool may replace it. */
export async function inspectOutputFolder(dir: string): Promise<OutputFolderState> {
  let st: Stats;
  try {
    st = await fs.lstat(dir);
  } catch (e) {
    // ENOTDIR: a file stands where a parent folder should be; nearestExisting() names it.
    if (['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return { kind: 'missing' };
    return { kind: 'refused', reason: `cannot be inspected (${errnoText(e)})` };
  }
  if (st.isSymbolicLink()) st = await fs.stat(dir).catch(() => st);
  if (!st.isDirectory())
    return { kind: 'refused', reason: st.isSymbolicLink() ? 'is a dangling symbolic link' : 'exists and is not a folder' };
  let names: string[];
  try {
    names = await listSome(dir, LISTED_ENTRIES);
  } catch (e) {
    return { kind: 'refused', reason: `cannot be listed (${errnoText(e)})` };
  }
  const entries = names.filter((n) => !DESKTOP_LITTER.has(n));
  if (entries.length === 0) return { kind: 'empty' };
  const report = await readToolReport(path.join(dir, 'report.json'));
  if (!report) {
    return {
      kind: 'refused',
      reason: `is a folder Merge Studio did not write (it holds ${nameSome(entries)}); Merge Studio only replaces its own output folders`,
    };
  }
  const allowed = new Set<string>([...OUTPUT_FILES, ...report.files]);
  const foreign = entries.filter((n) => !allowed.has(n));
  if (foreign.length) {
    return {
      kind: 'refused',
      reason: `was written by Merge Studio but now also holds ${nameSome(foreign)}; move them out or choose another output`,
    };
  }
  return { kind: 'tool-output' };
}

/** Reports already read, by path and stamp: the editor asks again on every keystroke, a report is megabytes. */
const reportMemo = new Map<string, { stamp: string; files: string[] | undefined }>();
const REPORT_MEMO_SIZE = 16;

/** The report's own list of output files, when `file` is a report.json the tool wrote; else undefined. */
async function readToolReport(file: string): Promise<{ files: string[] } | undefined> {
  const st = await fs.stat(file).catch(() => undefined);
  if (!st?.isFile() || st.size > MAX_REPORT_BYTES) return undefined;
  const stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
  let hit = reportMemo.get(file);
  if (hit?.stamp !== stamp) {
    hit = { stamp, files: (await parseToolReport(file))?.files };
    reportMemo.delete(file);
    reportMemo.set(file, hit);
    if (reportMemo.size > REPORT_MEMO_SIZE) reportMemo.delete(reportMemo.keys().next().value!);
  }
  return hit.files ? { files: hit.files } : undefined;
}

async function parseToolReport(file: string): Promise<{ files: string[] } | undefined> {
  try {
    const json = JSON.parse(await fs.readFile(file, 'utf8')) as {
      version?: unknown;
      tool?: { mergeStudio?: unknown };
      output?: { files?: unknown };
    };
    if (typeof json.version !== 'number' || typeof json.tool?.mergeStudio !== 'string') return undefined;
    // Listed files may lie in sub-folders (variants): the top-level entry is what the folder holds.
    const files = Array.isArray(json.output?.files)
      ? json.output.files.filter((f): f is string => typeof f === 'string').map((f) => f.split(/[\\/]/)[0]!)
      : [];
    return { files: files.filter((f) => f !== '' && f !== '.' && f !== '..') };
  } catch {
    return undefined;
  }
}

async function listSome(dir: string, max: number): Promise<string[]> {
  const handle = await fs.opendir(dir, { bufferSize: max });
  const names: string[] = [];
  try {
    for (let e = await handle.read(); e && names.length < max; e = await handle.read()) names.push(e.name);
  } finally {
    await handle.close().catch(() => undefined);
  }
  return names.sort();
}

function nameSome(names: string[]): string {
  const shown = names.slice(0, NAMED_ENTRIES).join(', ');
  return names.length > NAMED_ENTRIES ? `${shown} and more` : shown;
}

/** An input of the run: the recipe, a model folder, probe audio, evaluation data, the Hub cache. */
export interface RunInput {
  /** How a message names it: "models.anchor", "the recipe", "probe.audio[0]". */
  name: string;
  /** As the recipe wrote it; empty when the name says it all. */
  shown: string;
  path: string;
  /** Completes "the run would overwrite …". */
  what: string;
}

/** The first input that is the output, lies inside it or contains it (symbolic links resolved). */
export async function overlappingInput(target: string, inputs: readonly RunInput[]): Promise<RunInput | undefined> {
  // All paths resolved at once: the editor runs this on every edit, and each resolution is a few file-system calls.
  const usable = inputs.filter((i) => !i.path.includes('\0'));
  const [out, ...real] = await Promise.all([realPathOf(target), ...usable.map((i) => realPathOf(i.path))]);
  return usable.find((_, k) => real[k] === out || isInside(real[k]!, out!) || isInside(out!, real[k]!));
}

/**
 * The real path of a path that may not exist yet: its nearest existing ancestor resolved through symbolic
 * links, with the missing rest appended.
 */
export async function realPathOf(p: string): Promise<string> {
  const abs = path.resolve(p);
  const rest: string[] = [];
  for (let dir = abs; ; dir = path.dirname(dir)) {
    try {
      return path.join(await fs.realpath(dir), ...rest.reverse());
    } catch {
      if (path.dirname(dir) === dir) return abs;
      rest.push(path.basename(dir));
    }
  }
}

export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/** Why the path itself is unusable (checked before touching the disk), or undefined. */
export function outputPathProblem(target: string): string | undefined {
  if (target.includes('\0')) return 'contains a NUL byte';
  if (target.trim() === '') return 'is empty';
  return undefined;
}

/**
 * The closest path that exists on the way up from `p`'s parent: the folder a run creates the output in, or
 * what stands in the way (a file, or a path that cannot be reached).
 */
export async function nearestExisting(
  p: string,
): Promise<{ dir: string; kind: 'folder' | 'not-a-folder' } | { dir: string; kind: 'unreachable'; reason: string }> {
  for (let dir = path.dirname(path.resolve(p)); ; dir = path.dirname(dir)) {
    const st = await fs.stat(dir).catch((e: NodeJS.ErrnoException) => e);
    if (!(st instanceof Error)) return { dir, kind: st.isDirectory() ? 'folder' : 'not-a-folder' };
    if (st.code !== 'ENOENT' || path.dirname(dir) === dir) return { dir, kind: 'unreachable', reason: errnoText(st) };
  }
}

/** Why the process may not create entries in `dir`, from its permissions and mount flags (no side effect). */
export async function writeAccessProblem(dir: string): Promise<string | undefined> {
  try {
    await fs.access(dir, constants.W_OK | constants.X_OK);
    return undefined;
  } catch (e) {
    return errnoText(e);
  }
}

/**
 * Creates and removes a file in `dir`: the one sure test of writability (root passes permission checks, and
 * access checks do not see every read-only mount). Undefined when fine, else the reason.
 */
export async function probeWrite(dir: string): Promise<string | undefined> {
  const probe = path.join(dir, `.merge-studio-write-test-${process.pid}-${Date.now()}`);
  try {
    await fs.writeFile(probe, '', { flag: 'wx' });
  } catch (e) {
    return errnoText(e);
  }
  await fs.rm(probe, { force: true }).catch(() => undefined);
  return undefined;
}

/** Bytes available to this user on the file system holding `dir`, when the platform says. */
export async function freeBytes(dir: string): Promise<number | undefined> {
  try {
    const s = await fs.statfs(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

/** Bytes a run's output needs at most: float32 weights plus config, permutations and the report. */
export function estimateOutputBytes(parameters: number): number {
  return parameters * 4 + 64 * 1024 * 1024;
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a part of the path is not a folder',
  ENAMETOOLONG: 'name too long',
  ELOOP: 'too many symbolic links',
  EIO: 'input/output error',
  EEXIST: 'already exists',
  ENOTEMPTY: 'folder not empty',
  EXDEV: 'crosses file systems',
  EISDIR: 'is a folder',
  EMFILE: 'too many open files',
};

/** "read-only file system (EROFS)" for an errno error, its one-line message otherwise. */
export function errnoText(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string') return ERRNO_TEXT[code] ? `${ERRNO_TEXT[code]}, ${code}` : code;
  return describeError(e);
}
