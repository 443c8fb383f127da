/**
 * Memoises disk checks (model headers, folder listings, labels.csv) by path and file stamps (mtime + size of
 * the files the result depends on), so editing a recipe re-reads nothing that has not changed. Stamps make
 * the cache correct without a file watcher (the CLI); the language server also calls `invalidate` from
 * `workspace/didChangeWatchedFiles`, which catches changes a coarse mtime could hide.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

interface Entry {
  stamp: string;
  value: Promise<unknown>;
  /** Paths whose change invalidates this entry (besides the stamped ones). */
  deps: string[];
}

export class DiskCache {
  private readonly entries = new Map<string, Entry>();
  /** Counts for tests and the benchmark: how often a check really ran. */
  readonly stats = { hits: 0, misses: 0 };

  /**
   * The cached value for `key` while the stamps of `stampPaths` are unchanged; otherwise runs `compute`.
   * Concurrent callers share one computation.
   */
  async get<T>(key: string, stampPaths: readonly string[], compute: () => Promise<T>): Promise<T> {
    const stamp = await stampOf(stampPaths);
    const hit = this.entries.get(key);
    if (hit && hit.stamp === stamp) {
      this.stats.hits++;
      return hit.value as Promise<T>;
    }
    this.stats.misses++;
    const value = compute();
    this.entries.set(key, { stamp, value, deps: stampPaths.map((p) => path.resolve(p)) });
    return value;
  }

  /** Drops every entry that depends on `changed`, on a file inside it, or on a folder containing it. */
  invalidate(changed: string): number {
    const c = path.resolve(changed);
    let dropped = 0;
    for (const [key, entry] of this.entries) {
      if (entry.deps.some((d) => d === c || isInside(d, c) || isInside(c, d))) {
        this.entries.delete(key);
        dropped++;
      }
    }
    return dropped;
  }

  /** Forgets one entry (an answer that must not be reused, such as a probe that ran out of time). */
  drop(key: string): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

async function stampOf(paths: readonly string[]): Promise<string> {
  const parts = await Promise.all(
    paths.map((p) =>
      fs.stat(p).then(
        (s) => `${s.isDirectory() ? 'd' : 'f'}${s.mtimeMs}:${s.size}`,
        () => '-',
      ),
    ),
  );
  return parts.join('|');
}
