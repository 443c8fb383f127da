// A key that takes a number or a word (merge.lsq.ridge: γ or auto): either form is accepted, in the main settings and
// in a variant, and anything else gets one located error.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkRecipeText } from '../../server/src/engine/recipe';

const file = path.join(__dirname, '..', 'fixtures', 'recipes', 'good', 'ridge.merge.yaml');
const recipe = (ridge: string) => `version: 1
models:
  anchor: ../models/tiny-a
  other: ../models/tiny-b
probe:
  audio: [../data/probe]
merge:
  method: lsq
  lambda: 0.5
  lsq: { ridge: ${ridge} }
variants:
  - name: v
    merge: { lsq: { ridge: ${ridge} } }
output: ../out/merged
`;

describe('merge.lsq.ridge (a number or auto)', () => {
  it.each(['auto', '0.1', '0'])('accepts %s', async (ridge) => {
    expect(await checkRecipeText(recipe(ridge), file)).toEqual([]);
  });

  it.each([
    ['-1', 'out-of-range', 'merge.lsq.ridge must be at least 0, got -1'],
    ['true', 'wrong-type', 'merge.lsq.ridge: expected a number ≥ 0 or auto, got true'],
    ['atuo', 'bad-enum', 'merge.lsq.ridge: unknown value "atuo"'],
  ])('refuses %s where it is written', async (ridge, code, message) => {
    const d = await checkRecipeText(recipe(ridge), file);
    expect(d.map((x) => [x.code, x.range.start.line])).toEqual([
      [code, 9],
      [code, 12],
    ]);
    expect(d[0]!.message).toContain(message);
  });
});
