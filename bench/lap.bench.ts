/**
 * Linear assignment benchmark: our LAPJV (in-thread, and through the worker) against scipy's
 * linear_sum_assignment on the same matrices, when python3 with scipy is available.
 * Run: npm run bench:lap   (or: npx tsx bench/lap.bench.ts [--sizes 768,3072,4096] [--repeat 3] [--no-worker])
 * After a JIT warm-up on small matrices, times are CPU seconds (ours: process.cpuUsage; scipy: time.process_time; both single-threaded) and wall seconds,
 * the best of --repeat runs for both solvers, run alternately (the machine is shared: alternating exposes both
 * to the same load, and the minimum is the least disturbed run). The worker column is one run, spawn included.
 * A printed table, never a timed test.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { solveLap, type Assignment } from '../server/src/engine/align/lap';
import { shutdownLapWorker, solveAssignment } from '../server/src/engine/align/lap-async';
import { gaussian, mulberry32, randomPermutation } from '../server/src/engine/random';

const args = process.argv.slice(2);
const sizesArg = args.includes('--sizes') ? args[args.indexOf('--sizes') + 1]! : '768,3072,4096';
const sizes = sizesArg.split(',').map(Number);
const useWorker = !args.includes('--no-worker');
const repeat = args.includes('--repeat') ? Number(args[args.indexOf('--repeat') + 1]) : 3;

type Kind = 'noisy-perm-identity' | 'feature-products' | 'uniform';
const kinds: Kind[] = ['noisy-perm-identity', 'feature-products', 'uniform'];

function makeMatrix(kind: Kind, n: number, seed: number): Float64Array {
  const rng = mulberry32(seed);
  const s = new Float64Array(n * n);
  if (kind === 'uniform') {
    for (let k = 0; k < s.length; k++) s[k] = rng();
  } else if (kind === 'noisy-perm-identity') {
    // A correlation-like matrix: column p[i] is row i's true match (≈0.6), everything else noise (σ 0.15).
    const p = randomPermutation(n, rng);
    for (let k = 0; k < s.length; k++) s[k] = 0.15 * gaussian(rng);
    for (let i = 0; i < n; i++) s[i * n + p[i]!] += 0.6;
  } else {
    // Correlations of two feature sets that share a latent factor: X (n×k) and Y = X[p] + noise, score = XYᵀ/k.
    const k = 64;
    const p = randomPermutation(n, rng);
    const x = new Float64Array(n * k);
    for (let q = 0; q < x.length; q++) x[q] = gaussian(rng);
    const yT = new Float64Array(n * k);
    for (let j = 0; j < n; j++) for (let q = 0; q < k; q++) yT[j * k + q] = x[p[j]! * k + q]! + 1.0 * gaussian(rng);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let q = 0; q < k; q++) acc += x[i * k + q]! * yT[j * k + q]!;
        s[i * n + j] = acc / k;
      }
    }
  }
  return s;
}

/** CPU seconds of this process (user + system): steadier than wall time on a shared machine. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function hasScipy(): boolean {
  const r = spawnSync('python3', ['-c', 'import scipy.optimize'], { stdio: 'ignore' });
  return r.status === 0;
}

// An async main rather than top-level await: tsx runs this package's .ts files as CommonJS.
async function main(): Promise<void> {
  const scipy = hasScipy();
  // JIT warm-up on small matrices of every kind (V8 needs a few calls to optimise the solvers; scipy is compiled).
  for (let w = 0; w < 4; w++) for (const kind of kinds) solveLap(makeMatrix(kind, 512, w), 512);
  const dir = mkdtempSync(join(tmpdir(), 'lap-bench-'));
  interface Row {
    n: number;
    kind: Kind;
    ts: number;
    tsWall: number;
    worker: number | null;
    scipy: number | null;
    scipyWall: number | null;
    agree: string;
  }
  const rows: Row[] = [];
  try {
    for (const n of sizes) {
      for (const kind of kinds) {
        const s = makeMatrix(kind, n, 1000 + n);
        // Ours and scipy alternate, best of `repeat` each: the machine is shared, so both see the same load.
        const file = join(dir, `${kind}-${n}.f64`);
        if (scipy) writeFileSync(file, new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
        let ours: Assignment | undefined;
        let ts = Infinity;
        let tsWall = Infinity;
        let sp: number | null = null;
        let spWall: number | null = null;
        let agree = 'n/a';
        for (let r = 0; r < Math.max(1, repeat); r++) {
          const c0 = cpuSeconds();
          const t0 = performance.now();
          ours = solveLap(s, n);
          tsWall = Math.min(tsWall, (performance.now() - t0) / 1000);
          ts = Math.min(ts, cpuSeconds() - c0);
          if (scipy) {
            const out = spawnSync('python3', [join(__dirname, 'lap_scipy.py'), `${file}:${n}`], { encoding: 'utf8' });
            if (out.status !== 0) throw new Error(`lap_scipy.py failed: ${out.stderr}`);
            const res = JSON.parse(out.stdout.trim()) as { seconds: number; wall: number; total: number };
            sp = Math.min(sp ?? Infinity, res.seconds);
            spWall = Math.min(spWall ?? Infinity, res.wall);
            const rel = Math.abs(res.total - ours.total) / Math.max(1, Math.abs(res.total));
            agree = rel < 1e-9 ? 'yes' : `NO (${ours.total} vs ${res.total})`;
          }
        }
        if (scipy) rmSync(file);
        if (!ours) throw new Error('unreachable');
        let worker: number | null = null;
        if (useWorker) {
          const t1 = performance.now();
          const w = await solveAssignment(s, n, { mode: 'worker' });
          worker = (performance.now() - t1) / 1000;
          if (w.total !== ours.total) throw new Error(`worker and in-thread totals differ: ${w.total} vs ${ours.total}`);
        }
        rows.push({ n, kind, ts, tsWall, worker, scipy: sp, scipyWall: spWall, agree });
        process.stderr.write(`  n=${n} ${kind}: ${ts.toFixed(3)} s\n`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await shutdownLapWorker();
  }

  const fmt = (v: number | null) => (v === null ? '—' : v.toFixed(3));
  const header = [
    'n',
    'matrix',
    'lapjv cpu s',
    'scipy cpu s',
    'lapjv/scipy',
    'lapjv wall s',
    'scipy wall s',
    'worker wall s',
    'same total',
  ];
  const table = rows.map((r) => [
    String(r.n),
    r.kind,
    fmt(r.ts),
    fmt(r.scipy),
    r.scipy === null ? '—' : (r.ts / r.scipy).toFixed(2) + '×',
    fmt(r.tsWall),
    fmt(r.scipyWall),
    fmt(r.worker),
    r.agree,
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...table.map((t) => t[c]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const t of table) console.log(line(t));
  if (!scipy) console.log('(scipy not found: apt-get install -y python3-scipy for the comparison)');
}

void main();
