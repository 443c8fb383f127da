import { cpSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkRecipeText, DiskCache, RecipeDisk } from '../../server/src/engine/recipe';

const models = path.join(__dirname, '..', 'fixtures', 'recipes', 'models');

describe('disk checks are cached by path and file stamps', () => {
  let dir: string;
  let recipeFile: string;
  const recipe = 'version: 1\nmodels:\n  anchor: ./a\n  other: ./b\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ./out\n';

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'ms-cache-'));
    cpSync(path.join(models, 'tiny-a'), path.join(dir, 'a'), { recursive: true });
    cpSync(path.join(models, 'tiny-b'), path.join(dir, 'b'), { recursive: true });
    recipeFile = path.join(dir, 'r.merge.yaml');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads each model header once while nothing changes', async () => {
    const disk = new RecipeDisk(new DiskCache());
    expect(await checkRecipeText(recipe, recipeFile, disk)).toEqual([]);
    expect(disk.cache.stats).toEqual({ hits: 0, misses: 2 });
    expect(await checkRecipeText(recipe, recipeFile, disk)).toEqual([]);
    expect(disk.cache.stats).toEqual({ hits: 2, misses: 2 });
  });

  it('re-reads a model whose config changed, without a watcher', async () => {
    const disk = new RecipeDisk(new DiskCache());
    await checkRecipeText(recipe, recipeFile, disk);
    const config = path.join(dir, 'b', 'config.json');
    writeFileSync(config, readFileSync(config, 'utf8').replace('"model_type": "hubert"', '"model_type": "whisper"'));
    const later = new Date(Date.now() + 5000);
    utimesSync(config, later, later);
    const diagnostics = await checkRecipeText(recipe, recipeFile, disk);
    expect(diagnostics.map((d) => d.code)).toEqual(['bad-model']);
  });

  it('drops entries under a changed path when told by the file watcher', async () => {
    const disk = new RecipeDisk(new DiskCache());
    await checkRecipeText(recipe, recipeFile, disk);
    expect(disk.cache.size).toBe(2);
    expect(disk.cache.invalidate(path.join(dir, 'a', 'model.safetensors'))).toBe(1);
    expect(disk.cache.invalidate(dir)).toBe(1);
    expect(disk.cache.size).toBe(0);
  });
});
