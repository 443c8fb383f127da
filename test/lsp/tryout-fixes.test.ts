// What a first tryout in the editor found: word completions where the schema has nothing left to offer, cascades
// of errors from one mistake, and wording.
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompletionRequest, type CompletionList } from 'vscode-languageserver-protocol';
import { checkStructure, schemaAt } from '../../server/src/engine/recipe';
import { SELF_CHECK_TOLERANCE } from '../../server/src/engine/pipeline/self-check';
import { caret, fileUri, startTestServer, type TestClient } from './harness';

const root = path.join(__dirname, '..', '..');
const recipe = (align: string, merge: string) =>
  `version: 1\nmodels:\n  anchor: ./a\n  other: ./b\nprobe: { audio: [./p] }\n${align}${merge}output: ./out\n`;
const problems = (text: string) =>
  checkStructure(text).diagnostics.map((d) => `${d.range.start.line}:${d.range.start.character} ${d.code}: ${d.message}`);

describe('completion with nothing left to offer', () => {
  let client: TestClient;
  beforeAll(async () => {
    client = await startTestServer({ launcher: null });
  });
  afterAll(() => client.shutdown());

  it('is a complete, empty list on a new line under a merge: whose keys are all written', async () => {
    const { text, position } = caret('version: 1\nmerge:\n  method: linear\n  lambda: 0.5\n  sweep: [0.3]\n  |\n');
    const uri = fileUri(path.join(root, 'test', 'fixtures', 'recipes', 'good', 'completion-full-merge.merge.yaml'));
    await client.open(uri, text);
    const list = (await client.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position })) as CompletionList;
    const left = Object.keys((schemaAt(['merge'])[0] as { properties: object }).properties).filter(
      (k) => !/^(method|lambda|sweep)$/.test(k),
    );
    expect(list).toEqual({ isIncomplete: false, items: left.map((k) => expect.objectContaining({ label: k })) });
  });

  it('VS Code does not fall back to word completions in recipes (the extension turns them off for the language)', () => {
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      contributes: { configurationDefaults?: Record<string, Record<string, unknown>> };
    };
    expect(pkg.contributes.configurationDefaults?.['[merge-recipe]']?.['editor.wordBasedSuggestions']).toBe('off');
  });
});

describe('one mistake, one diagnostic', () => {
  it('a typo in align.permute does not also warn that align.heads has no effect', () => {
    expect(problems(recipe('align:\n  permute: [cnn, atention, ffn]\n  heads: reorder\n', 'merge: { lambda: 0.5 }\n'))).toEqual([
      '6:17 bad-enum: align.permute[1]: unknown value "atention". Did you mean "attention"? Expected one of cnn, attention, ffn, residual',
    ]);
    // Without the typo the warning stands: attention is really left out.
    expect(problems(recipe('align:\n  permute: [cnn, ffn]\n  heads: reorder\n', 'merge: { lambda: 0.5 }\n'))).toEqual([
      '7:9 inconsistent-align: align.heads reorder has no effect: "attention" is not in align.permute',
    ]);
  });

  const misIndented: Record<string, { merge: string; expected: string }> = {
    'one column less than its sibling': {
      merge: 'merge:\n  method: linear\n lambda: 0.5\n',
      expected: '8:0 yaml-syntax: YAML: All mapping items must start at the same column',
    },
    'one column more than its sibling': {
      merge: 'merge:\n  method: linear\n   lambda: 0.5\n',
      expected: '7:10 yaml-syntax: YAML: Implicit keys need to be on a single line',
    },
    'indented with a tab': { merge: 'merge:\n\tlambda: 0.5\n', expected: '7:0 yaml-syntax: YAML: Tabs are not allowed as indentation' },
    'not indented at all': {
      merge: 'merge:\nlambda: 0.5\n',
      expected: '7:0 unknown-key: Unknown key "lambda" at the top level: it belongs in merge; indent it under merge:',
    },
  };
  for (const [name, { merge, expected }] of Object.entries(misIndented)) {
    it(`a mis-indented lambda (${name}) is one error`, () => {
      expect(problems(recipe('align: { method: correlation }\n', merge))).toEqual([expected]);
    });
  }

  it('the rest of the document is still checked around a YAML error', () => {
    const text = recipe('align: { method: corelation }\n', 'merge:\n  method: linear\n lambda: 0.5\n');
    expect(problems(text)).toEqual([
      '5:17 bad-enum: align.method: unknown value "corelation". Did you mean "correlation"? Expected one of correlation, paper, weights, none',
      '8:0 yaml-syntax: YAML: All mapping items must start at the same column',
    ]);
  });
});

describe('wording', () => {
  it('the self_check documentation states the tolerance the self-check uses', () => {
    const doc = schemaAt(['align', 'self_check'])[0]!.description;
    expect(doc).toContain(`≤ ${SELF_CHECK_TOLERANCE.toExponential()} relative`);
  });
});
