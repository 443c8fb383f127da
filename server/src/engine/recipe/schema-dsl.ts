/**
 * A small schema language for recipes. One schema value drives validation, completion, hover, the generated
 * JSON Schema and (through `Infer`) the TypeScript type of a loaded recipe, so none of them can drift.
 * Deliberately narrower than JSON Schema: unions dispatch on the YAML node kind (scalar number vs list vs
 * mapping), which keeps error messages precise.
 */

interface Base {
  /** Markdown; shown by hover and completion, copied into the JSON Schema. */
  description: string;
  /** Property is optional in the recipe (and absent from the type unless `default` is set). */
  optional?: boolean;
  /** Value the loader fills in when the key is absent; makes the key non-optional in the loaded type. */
  default?: unknown;
  /** A snippet-ready starter value for completion and the "insert missing section" quick fix. */
  starter?: string;
}

export interface NumberSchema extends Base {
  kind: 'number';
  integer?: boolean;
  minimum?: number;
  maximum?: number;
  /** Value must be strictly greater than this. */
  exclusiveMinimum?: number;
}

/** What a string names, for completion, hover and disk checks. */
export type StringFormat = 'text' | 'path' | 'directory' | 'model' | 'glob';

export interface StringSchema extends Base {
  kind: 'string';
  format: StringFormat;
}

export interface BooleanSchema extends Base {
  kind: 'boolean';
}

export interface LiteralSchema<V extends number | string = number | string> extends Base {
  kind: 'literal';
  value: V;
}

export interface EnumSchema<V extends string = string> extends Base {
  kind: 'enum';
  values: readonly V[];
  /** One line per value, for completion details and hover. */
  valueDescriptions: Readonly<Record<V, string>>;
}

export interface ArraySchema<I extends Schema = Schema> extends Base {
  kind: 'array';
  items: I;
  minItems?: number;
  uniqueItems?: boolean;
}

export interface ObjectSchema<P extends Record<string, Schema> = Record<string, Schema>> extends Base {
  kind: 'object';
  properties: P;
}

/** A mapping with free keys (e.g. tensor globs) and values of one schema. */
export interface MapSchema<V extends Schema = Schema> extends Base {
  kind: 'map';
  keyFormat: StringFormat;
  keyDescription: string;
  values: V;
}

/** At most one variant per YAML node kind (scalar / sequence / mapping). */
export interface UnionSchema<V extends readonly Schema[] = readonly Schema[]> extends Base {
  kind: 'union';
  variants: V;
  /** How to describe the accepted shapes in a type error, e.g. "a number, a list of numbers or a mapping". */
  expected: string;
}

export type Schema =
  NumberSchema | StringSchema | BooleanSchema | LiteralSchema | EnumSchema | ArraySchema | ObjectSchema | MapSchema | UnionSchema;

// ---- builders (keep literal types so Infer sees enum values and property names) ----

export const num = <const S extends Omit<NumberSchema, 'kind'>>(s: S): S & { kind: 'number' } => ({ kind: 'number', ...s });
export const str = <const S extends Omit<StringSchema, 'kind'>>(s: S): S & { kind: 'string' } => ({ kind: 'string', ...s });
export const bool = <const S extends Omit<BooleanSchema, 'kind'>>(s: S): S & { kind: 'boolean' } => ({ kind: 'boolean', ...s });
export const literal = <const S extends Omit<LiteralSchema, 'kind'>>(s: S): S & { kind: 'literal' } => ({ kind: 'literal', ...s });
export const enumOf = <const V extends string, const S extends Omit<EnumSchema<V>, 'kind'>>(
  s: S & { values: readonly V[] },
): S & { kind: 'enum' } => ({
  kind: 'enum',
  ...s,
});
export const array = <const S extends Omit<ArraySchema, 'kind'>>(s: S): S & { kind: 'array' } => ({ kind: 'array', ...s });
export const object = <const S extends Omit<ObjectSchema, 'kind'>>(s: S): S & { kind: 'object' } => ({ kind: 'object', ...s });
export const map = <const S extends Omit<MapSchema, 'kind'>>(s: S): S & { kind: 'map' } => ({ kind: 'map', ...s });
export const union = <const S extends Omit<UnionSchema, 'kind'>>(s: S): S & { kind: 'union' } => ({ kind: 'union', ...s });

// ---- the TypeScript type a schema describes, after the loader filled in defaults ----

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type IsOptional<S> = S extends { optional: true } ? (S extends { default: unknown } ? false : true) : false;

type InferObject<P> = Simplify<
  { [K in keyof P as IsOptional<P[K]> extends true ? never : K]: Infer<P[K]> } & {
    [K in keyof P as IsOptional<P[K]> extends true ? K : never]?: Infer<P[K]>;
  }
>;

export type Infer<S> = S extends { kind: 'number' }
  ? number
  : S extends { kind: 'string' }
    ? string
    : S extends { kind: 'boolean' }
      ? boolean
      : S extends { kind: 'literal'; value: infer V }
        ? V
        : S extends { kind: 'enum'; values: readonly (infer V)[] }
          ? V
          : S extends { kind: 'array'; items: infer I }
            ? Infer<I>[]
            : S extends { kind: 'map'; values: infer V }
              ? Record<string, Infer<V>>
              : S extends { kind: 'union'; variants: readonly (infer V)[] }
                ? Infer<V>
                : S extends { kind: 'object'; properties: infer P }
                  ? InferObject<P>
                  : never;

/** Human name of what a schema accepts, for "expected …" messages. */
export function describeExpected(s: Schema): string {
  switch (s.kind) {
    case 'number':
      return s.integer ? 'an integer' : 'a number';
    case 'string':
      return s.format === 'path' || s.format === 'directory'
        ? 'a path'
        : s.format === 'model'
          ? 'a model folder or hf: reference'
          : 'a string';
    case 'boolean':
      return 'true or false';
    case 'literal':
      return JSON.stringify(s.value);
    case 'enum':
      return `one of ${s.values.join(', ')}`;
    case 'array':
      return 'a list';
    case 'object':
    case 'map':
      return 'a mapping';
    case 'union':
      return s.expected;
  }
}
