/**
 * Outline of a recipe: sections, keys and list items (named by their `name` key when they have one). Aliases are
 * shown as what they are (`*name`), never expanded: the outline is the text's structure, and expanding them is how
 * an alias bomb or a cycle (`&m {<<: *m}`) would exhaust the server. Depth and size are bounded for the same reason.
 */
import { isAlias, isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import { SymbolKind, type DocumentSymbol } from 'vscode-languageserver';
import { keyText, type ParsedRecipe } from '../../engine/recipe';

/** Deeper levels and further symbols are left out: a recipe has a few dozen symbols, five levels deep. */
export const OUTLINE_LIMITS = { maxDepth: 16, maxSymbols: 2_000 } as const;

export function recipeSymbols(parsed: ParsedRecipe): DocumentSymbol[] {
  const budget = { left: OUTLINE_LIMITS.maxSymbols };
  return children(parsed, parsed.doc.contents, 0, budget);
}

function children(p: ParsedRecipe, node: unknown, depth: number, budget: { left: number }): DocumentSymbol[] {
  const out: DocumentSymbol[] = [];
  if (depth >= OUTLINE_LIMITS.maxDepth) return out;
  if (isMap(node)) {
    for (const pair of node.items) {
      if (budget.left <= 0) break;
      if (!isPair(pair)) continue;
      const key = keyText(pair);
      const k = pair.key as Node | null;
      if (key === null || !k?.range) continue;
      const v = pair.value as Node | null | undefined;
      const end = v?.range ? v.range[1] : k.range[1];
      budget.left--;
      out.push({
        name: key === '' ? '""' : key,
        detail: detailOf(v),
        kind: kindOf(v),
        range: p.lines.range(k.range[0], Math.max(end, k.range[1])),
        selectionRange: p.lines.range(k.range[0], k.range[1]),
        children: children(p, v, depth + 1, budget),
      });
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const n = item as Node | null | undefined;
      if (!n?.range || budget.left <= 0) return;
      budget.left--;
      const nameNode = isMap(n) ? n.get('name', true) : undefined;
      const name = isScalar(nameNode) ? String(nameNode.value) : isScalar(n) ? String(n.value) : isAlias(n) ? `*${n.source}` : `[${i}]`;
      const range = p.lines.range(n.range[0], n.range[1]);
      out.push({
        name: name === '' ? `[${i}]` : name,
        kind: kindOf(n),
        range,
        selectionRange: range,
        children: children(p, n, depth + 1, budget),
      });
    });
  }
  return out;
}

function detailOf(v: Node | null | undefined): string | undefined {
  if (isAlias(v)) return `*${v.source}`;
  return isScalar(v) && v.value !== null ? String(v.value) : undefined;
}

function kindOf(v: unknown): SymbolKind {
  if (isMap(v)) return SymbolKind.Object;
  if (isSeq(v)) return SymbolKind.Array;
  if (isAlias(v)) return SymbolKind.Constant;
  if (isScalar(v)) {
    if (typeof v.value === 'number') return SymbolKind.Number;
    if (typeof v.value === 'boolean') return SymbolKind.Boolean;
    return SymbolKind.String;
  }
  return SymbolKind.Null;
}
