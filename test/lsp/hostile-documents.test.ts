// Documents built to exhaust a YAML reader (alias bombs, cycles, deep nesting, huge text): one located
// diagnostic each, and every request still answers, quickly.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Alias } from 'yaml';
import { CodeActionRequest, CompletionRequest, DocumentSymbolRequest, HoverRequest } from 'vscode-languageserver-protocol';
import * as lsp from '../../protocol/lsp-ext';
import { checkStructure } from '../../server/src/engine/recipe';
import { within } from '../fuzz/fuzz-util';
import { startTestServer, type TestClient } from './harness';

/** Nine levels of nine aliases each: 9^9 (387 million) nodes once expanded. */
export function aliasBomb(levels = 9): string {
  let s =
    'version: 1\nmodels:\n  anchor: ./a\n  other: ./b\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ./out\nx0: &a0 [lol]\n';
  for (let i = 1; i <= levels; i++)
    s += `x${i}: &a${i} [${Array(9)
      .fill(`*a${i - 1}`)
      .join(', ')}]\n`;
  return s;
}

const HOSTILE: Record<string, { text: string; line: number }> = {
  // Expanded sizes grow tenfold a level: x4 is the first past the 10 000-node limit.
  'alias bomb': { text: aliasBomb(), line: 11 },
  'self-referencing merge key': { text: 'version: 1\nmodels: &m {<<: *m}\n', line: 1 },
  'alias cycle through a list': { text: 'version: 1\nprobe: &p\n  audio: [*p]\n', line: 2 },
  'brackets nested 100 000 deep': { text: `version: 1\nmerge: ${'['.repeat(100_000)}`, line: 1 },
  'block mappings nested 300 deep': { text: Array.from({ length: 300 }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n'), line: 257 },
  'lists nested 1 000 deep on one line': { text: `version: 1\nmerge: ${'- '.repeat(1_000)}x\n`, line: 1 },
  'two million characters': { text: `version: 1\nnote: "${'x'.repeat(2_000_000)}"\n`, line: 0 },
  "a mapping of 30 000 keys (yaml's duplicate-key check is quadratic)": {
    text: Array.from({ length: 30_000 }, (_, i) => `k${i}: ${i}`).join('\n'),
    line: 0,
  },
};

describe('parse limits (engine)', () => {
  for (const [name, { text, line }] of Object.entries(HOSTILE)) {
    it(`${name}: one yaml-limit diagnostic on line ${line + 1}, found quickly`, () => {
      const t = performance.now();
      const structure = checkStructure(text);
      const limits = structure.diagnostics.filter((d) => d.code === 'yaml-limit');
      expect(limits.map((d) => d.range.start.line)).toEqual([line]);
      expect(limits[0]!.message).not.toMatch(/undefined|NaN/);
      // A bound on a hang, not a benchmark: before the limits these took minutes or exhausted memory.
      expect(performance.now() - t).toBeLessThan(10_000);
    });
  }

  it('18 000 unknown top-level keys (just under the size limit) are checked in seconds, not minutes', () => {
    // Each unknown key's did-you-mean scanned the whole mapping: quadratic, minutes for this document.
    const text = Array.from({ length: 18_000 }, (_, i) => `k${i}: ${i}`).join('\n');
    const t = performance.now();
    const structure = checkStructure(text);
    expect(structure.diagnostics.filter((d) => d.code === 'unknown-key')).toHaveLength(18_000);
    expect(performance.now() - t).toBeLessThan(30_000);
  });

  it('an alias used a few times within the limits is resolved and validated as before', () => {
    const text = 'version: 1\nmodels: { anchor: &m ./a, other: *m }\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ./out\n';
    const structure = checkStructure(text);
    expect(structure.diagnostics).toEqual([]);
    expect(structure.validation.value).toMatchObject({ models: { anchor: './a', other: './a' } });
  });

  it('resolves each alias once at parse time (Alias.resolve walks the whole document per call)', () => {
    const resolve = vi.spyOn(Alias.prototype, 'resolve');
    try {
      const text = `version: 1\nmodels: { anchor: &m ./a, other: *m }\nprobe: { audio: [${Array(900).fill('*m').join(', ')}] }\n`;
      const structure = checkStructure(text);
      expect(structure.parsed.aliasTargets.size).toBe(901);
      expect(resolve).not.toHaveBeenCalled();
    } finally {
      resolve.mockRestore();
    }
  });

  it('reports a duplicate key at each repetition, in one pass', () => {
    const structure = checkStructure('version: 1\nversion: 1\nmodels: { anchor: ./a, "anchor": ./b }\n');
    expect(
      structure.diagnostics
        .filter((d) => d.code === 'yaml-duplicate-key')
        .map((d) => [d.range.start.line, d.range.start.character, d.message]),
    ).toEqual([
      [1, 0, 'Duplicate key "version": a key may appear once per mapping'],
      [2, 23, 'Duplicate key "\\"anchor\\"": a key may appear once per mapping'],
    ]);
  });
});

describe('every request answers on a hostile document (language server)', () => {
  let client: TestClient;
  beforeAll(async () => {
    client = await startTestServer({ launcher: null });
  });
  afterAll(() => client.shutdown());

  let version = 0;
  for (const [name, { text, line }] of Object.entries(HOSTILE)) {
    it(name, async () => {
      const uri = `file:///tmp/ms-hostile-${name.replace(/\W+/g, '-')}.merge.yaml`;
      const diagnostics = await within(client.open(uri, text, ++version), 10_000, 'diagnostics');
      expect(diagnostics.filter((d) => d.code === 'yaml-limit').map((d) => d.range.start.line)).toEqual([line]);
      const doc = { textDocument: { uri } };
      const position = { line: 1, character: 3 };
      const c = client.connection;
      const [symbols, completion, hover, actions, checked] = await within(
        Promise.all([
          c.sendRequest(DocumentSymbolRequest.type, doc),
          c.sendRequest(CompletionRequest.type, { ...doc, position }),
          c.sendRequest(HoverRequest.type, { ...doc, position }),
          c.sendRequest(CodeActionRequest.type, { ...doc, range: { start: position, end: position }, context: { diagnostics } }),
          c.sendRequest(lsp.checkRecipe, { uri }),
        ]),
        10_000,
        'requests',
      );
      expect(Array.isArray(symbols)).toBe(true);
      expect(completion === null || Array.isArray(completion) || typeof completion === 'object').toBe(true);
      expect(hover === null || typeof hover === 'object').toBe(true);
      expect(Array.isArray(actions)).toBe(true);
      expect(checked.diagnostics.filter((d) => d.code === 'yaml-limit')).toHaveLength(1);
      expect(client.logs.filter((l) => /error|exception/i.test(l))).toEqual([]);
    });
  }

  it('the outline shows an alias as itself, never its expansion', async () => {
    const uri = 'file:///tmp/ms-hostile-outline.merge.yaml';
    await client.open(uri, 'models: &m {<<: *m, anchor: ./a}\nlist: [*m]\n', 1);
    const symbols = await client.connection.sendRequest(DocumentSymbolRequest.type, { textDocument: { uri } });
    const outline = JSON.parse(JSON.stringify(symbols)) as {
      name: string;
      detail?: string;
      children?: { name: string; detail?: string }[];
    }[];
    expect(outline.map((s) => [s.name, (s.children ?? []).map((c) => [c.name, c.detail])])).toEqual([
      [
        'models',
        [
          ['<<', '*m'],
          ['anchor', './a'],
        ],
      ],
      ['list', [['*m', undefined]]],
    ]);
  });
});
