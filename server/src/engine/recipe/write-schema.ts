// Rewrites recipe.schema.json from the single recipe schema: `npm run schema:recipe`.
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { jsonSchemaText } from './json-schema';

const out = path.join(process.cwd(), 'server/src/engine/recipe/recipe.schema.json');
writeFileSync(out, jsonSchemaText());
process.stdout.write(`wrote ${path.relative(process.cwd(), out)}\n`);
