/**
 * What the statistics commands ask a person: which shard to compute and where to write it (Compute Statistics
 * Shard…), which shard folders to reduce (Run with Statistics…). Shard folders default to `<recipe folder>/stats/
 * shard-I`, where `merge-studio stats --emit` puts them, so shards from the editor and from a cluster mix.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ShardSpec } from '../../protocol/lsp-ext';

/** The file that makes a folder a finished shard (the engine's SHARD_MANIFEST, pipeline/shards.ts). */
const SHARD_MANIFEST = 'manifest.json';

const statsFolder = (recipe: vscode.Uri) => vscode.Uri.file(path.join(path.dirname(recipe.fsPath), 'stats'));

/** `I/N` as `--shard` reads it; a message when it is not one. */
export function parseShardText(text: string): ShardSpec | string {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) return 'Write the shard as I/N, e.g. 0/4: part I of N, I from 0 to N − 1';
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1) return 'The number of shards must be at least 1';
  if (index >= count) return `Shards are numbered 0 to ${count - 1}`;
  return { index, count };
}

/** The shard to compute, then its folder; undefined when the person dismissed a step. */
export async function pickShardJob(recipe: vscode.Uri): Promise<{ shard: ShardSpec; outDir: vscode.Uri } | undefined> {
  const existing = await findShards(recipe);
  const count = existing[0]?.shard.count ?? 4;
  const next = Array.from({ length: count }, (_, i) => i).find(
    (i) => !existing.some((s) => s.shard.index === i && s.shard.count === count),
  );
  const text = await vscode.window.showInputBox({
    title: 'Merge Studio: Compute Statistics Shard',
    prompt: 'Which part of the probe set: I/N computes part I of N disjoint parts (I from 0 to N − 1)',
    value: `${next ?? 0}/${count}`,
    validateInput: (v) => {
      const r = parseShardText(v);
      return typeof r === 'string' ? r : undefined;
    },
  });
  if (text === undefined) return undefined;
  const shard = parseShardText(text) as ShardSpec;
  const standard = vscode.Uri.joinPath(statsFolder(recipe), `shard-${shard.index}`);
  const choose = '$(folder-opened) Choose a folder…';
  const where = await vscode.window.showQuickPick(
    [
      {
        label: vscode.workspace.asRelativePath(standard),
        description: existing.some((s) => s.dir.fsPath === standard.fsPath) ? 'a shard is there: replaced' : 'beside the recipe',
      },
      { label: choose },
    ],
    { title: `Merge Studio: folder for statistics shard ${shard.index}/${shard.count}` },
  );
  if (!where) return undefined;
  if (where.label !== choose) return { shard, outDir: standard };
  const picked = await vscode.window.showOpenDialog({
    title: `Folder for statistics shard ${shard.index}/${shard.count}`,
    canSelectFolders: true,
    canSelectFiles: false,
    defaultUri: statsFolder(recipe),
    openLabel: 'Write the Shard Here',
  });
  return picked?.[0] ? { shard, outDir: picked[0] } : undefined;
}

/** The shard folders to reduce: the recipe's finished shards, all ticked, or folders chosen in a dialog. */
export async function pickShardFolders(recipe: vscode.Uri): Promise<vscode.Uri[] | undefined> {
  const found = await findShards(recipe);
  const chooseFolders = () =>
    vscode.window.showOpenDialog({
      title: 'Statistics shard folders to reduce',
      canSelectFolders: true,
      canSelectFiles: false,
      canSelectMany: true,
      defaultUri: statsFolder(recipe),
      openLabel: 'Run with These Shards',
    });
  if (found.length === 0) return chooseFolders();
  const other = { label: '$(folder-opened) Other folders…', picked: false, dir: undefined };
  const items = [
    ...found.map((s) => ({
      label: vscode.workspace.asRelativePath(s.dir),
      description: `shard ${s.shard.index}/${s.shard.count}`,
      picked: true,
      dir: s.dir as vscode.Uri | undefined,
    })),
    other,
  ];
  const picked = await vscode.window.showQuickPick(items, {
    title: 'Merge Studio: Run with Statistics: the shards to reduce',
    canPickMany: true,
  });
  if (!picked || picked.length === 0) return undefined;
  const dirs = picked.flatMap((p) => (p.dir ? [p.dir] : []));
  if (!picked.includes(other)) return dirs;
  const more = await chooseFolders();
  return more ? [...dirs, ...more] : undefined;
}

/** Finished shards in the recipe's `stats` folder, in shard order (a folder without a manifest is no shard yet). */
async function findShards(recipe: vscode.Uri): Promise<{ dir: vscode.Uri; shard: ShardSpec }[]> {
  const root = statsFolder(recipe).fsPath;
  const entries = await fs.readdir(root, { withFileTypes: true }).catch(() => []);
  const shards = await Promise.all(
    entries
      .filter((e) => e.isDirectory())
      .map(async (e) => {
        const dir = path.join(root, e.name);
        try {
          const manifest = JSON.parse(await fs.readFile(path.join(dir, SHARD_MANIFEST), 'utf8')) as { shard?: Partial<ShardSpec> };
          const { index, count } = manifest.shard ?? {};
          return Number.isInteger(index) && Number.isInteger(count)
            ? [{ dir: vscode.Uri.file(dir), shard: { index: index!, count: count! } }]
            : [];
        } catch {
          return [];
        }
      }),
  );
  return shards.flat().sort((a, b) => a.shard.count - b.shard.count || a.shard.index - b.shard.index);
}
