// Runs the grammar checks inside `npm test`: the committed grammar is what the recipe schema generates, and the
// scope assertions in test/grammar/*.merge.yaml hold (vscode-tmgrammar-test, against the grammar package.json
// contributes).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });

describe('recipe grammar', () => {
  it('is generated from the current recipe schema', () => {
    const r = run(process.execPath, ['--import', 'tsx', 'syntaxes/generate-grammar.mjs', '--check']);
    expect(r.stderr + r.stdout).toBe('');
    expect(r.status).toBe(0);
  });

  it('scopes the sample recipes as asserted', () => {
    const r = run(process.execPath, ['node_modules/vscode-tmgrammar-test/dist/unit.js', '--compact', 'test/grammar/**/*.merge.yaml']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/recipe\.merge\.yaml/);
  });
});
