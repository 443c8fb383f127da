// Malformed protocol input is a protocol error (requests) or a logged warning (notifications), never an internal
// error; edits are checked once per burst (debounced).
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DidChangeTextDocumentNotification,
  DocumentSymbolRequest,
  ErrorCodes,
  HoverRequest,
  type ResponseError,
} from 'vscode-languageserver-protocol';
import * as lsp from '../../protocol/lsp-ext';
import { RecipeDisk, type ModelInspection } from '../../server/src/engine/recipe';
import { fileUri, read, startTestServer, type TestClient } from './harness';

const recipes = path.join(__dirname, '..', 'fixtures', 'recipes');
const good = path.join(recipes, 'good', 'minimal.merge.yaml');

let client: TestClient;
afterEach(() => client.shutdown());

async function rejection(p: Promise<unknown>): Promise<ResponseError<unknown>> {
  try {
    await p;
  } catch (e) {
    return e as ResponseError<unknown>;
  }
  throw new Error('the request was answered; expected an error response');
}

const internalErrors = () => client.logs.filter((l) => /internal error|TypeError|failed with message|Invalid string length/i.test(l));

describe('protocol-level bad input', () => {
  beforeEach(async () => {
    client = await startTestServer({ launcher: null });
  });

  it('didChange with range: null is ignored with a warning; the document keeps its text and later edits apply', async () => {
    const uri = fileUri(good);
    await client.open(uri, read(good));
    await client.connection.sendNotification(DidChangeTextDocumentNotification.type, {
      textDocument: { uri, version: 2 },
      contentChanges: [{ range: null, text: 'garbage: [' }] as never,
    });
    // A later, valid edit: applied to the text as it was (the bad change changed nothing).
    const diagnostics = await client.change(uri, 3, read(good).replace('lambda: 0.5', 'lambda: 1.5'));
    expect(diagnostics.map((d) => d.code)).toEqual(['out-of-range']);
    expect(
      client.logs.some((l) => /^textDocument\/didChange ignored: contentChanges\[0\]\.range of file:.* is null, not a range/.test(l)),
    ).toBe(true);
    expect(internalErrors()).toEqual([]);
    expect(client.serverStatus.values.filter((s) => s.message?.startsWith('Internal error'))).toEqual([]);
  });

  it('checkRecipe on file:///dev/zero is a bad request naming the device (it was "Invalid string length")', async () => {
    const e = await rejection(client.connection.sendRequest(lsp.checkRecipe, { uri: 'file:///dev/zero' }));
    expect(e.code).toBe(ErrorCodes.InvalidParams);
    expect(e.message).toBe('/dev/zero is not a regular file (it is a device); expected a recipe (.merge.yaml file)');
    expect(internalErrors()).toEqual([]);
  });

  it('checkRecipe on a folder or a missing file is a bad request too', async () => {
    expect((await rejection(client.connection.sendRequest(lsp.checkRecipe, { uri: fileUri(recipes) }))).message).toBe(
      `${recipes} is not a regular file (it is a folder); expected a recipe (.merge.yaml file)`,
    );
    const missing = path.join(recipes, 'nope.merge.yaml');
    expect((await rejection(client.connection.sendRequest(lsp.checkRecipe, { uri: fileUri(missing) }))).message).toBe(
      `recipe ${missing} does not exist`,
    );
  });

  it('requests without a uri or with a bad position are InvalidParams, not internal errors', async () => {
    for (const p of [
      client.connection.sendRequest(lsp.checkRecipe, { uri: 42 } as never),
      client.connection.sendRequest(HoverRequest.type, { textDocument: { uri: fileUri(good) }, position: null } as never),
      client.connection.sendRequest(HoverRequest.type, { textDocument: { uri: fileUri(good) }, position: { line: -1, character: 0.5 } }),
      client.connection.sendRequest(DocumentSymbolRequest.type, { textDocument: null } as never),
      client.connection.sendRequest(lsp.getReport, {} as never),
    ]) {
      expect((await rejection(p)).code).toBe(ErrorCodes.InvalidParams);
    }
    expect(internalErrors()).toEqual([]);
  });
});

describe('validation', () => {
  it('checks a burst of edits once, for the last version', async () => {
    // Counts the disk checks: each check of this recipe inspects its two models once.
    class CountingDisk extends RecipeDisk {
      inspections = 0;
      override inspectModel(dir: string): Promise<ModelInspection> {
        this.inspections++;
        return super.inspectModel(dir);
      }
    }
    const disk = new CountingDisk();
    client = await startTestServer({ launcher: null, disk, validationDelayMs: 200 });
    const uri = fileUri(good);
    await client.open(uri, read(good));
    expect(disk.inspections).toBe(2);
    for (let v = 2; v <= 6; v++) {
      await client.connection.sendNotification(DidChangeTextDocumentNotification.type, {
        textDocument: { uri, version: v },
        contentChanges: [{ text: read(good).replace('0.5', `0.${v}`) }],
      });
    }
    await client.diagnostics.next((d) => d.uri === uri && d.version === 6);
    expect(client.diagnostics.values.filter((d) => d.uri === uri).map((d) => d.version)).toEqual([1, 6]);
    expect(disk.inspections).toBe(4);
  });

  it('checkRecipe answers exactly what was pushed for an open recipe', async () => {
    client = await startTestServer({ launcher: null });
    const file = path.join(recipes, 'bad', 'heads-without-attention.merge.yaml');
    const pushed = await client.open(fileUri(file), read(file));
    const answered = await client.connection.sendRequest(lsp.checkRecipe, { uri: fileUri(file) });
    expect(answered.diagnostics).toEqual(pushed);
    expect(answered).toMatchObject({ version: 1, warningCount: pushed.length });
  });
});
