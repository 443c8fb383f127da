/** Outline of a recipe: sections, keys and list items (named by their `name` key when they have one). */
import { isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import { SymbolKind, type DocumentSymbol } from 'vscode-languageserver';
import { deref, keyText, type ParsedRecipe } from '../../engine/recipe';

export function recipeSymbols(parsed: ParsedRecipe): DocumentSymbol[] {
  return children(parsed, deref(parsed, parsed.doc.contents));
}

function children(p: ParsedRecipe, node: unknown): DocumentSymbol[] {
  const out: DocumentSymbol[] = [];
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = keyText(pair);
      const k = pair.key as Node | null;
      if (key === null || !k?.range) continue;
      const v = deref(p, pair.value) as Node | null | undefined;
      const end = v?.range ? v.range[1] : k.range[1];
      out.push({
        name: key,
        detail: isScalar(v) && v.value !== null ? String(v.value) : undefined,
        kind: kindOf(v),
        range: p.lines.range(k.range[0], Math.max(end, k.range[1])),
        selectionRange: p.lines.range(k.range[0], k.range[1]),
        children: children(p, v),
      });
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const n = deref(p, item) as Node | null | undefined;
      if (!n?.range) return;
      const nameNode = isMap(n) ? n.get('name', true) : undefined;
      const name = isScalar(nameNode) ? String(nameNode.value) : isScalar(n) ? String(n.value) : `[${i}]`;
      const range = p.lines.range(n.range[0], n.range[1]);
      out.push({ name, kind: kindOf(n), range, selectionRange: range, children: children(p, n) });
    });
  }
  return out;
}

function kindOf(v: unknown): SymbolKind {
  if (isMap(v)) return SymbolKind.Object;
  if (isSeq(v)) return SymbolKind.Array;
  if (isScalar(v)) {
    if (typeof v.value === 'number') return SymbolKind.Number;
    if (typeof v.value === 'boolean') return SymbolKind.Boolean;
    return SymbolKind.String;
  }
  return SymbolKind.Null;
}
