/**
 * Schema validation: walks the YAML AST against the recipe schema, reporting every problem at the range of
 * the offending node, and builds the typed value (defaults filled in) alongside. Also records the ranges of
 * keys and values by path, which the cross-field and disk checks use to place their diagnostics.
 */
import { isMap, isPair, isScalar, isSeq, type Node, type Pair } from 'yaml';
import { describeError } from '../errors';
import { HUB_REF_PREFIX, parseHubRef } from '../io/hub';
import { diagnostic, Severity, type Range, type RecipeDiagnostic, type RecipeDiagnosticCode, type DiagnosticFix } from './diagnostics';
import { deref, keyText, nodeRange, type ParsedRecipe, type PathSegment } from './parse';
import { recipeSchema } from './schema';
import { describeExpected, type ArraySchema, type MapSchema, type ObjectSchema, type Schema, type UnionSchema } from './schema-dsl';
import { closest } from './suggest';

/** Where each key and value of the recipe is, by path (`pathKey`). */
export interface NodeRanges {
  value: Map<string, Range>;
  key: Map<string, Range>;
}

export function pathKey(path: readonly PathSegment[]): string {
  return path.map(String).join('.');
}

/** How a path is shown in messages: `merge.lambda`, `evaluate.tasks[1].data`. */
export function displayPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  return out === '' ? 'the recipe' : out;
}

export interface ValidationResult {
  diagnostics: RecipeDiagnostic[];
  ranges: NodeRanges;
  /** The recipe with defaults, when the schema found no errors; otherwise undefined. */
  value: unknown;
  /** Best effort even with errors: every key whose value is valid, with defaults; broken keys left out. */
  partial: unknown;
}

const INVALID = Symbol('invalid');
type Value = unknown | typeof INVALID;

const GLOB = /^[\w.*?-]+$/;

class Validator {
  readonly diagnostics: RecipeDiagnostic[] = [];
  readonly ranges: NodeRanges = { value: new Map(), key: new Map() };

  constructor(private readonly p: ParsedRecipe) {}

  report(range: Range, code: RecipeDiagnosticCode, message: string, severity: Severity = Severity.Error, data?: DiagnosticFix) {
    this.diagnostics.push(diagnostic(range, severity, code, message, data));
  }

  firstLineOf(range: Range): Range {
    if (range.start.line === range.end.line) return range;
    return { start: range.start, end: { line: range.start.line, character: this.p.lines.lineText(range.start.line).length } };
  }

  /** The range of the first line: where problems of the whole document (a missing top-level key) are shown. */
  documentStart(): Range {
    return { start: { line: 0, character: 0 }, end: { line: 0, character: this.p.lines.lineText(0).length } };
  }

  walk(raw: unknown, schema: Schema, path: PathSegment[], range: Range): Value {
    const node = deref(this.p, raw);
    if (node === undefined) {
      this.report(range, 'yaml-unresolved-alias', `${displayPath(path)}: alias refers to no anchor`);
      return INVALID;
    }
    this.ranges.value.set(pathKey(path), range);
    if (isScalar(node) && node.value === null && schema.kind !== 'union') {
      this.report(range, 'wrong-type', `${displayPath(path)} is empty; expected ${describeExpected(schema)}`);
      return INVALID;
    }
    switch (schema.kind) {
      case 'object':
        return this.object(node, schema, path, range);
      case 'map':
        return this.map(node, schema, path, range);
      case 'array':
        return this.array(node, schema, path, range);
      case 'union':
        return this.union(node, schema, path, range);
      default:
        return this.scalar(node, schema, path, range);
    }
  }

  private wrongType(node: unknown, schema: Schema, path: PathSegment[], range: Range): typeof INVALID {
    this.report(range, 'wrong-type', `${displayPath(path)}: expected ${describeExpected(schema)}, got ${describeNode(node)}`);
    return INVALID;
  }

  private object(node: unknown, schema: ObjectSchema, path: PathSegment[], range: Range): Value {
    if (!isMap(node)) {
      if (path.length === 0) {
        this.report(range, 'not-a-mapping', `A recipe is a YAML mapping (version, models, …); got ${describeNode(node)}`);
        return INVALID;
      }
      return this.wrongType(node, schema, path, range);
    }
    const out: Record<string, unknown> = {};
    const seen = new Set<string>();
    const allowed = Object.keys(schema.properties);
    // A section left empty, whose keys then follow unindented: `merge:` / `lambda: 0.5` (one mistake, one error).
    let emptySection: { key: string; schema: Schema; diagnostic: RecipeDiagnostic | undefined } | undefined;
    let missing: string[] | undefined;
    for (const item of node.items) {
      const named = this.pairKey(item, path, range);
      if (!named) continue;
      const { key, keyRange } = named;
      if (seen.has(key)) continue; // the YAML stage already reported the duplicate
      seen.add(key);
      const propSchema = schema.properties[key];
      const childPath = [...path, key];
      this.ranges.key.set(pathKey(childPath), keyRange);
      if (!propSchema && emptySection && objectKeys(emptySection.schema).includes(key)) {
        const { diagnostic: empty, key: section } = emptySection;
        if (empty) this.diagnostics.splice(this.diagnostics.indexOf(empty), 1);
        emptySection.diagnostic = undefined;
        const at = path.length === 0 ? 'at the top level' : `in ${displayPath(path)}`;
        this.report(
          keyRange,
          'unknown-key',
          `Unknown key "${key}" ${at}: it belongs in ${displayPath([...path, section])}; indent it under ${section}:`,
        );
        continue;
      }
      if (!propSchema) {
        // The keys still missing, computed once per mapping (node.has is a scan: per key it was quadratic).
        missing ??= allowed.filter((k) => !node.items.some((p) => isPair(p) && keyText(p) === k));
        const suggestion = closest(key, missing);
        const where = path.length === 0 ? 'at the top level' : `in ${displayPath(path)}`;
        const message = suggestion
          ? `Unknown key "${key}" ${where}. Did you mean "${suggestion}"?`
          : `Unknown key "${key}" ${where}; expected one of ${allowed.join(', ')}`;
        this.report(keyRange, 'unknown-key', message, Severity.Error, suggestion ? { fix: 'replace', replacement: suggestion } : undefined);
        continue;
      }
      const reported = this.diagnostics.length;
      const v = this.pairValue(item as Pair, propSchema, childPath, keyRange);
      if (v !== INVALID) out[key] = v;
      const valueNode = (item as Pair).value;
      const empty = valueNode === null || (isScalar(valueNode) && valueNode.value === null);
      emptySection = empty ? { key, schema: propSchema, diagnostic: this.diagnostics[reported] } : undefined;
    }
    for (const [key, propSchema] of Object.entries(schema.properties)) {
      if (seen.has(key)) continue;
      if (!propSchema.optional) {
        const where = path.length === 0 ? 'the recipe' : displayPath(path);
        // On the mapping's own key, or the first line of a list item / the document: never a many-line squiggle.
        const at = path.length === 0 ? this.documentStart() : (this.ranges.key.get(pathKey(path)) ?? this.firstLineOf(range));
        this.report(at, 'missing-key', `Missing required key "${key}" in ${where}`, Severity.Error, {
          fix: 'insert-key',
          path: pathKey(path.filter((s): s is string => typeof s === 'string')),
          key,
        });
      } else if (propSchema.default !== undefined) {
        out[key] = structuredClone(propSchema.default);
      }
    }
    // Partial on purpose: later checks still see the valid siblings of a broken key.
    return out;
  }

  /** A mapping entry's key and its range; reports (and returns null for) a non-pair or a key that is not a plain name. */
  private pairKey(item: unknown, path: PathSegment[], range: Range): { key: string; keyRange: Range } | null {
    if (!isPair(item)) return null;
    const key = keyText(item);
    const keyNode = item.key as Node | null;
    const keyRange = keyNode ? nodeRange(this.p, keyNode) : range;
    if (key === null) {
      this.report(keyRange, 'yaml-non-string-key', `${displayPath(path)}: keys must be plain names`);
      return null;
    }
    return { key, keyRange };
  }

  /** A mapping entry's value checked against its schema (an empty value is located just after its key). */
  private pairValue(item: Pair, schema: Schema, path: PathSegment[], keyRange: Range): Value {
    const valueNode = item.value as Node | null;
    const valueRange = valueNode?.range ? nodeRange(this.p, valueNode) : { start: keyRange.end, end: keyRange.end };
    return valueNode === null ? this.emptyValue(schema, path, valueRange) : this.walk(valueNode, schema, path, valueRange);
  }

  private emptyValue(schema: Schema, path: PathSegment[], range: Range): typeof INVALID {
    this.ranges.value.set(pathKey(path), range);
    this.report(range, 'wrong-type', `${displayPath(path)} is empty; expected ${describeExpected(schema)}`);
    return INVALID;
  }

  private map(node: unknown, schema: MapSchema, path: PathSegment[], range: Range): Value {
    if (!isMap(node)) return this.wrongType(node, schema, path, range);
    const out: Record<string, unknown> = {};
    for (const item of node.items) {
      const named = this.pairKey(item, path, range);
      if (!named) continue;
      const { key, keyRange } = named;
      const childPath = [...path, key];
      this.ranges.key.set(pathKey(childPath), keyRange);
      if (schema.keyFormat === 'glob' && (!GLOB.test(key) || key.includes('***'))) {
        this.report(
          keyRange,
          'bad-glob',
          `${displayPath(path)}: "${key}" is not a tensor-name glob (letters, digits, _ . - and the wildcards * ** ?)`,
        );
        continue;
      }
      const v = this.pairValue(item as Pair, schema.values, childPath, keyRange);
      if (v !== INVALID) out[key] = v;
    }
    return out;
  }

  private array(node: unknown, schema: ArraySchema, path: PathSegment[], range: Range): Value {
    if (!isSeq(node)) return this.wrongType(node, schema, path, range);
    if (node.items.length < (schema.minItems ?? 0)) {
      this.report(range, 'empty-list', `${displayPath(path)} must not be empty`);
      return INVALID;
    }
    const out: unknown[] = [];
    const seen = new Map<string, number>();
    node.items.forEach((item, i) => {
      const itemNode = item as Node | null;
      const childPath = [...path, i];
      const itemRange = itemNode?.range ? nodeRange(this.p, itemNode) : range;
      const v =
        itemNode === null ? this.emptyValue(schema.items, childPath, itemRange) : this.walk(itemNode, schema.items, childPath, itemRange);
      // Holes keep indices aligned with the YAML items (and their ranges) in the partial value.
      if (v === INVALID) {
        out.push(undefined);
        return;
      }
      if (schema.uniqueItems) {
        const k = JSON.stringify(v);
        const first = seen.get(k);
        if (first !== undefined) {
          this.report(itemRange, 'duplicate-item', `${displayPath(path)} lists ${JSON.stringify(v)} twice (items ${first} and ${i})`);
          out.push(undefined);
          return;
        }
        seen.set(k, i);
      }
      out.push(v);
    });
    return out;
  }

  private union(node: unknown, schema: UnionSchema, path: PathSegment[], range: Range): Value {
    const kind = isMap(node) ? 'mapping' : isSeq(node) ? 'sequence' : 'scalar';
    const fits = (v: Schema) =>
      kind === 'mapping'
        ? v.kind === 'object' || v.kind === 'map'
        : kind === 'sequence'
          ? v.kind === 'array'
          : v.kind !== 'object' && v.kind !== 'map' && v.kind !== 'array';
    // Of several scalar variants (a number or `auto`), the one of the value's type.
    const sameType = (v: Schema) => !isScalar(node) || typeof node.value === typeof scalarExample(v);
    const variant = schema.variants.find((v) => fits(v) && sameType(v)) ?? schema.variants.find(fits);
    if (!variant || (isScalar(node) && node.value === null)) {
      if (isScalar(node) && node.value === null) {
        this.report(range, 'wrong-type', `${displayPath(path)} is empty; expected ${schema.expected}`);
        return INVALID;
      }
      return this.wrongType(node, schema, path, range);
    }
    if (
      variant.kind !== 'object' &&
      variant.kind !== 'map' &&
      variant.kind !== 'array' &&
      isScalar(node) &&
      typeof node.value !== typeof scalarExample(variant)
    ) {
      return this.wrongType(node, schema, path, range);
    }
    return this.walk(node, variant, path, range);
  }

  private scalar(node: unknown, schema: Schema, path: PathSegment[], range: Range): Value {
    if (!isScalar(node)) return this.wrongType(node, schema, path, range);
    const v = node.value;
    const name = displayPath(path);
    switch (schema.kind) {
      case 'number': {
        if (typeof v !== 'number') return this.wrongType(node, schema, path, range);
        if (!Number.isFinite(v)) {
          this.report(range, 'out-of-range', `${name} must be a finite number, got ${String(v)}`);
          return INVALID;
        }
        if (schema.integer && !Number.isInteger(v)) {
          this.report(range, 'not-an-integer', `${name} must be an integer, got ${v}`);
          return INVALID;
        }
        const problem = rangeProblem(v, schema);
        if (problem) {
          this.report(range, 'out-of-range', `${name} must be ${problem}, got ${v}`);
          return INVALID;
        }
        return v;
      }
      case 'string': {
        if (typeof v !== 'string') return this.wrongType(node, schema, path, range);
        if (v.trim() === '') {
          this.report(range, 'empty-string', `${name} must not be empty`);
          return INVALID;
        }
        if (schema.format === 'model' && v.startsWith(HUB_REF_PREFIX)) {
          try {
            parseHubRef(v); // the run's own parser, so check and run accept the same references
          } catch (e) {
            this.report(range, 'bad-model-ref', `${name}: ${describeError(e)}`);
            return INVALID;
          }
        }
        return v;
      }
      case 'boolean':
        return typeof v === 'boolean' ? v : this.wrongType(node, schema, path, range);
      case 'literal':
        if (v !== schema.value) {
          if (path.length === 1 && path[0] === 'version') {
            this.report(
              range,
              'bad-version',
              `Unsupported recipe version ${describeNode(node)}; this Merge Studio reads version ${schema.value}`,
            );
            return INVALID;
          }
          return this.wrongType(node, schema, path, range);
        }
        return v;
      case 'enum': {
        if (typeof v === 'string' && schema.values.includes(v)) return v;
        const suggestion = typeof v === 'string' ? closest(v, schema.values) : undefined;
        const got = describeNode(node);
        const message = suggestion
          ? `${name}: unknown value ${got}. Did you mean "${suggestion}"? Expected one of ${schema.values.join(', ')}`
          : `${name}: unknown value ${got}; expected one of ${schema.values.join(', ')}`;
        this.report(range, 'bad-enum', message, Severity.Error, suggestion ? { fix: 'replace', replacement: suggestion } : undefined);
        return INVALID;
      }
      default:
        return this.wrongType(node, schema, path, range);
    }
  }
}

/** The keys a mapping at this schema may have (through unions): where a stray key may belong. */
function objectKeys(s: Schema): string[] {
  if (s.kind === 'object') return Object.keys(s.properties);
  if (s.kind === 'union') return s.variants.flatMap(objectKeys);
  return [];
}

function scalarExample(s: Schema): unknown {
  switch (s.kind) {
    case 'number':
      return 0;
    case 'boolean':
      return false;
    case 'literal':
      return s.value;
    default:
      return '';
  }
}

function rangeProblem(v: number, s: Extract<Schema, { kind: 'number' }>): string | null {
  const { minimum: min, maximum: max, exclusiveMinimum: xmin } = s;
  if (min !== undefined && max !== undefined && (v < min || v > max)) return `between ${min} and ${max}`;
  if (min !== undefined && v < min) return `at least ${min}`;
  if (max !== undefined && v > max) return `at most ${max}`;
  if (xmin !== undefined && v <= xmin) return `greater than ${xmin}`;
  return null;
}

/** How a YAML node is named in "got …": `"abc"`, `1.5`, `a list`, `a mapping`, `nothing`. */
export function describeNode(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || v === undefined) return 'nothing';
    if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    return String(v);
  }
  return 'an alias';
}

export function validateRecipe(p: ParsedRecipe): ValidationResult {
  const v = new Validator(p);
  const contents = p.doc.contents;
  if (contents === null || (isScalar(contents) && contents.value === null)) {
    v.report(v.documentStart(), 'not-a-mapping', 'The recipe is empty; start with `version: 1` and `models:`', Severity.Error, {
      fix: 'insert-key',
      path: '',
      key: 'version',
    });
    return { diagnostics: v.diagnostics, ranges: v.ranges, value: undefined, partial: undefined };
  }
  const range = contents.range ? nodeRange(p, contents) : v.documentStart();
  const value = v.walk(contents, recipeSchema, [], range);
  const hasErrors = v.diagnostics.some((d) => d.severity === Severity.Error);
  const partial = value === INVALID ? undefined : value;
  return { diagnostics: v.diagnostics, ranges: v.ranges, value: hasErrors ? undefined : partial, partial };
}
