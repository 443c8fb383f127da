#!/usr/bin/env node
// Writes syntaxes/merge-recipe.tmLanguage.json from THE recipe schema (server/src/engine/recipe/schema.ts), so
// that the keys and enum values the grammar scopes can never drift from the schema.
// usage: npx tsx syntaxes/generate-grammar.mjs [--check]   (--check: exit 1 when the committed grammar is stale)
//
// The grammar is a YAML subset made for recipes: comments, keys (recipe keys get `entity.name.tag.key.recipe`,
// others `entity.name.tag.key`), enum values of enum-typed keys (`constant.language.enum`, also in flow lists
// and block lists under the key), quoted strings with escapes, numbers, booleans, null, paths, flow collections,
// block scalars, anchors and aliases.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(root, 'syntaxes/merge-recipe.tmLanguage.json');
const S = 'merge-recipe';

/** Every property name in a schema (the recipe schema DSL), and the enum values of each enum-typed property. */
export function collectVocabulary(schema) {
  const keys = new Set();
  const enums = new Map();
  const enumValues = (s) =>
    s.kind === 'enum' ? [...s.values] : s.kind === 'array' ? enumValues(s.items) : s.kind === 'union' ? s.variants.flatMap(enumValues) : [];
  const walk = (s) => {
    if (s.kind === 'object') {
      for (const [name, prop] of Object.entries(s.properties)) {
        keys.add(name);
        const values = enumValues(prop);
        if (values.length) enums.set(name, [...new Set([...(enums.get(name) ?? []), ...values])]);
        walk(prop);
      }
    } else if (s.kind === 'array') walk(s.items);
    else if (s.kind === 'map') walk(s.values);
    else if (s.kind === 'union') s.variants.forEach(walk);
  };
  walk(schema);
  return { keys: [...keys].sort(), enums: new Map([...enums].sort(([a], [b]) => a.localeCompare(b))) };
}

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const alt = (xs) =>
  [...new Set(xs)]
    .sort((a, b) => b.length - a.length || a.localeCompare(b))
    .map(esc)
    .join('|');
/** A scalar token starts at a line start, after whitespace, or after one of `[ { , :`. */
const START = String.raw`(?<![^\s\[{,:])`;
const BLOCK_END = String.raw`(?=\s+#|\s*$)`;
const FLOW_END = String.raw`(?=\s*[,\]}]|\s+#|\s*$)`;
const PATH = String.raw`(?:\.{1,2}/|/|~/|hf:)`;

const scalars = (end) => [
  { match: `${START}(?:true|false|True|False|TRUE|FALSE)${end}`, name: `constant.language.boolean.${S}` },
  { match: `${START}(?:null|Null|NULL|~)${end}`, name: `constant.language.null.${S}` },
  { match: String.raw`${START}[-+]?(?:0x[0-9a-fA-F_]+|0o[0-7_]+|[0-9][0-9_]*)${end}`, name: `constant.numeric.integer.${S}` },
  {
    match: String.raw`${START}[-+]?(?:(?:[0-9][0-9_]*)?\.[0-9]+|[0-9][0-9_]*\.)(?:[eE][-+]?[0-9]+)?${end}`,
    name: `constant.numeric.float.${S}`,
  },
  { match: String.raw`${START}[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+${end}`, name: `constant.numeric.float.${S}` },
  { match: String.raw`${START}[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)${end}`, name: `constant.numeric.float.${S}` },
];
const enumMatch = (values, end) => ({ match: `${START}(?:${alt(values)})${end}`, name: `constant.language.enum.${S}` });
const cap = (name) => ({ name: `${name}.${S}` });
const keyCaps = (i) => ({ [i]: cap('entity.name.tag.key.recipe'), [i + 1]: cap('punctuation.separator.key-value.mapping') });
const DASH = cap('punctuation.definition.block.sequence.item');
const comma = { match: ',', name: `punctuation.separator.sequence.${S}` };
const quoted = [{ include: '#double-quoted' }, { include: '#single-quoted' }];
const flowSeq = (patterns) => ({
  begin: String.raw`\[`,
  end: String.raw`\]`,
  name: `meta.flow-sequence.${S}`,
  beginCaptures: { 0: cap('punctuation.definition.sequence.begin.bracket.square') },
  endCaptures: { 0: cap('punctuation.definition.sequence.end.bracket.square') },
  patterns,
});
const flowMap = (patterns) => ({
  begin: String.raw`\{`,
  end: String.raw`\}`,
  name: `meta.flow-mapping.${S}`,
  beginCaptures: { 0: cap('punctuation.definition.mapping.begin.bracket.curly') },
  endCaptures: { 0: cap('punctuation.definition.mapping.end.bracket.curly') },
  patterns,
});
/** A plain (unquoted) key: anything up to `:` that cannot start a flow/quoted/indicator token. */
const PLAIN_KEY = String.raw`[^\s#\[\]{},"'&*!|>%@\x60-][^#:]*?|"[^"]*"|'[^']*'`;

export function buildGrammar({ keys, enums }) {
  const known = alt(keys);
  const rep = {
    comment: {
      match: String.raw`(?:^|(?<=\s))(#).*$`,
      name: `comment.line.number-sign.${S}`,
      captures: { 1: cap('punctuation.definition.comment') },
    },
    document: { match: String.raw`^(?:---|\.\.\.)(?=\s|$)`, name: `entity.other.document.${S}` },
    'double-quoted': {
      begin: '"',
      end: '"',
      name: `string.quoted.double.${S}`,
      beginCaptures: { 0: cap('punctuation.definition.string.begin') },
      endCaptures: { 0: cap('punctuation.definition.string.end') },
      patterns: [
        {
          match: String.raw`\\(?:[0abtnvfre "/\\N_LP\t]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})`,
          name: `constant.character.escape.${S}`,
        },
        { match: String.raw`\\.`, name: `invalid.illegal.escape.${S}` },
      ],
    },
    'single-quoted': {
      begin: "'",
      end: "'(?!')",
      name: `string.quoted.single.${S}`,
      beginCaptures: { 0: cap('punctuation.definition.string.begin') },
      endCaptures: { 0: cap('punctuation.definition.string.end') },
      patterns: [{ match: "''", name: `constant.character.escape.${S}` }],
    },
    'anchor-alias': {
      patterns: [
        { match: String.raw`(&)([^\s,\[\]{}]+)`, captures: { 1: cap('punctuation.definition.anchor'), 2: cap('entity.name.type.anchor') } },
        { match: String.raw`(\*)([^\s,\[\]{}]+)`, captures: { 1: cap('punctuation.definition.alias'), 2: cap('variable.other.alias') } },
      ],
    },
    'block-values': {
      patterns: [
        ...scalars(BLOCK_END),
        { match: `${START}${PATH}[^#]*?${BLOCK_END}`, name: `string.unquoted.path.${S}` },
        { match: String.raw`(?<![^\s:])[^\s#\[\]{},"'&*!|>%@\x60][^#]*?${BLOCK_END}`, name: `string.unquoted.plain.${S}` },
      ],
    },
    'flow-values': {
      patterns: [
        ...scalars(FLOW_END),
        { match: String.raw`${START}${PATH}[^#,\[\]{}]*?${FLOW_END}`, name: `string.unquoted.path.${S}` },
        { match: String.raw`${START}[^\s#\[\]{},"'&*!|>%@\x60][^#,\[\]{}]*?${FLOW_END}`, name: `string.unquoted.plain.${S}` },
      ],
    },
    'block-sequence-dash': { match: String.raw`^[ \t]*(-)(?=\s|$)`, captures: { 1: DASH } },
    'block-key': {
      patterns: [
        { match: String.raw`^([ \t]*)(?:(-)[ \t]+)?(${known})[ \t]*(:)(?=\s|$)`, captures: { 2: DASH, ...keyCaps(3) } },
        {
          match: String.raw`^([ \t]*)(?:(-)[ \t]+)?(${PLAIN_KEY})[ \t]*(:)(?=\s|$)`,
          captures: { 2: DASH, 3: cap('entity.name.tag.key'), 4: cap('punctuation.separator.key-value.mapping') },
        },
      ],
    },
    'block-scalar': {
      begin: String.raw`^([ \t]*)(?:(-)[ \t]+)?(${PLAIN_KEY})[ \t]*(:)[ \t]+([|>][-+]?[1-9]?)(?=\s*(?:#.*)?$)`,
      beginCaptures: {
        2: DASH,
        3: cap('entity.name.tag.key'),
        4: cap('punctuation.separator.key-value.mapping'),
        5: cap('keyword.control.flow.block-scalar'),
      },
      // the block's text: every following line that is deeper than the key, or blank
      end: String.raw`^(?!\1[ \t]+\S|\s*$)`,
      contentName: `string.unquoted.block.${S}`,
      patterns: [
        { match: String.raw`\G\s*(#).*$`, name: `comment.line.number-sign.${S}`, captures: { 1: cap('punctuation.definition.comment') } },
      ],
    },
    'flow-collection': { patterns: [flowSeq([{ include: '#flow-content' }]), flowMap([{ include: '#flow-content' }])] },
  };
  const blockEnumEntries = [];
  const flowEnumEntries = [];
  for (const [key, values] of enums) {
    const id = `enum-${key}`;
    const flowValues = flowSeq([comma, { include: '#comment' }, enumMatch(values, FLOW_END), { include: '#flow-values' }, ...quoted]);
    rep[`${id}-values`] = {
      patterns: [
        { include: '#comment' },
        ...quoted,
        flowValues,
        { include: '#flow-collection' },
        { match: String.raw`^[ \t]*(-)(?=\s|$)`, captures: { 1: DASH } },
        { include: '#block-key' },
        enumMatch(values, BLOCK_END),
        { include: '#block-values' },
      ],
    };
    // Block form: the key's value runs until the first line that is not deeper than the key, not a list item
    // at the key's indentation, and not blank or a comment (so `permute:` followed by `- cnn` lines works).
    rep[id] = {
      begin: String.raw`^([ \t]*)(?:(-)[ \t]+)?(${esc(key)})[ \t]*(:)(?=\s|$)`,
      beginCaptures: { 2: DASH, ...keyCaps(3) },
      end: String.raw`^(?!\1[ \t]+\S|\1-(?:\s|$)|\s*(?:#.*)?$)`,
      patterns: [{ include: `#${id}-values` }],
    };
    // Flow form, inside `{ … }`: the value runs to the next `,`, `}` or `]`.
    rep[`flow-${id}`] = {
      begin: String.raw`(?<=^|[\s{,])(${esc(key)})\s*(:)(?=\s|[,}\]])`,
      beginCaptures: keyCaps(1),
      end: String.raw`(?=[,}\]])|$`,
      patterns: [flowValues, enumMatch(values, FLOW_END), ...quoted, { include: '#flow-values' }],
    };
    blockEnumEntries.push({ include: `#${id}` });
    flowEnumEntries.push({ include: `#flow-${id}` });
  }
  rep['flow-content'] = {
    patterns: [
      comma,
      { include: '#comment' },
      ...flowEnumEntries,
      { match: String.raw`(?<=^|[\s{,])(${known})\s*(:)(?=\s|[,}\]])`, captures: keyCaps(1) },
      {
        match: String.raw`(?<=^|[\s{,])([^\s#\[\]{},"'&*!|>%@\x60][^#:,\[\]{}]*?)\s*(:)(?=\s|[,}\]])`,
        captures: { 1: cap('entity.name.tag.key'), 2: cap('punctuation.separator.key-value.mapping') },
      },
      { include: '#flow-collection' },
      { include: '#anchor-alias' },
      ...quoted,
      { include: '#flow-values' },
    ],
  };
  return {
    $schema: 'https://raw.githubusercontent.com/martinring/tmlanguage/master/tmlanguage.json',
    name: 'Merge Studio recipe',
    scopeName: 'source.merge-recipe',
    comment: 'Generated by syntaxes/generate-grammar.mjs from the recipe schema; do not edit by hand.',
    patterns: [
      { include: '#comment' },
      { include: '#document' },
      ...blockEnumEntries,
      { include: '#block-scalar' },
      { include: '#block-key' },
      { include: '#block-sequence-dash' },
      { include: '#flow-collection' },
      { include: '#anchor-alias' },
      ...quoted,
      { include: '#block-values' },
    ],
    repository: rep,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { recipeSchema } = await import('../server/src/engine/recipe/schema.ts');
  const text = `${JSON.stringify(buildGrammar(collectVocabulary(recipeSchema)), null, 2)}\n`;
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(OUT, 'utf8');
    } catch {
      /* missing counts as stale */
    }
    if (current !== text) {
      console.error('syntaxes/merge-recipe.tmLanguage.json is stale: run `npx tsx syntaxes/generate-grammar.mjs`');
      process.exit(1);
    }
  } else {
    writeFileSync(OUT, text);
  }
}
