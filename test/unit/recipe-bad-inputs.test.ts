// The bad-input suite: every recipe in test/fixtures/recipes/bad ends with `# expect:` lines giving each
// diagnostic the checker must report: `line:col-line:col severity code: message` (1-based, end exclusive).
// The list must match exactly, in order: nothing missing, nothing extra.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRecipeText, severityName, type RecipeDiagnostic } from '../../server/src/engine/recipe';

// hf: references resolve through this fixture cache only, never the machine's own.
process.env.HF_HUB_CACHE = path.join(__dirname, '..', 'fixtures', 'recipes', 'hub-cache');

const dir = path.join(__dirname, '..', 'fixtures', 'recipes', 'bad');
const goodDir = path.join(__dirname, '..', 'fixtures', 'recipes', 'good');
const files = readdirSync(dir).filter((f) => f.endsWith('.merge.yaml'));

function show(d: RecipeDiagnostic): string {
  const { start, end } = d.range;
  return `${start.line + 1}:${start.character + 1}-${end.line + 1}:${end.character + 1} ${severityName(d.severity)} ${d.code}: ${d.message}`;
}

describe('bad-input suite', () => {
  it('has at least 30 broken recipes', () => {
    expect(files.length).toBeGreaterThanOrEqual(30);
  });

  it.each(files)('%s', async (file) => {
    const full = path.join(dir, file);
    const text = readFileSync(full, 'utf8');
    const expected = text
      .split('\n')
      .filter((l) => l.startsWith('# expect: '))
      .map((l) => l.slice('# expect: '.length));
    expect(expected.length, 'fixture states its expected diagnostics').toBeGreaterThan(0);
    const diagnostics = await checkRecipeText(text, full);
    expect(diagnostics.map(show)).toEqual(expected);
    for (const d of diagnostics) expect(d.source).toBe('merge-studio');
  });
});

describe('good recipes', () => {
  it.each(readdirSync(goodDir).filter((f) => f.endsWith('.merge.yaml')))('%s has no diagnostics', async (file) => {
    const full = path.join(goodDir, file);
    expect(await checkRecipeText(readFileSync(full, 'utf8'), full)).toEqual([]);
  });
});
