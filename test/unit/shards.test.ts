import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addMoments, createPairStats } from '../../server/src/engine/align/stats';
import { writeSafetensors } from '../../server/src/engine/io/safetensors';
import { loadEncoderModel } from '../../server/src/engine/model/encoder';
import { randomWeights } from '../../server/src/engine/model/random';
import { toStoredTensors } from '../../server/src/engine/model/weights';
import { mulberry32 } from '../../server/src/engine/random';
import { runRecipe } from '../../server/src/engine/pipeline/run';
import { parseShard, shardRange, SHARD_MANIFEST } from '../../server/src/engine/pipeline/shards';
import { computeStatShard } from '../../server/src/engine/pipeline/stats-job';
import { loadRecipe } from '../../server/src/engine/recipe/load';
import { FIXTURES, HF_REFERENCE } from '../helpers/reference';
import { useTempDirs } from '../helpers/tmp';

const tempDir = useTempDirs();
const ANCHOR = path.join(HF_REFERENCE, 'hubert-postln-a');

/** An unrelated model of the anchor's shape (random weights), so that alignment has real work to do. */
async function randomModel(dir: string, seed: number): Promise<string> {
  const anchor = await loadEncoderModel(ANCHOR);
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(path.join(ANCHOR, 'config.json'), path.join(dir, 'config.json'));
  await writeSafetensors(path.join(dir, 'model.safetensors'), toStoredTensors(randomWeights(anchor.config, seed), anchor.layout));
  return dir;
}

async function writeRecipe(dir: string, other: string, name = 'test.merge.yaml', segment = 0.25): Promise<string> {
  const file = path.join(dir, name);
  const audio = [path.join(FIXTURES, 'audio', 'tone-16k.wav'), path.join(FIXTURES, 'audio', 'sine440-16k-i16.wav')];
  await fs.writeFile(
    file,
    [
      'version: 1',
      'models:',
      `  anchor: ${ANCHOR}`,
      `  other: ${other}`,
      'probe:',
      `  audio: [${audio.join(', ')}]`,
      `  segment_seconds: ${segment}`,
      'align:',
      '  method: correlation',
      '  permute: [cnn, attention, ffn]',
      'merge:',
      '  method: linear',
      '  lambda: 0.5',
      `output: ./out-${path.basename(name, '.merge.yaml')}`,
      'runtime:',
      '  device: cpu',
      '  batch_size: 2',
      '',
    ].join('\n'),
  );
  return file;
}

async function shardsOf(recipe: string, dir: string, count: number): Promise<string[]> {
  const loaded = await loadRecipe(recipe);
  const dirs: string[] = [];
  for (let i = 0; i < count; i++) {
    const d = path.join(dir, `shard-${i}`);
    await computeStatShard(loaded, { index: i, count }, d, { device: 'cpu' });
    dirs.push(d);
  }
  return dirs;
}

describe('statistics shards', () => {
  it('parses I/N and splits segments into disjoint parts that cover the probe', () => {
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    expect(() => parseShard('4/4')).toThrow(/index must be below 4 \(shards are numbered 0 to 3\)/);
    expect(() => parseShard('1-4')).toThrow(/expected I\/N/);
    for (const total of [0, 1, 7, 100]) {
      for (const count of [1, 3, 4, 9]) {
        const seen: number[] = [];
        for (let i = 0; i < count; i++) {
          const [a, b] = shardRange(total, { index: i, count });
          for (let k = a; k < b; k++) seen.push(k);
        }
        expect(seen).toEqual(Array.from({ length: total }, (_, k) => k));
      }
    }
  });

  it('Chan reduction of shards is independent of their order', () => {
    const rand = mulberry32(4);
    const parts = Array.from({ length: 5 }, (_, k) => {
      const n = 3 + k;
      const m = {
        n,
        meanA: [rand(), rand()],
        meanB: [rand(), rand(), rand()],
        m2A: [rand(), rand()],
        m2B: [rand(), rand(), rand()],
        cross: Array.from({ length: 6 }, () => rand() - 0.5),
      };
      return m;
    });
    const reduce = (order: number[]) => order.reduce((s, i) => addMoments(s, parts[i]!), createPairStats(2, 3));
    const a = reduce([0, 1, 2, 3, 4]);
    const b = reduce([3, 0, 4, 2, 1]);
    expect(b.n).toBe(a.n);
    for (let k = 0; k < 6; k++) expect(b.cross[k]).toBeCloseTo(a.cross[k]!, 12);
  });

  it('4 shards reduced by run --stats (in any order) give the single-machine permutations and merged weights', async () => {
    const dir = tempDir();
    const other = await randomModel(path.join(dir, 'other'), 5);
    const recipe = await writeRecipe(dir, other);
    const single = await runRecipe(recipe);
    const dirs = await shardsOf(recipe, path.join(dir, 'stats'), 4);
    const manifests = await Promise.all(dirs.map(async (d) => JSON.parse(await fs.readFile(path.join(d, SHARD_MANIFEST), 'utf8'))));
    expect(manifests.map((m) => m.segments.length).reduce((s: number, n: number) => s + n, 0)).toBe(single.report.probe!.segments);
    expect(manifests[0].identity.models.anchor).toMatch(/^[0-9a-f]{64}$/);

    const expectedPerms = await fs.readFile(path.join(single.outputDir, 'permutations.json'), 'utf8');
    const expectedWeights = (await loadEncoderModel(single.outputDir)).weights;
    await fs.rm(single.outputDir, { recursive: true });

    const sharded = await runRecipe(recipe, { statsDirs: [dirs[2]!, dirs[0]!, dirs[3]!, dirs[1]!] });
    expect(await fs.readFile(path.join(sharded.outputDir, 'permutations.json'), 'utf8')).toBe(expectedPerms);
    const merged = (await loadEncoderModel(sharded.outputDir)).weights;
    for (const [name, t] of expectedWeights) {
      const m = merged.get(name)!;
      let err = 0;
      for (let i = 0; i < t.data.length; i++) err = Math.max(err, Math.abs(m.data[i]! - t.data[i]!));
      expect(err, name).toBeLessThan(1e-6);
    }
    // Moved units: the alignment did real work, so equal permutations are not trivially equal.
    expect(sharded.report.align.taps.some((t) => t.moved > 0.5)).toBe(true);
  }, 120_000);

  it('refuses overlapping, missing, other-recipe and other-model shards with a clear message', async () => {
    const dir = tempDir();
    const other = await randomModel(path.join(dir, 'other'), 5);
    const recipe = await writeRecipe(dir, other);
    const dirs = await shardsOf(recipe, path.join(dir, 'stats'), 3);
    await expect(runRecipe(recipe, { statsDirs: [dirs[0]!, dirs[1]!] })).rejects.toThrow(
      /the shards leave \d+ of \d+ probe segments out \(first: segment \d+/,
    );
    await expect(runRecipe(recipe, { statsDirs: [...dirs, dirs[1]!] })).rejects.toThrow(
      /shards overlap: .*shard-1 and .*shard-1 both cover probe segment/,
    );
    // Another recipe: a different segment length cuts another probe.
    const recipe2 = await writeRecipe(dir, other, 'other.merge.yaml', 0.5);
    await expect(runRecipe(recipe2, { statsDirs: dirs })).rejects.toThrow(/computed for another recipe/);
    // Another model: the same recipe, the other checkpoint rewritten with different weights.
    await randomModel(other, 6);
    await expect(runRecipe(recipe, { statsDirs: dirs })).rejects.toThrow(/computed with another other model \(checkpoint content hash/);
    await expect(runRecipe(recipe, { statsDirs: [path.join(dir, 'nowhere')] })).rejects.toThrow(/holds no manifest\.json/);
  }, 120_000);
});
