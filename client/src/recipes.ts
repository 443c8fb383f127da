import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Config } from './config';

export const LANGUAGE_ID = 'merge-recipe';

export function isRecipe(doc: vscode.TextDocument): boolean {
  return doc.languageId === LANGUAGE_ID;
}

/**
 * `mergeStudio.recipeGlobs`, applied like `files.associations`: a YAML document matching one of the globs is
 * switched to the recipe language (VS Code re-opens it under the new id, so the server receives it).
 */
export async function applyRecipeGlobs(doc: vscode.TextDocument, config: Config): Promise<void> {
  if (doc.languageId !== 'yaml' || doc.uri.scheme !== 'file') return;
  const globs = config.recipeGlobs(doc.uri);
  if (globs.some((pattern) => vscode.languages.match({ pattern }, doc) > 0)) {
    await vscode.languages.setTextDocumentLanguage(doc, LANGUAGE_ID);
  }
}

/**
 * The recipe a command acts on: the URI it was invoked with (explorer / editor-title menus pass one), else the
 * active editor's document when it is a recipe.
 */
export function recipeFromArgs(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  if (typeof arg === 'string' && arg !== '') return arg.includes('://') ? vscode.Uri.parse(arg) : vscode.Uri.file(arg);
  const doc = vscode.window.activeTextEditor?.document;
  return doc && isRecipe(doc) ? doc.uri : undefined;
}

export function displayName(uri: vscode.Uri | string): string {
  const p = typeof uri === 'string' ? vscode.Uri.parse(uri).path : uri.path;
  return path.posix.basename(p);
}

/** Saves the open editor of `uri` when dirty: a job runs the file on disk, which must be what the user sees. */
export async function saveIfDirty(uri: vscode.Uri): Promise<boolean> {
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  return !doc || !doc.isDirty || (await doc.save());
}
