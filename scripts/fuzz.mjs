#!/usr/bin/env node
/**
 * The fuzz tier at any size: `npm run fuzz -- --cases 10000 [--seed 7] [test/fuzz/recipes-lsp.test.ts …]`.
 * Runs vitest on test/fuzz with MERGE_STUDIO_FUZZ_CASES=N (cases per fuzz file; `npm test` runs each file's small
 * default) and MERGE_STUDIO_FUZZ_SEED (a fresh corpus), then prints what each file's tally wrote: cases, crashes,
 * hangs, peak memory, and the first failures with the case number that replays them (MERGE_STUDIO_FUZZ_ONLY=i).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const files = [];
let cases;
let seed;
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const value = () => {
    const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[++i];
    if (v === undefined) fail(`${a} needs a value`);
    return v;
  };
  if (a === '--cases' || a.startsWith('--cases=')) cases = value();
  else if (a === '--seed' || a.startsWith('--seed=')) seed = value();
  else if (a === '--help' || a === '-h') {
    console.log('usage: npm run fuzz -- [--cases N] [--seed S] [fuzz test files…]');
    process.exit(0);
  } else files.push(a);
}
if (cases !== undefined && !/^[1-9]\d*$/.test(cases)) fail(`--cases must be a positive integer, got "${cases}"`);
if (seed !== undefined && !/^\d+$/.test(seed)) fail(`--seed must be a non-negative integer, got "${seed}"`);

// Totals land here (kept when the caller names the folder: a long run stopped early leaves its partial totals).
const keepStats = process.env.MERGE_STUDIO_FUZZ_STATS !== undefined;
const stats = process.env.MERGE_STUDIO_FUZZ_STATS ?? mkdtempSync(path.join(tmpdir(), 'ms-fuzz-stats-'));
const env = { ...process.env, MERGE_STUDIO_FUZZ_STATS: stats };
if (cases !== undefined) env.MERGE_STUDIO_FUZZ_CASES = cases;
if (seed !== undefined) env.MERGE_STUDIO_FUZZ_SEED = seed;
const started = Date.now();
const run = spawnSync(
  process.execPath,
  [path.join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', ...(files.length ? files : ['test/fuzz'])],
  { cwd: root, env, stdio: 'inherit' },
);

const tallies = readdirSync(stats)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(path.join(stats, f), 'utf8')));
if (!keepStats) rmSync(stats, { recursive: true, force: true });
const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MB`;
const total = { cases: 0, crashes: 0, hangs: 0, peak: 0 };
console.log(
  `\nfuzz: ${tallies.length} file(s) in ${((Date.now() - started) / 1000).toFixed(0)} s${seed === undefined ? '' : `, seed ${seed}`}`,
);
for (const t of tallies.sort((a, b) => a.name.localeCompare(b.name))) {
  console.log(
    `  ${t.name.padEnd(20)} ${String(t.cases).padStart(7)} cases  ${String(t.crashes).padStart(4)} crashes  ${String(t.hangs).padStart(4)} hangs  peak memory ${mb(t.peakMemoryBytes)}${t.partial ? ' (stopped early)' : ''}`,
  );
  total.cases += t.cases;
  total.crashes += t.crashes;
  total.hangs += t.hangs;
  total.peak = Math.max(total.peak, t.peakMemoryBytes);
  for (const f of t.failures.slice(0, 3)) console.log(`    case ${f.caseIndex} (${f.kind}): ${f.detail.split('\n')[0].slice(0, 300)}`);
}
console.log(
  `  ${'total'.padEnd(20)} ${String(total.cases).padStart(7)} cases  ${String(total.crashes).padStart(4)} crashes  ${String(total.hangs).padStart(4)} hangs  peak memory ${mb(total.peak)}`,
);
process.exit(run.status ?? 1);

function fail(message) {
  console.error(`fuzz: ${message}`);
  process.exit(2);
}
