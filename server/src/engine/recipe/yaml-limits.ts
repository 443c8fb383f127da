/**
 * Limits that keep a hostile recipe from stalling or exhausting whoever reads it (the language server above
 * all): the text's size and nesting are checked before the YAML parser sees it (yaml's parser is superlinear on
 * deep nesting), and aliases are resolved once, in one pass, with their expanded size bounded (an "alias bomb"
 * of nine nested `&a [*b, ×9]` is 387 million nodes; a cycle `&m {<<: *m}` is infinite). The `yaml` package's
 * own bound (`maxAliasCount`) applies to `toJS`, which the recipe checks never call: they walk the AST, so the
 * same bound is enforced here. Real recipes are a few kB, nest 5 levels and use a handful of aliases.
 */
import { isAlias, isMap, isPair, isSeq, visit, type Alias, type Document, type Node } from 'yaml';

export const RECIPE_LIMITS = {
  /** Characters of recipe text (yaml parses about 100 kB a second on a busy laptop core). */
  maxChars: 256 * 1024,
  /** Flow brackets (`[`, `{`) open at once, and `- ` in a row on one line. */
  maxNesting: 64,
  /** Columns of indentation of one line (block nesting). */
  maxIndent: 256,
  /** Alias nodes (`*name`) in one document. */
  maxAliases: 1_000,
  /** Nodes of the document with every alias expanded. */
  maxExpandedNodes: 10_000,
} as const;

/** Where (character offsets) and why a document is past a limit. */
export interface LimitProblem {
  start: number;
  end: number;
  message: string;
}

/** The first size or nesting limit the raw text is past, found in one linear scan; undefined when within. */
export function textLimitProblem(text: string): LimitProblem | undefined {
  const L = RECIPE_LIMITS;
  if (text.length > L.maxChars) {
    return {
      start: 0,
      end: 0,
      message: `This recipe is ${text.length.toLocaleString('en-US')} characters long; a recipe may have at most ${L.maxChars.toLocaleString('en-US')} (a few thousand is typical), so it is not checked`,
    };
  }
  let depth = 0;
  let lineStart = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = text.charCodeAt(i);
    if (i === text.length || c === 10 || c === 13) {
      const problem = lineNestingProblem(text, lineStart, i);
      if (problem) return problem;
      lineStart = i + 1;
    } else if (c === 91 || c === 123) {
      if (++depth > L.maxNesting)
        return {
          start: i,
          end: i + 1,
          message: `Brackets nest more than ${L.maxNesting} levels deep here; a recipe nests a few, so it is not checked`,
        };
    } else if ((c === 93 || c === 125) && depth > 0) depth--;
  }
  return undefined;
}

function lineNestingProblem(text: string, start: number, end: number): LimitProblem | undefined {
  let i = start;
  while (i < end && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9)) i++;
  if (i - start > RECIPE_LIMITS.maxIndent) {
    return {
      start,
      end: i,
      message: `This line is indented ${i - start} columns; a recipe may nest at most ${RECIPE_LIMITS.maxIndent} columns deep, so it is not checked`,
    };
  }
  // `- - - x` (block lists in lists), wherever on the line the run starts.
  let dashes = 0;
  let run = 0;
  for (let j = i; j < end; j++) {
    const c = text.charCodeAt(j);
    if (c === 45 && (j + 1 === end || text.charCodeAt(j + 1) === 32)) {
      dashes = Math.max(dashes, ++run);
      j++;
    } else if (c !== 32) run = 0;
  }
  if (dashes > RECIPE_LIMITS.maxNesting) {
    return {
      start,
      end,
      message: `This line opens ${dashes} nested lists; a recipe may nest at most ${RECIPE_LIMITS.maxNesting}, so it is not checked`,
    };
  }
  return undefined;
}

export interface AliasResolution {
  /** Each alias's target, as `Alias.resolve` finds it (the closest preceding node with that anchor), or undefined. */
  targets: Map<Alias, Node | undefined>;
  /** The first limit the aliases are past (too many, a cycle, too large expanded), if any. */
  problem?: LimitProblem;
}

class AliasLimit extends Error {
  constructor(readonly problem: LimitProblem) {
    super(problem.message);
  }
}

/**
 * Resolves every alias in one pass (`Alias.resolve` walks the whole document per call) and measures the expanded
 * document without expanding it (memoised sizes), stopping at the first limit.
 */
export function resolveAliases(doc: Document.Parsed): AliasResolution {
  const targets = new Map<Alias, Node | undefined>();
  const anchors = new Map<string, Node>();
  let tooMany: LimitProblem | undefined;
  visit(doc, {
    Node(_, node) {
      if (isAlias(node)) {
        targets.set(node, anchors.get(node.source));
        if (targets.size > RECIPE_LIMITS.maxAliases) {
          tooMany = {
            ...rangeOf(node),
            message: `This recipe uses more than ${RECIPE_LIMITS.maxAliases} aliases; Merge Studio does not expand them`,
          };
          return visit.BREAK;
        }
      } else if (node.anchor) anchors.set(node.anchor, node);
      return undefined;
    },
  });
  if (tooMany) return { targets, problem: tooMany };
  if (targets.size === 0) return { targets };

  const sizes = new Map<Node, number>();
  const open = new Set<Node>();
  const max = RECIPE_LIMITS.maxExpandedNodes;
  const size = (node: unknown): number => {
    if (isAlias(node)) {
      const target = targets.get(node);
      if (!target) return 1;
      if (open.has(target)) {
        throw new AliasLimit({
          ...rangeOf(node),
          message: `Alias *${node.source} refers to a node that contains it (a cycle); a recipe cannot refer to itself`,
        });
      }
      return size(target);
    }
    if (!isMap(node) && !isSeq(node)) return 1;
    const known = sizes.get(node);
    if (known !== undefined) return known;
    open.add(node);
    let n = 1;
    const add = (child: unknown) => {
      n += size(child);
      if (n > max) {
        const at = isAlias(child) ? child : node;
        throw new AliasLimit({
          ...rangeOf(at),
          message: `Aliases expand this recipe past ${max.toLocaleString('en-US')} nodes${isAlias(child) ? ` at *${child.source}` : ''} (aliases nested in aliases); Merge Studio does not expand them. Write the values out instead`,
        });
      }
    };
    for (const item of node.items) {
      if (isPair(item)) {
        add(item.key);
        add(item.value);
      } else add(item);
    }
    open.delete(node);
    sizes.set(node, n);
    return n;
  };
  try {
    size(doc.contents);
  } catch (e) {
    if (e instanceof AliasLimit) return { targets, problem: e.problem };
    throw e;
  }
  return { targets };
}

function rangeOf(node: unknown): { start: number; end: number } {
  const r = (node as Node | null)?.range;
  return r ? { start: r[0], end: r[1] } : { start: 0, end: 0 };
}
