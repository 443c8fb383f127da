/**
 * Where an engine worker script is, for `new Worker(entry.file, { eval: entry.eval })`:
 *   - bundled (dist/cli.js, dist/server.js): `<name>.js` beside the bundle (scripts/build.mjs emits it);
 *   - from source (vitest, tsx): `<name>.ts` in `sourceDir`, run with tsx's require hook (a dev dependency).
 *     Passing `--import tsx` in execArgv does not work for a worker's own entry on Node 20: its ESM loader rejects
 *     ".ts". So the worker runs a CommonJS bootstrap that installs the hook, then loads the .ts entry.
 * `dir` is the caller's `__dirname` (defined in the CJS bundle, in tsx's CJS mode and under vitest).
 * Null when neither is present, or when running from source without tsx.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export interface WorkerEntry {
  file: string;
  eval: boolean;
}

export function workerEntry(name: string, dir: string | undefined): WorkerEntry | null {
  if (!dir) return null;
  const bundled = join(dir, `${name}.js`);
  if (existsSync(bundled)) return { file: bundled, eval: false };
  const source = join(dir, `${name}.ts`);
  if (!existsSync(source)) return null;
  let register: string;
  try {
    register = createRequire(source).resolve('tsx/cjs');
  } catch {
    return null;
  }
  return { file: `require(${JSON.stringify(register)});\nrequire(${JSON.stringify(source)});\n`, eval: true };
}
