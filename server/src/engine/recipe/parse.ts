/**
 * Recipe text → YAML AST with exact source ranges, plus the YAML-level diagnostics. Offsets become
 * positions through one line-start table (yaml-language-server's `positionAt`), so every later stage
 * reports the range of the YAML node itself.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, parseDocument, visit, type Alias, type Document, type Node, type Pair } from 'yaml';
import { diagnostic, Severity, type Position, type Range, type RecipeDiagnostic, type RecipeDiagnosticCode } from './diagnostics';
import { resolveAliases, textLimitProblem } from './yaml-limits';

/** Offsets ↔ 0-based line/character positions (UTF-16, like JS strings and LSP). */
export class LineIndex {
  private readonly starts: number[] = [0];

  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) this.starts.push(i + 1);
      else if (c === 13) {
        if (text.charCodeAt(i + 1) === 10) i++;
        this.starts.push(i + 1);
      }
    }
  }

  get lineCount(): number {
    return this.starts.length;
  }

  positionAt(offset: number): Position {
    const o = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= o) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, character: o - this.starts[lo]! };
  }

  offsetAt(p: Position): number {
    if (p.line < 0) return 0;
    if (p.line >= this.starts.length) return this.text.length;
    // Like LSP: a character past the end of the line means the end of the line (before its line break).
    const start = this.starts[p.line]!;
    return start + Math.min(Math.max(0, p.character), this.lineText(p.line).length);
  }

  range(start: number, end: number): Range {
    return { start: this.positionAt(start), end: this.positionAt(end) };
  }

  lineText(line: number): string {
    const start = this.starts[line] ?? this.text.length;
    const end = line + 1 < this.starts.length ? this.starts[line + 1]! : this.text.length;
    return this.text.slice(start, end).replace(/\r?\n$|\r$/, '');
  }
}

export interface ParsedRecipe {
  text: string;
  lines: LineIndex;
  doc: Document.Parsed;
  /** YAML syntax problems; when any is an error, schema validation still runs on what parsed. */
  diagnostics: RecipeDiagnostic[];
  /** Every alias's target, resolved once (see `deref`). */
  aliasTargets: Map<Alias, Node | undefined>;
}

// uniqueKeys off: yaml compares each key with every earlier one (quadratic in a mapping's size); duplicateKeys
// below reports the same errors in one pass. Merge keys off (YAML 1.2 core), so `<<` is an ordinary unknown key.
const PARSE_OPTIONS = { prettyErrors: false, uniqueKeys: false, merge: false, keepSourceTokens: false } as const;

const YAML_CODES: Record<string, RecipeDiagnosticCode> = {
  MULTIPLE_DOCS: 'yaml-multiple-documents',
};

export function parseRecipe(text: string): ParsedRecipe {
  const lines = new LineIndex(text);
  // Past a size or nesting limit the text is not parsed at all (yaml's parser is superlinear on deep nesting):
  // one diagnostic, and an empty document for completion and the outline.
  const tooLarge = textLimitProblem(text);
  if (tooLarge) {
    const limit = diagnostic(lines.range(tooLarge.start, tooLarge.end), Severity.Error, 'yaml-limit', tooLarge.message);
    return { text, lines, doc: parseDocument('', PARSE_OPTIONS), diagnostics: [limit], aliasTargets: new Map() };
  }
  const doc = parseDocument(text, PARSE_OPTIONS);
  const diagnostics: RecipeDiagnostic[] = duplicateKeys(doc, lines);
  for (const e of doc.errors) {
    const start = e.pos[0];
    let end = e.pos[1];
    const code = YAML_CODES[e.code] ?? 'yaml-syntax';
    let message = `YAML: ${e.message}`;
    if (code === 'yaml-multiple-documents') {
      end = lines.offsetAt({ line: lines.positionAt(start).line, character: Number.MAX_SAFE_INTEGER });
      message = 'A recipe is a single YAML document: remove this `---` and what follows, or move it to its own file';
    }
    diagnostics.push(diagnostic(lines.range(start, Math.max(end, start)), Severity.Error, code, message));
  }
  for (const w of doc.warnings) {
    const [start, end] = w.pos;
    diagnostics.push(diagnostic(lines.range(start, end), Severity.Warning, 'yaml-syntax', `YAML: ${w.message}`));
  }
  const aliases = resolveAliases(doc);
  if (aliases.problem)
    diagnostics.push(
      diagnostic(lines.range(aliases.problem.start, aliases.problem.end), Severity.Error, 'yaml-limit', aliases.problem.message),
    );
  return { text, lines, doc, diagnostics, aliasTargets: aliases.targets };
}

/** A key written twice in one mapping: an error at each repetition (scalar keys, compared by value and type). */
function duplicateKeys(doc: Document.Parsed, lines: LineIndex): RecipeDiagnostic[] {
  const out: RecipeDiagnostic[] = [];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const k = pair.key as Node | null;
        if (!isScalar(k) || !k.range) continue;
        const id = `${typeof k.value}:${String(k.value)}`;
        if (!seen.has(id)) {
          seen.add(id);
          continue;
        }
        const [start, end] = k.range;
        out.push(
          diagnostic(
            lines.range(start, end),
            Severity.Error,
            'yaml-duplicate-key',
            `Duplicate key ${JSON.stringify(lines.text.slice(start, end))}: a key may appear once per mapping`,
          ),
        );
      }
    },
  });
  return out;
}

/** Source range of a node: its value, without trailing comments. */
export function nodeRange(p: ParsedRecipe, node: Node): Range {
  const r = node.range;
  if (!r) return p.lines.range(0, 0);
  return p.lines.range(r[0], r[1]);
}

export function keyText(pair: Pair): string | null {
  return isScalar(pair.key) ? String(pair.key.value) : null;
}

/** The value node of an alias (resolved once at parse time: `Alias.resolve` walks the whole document), or the node itself. */
export function deref(p: ParsedRecipe, node: unknown): unknown {
  return isAlias(node) ? p.aliasTargets.get(node) : node;
}

export type PathSegment = string | number;

/** Where an offset falls in the document, for completion and hover. */
export interface NodeLocation {
  /** Key path of the innermost mapping value / list item containing the offset. */
  path: PathSegment[];
  /** The offset is on a mapping key (then `path` ends with that key). */
  onKey: boolean;
  /** The scalar under the offset, if any. */
  scalar: { value: unknown; start: number; end: number } | null;
}

/** Finds the deepest node whose range contains `offset`. Returns null outside the document's content. */
export function locate(p: ParsedRecipe, offset: number): NodeLocation | null {
  const path: PathSegment[] = [];
  let node: unknown = p.doc.contents;
  if (!node) return null;
  for (;;) {
    if (isMap(node)) {
      let descended = false;
      for (const item of node.items) {
        if (!isPair(item)) continue;
        const key = keyText(item);
        const k = item.key as Node | null;
        if (k?.range && offset >= k.range[0] && offset <= k.range[1]) {
          if (key === null) return null;
          return { path: [...path, key], onKey: true, scalar: { value: key, start: k.range[0], end: k.range[1] } };
        }
        const v = item.value as Node | null;
        if (key !== null && v?.range && offset >= v.range[0] && offset <= v.range[1] && !(isScalar(v) && v.value === null)) {
          path.push(key);
          node = v;
          descended = true;
          break;
        }
      }
      if (!descended) return { path, onKey: false, scalar: null };
    } else if (isSeq(node)) {
      let descended = false;
      node.items.forEach((item, i) => {
        const n = item as Node | null;
        if (!descended && n?.range && offset >= n.range[0] && offset <= n.range[1]) {
          path.push(i);
          node = n;
          descended = true;
        }
      });
      if (!descended) return { path, onKey: false, scalar: null };
    } else if (isScalar(node)) {
      const r = node.range!;
      return { path, onKey: false, scalar: { value: node.value, start: r[0], end: r[1] } };
    } else {
      return { path, onKey: false, scalar: null };
    }
  }
}

/** The node at a key path (through aliases), or undefined. */
export function nodeAt(p: ParsedRecipe, path: readonly PathSegment[]): unknown {
  let node: unknown = deref(p, p.doc.contents);
  for (const seg of path) {
    if (isMap(node) && typeof seg === 'string') node = deref(p, node.get(seg, true));
    else if (isSeq(node) && typeof seg === 'number') node = deref(p, node.items[seg]);
    else return undefined;
  }
  return node;
}

/** The keys present in the mapping at `path` (empty when there is none). */
export function keysAt(p: ParsedRecipe, path: readonly PathSegment[]): string[] {
  const node = nodeAt(p, path);
  if (!isMap(node)) return [];
  return node.items.map((pair) => keyText(pair)).filter((k): k is string => k !== null);
}
