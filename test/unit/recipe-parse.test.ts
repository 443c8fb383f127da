import { describe, expect, it } from 'vitest';
import { LineIndex, locate, parseRecipe } from '../../server/src/engine/recipe';
import { globToRegExp, lambdaFor } from '../../server/src/engine/recipe/glob';
import { closest, editDistance } from '../../server/src/engine/recipe/suggest';

/** Text with one `|` caret: returns the text without it and the caret's offset. */
function caret(s: string): [string, number] {
  const i = s.indexOf('|');
  return [s.slice(0, i) + s.slice(i + 1), i];
}

describe('LineIndex', () => {
  it('maps offsets to positions across LF, CRLF and CR line breaks', () => {
    const idx = new LineIndex('ab\r\ncd\ne\rf');
    expect(idx.lineCount).toBe(4);
    expect(idx.positionAt(0)).toEqual({ line: 0, character: 0 });
    expect(idx.positionAt(4)).toEqual({ line: 1, character: 0 });
    expect(idx.positionAt(8)).toEqual({ line: 2, character: 1 });
    expect(idx.positionAt(9)).toEqual({ line: 3, character: 0 });
    for (let o = 0; o <= idx.text.length; o++) {
      if (idx.text[o - 1] === '\r' && idx.text[o] === '\n') continue; // between \r and \n is not a position
      expect(idx.offsetAt(idx.positionAt(o))).toBe(o);
    }
  });

  it('counts UTF-16 code units like LSP', () => {
    const idx = new LineIndex('name: "🎵 tune"\n');
    expect(idx.positionAt(idx.text.indexOf('tune'))).toEqual({ line: 0, character: 10 });
  });

  it('clamps a character past the end of a line to the line end', () => {
    const idx = new LineIndex('abc\ndef\n');
    expect(idx.offsetAt({ line: 0, character: 99 })).toBe(3);
    expect(idx.offsetAt({ line: 9, character: 0 })).toBe(8);
  });
});

describe('locate', () => {
  const at = (s: string) => {
    const [text, offset] = caret(s);
    return locate(parseRecipe(text), offset);
  };

  it('finds keys, values and list items by offset', () => {
    expect(at('merge:\n  lam|bda: 0.5\n')).toMatchObject({ path: ['merge', 'lambda'], onKey: true });
    expect(at('merge:\n  lambda: 0.|5\n')).toMatchObject({ path: ['merge', 'lambda'], onKey: false, scalar: { value: 0.5 } });
    expect(at('align:\n  permute: [cnn, at|tention]\n')).toMatchObject({ path: ['align', 'permute', 1], scalar: { value: 'attention' } });
    expect(at('evaluate:\n  tasks:\n    - name: a\n      dom|ain: speech\n')).toMatchObject({
      path: ['evaluate', 'tasks', 0, 'domain'],
      onKey: true,
    });
  });

  it('returns null for an empty document', () => {
    expect(at('|')).toBeNull();
  });
});

describe('did you mean', () => {
  it('measures adjacent transpositions as one edit', () => {
    expect(editDistance('lamdba', 'lambda')).toBe(1);
    expect(editDistance('lamda', 'lambda')).toBe(1);
  });

  it('suggests close names only', () => {
    expect(closest('lamda', ['method', 'lambda', 'sweep'])).toBe('lambda');
    expect(closest('Self-Check', ['self_check'])).toBe('self_check');
    expect(closest('colour', ['device', 'seed', 'threads'])).toBeUndefined();
    expect(closest('sed', ['seed', 'device'])).toBe('seed');
  });
});

describe('tensor globs', () => {
  it('* stays within a name part, ** crosses parts', () => {
    expect(globToRegExp('encoder.layers.*.attention.q_proj.weight').test('encoder.layers.11.attention.q_proj.weight')).toBe(true);
    expect(globToRegExp('encoder.*.weight').test('encoder.layers.0.weight')).toBe(false);
    expect(globToRegExp('encoder.**.weight').test('encoder.layers.0.attention.q_proj.weight')).toBe(true);
    expect(globToRegExp('encoder.layers.?.**').test('encoder.layers.3.x')).toBe(true);
    expect(globToRegExp('encoder.layers.?.**').test('encoder.layers.10.x')).toBe(false);
  });

  it('first matching override wins', () => {
    const lambda = { default: 0.9, overrides: { 'encoder.layers.0.**': 0.1, 'encoder.**': 0.5 } };
    expect(lambdaFor('encoder.layers.0.layer_norm.bias', lambda)).toBe(0.1);
    expect(lambdaFor('encoder.layers.1.layer_norm.bias', lambda)).toBe(0.5);
    expect(lambdaFor('feature_projection.projection.weight', lambda)).toBe(0.9);
  });
});
