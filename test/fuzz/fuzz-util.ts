/**
 * Shared pieces of the fuzz tier (test/fuzz/*.test.ts). Every fuzz file follows one convention:
 *
 * - Case count: `fuzzCases(defaultCount)`. The default is small, so the whole tier runs inside `npm test` in under
 *   3 minutes on 2 cores; `npm run fuzz -- --cases N` (scripts/fuzz.mjs) sets MERGE_STUDIO_FUZZ_CASES=N for a larger
 *   nightly corpus (N cases per fuzz file).
 * - Determinism: case i of a file draws from `caseRng(fileSeed, i)` only (mulberry32, the engine's generator), so a
 *   failure names its case index and reruns alone with MERGE_STUDIO_FUZZ_ONLY=i.
 * - Outcomes: a `FuzzTally` counts cases, crashes (a stack trace, an unlocated message, a thrown error, a dead
 *   process, a side effect outside the case's folder), hangs (no answer within the time bound) and peak memory; it
 *   writes its totals where scripts/fuzz.mjs collects them (MERGE_STUDIO_FUZZ_STATS), and the test then asserts that
 *   there were no crashes and no hangs, listing the first few with their case numbers.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mulberry32 } from '../../server/src/engine/random';

export { mulberry32 };

/** Cases to run in one fuzz file: MERGE_STUDIO_FUZZ_CASES when set (nightly), else the file's small default. */
export function fuzzCases(defaultCount: number): number {
  const raw = process.env['MERGE_STUDIO_FUZZ_CASES'];
  if (raw === undefined || raw === '') return defaultCount;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`MERGE_STUDIO_FUZZ_CASES must be a positive integer, got "${raw}"`);
  return n;
}

/** The case indices to run: all of 0..count-1, or the single one named by MERGE_STUDIO_FUZZ_ONLY (to replay a failure). */
export function caseIndices(count: number): number[] {
  const only = process.env['MERGE_STUDIO_FUZZ_ONLY'];
  if (only !== undefined && only !== '') return [Number(only)];
  return Array.from({ length: count }, (_, i) => i);
}

/** A file's base seed (MERGE_STUDIO_FUZZ_SEED shifts every file's corpus at once, for a fresh nightly corpus). */
export function fileSeed(name: string): number {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const shift = Number(process.env['MERGE_STUDIO_FUZZ_SEED'] ?? 0) >>> 0;
  return (h + shift) >>> 0;
}

/** The generator for case `index` of a file: independent of every other case, so cases replay alone. */
export function caseRng(seed: number, index: number): Rng {
  return new Rng(mulberry32((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0));
}

/** Small conveniences over a seeded uniform generator. */
export class Rng {
  constructor(readonly next: () => number) {}
  /** An integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  bool(p = 0.5): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
}

/** A fresh temporary folder for one case (under os.tmpdir(), prefix `ms-fuzz-`); `remove()` deletes it. */
export function caseDir(label: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `ms-fuzz-${label.replace(/[^\w-]/g, '_')}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * What a folder holds (relative path → size and mtime), to prove a case changed nothing outside its own folder.
 * `skip` names top-level entries not to descend into (e.g. other cases' folders).
 */
export function snapshotTree(root: string, opts: { maxDepth?: number; skip?: (name: string) => boolean } = {}): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string, rel: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (depth === 0 && opts.skip?.(name)) continue;
      const abs = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      let st;
      try {
        st = statSync(abs, { bigint: false, throwIfNoEntry: false });
      } catch {
        continue;
      }
      if (!st) continue;
      out.set(r, st.isDirectory() ? 'dir' : `${st.size}:${st.mtimeMs}`);
      if (st.isDirectory() && depth + 1 < (opts.maxDepth ?? 4)) walk(abs, r, depth + 1);
    }
  };
  walk(root, '', 0);
  return out;
}

/** Entries added, removed or changed between two snapshots (empty when nothing changed). */
export function diffTrees(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [k, v] of after) if (before.get(k) !== v) changes.push(before.has(k) ? `changed ${k}` : `added ${k}`);
  for (const k of before.keys()) if (!after.has(k)) changes.push(`removed ${k}`);
  return changes;
}

/** Signs that an internal error leaked to a user: a JS stack frame, a raw Node error class or code, V8 limits. */
const STACK_SIGNS: readonly RegExp[] = [
  /^\s*at .+[:(]\d+:\d+\)?\s*$/m, // a stack frame
  /\bat (?:async )?[\w.<>$]+ \(/, // a frame without line numbers
  /node:internal/,
  /\b(?:TypeError|RangeError|ReferenceError|EvalError|InternalError)\b/,
  /\bERR_[A-Z_]{3,}\b/,
  /Maximum call stack size exceeded/,
  /Invalid string length/,
  /Invalid array length/,
  /JavaScript heap out of memory/,
  /\bundefined is not\b|\bcannot read propert(?:y|ies) of (?:undefined|null)\b/i,
];

/** Why `text` looks like a leaked internal error (a stack trace or raw JS error), or undefined when it is clean. */
export function stackTraceIn(text: string): string | undefined {
  for (const re of STACK_SIGNS) {
    const m = re.exec(text);
    if (m) return `${re} matched "${m[0].trim().slice(0, 120)}"`;
  }
  return undefined;
}

/** Throws when `text` (a message, a log, a process's stderr) carries a stack trace or raw JS error. */
export function assertNoStackTrace(text: string, where: string): void {
  const why = stackTraceIn(text);
  if (why) throw new Error(`${where}: internal error leaked to the user (${why}):\n${text.slice(0, 2000)}`);
}

/**
 * A located message names where the problem is: a file path (absolute or relative, with or without line:col),
 * or a recipe key path (`models.anchor`, `merge.lambda`, `align.permute[2]`), or a line/column. Returns the reason
 * it is unlocated, or undefined when it is located.
 */
export function unlocatedReason(message: string): string | undefined {
  if (message.trim() === '') return 'empty message';
  if (/(?:^|[\s"'`(])(?:\/|\.{1,2}\/|[A-Za-z]:\\|file:\/\/)[^\s"'`]+/.test(message)) return undefined; // a path
  if (/[\w-]+\.(?:ya?ml|json|csv|wav|flac|mp3|ogg|bin|pt|pth|safetensors|onnx)\b/i.test(message)) return undefined; // a file name
  if (/\b[a-z_]+(?:\.[a-z_*]+|\[\d+\])+\b/i.test(message)) return undefined; // a key path
  if (/\bline \d+|:\d+:\d+\b/i.test(message)) return undefined; // a line
  return `no file, key path or line named in "${message.slice(0, 200)}"`;
}

/** Throws when `message` names no place (file, key path or line). */
export function assertLocated(message: string, where: string): void {
  const why = unlocatedReason(message);
  if (why) throw new Error(`${where}: ${why}`);
}

/** Resident memory of a live process from /proc (Linux): current (VmRSS) and peak (VmHWM), in bytes; undefined elsewhere or once it exited. */
export function processMemory(pid: number): { rssBytes: number; peakBytes: number } | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rssBytes: kb('VmRSS'), peakBytes: kb('VmHWM') };
}

/** Thrown by `within` when an answer did not come in time: a hang, counted apart from crashes. */
export class FuzzHang extends Error {
  override readonly name = 'FuzzHang';
}

/** `promise`, or a FuzzHang after `ms` milliseconds. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new FuzzHang(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export interface FuzzFailure {
  kind: 'crash' | 'hang';
  caseIndex: number;
  detail: string;
}

/**
 * Counts one fuzz file's outcomes. `run(i, body)` classifies whatever `body` throws (FuzzHang → hang, anything
 * else → crash); `finish()` writes the totals for scripts/fuzz.mjs and returns a summary for the assertion.
 */
export class FuzzTally {
  cases = 0;
  peakMemoryBytes = 0;
  readonly failures: FuzzFailure[] = [];

  constructor(readonly name: string) {}

  async run(caseIndex: number, body: () => Promise<void> | void): Promise<void> {
    this.cases++;
    try {
      await body();
    } catch (e) {
      const detail = e instanceof Error ? `${e.message}` : String(e);
      this.failures.push({ kind: e instanceof FuzzHang ? 'hang' : 'crash', caseIndex, detail: detail.slice(0, 4000) });
    }
    // Totals so far, so a long run stopped early still says what it found.
    if (this.cases % 50 === 0) this.writeTotals(true);
  }

  /** Records a memory sample (bytes); the tally keeps the peak. */
  memory(bytes: number | undefined): void {
    if (bytes !== undefined && Number.isFinite(bytes)) this.peakMemoryBytes = Math.max(this.peakMemoryBytes, bytes);
  }

  get crashes(): number {
    return this.failures.filter((f) => f.kind === 'crash').length;
  }

  get hangs(): number {
    return this.failures.filter((f) => f.kind === 'hang').length;
  }

  /** Writes `<name>.json` into MERGE_STUDIO_FUZZ_STATS (when set) and returns a readable report of the first failures. */
  finish(): string {
    this.writeTotals(false);
    return this.failures
      .slice(0, 5)
      .map((f) => `case ${f.caseIndex} (${f.kind}; rerun with MERGE_STUDIO_FUZZ_ONLY=${f.caseIndex}): ${f.detail}`)
      .join('\n\n');
  }

  private writeTotals(partial: boolean): void {
    const dir = process.env['MERGE_STUDIO_FUZZ_STATS'];
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    const totals = {
      name: this.name,
      partial,
      cases: this.cases,
      crashes: this.crashes,
      hangs: this.hangs,
      peakMemoryBytes: this.peakMemoryBytes,
      failures: this.failures.slice(0, 20),
    };
    writeFileSync(path.join(dir, `${this.name.replace(/[^\w-]/g, '_')}.json`), JSON.stringify(totals, null, 2));
  }
}
