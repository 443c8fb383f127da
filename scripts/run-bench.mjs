// Runs a TypeScript benchmark from bench/ with tsx (benchmarks print tables; they are never timed tests).
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const [file, ...args] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/run-bench.mjs bench/<name>.bench.ts [args]');
  process.exit(2);
}
const tsx = require.resolve('tsx/cli');
const r = spawnSync(process.execPath, [tsx, file, ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
