/**
 * Quick fixes keyed off `Diagnostic.data` (never off message text): replace a misspelt key or value with the
 * suggestion, insert a missing required key or section with its starter value.
 */
import { isMap, isPair, type Node } from 'yaml';
import { CodeActionKind, type CodeAction, type Diagnostic, type TextEdit } from 'vscode-languageserver';
import { nodeAt, schemaAt, type DiagnosticFix, type ParsedRecipe, type Schema } from '../../engine/recipe';
import { indentLines, snippetToText } from './snippets';

export function recipeCodeActions(parsed: ParsedRecipe, uri: string, diagnostics: readonly Diagnostic[]): CodeAction[] {
  const actions: CodeAction[] = [];
  for (const d of diagnostics) {
    // Diagnostics come back from the client: anything that is not one of ours is passed over.
    if (!d || typeof d !== 'object') continue;
    const fix = d.data as DiagnosticFix | undefined;
    if (d.source !== 'merge-studio' || !fix || typeof fix !== 'object') continue;
    if (fix.fix === 'replace') {
      actions.push({
        title: `Change to "${fix.replacement}"`,
        kind: CodeActionKind.QuickFix,
        diagnostics: [d],
        isPreferred: true,
        edit: { changes: { [uri]: [{ range: d.range, newText: fix.replacement }] } },
      });
    } else if (fix.fix === 'insert-key') {
      const edit = insertKeyEdit(parsed, fix.path === '' ? [] : fix.path.split('.'), fix.key);
      if (edit) {
        actions.push({
          title: `Add ${fix.path === '' ? 'section' : 'key'} "${fix.key}"`,
          kind: CodeActionKind.QuickFix,
          diagnostics: [d],
          isPreferred: true,
          edit: { changes: { [uri]: [edit] } },
        });
      }
    }
  }
  return actions;
}

/** Starter text for a key, without snippet placeholders. */
function starterFor(key: string, s: Schema): string {
  if (s.starter?.startsWith(`${key}:`)) return snippetToText(s.starter);
  if (s.starter) return `${key}: ${snippetToText(s.starter)}`;
  if (s.kind === 'enum') return `${key}: ${typeof s.default === 'string' ? s.default : s.values[0]}`;
  if (s.kind === 'object') {
    const required = Object.entries(s.properties).filter(([, p]) => !p.optional);
    return [`${key}:`, ...required.map(([k, p]) => indentLines(starterFor(k, p), '  ').replace(/^/, '  '))].join('\n');
  }
  if (s.kind === 'literal') return `${key}: ${String(s.value)}`;
  if (s.kind === 'number' && s.default !== undefined) return `${key}: ${String(s.default)}`;
  return `${key}: `;
}

/** Inserts `key` at the end of the mapping at `path` (the document's end for top-level sections). */
function insertKeyEdit(parsed: ParsedRecipe, path: string[], key: string): TextEdit | null {
  const [schema] = schemaAt([...path, key]);
  if (!schema) return null;
  const text = parsed.text;
  if (path.length === 0) {
    const lead = text === '' || text.endsWith('\n') ? '' : '\n';
    const end = parsed.lines.positionAt(text.length);
    return { range: { start: end, end }, newText: `${lead}${starterFor(key, schema)}\n` };
  }
  const map = nodeAt(parsed, path);
  if (!isMap(map) || map.items.length === 0) return null;
  const first = map.items[0];
  const last = map.items[map.items.length - 1];
  if (!isPair(first) || !isPair(last)) return null;
  const firstKey = first.key as Node | null;
  const lastEnd = ((last.value as Node | null)?.range ?? (last.key as Node | null)?.range)?.[1];
  if (!firstKey?.range || lastEnd === undefined) return null;
  const keyPos = parsed.lines.positionAt(firstKey.range[0]);
  const flow = (map as { flow?: boolean }).flow === true;
  if (flow) {
    // `{ a: 1 }` → `{ a: 1, key: value }`
    const at = parsed.lines.positionAt(lastEnd);
    return { range: { start: at, end: at }, newText: `, ${snippetToText(starterFor(key, schema)).replace(/\n\s*/g, ' ')}` };
  }
  const indent = ' '.repeat(keyPos.character);
  const lastLine = parsed.lines.positionAt(Math.max(lastEnd - 1, firstKey.range[0])).line;
  const at = { line: lastLine, character: parsed.lines.lineText(lastLine).length };
  return { range: { start: at, end: at }, newText: `\n${indent}${indentLines(starterFor(key, schema), indent)}` };
}
