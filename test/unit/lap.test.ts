import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as esbuild from 'esbuild';
import { afterAll, describe, expect, it } from 'vitest';
import { isEngineError } from '../../server/src/engine/errors';
import { shutdownLapWorker, solveAssignment } from '../../server/src/engine/align/lap-async';
import { lapjvMin, solveLap } from '../../server/src/engine/align/lap';
import { lapPrunedMin } from '../../server/src/engine/align/lap-pruned';
import { mulberry32, randomPermutation } from '../../server/src/engine/random';

function bruteForceMax(s: ArrayLike<number>, n: number): number {
  const p = Array.from({ length: n }, (_, i) => i);
  let best = -Infinity;
  const rec = (k: number, acc: number) => {
    if (k === n) {
      if (acc > best) best = acc;
      return;
    }
    for (let i = k; i < n; i++) {
      [p[k], p[i]] = [p[i]!, p[k]!];
      rec(k + 1, acc + s[k * n + p[k]!]!);
      [p[k], p[i]] = [p[i]!, p[k]!];
    }
  };
  rec(0, 0);
  return best;
}

/** An independent reference: the O(n³) Hungarian algorithm with potentials (Kuhn–Munkres), minimising. */
function hungarianMin(c: Float64Array, n: number): number {
  const INF = Infinity;
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const p = new Int32Array(n + 1);
  const way = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Float64Array(n + 1).fill(INF);
    const used = new Uint8Array(n + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0]!;
      let delta = INF;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = c[(i0 - 1) * n + (j - 1)]! - u[i0]! - v[j]!;
        if (cur < minv[j]!) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j]! < delta) {
          delta = minv[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]!] += delta;
          v[j] -= delta;
        } else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0);
  }
  let total = 0;
  for (let j = 1; j <= n; j++) total += c[(p[j]! - 1) * n + (j - 1)]!;
  return total;
}

function isPermutation(p: Int32Array): boolean {
  const seen = new Uint8Array(p.length);
  for (const j of p) {
    if (j < 0 || j >= p.length || seen[j]) return false;
    seen[j] = 1;
  }
  return true;
}

function totalOf(s: ArrayLike<number>, n: number, p: Int32Array): number {
  let t = 0;
  for (let i = 0; i < n; i++) t += s[i * n + p[i]!]!;
  return t;
}

describe('solveLap', () => {
  it('is optimal against brute force for every n ≤ 7 on many random matrices, with and without ties', () => {
    const rng = mulberry32(12345);
    let checked = 0;
    for (let n = 1; n <= 7; n++) {
      const trials = n <= 5 ? 600 : n === 6 ? 300 : 120;
      for (let t = 0; t < trials; t++) {
        const s = new Float64Array(n * n);
        const kind = t % 4;
        for (let k = 0; k < s.length; k++) {
          // continuous, small integers (many ties), binary, and signed correlation-like values
          s[k] = kind === 0 ? rng() : kind === 1 ? Math.floor(rng() * 3) : kind === 2 ? (rng() < 0.5 ? 0 : 1) : 2 * rng() - 1;
        }
        const r = solveLap(s, n);
        expect(isPermutation(r.perm)).toBe(true);
        expect(r.total).toBeCloseTo(totalOf(s, n, r.perm), 12);
        expect(r.total).toBeCloseTo(bruteForceMax(s, n), 12);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(2500);
  });

  it('matches an independent Hungarian implementation on larger random, tied and dead-unit matrices (dense and pruned)', () => {
    const rng = mulberry32(7);
    for (const n of [20, 60, 150]) {
      for (const kind of ['uniform', 'ties', 'low-rank', 'dead-units'] as const) {
        const s = new Float64Array(n * n);
        const a = Float64Array.from({ length: n * 2 }, () => rng());
        for (let i = 0; i < n; i++)
          for (let j = 0; j < n; j++) {
            s[i * n + j] =
              kind === 'uniform'
                ? rng()
                : kind === 'ties'
                  ? Math.floor(rng() * 4)
                  : kind === 'low-rank'
                    ? a[2 * i]! * a[2 * j + 1]!
                    : 2 * rng() - 1;
            // dead units correlate 0 with everything: identical rows and columns (they defeat top-k candidates)
            if (kind === 'dead-units' && (i % 10 === 3 || j % 7 === 0)) s[i * n + j] = 0;
          }
        const neg = s.map((x) => -x);
        const r = solveLap(s, n);
        expect(isPermutation(r.perm)).toBe(true);
        expect(r.total).toBeCloseTo(-hungarianMin(neg, n), 9);
      }
    }
  });

  it('dense LAPJV and the pruned solver agree with the Hungarian reference, also with few candidates per row', () => {
    const rng = mulberry32(17);
    let proved = 0;
    let regrown = 0;
    for (const n of [8, 30, 64, 130]) {
      for (let t = 0; t < 12; t++) {
        const kind = t % 3;
        const cost = Float64Array.from({ length: n * n }, () => (kind === 0 ? rng() : kind === 1 ? Math.floor(rng() * 5) : rng() * rng()));
        const best = hungarianMin(cost, n);
        const dense = lapjvMin(cost, n);
        expect(isPermutation(dense)).toBe(true);
        expect(totalOf(cost, n, dense)).toBeCloseTo(best, 9);
        for (const k of [4, 8, 24]) {
          // With k = 4 or 8 the first candidate graph is too small: rows get stuck (and go dense) or the proof fails
          // and the graph grows; null would mean "use the dense solver". Whatever it returns must be optimal.
          const x = lapPrunedMin(cost, n, { k, rounds: 40 });
          if (!x) continue;
          proved++;
          if (k < 24) regrown++;
          expect(isPermutation(x)).toBe(true);
          expect(totalOf(cost, n, x)).toBeCloseTo(best, 9);
        }
        expect(
          solveLap(
            cost.map((c) => -c),
            n,
            'pruned',
          ).total,
        ).toBeCloseTo(-best, 9);
      }
    }
    // All 48 runs with k = 24 close their proof, most with k = 4 or 8 (the rest hand over to dense LAPJV: too many
    // rows stuck in a graph that small).
    expect(proved).toBeGreaterThanOrEqual(110);
    expect(regrown).toBeGreaterThanOrEqual(65);
  });

  it('solves the known cases: identity, permuted identity, all ties, and maximises rather than minimises', () => {
    const n = 9;
    const id = new Float64Array(n * n);
    for (let i = 0; i < n; i++) id[i * n + i] = 1;
    expect(Array.from(solveLap(id, n).perm)).toEqual([...Array(n).keys()]);

    const p = randomPermutation(n, mulberry32(3));
    const pid = new Float64Array(n * n);
    for (let i = 0; i < n; i++) pid[i * n + p[i]!] = 0.9;
    const r = solveLap(pid, n);
    expect(Array.from(r.perm)).toEqual(Array.from(p));
    expect(r.total).toBeCloseTo(0.9 * n, 12);

    const flat = new Float64Array(n * n).fill(0.25);
    const rf = solveLap(flat, n);
    expect(isPermutation(rf.perm)).toBe(true);
    expect(rf.total).toBeCloseTo(0.25 * n, 12);
    // All ties at a size that goes through the pruned solver (which hands over to dense LAPJV here).
    const big = solveLap(new Float64Array(300 * 300).fill(-0.5), 300);
    expect(isPermutation(big.perm)).toBe(true);
    expect(big.total).toBe(-150);

    // Maximisation: the anti-diagonal carries the large scores, the diagonal the smallest.
    const s = new Float64Array([1, 2, 9, 2, 8, 3, 7, 2, 1]);
    expect(Array.from(solveLap(s, 3).perm)).toEqual([2, 1, 0]);
    expect(solveLap(s, 3).total).toBe(24);
    // Negative correlations are scores like any other: the least negative wins.
    expect(Array.from(solveLap(new Float64Array([-0.9, -0.1, -0.2, -0.8]), 2).perm)).toEqual([1, 0]);
  });

  it('treats −0 as zero and refuses NaN and infinities with EngineError non-finite', () => {
    const z = new Float64Array([-0, 1, 1, -0]);
    expect(Array.from(solveLap(z, 2).perm)).toEqual([1, 0]);
    expect(Object.is(solveLap(new Float64Array([-0]), 1).total, -0) || solveLap(new Float64Array([-0]), 1).total === 0).toBe(true);
    for (const bad of [NaN, Infinity, -Infinity]) {
      const s = new Float64Array([0.1, 0.2, bad, 0.4]);
      let err: unknown;
      try {
        solveLap(s, 2);
      } catch (e) {
        err = e;
      }
      expect(isEngineError(err, 'non-finite')).toBe(true);
      expect((err as Error).message).toContain('[1, 0]');
    }
    // The pruned path (n ≥ 128) checks in its first pass.
    const big = new Float64Array(200 * 200).fill(0.5);
    big[150 * 200 + 7] = NaN;
    expect(() => solveLap(big, 200)).toThrow(/\[150, 7\] is NaN/);
    expect(() => solveLap(new Float64Array(5), 2)).toThrow(RangeError);
    expect(solveLap(new Float64Array(0), 0).perm.length).toBe(0);
  });
});

describe('solveAssignment (worker thread)', () => {
  afterAll(async () => {
    await shutdownLapWorker();
  });

  it('solves in the worker from the TypeScript sources, with the in-thread result', async () => {
    const rng = mulberry32(99);
    const n = 120;
    const s = Float64Array.from({ length: n * n }, () => rng());
    const inline = solveLap(s, n);
    const w = await solveAssignment(s, n, { mode: 'worker' });
    expect(w.ranIn).toBe('worker');
    expect(Array.from(w.perm)).toEqual(Array.from(inline.perm));
    expect(w.total).toBe(inline.total);
    expect(s.length).toBe(n * n); // copied, not transferred: the caller's array is intact
    // Several requests in flight share the one worker and come back in order.
    const many = await Promise.all(
      [1, 2, 3].map((k) =>
        solveAssignment(
          s.map((x) => x * k),
          n,
          { mode: 'worker' },
        ),
      ),
    );
    for (const m of many) expect(Array.from(m.perm)).toEqual(Array.from(inline.perm));
  });

  it('solves tiny problems in-thread in auto mode, transfers on request, and reports worker errors as EngineErrors', async () => {
    const small = await solveAssignment(new Float64Array([0, 1, 1, 0]), 2);
    expect(small.ranIn).toBe('inline');
    expect(Array.from(small.perm)).toEqual([1, 0]);

    const n = 80;
    const s = new Float64Array(n * n);
    for (let i = 0; i < n; i++) s[i * n + ((i + 1) % n)] = 1;
    const t = await solveAssignment(s, n, { transfer: true });
    expect(t.ranIn).toBe('worker');
    expect(s.length).toBe(0); // detached
    expect(t.total).toBe(n);

    const bad = new Float64Array(n * n);
    bad[5] = NaN;
    await expect(solveAssignment(bad, n, { mode: 'worker' })).rejects.toMatchObject({ code: 'non-finite' });
  });

  it('cancels a solve in flight through an AbortSignal and recovers for the next call', async () => {
    const n = 1500;
    const rng = mulberry32(4);
    const s = Float64Array.from({ length: n * n }, () => rng());
    const ac = new AbortController();
    const p = solveAssignment(s, n, { mode: 'worker', signal: ac.signal });
    // solveAssignment has posted the request by the time it returns: aborting now always lands while the worker
    // holds it (a 1500² solve takes far longer than this turn of the event loop), with no timer to race.
    ac.abort();
    await expect(p).rejects.toMatchObject({ code: 'cancelled' });
    const again = await solveAssignment(new Float64Array([1, 0, 0, 0, 1, 0, 0, 0, 1]), 3, { mode: 'worker' });
    expect(Array.from(again.perm)).toEqual([0, 1, 2]);
  });

  it('runs in the worker from an esbuild bundle (lap-worker.js beside the bundle, as in dist/)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lap-bundle-'));
    try {
      const align = resolve(__dirname, '../../server/src/engine/align');
      const entry = join(dir, 'entry.ts');
      writeFileSync(
        entry,
        `import { solveAssignment, shutdownLapWorker } from ${JSON.stringify(join(align, 'lap-async.ts'))};
         const n = 70; const s = new Float64Array(n * n); for (let i = 0; i < n; i++) s[i * n + (n - 1 - i)] = 2;
         solveAssignment(s, n, { mode: 'worker' }).then(async (r) => {
           console.log(JSON.stringify({ ranIn: r.ranIn, total: r.total, first: r.perm[0] })); await shutdownLapWorker();
         }, (e) => { console.error(String(e)); process.exit(3); });`,
      );
      const common = { bundle: true, platform: 'node' as const, format: 'cjs' as const, target: 'node20', logLevel: 'silent' as const };
      await esbuild.build({ ...common, entryPoints: { cli: entry }, outdir: dir });
      await esbuild.build({ ...common, entryPoints: { 'lap-worker': join(align, 'lap-worker.ts') }, outdir: dir });
      const out = spawnSync(process.execPath, [join(dir, 'cli.js')], { encoding: 'utf8', timeout: 30_000 });
      expect(out.stderr).toBe('');
      expect(JSON.parse(out.stdout)).toEqual({ ranIn: 'worker', total: 140, first: 69 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
