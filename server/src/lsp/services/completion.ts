/**
 * Completion for recipes, walking the same schema the validator uses: keys not yet present (required ones
 * first, with snippet values), enum values with their documentation, and paths relative to the recipe for
 * model folders, probe audio, datasets and output.
 */
import { promises as fs, type Dirent } from 'node:fs';
import * as path from 'node:path';
import { CompletionItemKind, InsertTextFormat, MarkupKind, type CompletionItem, type Position, type TextEdit } from 'vscode-languageserver';
import {
  describeExpected,
  expandUnion,
  HF_PREFIX,
  isAudioFile,
  keysAt,
  schemaAt,
  type ParsedRecipe,
  type Schema,
} from '../../engine/recipe';
import { cursorContext } from './context';

export interface CompletionInput {
  parsed: ParsedRecipe;
  position: Position;
  /** The recipe file, for relative paths; undefined for untitled documents. */
  recipeFile: string | undefined;
}

export async function completeRecipe({ parsed, position, recipeFile }: CompletionInput): Promise<CompletionItem[]> {
  const ctx = cursorContext(parsed.lines, position);
  if (!ctx) return [];
  const range = { start: { line: position.line, character: ctx.start }, end: { line: position.line, character: ctx.end } };
  const schemas = schemaAt(ctx.path).flatMap(expandUnion);

  if (ctx.kind === 'key') {
    const objects = schemas.filter((s): s is Extract<Schema, { kind: 'object' }> => s.kind === 'object');
    if (objects.length) {
      const present = new Set(keysAt(parsed, ctx.path));
      // Completing over an existing `key: value` replaces the name only.
      const nameOnly = /^\s*:/.test(parsed.lines.lineText(position.line).slice(ctx.end));
      return objects.flatMap((o) => keyItems(o, present, range, ctx.prefix, nameOnly));
    }
    // `- |` in a list of scalars: a value, not a key.
    return valueItems(schemas, { prefix: ctx.prefix, siblings: [] }, range, recipeFile);
  }
  return valueItems(schemas, ctx, range, recipeFile);
}

type EditRange = TextEdit['range'];

function keyItems(
  o: Extract<Schema, { kind: 'object' }>,
  present: Set<string>,
  range: EditRange,
  prefix: string,
  nameOnly: boolean,
): CompletionItem[] {
  return Object.entries(o.properties)
    .filter(([key]) => !present.has(key) || key === prefix)
    .map(([key, s], i) => ({
      label: key,
      kind: CompletionItemKind.Property,
      detail: `${s.optional ? 'optional' : 'required'} · ${describeExpected(s)}`,
      documentation: { kind: MarkupKind.Markdown, value: documentation(s) },
      // Required keys first, then the schema's order (the order a recipe is read in).
      sortText: `${s.optional ? 1 : 0}${String(i).padStart(2, '0')}`,
      insertTextFormat: InsertTextFormat.Snippet,
      textEdit: { range, newText: nameOnly ? key : keySnippet(key, s) },
    }));
}

function keySnippet(key: string, s: Schema): string {
  if (s.starter?.startsWith(`${key}:`)) return s.starter;
  if (s.starter) return `${key}: \${1:${s.starter}}`;
  switch (s.kind) {
    case 'object':
    case 'map':
      return `${key}:\n  $0`;
    case 'enum':
      return `${key}: \${1|${orderedValues(s).join(',')}|}`;
    case 'boolean':
      return `${key}: \${1|${s.default === false ? 'false,true' : 'true,false'}|}`;
    case 'literal':
      return `${key}: ${String(s.value)}`;
    case 'array':
      return s.items.kind === 'object' ? `${key}:\n  - $0` : `${key}: [$1]`;
    case 'number':
      return s.default !== undefined ? `${key}: \${1:${String(s.default)}}` : `${key}: $1`;
    default:
      return `${key}: $1`;
  }
}

/** Enum values with the default first, so the snippet's first choice is the default. */
function orderedValues(s: Extract<Schema, { kind: 'enum' }>): string[] {
  const values = [...s.values];
  if (typeof s.default === 'string') values.sort((a, b) => (a === s.default ? -1 : b === s.default ? 1 : 0));
  return values;
}

export function documentation(s: Schema): string {
  const parts = [s.description];
  if (s.default !== undefined) parts.push(`Default: \`${JSON.stringify(s.default)}\``);
  if (s.kind === 'enum') parts.push(s.values.map((v) => `- \`${v}\`: ${s.valueDescriptions[v]}`).join('\n'));
  return parts.join('\n\n');
}

async function valueItems(
  schemas: Schema[],
  ctx: { prefix: string; siblings: string[] },
  range: EditRange,
  recipeFile: string | undefined,
): Promise<CompletionItem[]> {
  const items: CompletionItem[] = [];
  for (const s of schemas) {
    if (s.kind === 'enum') {
      for (const v of s.values) {
        if (ctx.siblings.includes(v)) continue;
        items.push({
          label: v,
          kind: CompletionItemKind.EnumMember,
          detail: v === s.default ? 'default' : undefined,
          documentation: { kind: MarkupKind.Markdown, value: s.valueDescriptions[v] },
          textEdit: { range, newText: v },
        });
      }
    } else if (s.kind === 'boolean') {
      for (const v of ['true', 'false']) items.push({ label: v, kind: CompletionItemKind.Value, textEdit: { range, newText: v } });
    } else if (s.kind === 'literal') {
      items.push({ label: String(s.value), kind: CompletionItemKind.Value, textEdit: { range, newText: String(s.value) } });
    } else if (s.kind === 'number' && s.default !== undefined) {
      items.push({
        label: String(s.default),
        kind: CompletionItemKind.Value,
        detail: 'default',
        textEdit: { range, newText: String(s.default) },
      });
    } else if (s.kind === 'string' && s.format !== 'text' && s.format !== 'glob' && recipeFile) {
      items.push(...(await pathItems(s.format, ctx.prefix, range, recipeFile)));
    }
  }
  return items;
}

/** Folder entries matching what is typed so far, relative to the recipe's folder. */
async function pathItems(
  format: 'path' | 'directory' | 'model',
  typed: string,
  range: EditRange,
  recipeFile: string,
): Promise<CompletionItem[]> {
  const items: CompletionItem[] = [];
  if (format === 'model' && typed === '') {
    items.push({
      label: 'hf:',
      kind: CompletionItemKind.Reference,
      detail: 'Hugging Face Hub reference',
      insertTextFormat: InsertTextFormat.Snippet,
      textEdit: { range, newText: `${HF_PREFIX}\${1:org}/\${2:name}` },
    });
  }
  if (typed.startsWith(HF_PREFIX)) return items;
  const slash = typed.lastIndexOf('/');
  const dirPart = slash >= 0 ? typed.slice(0, slash + 1) : '';
  const namePart = typed.slice(slash + 1);
  const dir = path.resolve(path.dirname(recipeFile), dirPart === '' ? '.' : dirPart);
  let entries: Dirent[];
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch {
    return items;
  }
  // Replace only the last path segment, so the client filters on what follows the last slash.
  const segment = { start: { line: range.start.line, character: range.end.character - namePart.length }, end: range.end };
  if (namePart === '' || '..'.startsWith(namePart)) {
    items.push({ label: '..', kind: CompletionItemKind.Folder, sortText: '~', textEdit: { range: segment, newText: '..' } });
  }
  for (const e of entries) {
    if (e.name.startsWith('.') && !namePart.startsWith('.')) continue;
    const isDir = e.isDirectory();
    if (!isDir && (format !== 'path' || !isAudioFile(e.name))) continue;
    items.push({
      label: e.name,
      kind: isDir ? CompletionItemKind.Folder : CompletionItemKind.File,
      detail: dirPart === '' && !typed.startsWith('.') ? `./${e.name}` : `${dirPart}${e.name}`,
      textEdit: { range: segment, newText: e.name },
    });
  }
  return items;
}
