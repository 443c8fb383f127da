/**
 * `output_onnx` in the editor comes from the recipe schema alone: completion of the key and its values, its hover
 * and a located error for a value of the wrong type, with no code of its own in the language server.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CompletionRequest,
  HoverRequest,
  type CompletionItem,
  type CompletionList,
  type MarkupContent,
} from 'vscode-languageserver-protocol';
import { caret, fileUri, startTestServer, type TestClient } from './harness';

const good = path.join(__dirname, '..', 'fixtures', 'recipes', 'good');
const HEAD =
  'version: 1\nmodels: { anchor: ../models/tiny-a, other: ../models/tiny-b }\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ./out\n';

let client: TestClient;
let version = 0;
beforeAll(async () => {
  client = await startTestServer({ launcher: null });
});
afterAll(() => client.shutdown());

async function at(textWithCaret: string) {
  const { text, position } = caret(textWithCaret);
  const uri = fileUri(path.join(good, `onnx-${++version}.merge.yaml`));
  const diagnostics = await client.open(uri, text);
  return { uri, position, diagnostics };
}

async function complete(textWithCaret: string): Promise<CompletionItem[]> {
  const { uri, position } = await at(textWithCaret);
  const result = await client.connection.sendRequest(CompletionRequest.type, { textDocument: { uri }, position });
  return Array.isArray(result) ? result : ((result as CompletionList | null)?.items ?? []);
}

describe('output_onnx in the editor', () => {
  it('is completed as a key, documented, and its values are offered', async () => {
    const key = (await complete(`${HEAD}output_o|`)).find((i) => i.label === 'output_onnx');
    expect(key).toBeDefined();
    expect(JSON.stringify(key!.documentation)).toContain('model.onnx');
    const values = (await complete(`${HEAD}output_onnx: |`)).map((i) => i.label);
    expect(values).toEqual(expect.arrayContaining(['true', 'false']));
  });

  it('hover: what the file holds, its interface and the default', async () => {
    const { uri, position } = await at(`${HEAD}output_on|nx: true\n`);
    const h = await client.connection.sendRequest(HoverRequest.type, { textDocument: { uri }, position });
    const text = (h!.contents as MarkupContent).value;
    expect(text).toContain('**output_onnx**');
    expect(text).toContain('`input_values`');
    expect(text).toContain('`last_hidden_state`');
    expect(text).toContain('Default: `false`');
  });

  it('a value of the wrong type is an error at the value', async () => {
    const { diagnostics } = await at(`${HEAD}output_onnx: |onnx\n`);
    const errors = diagnostics.filter((d) => d.severity === 1);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.range).toEqual({ start: { line: 5, character: 13 }, end: { line: 5, character: 17 } });
    expect(errors[0]!.message).toMatch(/output_onnx/);
  });
});
