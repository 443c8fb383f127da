import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CodeActionRequest,
  CompletionRequest,
  DocumentSymbolRequest,
  HoverRequest,
  type CompletionItem,
  type CompletionList,
  type DocumentSymbol,
  type MarkupContent,
  type TextEdit,
  type WorkspaceEdit,
} from 'vscode-languageserver-protocol';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { caret, fileUri, read, startTestServer, type TestClient } from './harness';
import { schemaAt } from '../../server/src/engine/recipe';

const recipes = path.join(__dirname, '..', 'fixtures', 'recipes');
process.env.HF_HUB_CACHE = path.join(recipes, 'hub-cache');
/** Documents live beside the fixtures so relative paths resolve to the fixture models and data. */
const uriIn = (name: string) => fileUri(path.join(recipes, 'good', name));

let client: TestClient;
let version = 0;
beforeAll(async () => {
  client = await startTestServer({ launcher: null });
});
afterAll(() => client.shutdown());

async function complete(textWithCaret: string): Promise<CompletionItem[]> {
  const { text, position } = caret(textWithCaret);
  const uri = uriIn(`completion-${++version}.merge.yaml`);
  await client.open(uri, text);
  const result = await client.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position });
  return Array.isArray(result) ? result : ((result as CompletionList | null)?.items ?? []);
}

async function hover(textWithCaret: string): Promise<string | null> {
  const { text, position } = caret(textWithCaret);
  const uri = uriIn(`hover-${++version}.merge.yaml`);
  await client.open(uri, text);
  const h = await client.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position });
  return h ? (h.contents as MarkupContent).value : null;
}

const labels = (items: CompletionItem[]) => items.map((i) => i.label);
/** What the one schema says, so these tests follow it when a method or key is added. */
const schemaKeys = (at: string[]) => Object.keys((schemaAt(at)[0] as { properties: Record<string, unknown> }).properties);
const alignMethods = () => [...(schemaAt(['align', 'method'])[0] as { values: readonly string[] }).values];

describe('completion', () => {
  it('offers the missing top-level keys, required first, with snippets', async () => {
    const items = await complete('version: 1\n|');
    expect(labels(items)).toEqual(expect.arrayContaining(['models', 'probe', 'align', 'merge', 'evaluate', 'output', 'runtime', 'name']));
    expect(labels(items)).not.toContain('version');
    const sorted = [...items].sort((a, b) => a.sortText!.localeCompare(b.sortText!)).map((i) => i.label);
    expect(sorted.slice(0, 3)).toEqual(['models', 'merge', 'output']);
    const models = items.find((i) => i.label === 'models')!;
    expect((models.textEdit as TextEdit).newText).toBe('models:\n  anchor: ${1:./models/anchor}\n  other: ${2:./models/other}');
    expect((models.documentation as MarkupContent).value).toContain('two checkpoints');
  });

  it('offers keys of the mapping the cursor is in, following indentation', async () => {
    const items = await complete('version: 1\nmerge:\n  lambda: 0.5\n  |\noutput: ./out\n');
    expect(labels(items).sort()).toEqual(
      schemaKeys(['merge'])
        .filter((k) => k !== 'lambda')
        .sort(),
    );
  });

  it('completes a partial key and replaces just the typed part', async () => {
    const items = await complete('align:\n  meth|\n');
    const method = items.find((i) => i.label === 'method')!;
    expect((method.textEdit as TextEdit).range).toEqual({ start: { line: 1, character: 2 }, end: { line: 1, character: 6 } });
    // The default first: the snippet's first choice is what leaving the key out means.
    expect((method.textEdit as TextEdit).newText).toBe(
      `method: \${1|${['correlation', ...alignMethods().filter((m) => m !== 'correlation')].join(',')}|}`,
    );
  });

  it('renames in place when completing over an existing key', async () => {
    const items = await complete('merge:\n  lam|da: 0.5\n');
    const lambda = items.find((i) => i.label === 'lambda')!;
    expect(lambda.textEdit).toEqual({ range: { start: { line: 1, character: 2 }, end: { line: 1, character: 7 } }, newText: 'lambda' });
  });

  it('offers enum values with their documentation', async () => {
    const items = await complete('align:\n  method: |\n');
    expect(labels(items)).toEqual(alignMethods());
    expect((items[0]!.documentation as MarkupContent).value).toContain('Pearson correlation');
  });

  it('offers list items not yet in a flow list', async () => {
    expect(labels(await complete('align:\n  permute: [cnn, |]\n'))).toEqual(['attention', 'ffn', 'residual']);
  });

  it('completes inside flow mappings and list items', async () => {
    expect(labels(await complete('runtime: { device: | }\n'))).toEqual(['auto', 'cpu', 'webgpu', 'cuda']);
    expect(labels(await complete('evaluate:\n  tasks:\n    - name: kw\n      domain: |\n'))).toEqual(['speech', 'music']);
    expect(labels(await complete('evaluate:\n  tasks:\n    - name: kw\n      |\n')).sort()).toEqual(['data', 'domain']);
  });

  it('completes model folders relative to the recipe', async () => {
    const items = await complete('models:\n  anchor: ../models/ti|\n');
    expect(labels(items)).toEqual(expect.arrayContaining(['tiny-a', 'tiny-b', 'tiny-wide']));
    expect(labels(items)).not.toContain('a-file.txt');
    const tinyA = items.find((i) => i.label === 'tiny-a')!;
    expect((tinyA.textEdit as TextEdit).range).toEqual({ start: { line: 1, character: 20 }, end: { line: 1, character: 22 } });
  });

  it('completes probe audio with folders and audio files only', async () => {
    const items = await complete('probe:\n  audio:\n    - ../data/probe/|\n');
    expect(labels(items)).toEqual(['..', 'tone.wav']);
  });

  it('returns nothing inside a comment', async () => {
    expect(await complete('# merge: |\n')).toEqual([]);
  });
});

describe('hover', () => {
  it('documents keys with their type and default', async () => {
    const text = await hover('align:\n  he|ads: reorder\n');
    expect(text).toContain('**align.heads** · one of reorder, within, none · optional');
    expect(text).toContain('How attention heads are aligned');
    expect(text).toContain('Default: `"reorder"`');
  });

  it('documents an enum value', async () => {
    expect(await hover('merge:\n  method: sle|rp\n')).toMatch(/^`slerp`: Spherical interpolation/);
  });

  it('describes the model a path points at, from its headers', async () => {
    const text = await hover('models:\n  anchor: ../models/ti|ny-a\n');
    expect(text).toContain('**HuBERT** model: 2 layers × 8 hidden, 2 heads, FFN 16, post-LN');
    expect(text).toMatch(/[\d,]+ parameters \(F32\) in \d+ tensors · model\.safetensors/);
  });

  it('describes a cached hf: model, and says when one is not cached', async () => {
    expect(await hover('models:\n  other: hf:merge-studio/ti|ny-b\n')).toContain('**HuBERT** model: 2 layers × 8 hidden');
    expect(await hover('models:\n  other: hf:someone/el|se\n')).toContain('hf:someone/else is not in the Hugging Face cache yet');
  });

  it('says why a model path is broken', async () => {
    expect(await hover('models:\n  other: ../models/no|pe\n')).toContain('does not exist');
  });

  it('is empty off the recipe keys', async () => {
    expect(await hover('|\n')).toBeNull();
  });
});

describe('code actions', () => {
  async function fix(text: string): Promise<{ title: string; result: string }[]> {
    const uri = uriIn(`actions-${++version}.merge.yaml`);
    const diagnostics = await client.open(uri, text);
    const actions = await client.connection.sendRequest(CodeActionRequest.type, {
      textDocument: { uri },
      range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
      context: { diagnostics },
    });
    return (actions ?? []).map((a) => {
      const edit = ('edit' in a ? a.edit : undefined) as WorkspaceEdit;
      const doc = TextDocument.create(uri, 'merge-recipe', 1, text);
      return { title: a.title, result: TextDocument.applyEdits(doc, edit.changes![uri]!) };
    });
  }

  it('renames a misspelt key, and the fixed recipe is clean', async () => {
    const file = path.join(recipes, 'bad', 'unknown-key-typo.merge.yaml');
    const actions = await fix(read(file));
    const rename = actions.find((a) => a.title === 'Change to "lambda"')!;
    expect(rename.result).toContain('  lambda: 0.5');
    const uri = uriIn(`fixed-${++version}.merge.yaml`);
    expect(await client.open(uri, rename.result)).toEqual([]);
  });

  it('replaces a misspelt enum value', async () => {
    const actions = await fix(read(path.join(recipes, 'bad', 'enum-typo.merge.yaml')));
    expect(actions.map((a) => a.title)).toEqual(['Change to "correlation"']);
  });

  it('inserts a missing required section with its starter', async () => {
    const text = 'version: 1\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ../out/x\n';
    const actions = await fix(text);
    const add = actions.find((a) => a.title === 'Add section "models"')!;
    expect(add.result).toBe(`${text}models:\n  anchor: ./models/anchor\n  other: ./models/other\n`);
  });

  it('inserts a missing nested key at the mapping indentation', async () => {
    const text = 'version: 1\nmodels:\n  anchor: ../models/tiny-a\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ../out/x\n';
    const add = (await fix(text)).find((a) => a.title === 'Add key "other"')!;
    expect(add.result).toBe(
      'version: 1\nmodels:\n  anchor: ../models/tiny-a\n  other: ./models/other\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ../out/x\n',
    );
  });

  it('inserts a missing probe section for a correlation alignment', async () => {
    const text = 'version: 1\nmodels: { anchor: ../models/tiny-a, other: ../models/tiny-b }\nmerge: { lambda: 0.5 }\noutput: ../out/x\n';
    const add = (await fix(text)).find((a) => a.title === 'Add section "probe"')!;
    expect(add.result).toBe(`${text}probe:\n  audio: [./probe]\n  max_seconds: 600\n  segment_seconds: 5\n`);
  });
});

describe('document symbols', () => {
  it('outlines sections, keys and named list items', async () => {
    const file = path.join(recipes, 'good', 'full.merge.yaml');
    const uri = fileUri(file);
    await client.open(uri, read(file));
    const symbols = (await client.connection.sendRequest(DocumentSymbolRequest.type, { textDocument: { uri } })) as DocumentSymbol[];
    expect(symbols.map((s) => s.name)).toEqual(['version', 'name', 'models', 'probe', 'align', 'merge', 'evaluate', 'output', 'runtime']);
    const models = symbols.find((s) => s.name === 'models')!;
    expect(models.children!.map((c) => [c.name, c.detail])).toEqual([
      ['anchor', '../models/tiny-a'],
      ['other', '../models/tiny-b'],
    ]);
    expect(models.selectionRange).toEqual({ start: { line: 3, character: 0 }, end: { line: 3, character: 6 } });
    const tasks = symbols.find((s) => s.name === 'evaluate')!.children![0]!;
    expect(tasks.children!.map((c) => c.name)).toEqual(['keywords']);
  });
});
