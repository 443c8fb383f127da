/**
 * Where the cursor is in a recipe, from the text around it: on a (partial) key of which mapping, or in the
 * value of which key. Works on half-typed lines the YAML AST cannot represent yet, by following indentation
 * upwards (block style) and brackets on the current line (flow style: `[a, b]`, `{ k: v }`).
 */
import type { LineIndex, PathSegment, Position } from '../../engine/recipe';

export type CursorContext =
  | {
      kind: 'key';
      /** The mapping whose key is being typed. */
      path: PathSegment[];
      prefix: string;
      /** Character range of the partial key on the cursor's line. */
      start: number;
      end: number;
    }
  | {
      kind: 'value';
      /** The key (or list item) whose value is being typed. */
      path: PathSegment[];
      prefix: string;
      start: number;
      end: number;
      /** Items already in the flow list the cursor is in, to avoid proposing them twice. */
      siblings: string[];
    };

const KEY = String.raw`([A-Za-z_][\w.-]*)`;

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

function isBlankOrComment(line: string): boolean {
  const t = line.trim();
  return t === '' || t.startsWith('#');
}

/**
 * The path of the collection holding a node that starts at column `col` on line `lineNo`, found by walking
 * up to the nearest less-indented key line or list dash.
 */
export function containerPath(lines: LineIndex, lineNo: number, col: number): PathSegment[] {
  for (let i = lineNo - 1; i >= 0; i--) {
    const line = lines.lineText(i);
    if (isBlankOrComment(line)) continue;
    const ind = indentOf(line);
    const content = line.slice(ind);
    if (content.startsWith('- ') || content === '-') {
      // A list item that holds our column: we are inside its mapping.
      if (ind < col) return [...sequencePath(lines, i, ind), itemIndex(lines, i, ind)];
      continue;
    }
    if (ind >= col) continue;
    const m = new RegExp(`^${KEY}\\s*:`).exec(content);
    if (m) return [...containerPath(lines, i, ind), m[1]!];
  }
  return [];
}

/** Path of the sequence whose item starts with a dash at (`lineNo`, `dashCol`). */
function sequencePath(lines: LineIndex, lineNo: number, dashCol: number): PathSegment[] {
  for (let i = lineNo - 1; i >= 0; i--) {
    const line = lines.lineText(i);
    if (isBlankOrComment(line)) continue;
    const ind = indentOf(line);
    const content = line.slice(ind);
    const m = new RegExp(`^${KEY}\\s*:\\s*(#.*)?$`).exec(content);
    // YAML allows the dash at the key's own indentation ("indentless" sequences).
    if (m && ind <= dashCol) return [...containerPath(lines, i, ind), m[1]!];
    if (ind < dashCol) return [];
  }
  return [];
}

function itemIndex(lines: LineIndex, lineNo: number, dashCol: number): number {
  let n = 0;
  for (let i = lineNo - 1; i >= 0; i--) {
    const line = lines.lineText(i);
    if (isBlankOrComment(line)) continue;
    const ind = indentOf(line);
    if (ind < dashCol) break;
    if (ind === dashCol) {
      if (line.slice(ind).startsWith('-')) n++;
      else break;
    }
  }
  return n;
}

export function cursorContext(lines: LineIndex, pos: Position): CursorContext | null {
  const full = lines.lineText(pos.line);
  const before = full.slice(0, pos.character);
  const wordEnd = pos.character + (/^[\w.-]*/.exec(full.slice(pos.character))?.[0].length ?? 0);
  if (/(^|\s)#/.test(before)) return null;

  // `  key|` or `  - key|`: a key in a block mapping (or a scalar list item, decided by the schema later).
  let m = new RegExp(`^(\\s*)(-\\s+)?([\\w.-]*)$`).exec(before);
  if (m) {
    const col = m[1]!.length + (m[2]?.length ?? 0);
    const prefix = m[3]!;
    let path = containerPath(lines, pos.line, col);
    if (m[2]) path = [...sequencePath(lines, pos.line, m[1]!.length), itemIndex(lines, pos.line, m[1]!.length)];
    return { kind: 'key', path, prefix, start: pos.character - prefix.length, end: wordEnd };
  }

  // `key: value|` in block style, possibly a flow collection after the colon.
  m = new RegExp(`^(\\s*)(-\\s+)?${KEY}\\s*:\\s(.*)$`).exec(before);
  if (!m) {
    // `- value|`: a scalar item of a block list (a path, typically).
    const item = /^(\s*)-\s+(.*)$/.exec(before);
    if (!item) return null;
    const dashCol = item[1]!.length;
    return flowContext(item[2]!, [...sequencePath(lines, pos.line, dashCol), itemIndex(lines, pos.line, dashCol)], pos.character, wordEnd);
  }
  const col = m[1]!.length + (m[2]?.length ?? 0);
  const base: PathSegment[] = m[2]
    ? [...sequencePath(lines, pos.line, m[1]!.length), itemIndex(lines, pos.line, m[1]!.length), m[3]!]
    : [...containerPath(lines, pos.line, col), m[3]!];
  return flowContext(m[4]!, base, pos.character, wordEnd);
}

/** The context inside a value that may be a flow list / flow mapping, nested. */
function flowContext(value: string, base: PathSegment[], cursor: number, wordEnd: number): CursorContext | null {
  const path = [...base];
  // Track the open brackets up to the cursor; `stack` holds what each level is.
  const stack: { kind: '[' | '{'; items: string[]; key: string | null; index: number }[] = [];
  let token = '';
  for (const c of value) {
    if (c === '[' || c === '{') {
      const top = stack[stack.length - 1];
      if (top?.kind === '{' && top.key !== null) path.push(top.key);
      else if (top?.kind === '[') path.push(top.index);
      stack.push({ kind: c, items: [], key: null, index: 0 });
      token = '';
    } else if (c === ']' || c === '}') {
      stack.pop();
      if (stack.length) path.pop();
      token = '';
    } else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top) {
        if (top.kind === '[') top.items.push(token.trim());
        top.index++;
        top.key = null;
      }
      token = '';
    } else if (c === ':' && stack[stack.length - 1]?.kind === '{') {
      stack[stack.length - 1]!.key = token.trim();
      token = '';
    } else token += c;
  }
  const prefix = token.trimStart().replace(/^["']/, '');
  const start = cursor - prefix.length;
  const top = stack[stack.length - 1];
  if (!top) {
    if (value.includes(']') || value.includes('}')) return null;
    return { kind: 'value', path, prefix, start, end: wordEnd, siblings: [] };
  }
  if (top.kind === '[') return { kind: 'value', path: [...path, top.index], prefix, start, end: wordEnd, siblings: top.items };
  if (top.key === null) return { kind: 'key', path, prefix, start, end: wordEnd };
  return { kind: 'value', path: [...path, top.key], prefix, start, end: wordEnd, siblings: [] };
}
