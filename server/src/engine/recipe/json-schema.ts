/**
 * The recipe schema as JSON Schema (draft-07), for YAML tooling (yaml-language-server / the Red Hat YAML
 * extension) and anyone else. Generated from the single schema; recipe.schema.json beside this file is the
 * committed output (`npm run schema:recipe` rewrites it, a unit test checks it is current).
 */
import { recipeSchema } from './schema';
import type { Schema } from './schema-dsl';

export const RECIPE_SCHEMA_ID = 'https://merge-studio.dev/schemas/recipe-v1.schema.json';

type Json = { [key: string]: unknown };

function convert(s: Schema): Json {
  const base: Json = { description: s.description, markdownDescription: s.description };
  if (s.default !== undefined) base.default = s.default;
  switch (s.kind) {
    case 'number': {
      const out: Json = { ...base, type: s.integer ? 'integer' : 'number' };
      if (s.minimum !== undefined) out.minimum = s.minimum;
      if (s.maximum !== undefined) out.maximum = s.maximum;
      if (s.exclusiveMinimum !== undefined) out.exclusiveMinimum = s.exclusiveMinimum;
      return out;
    }
    case 'string': {
      const out: Json = { ...base, type: 'string', minLength: 1 };
      if (s.format === 'model') out.pattern = '^(?!hf:)|^hf:[A-Za-z0-9][\\w.-]*/[\\w.-]+(@[\\w./-]+)?$';
      return out;
    }
    case 'boolean':
      return { ...base, type: 'boolean' };
    case 'literal':
      return { ...base, const: s.value };
    case 'enum':
      return { ...base, enum: [...s.values], markdownEnumDescriptions: s.values.map((v) => s.valueDescriptions[v]) };
    case 'array': {
      const out: Json = { ...base, type: 'array', items: convert(s.items) };
      if (s.minItems !== undefined) out.minItems = s.minItems;
      if (s.uniqueItems) out.uniqueItems = true;
      return out;
    }
    case 'object':
      return {
        ...base,
        type: 'object',
        properties: Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k, convert(v)])),
        required: Object.entries(s.properties)
          .filter(([, v]) => !v.optional)
          .map(([k]) => k),
        additionalProperties: false,
      };
    case 'map':
      return {
        ...base,
        type: 'object',
        additionalProperties: convert(s.values),
        propertyNames: { description: s.keyDescription, pattern: '^[\\w.*?-]+$' },
      };
    case 'union':
      return { ...base, anyOf: s.variants.map(convert) };
  }
}

export function toJsonSchema(): Json {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: RECIPE_SCHEMA_ID,
    title: 'Merge Studio recipe (version 1)',
    ...convert(recipeSchema),
  };
}

/** The exact text of recipe.schema.json. */
export function jsonSchemaText(): string {
  return `${JSON.stringify(toJsonSchema(), null, 2)}\n`;
}
