/**
 * Hover: the schema documentation of the key or enum value under the cursor; on a model path, also what the
 * model is (family, layers, hidden size, parameters, dtype), read from its headers through the cached disk.
 */
import * as path from 'node:path';
import { MarkupKind, type Hover, type Position } from 'vscode-languageserver';
import { describeConfig } from '../../engine/io/hfconfig';
import {
  describeExpected,
  displayPath,
  locate,
  modelLocation,
  schemaAt,
  type ModelInfo,
  type ParsedRecipe,
  type RecipeDisk,
  type Schema,
} from '../../engine/recipe';
import { documentation } from './completion';

export interface HoverInput {
  parsed: ParsedRecipe;
  position: Position;
  recipeFile: string | undefined;
  disk: RecipeDisk;
}

export async function hoverRecipe({ parsed, position, recipeFile, disk }: HoverInput): Promise<Hover | null> {
  const at = locate(parsed, parsed.lines.offsetAt(position));
  if (!at || at.path.length === 0 || !at.scalar) return null;
  const [schema] = schemaAt(at.path);
  if (!schema) return null;
  const range = parsed.lines.range(at.scalar.start, at.scalar.end);
  const title = `**${displayPath(at.path)}** · ${describeExpected(schema)}${schema.optional ? ' · optional' : ''}`;
  const keyDoc = `${title}\n\n${documentation(schema)}`;
  if (at.onKey) return markdown(keyDoc, range);

  const value = at.scalar.value;
  if (schema.kind === 'enum' && typeof value === 'string' && schema.values.includes(value)) {
    return markdown(`\`${value}\`: ${schema.valueDescriptions[value]}\n\n---\n\n${keyDoc}`, range);
  }
  if (schema.kind === 'string' && schema.format === 'model' && typeof value === 'string' && recipeFile) {
    const dir = modelLocation(recipeFile, value);
    if (!dir)
      return markdown(`${value} is not in the Hugging Face cache yet; it is downloaded when the recipe runs.\n\n---\n\n${keyDoc}`, range);
    const inspection = await disk.inspectModel(dir);
    const about = inspection.ok ? describeModel(inspection.model) : `⚠ ${inspection.message}`;
    return markdown(`${about}\n\n---\n\n${keyDoc}`, range);
  }
  return markdown(keyDoc, range);
}

function markdown(value: string, range: Hover['range']): Hover {
  return { contents: { kind: MarkupKind.Markdown, value }, range };
}

const fmt = new Intl.NumberFormat('en-US');

const FAMILY_NAMES: Record<string, string> = { hubert: 'HuBERT', wav2vec2: 'wav2vec 2.0', mert: 'MERT' };

/** `**HuBERT** model (model_type hubert_x): 2 layers × 8 hidden, …`: the family once, model_type only when it says more. */
export function describeModel(m: ModelInfo): string {
  const dtypes = Object.keys(m.dtypes).sort().join(', ');
  const { family, modelType } = m.config;
  const generic = `${family} (${modelType}), `;
  const details = describeConfig(m.config);
  const rest = details.startsWith(generic) ? details.slice(generic.length) : details;
  const name = `**${FAMILY_NAMES[family] ?? family}** model${modelType === family ? '' : ` (model_type ${modelType})`}`;
  return [
    `${name}: ${rest}`,
    `${fmt.format(m.parameterCount)} parameters (${dtypes}) in ${m.tensorCount} tensors · ${path.basename(m.checkpointFile)}`,
  ].join('\n\n');
}

export type { Schema };
