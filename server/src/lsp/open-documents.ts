/**
 * The open text documents, kept in sync by didOpen / didChange / didClose (what vscode-languageserver's
 * TextDocuments does), with every notification's params checked first: a malformed one (`range: null`, a
 * missing text, a version that is not a number) is ignored with a logged warning instead of throwing inside the
 * library, which logged an internal error and could leave the document half-updated.
 */
import type { Connection, Range, TextDocumentContentChangeEvent } from 'vscode-languageserver';
import { TextDocument } from 'vscode-languageserver-textdocument';

export interface DocumentListener {
  opened(doc: TextDocument): void;
  changed(doc: TextDocument): void;
  closed(uri: string): void;
}

export class OpenDocuments {
  private readonly docs = new Map<string, TextDocument>();

  get(uri: string): TextDocument | undefined {
    return this.docs.get(uri);
  }

  all(): TextDocument[] {
    return [...this.docs.values()];
  }

  listen(connection: Connection, listener: DocumentListener, warn: (line: string) => void): void {
    connection.onDidOpenTextDocument((params: unknown) => {
      const problem = openProblem(params);
      if (problem) return warn(`textDocument/didOpen ignored: ${problem}`);
      const { uri, languageId, version, text } = (
        params as { textDocument: { uri: string; languageId: string; version: number; text: string } }
      ).textDocument;
      const doc = TextDocument.create(uri, languageId, version, text);
      this.docs.set(uri, doc);
      listener.opened(doc);
    });
    connection.onDidChangeTextDocument((params: unknown) => {
      const problem = changeProblem(params);
      if (problem) return warn(`textDocument/didChange ignored: ${problem}`);
      const { textDocument, contentChanges } = params as {
        textDocument: { uri: string; version: number };
        contentChanges: TextDocumentContentChangeEvent[];
      };
      const doc = this.docs.get(textDocument.uri);
      if (!doc) return warn(`textDocument/didChange ignored: ${textDocument.uri} is not open`);
      const updated = TextDocument.update(doc, contentChanges, textDocument.version);
      this.docs.set(textDocument.uri, updated);
      listener.changed(updated);
    });
    connection.onDidCloseTextDocument((params: unknown) => {
      const uri = (params as { textDocument?: { uri?: unknown } } | null)?.textDocument?.uri;
      if (typeof uri !== 'string') return warn('textDocument/didClose ignored: textDocument.uri is not a string');
      if (this.docs.delete(uri)) listener.closed(uri);
    });
  }
}

function openProblem(params: unknown): string | undefined {
  const d = (params as { textDocument?: Record<string, unknown> } | null)?.textDocument;
  if (!d || typeof d !== 'object') return 'no textDocument';
  if (typeof d.uri !== 'string') return 'textDocument.uri is not a string';
  if (typeof d.text !== 'string') return `textDocument.text of ${d.uri} is not a string`;
  if (!Number.isInteger(d.version)) return `textDocument.version of ${d.uri} is not an integer`;
  if (typeof d.languageId !== 'string') return `textDocument.languageId of ${d.uri} is not a string`;
  return undefined;
}

function changeProblem(params: unknown): string | undefined {
  const p = params as { textDocument?: Record<string, unknown>; contentChanges?: unknown } | null;
  const d = p?.textDocument;
  if (!d || typeof d !== 'object' || typeof d.uri !== 'string') return 'textDocument.uri is not a string';
  if (!Number.isInteger(d.version)) return `textDocument.version of ${d.uri} is not an integer`;
  if (!Array.isArray(p.contentChanges)) return `contentChanges of ${d.uri} is not a list`;
  for (const [i, c] of p.contentChanges.entries()) {
    const change = c as { text?: unknown; range?: unknown } | null;
    if (!change || typeof change !== 'object' || typeof change.text !== 'string')
      return `contentChanges[${i}].text of ${d.uri} is not a string`;
    if ('range' in change && !isRange(change.range))
      return `contentChanges[${i}].range of ${d.uri} is ${JSON.stringify(change.range)}, not a range (leave it out to replace the whole text)`;
  }
  return undefined;
}

export function isPosition(p: unknown): p is Range['start'] {
  const q = p as { line?: unknown; character?: unknown } | null;
  return !!q && typeof q === 'object' && isIndex(q.line) && isIndex(q.character);
}

export function isRange(r: unknown): r is Range {
  const q = r as { start?: unknown; end?: unknown } | null;
  return !!q && typeof q === 'object' && isPosition(q.start) && isPosition(q.end);
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0;
}
