import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isEngineError } from '../../server/src/engine/errors';
import { loadRecipe, recipeSchema, requiredKeys, type Schema } from '../../server/src/engine/recipe';
import { jsonSchemaText } from '../../server/src/engine/recipe/json-schema';

const fixtures = path.join(__dirname, '..', 'fixtures', 'recipes');

function* walk(s: Schema, at: string): Generator<[string, Schema]> {
  yield [at, s];
  if (s.kind === 'object') for (const [k, v] of Object.entries(s.properties)) yield* walk(v, `${at}.${k}`);
  if (s.kind === 'array') yield* walk(s.items, `${at}[]`);
  if (s.kind === 'map') yield* walk(s.values, `${at}.*`);
  if (s.kind === 'union') for (const [i, v] of s.variants.entries()) yield* walk(v, `${at}|${i}`);
}

describe('recipe schema', () => {
  it('recipe.schema.json is generated from the current schema (npm run schema:recipe)', () => {
    const committed = readFileSync(path.join(__dirname, '..', '..', 'server', 'src', 'engine', 'recipe', 'recipe.schema.json'), 'utf8');
    expect(committed).toBe(jsonSchemaText());
  });

  it('documents every key and every enum value', () => {
    for (const [at, s] of walk(recipeSchema, '')) {
      expect(s.description.length, at).toBeGreaterThan(10);
      if (s.kind === 'enum') for (const v of s.values) expect(s.valueDescriptions[v], `${at}=${v}`).toBeTruthy();
    }
  });

  it('requires the sections every recipe needs', () => {
    expect(requiredKeys(recipeSchema)).toEqual(['version', 'models', 'merge', 'output']);
  });
});

describe('loadRecipe', () => {
  it('returns the typed recipe with defaults filled in', async () => {
    const loaded = await loadRecipe(path.join(fixtures, 'good', 'minimal.merge.yaml'));
    expect(loaded.recipe).toEqual({
      version: 1,
      models: { anchor: '../models/tiny-a', other: '../models/tiny-b' },
      align: { method: 'none', permute: ['cnn', 'attention', 'ffn'], heads: 'reorder', self_check: true },
      merge: { method: 'linear', lambda: 0.5, repair: false, width: 1 },
      output_variants: false,
      output_onnx: false,
      output: '../out/minimal',
      runtime: { device: 'auto', seed: 0 },
    });
    expect(loaded.resolve(loaded.recipe.models.anchor)).toBe(path.join(fixtures, 'models', 'tiny-a'));
  });

  it('keeps per-key values and fills nested defaults', async () => {
    const { recipe } = await loadRecipe(path.join(fixtures, 'good', 'full.merge.yaml'));
    expect(recipe.merge.lambda).toEqual({ default: 0.9, overrides: { 'encoder.layers.*.feed_forward.**': 0.7 } });
    expect(recipe.probe).toEqual({ audio: ['../data/probe'], max_seconds: 60, segment_seconds: 2 });
    expect(recipe.align.self_check).toBe(true);
    expect(recipe.runtime).toEqual({ device: 'cpu', precision: 'fp32', seed: 0, threads: 2 });
  });

  it('fails with the first error located as file:line:col', async () => {
    const file = path.join(fixtures, 'bad', 'lambda-out-of-range.merge.yaml');
    const err = await loadRecipe(file).catch((e: unknown) => e);
    expect(isEngineError(err, 'bad-recipe')).toBe(true);
    expect((err as Error).message).toBe(`${file}:7:11: error out-of-range: merge.lambda must be between 0 and 1, got 1.5`);
  });

  it('reports a missing recipe file as file-not-found', async () => {
    const err = await loadRecipe(path.join(fixtures, 'nope.merge.yaml')).catch((e: unknown) => e);
    expect(isEngineError(err, 'file-not-found')).toBe(true);
  });
});
