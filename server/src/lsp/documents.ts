/**
 * Open recipe documents and their parse results, cached by uri + version (yaml-language-server's
 * yaml-documents.ts): completion, hover, symbols and diagnostics for one version share one parse.
 */
import { fileURLToPath } from 'node:url';
import type { TextDocument } from 'vscode-languageserver-textdocument';
import { checkStructure, type RecipeStructure } from '../engine/recipe';

export class RecipeDocuments {
  private readonly parsed = new Map<string, { version: number; structure: RecipeStructure }>();

  /** The text-only checks of this document version, computed once. */
  structure(doc: TextDocument): RecipeStructure {
    const hit = this.parsed.get(doc.uri);
    if (hit && hit.version === doc.version) return hit.structure;
    const structure = checkStructure(doc.getText());
    this.parsed.set(doc.uri, { version: doc.version, structure });
    return structure;
  }

  forget(uri: string): void {
    this.parsed.delete(uri);
  }
}

/** The file a `file:` URI names; undefined for untitled and other schemes (no disk checks, no relative paths). */
export function uriToPath(uri: string): string | undefined {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}
