/**
 * `merge-studio doctor [recipe…]`: which backends run here, and versions; then what stopped runs left beside the
 * outputs of the given recipes (default: the recipes in the current folder), restored or removed with --fix.
 */
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { describeError } from '../engine/errors';
import { probeBackend, versions, type Backend } from '../engine/model/runtime';
import { cleanOutput } from './clean';
import type { Output } from './common';

interface LeftoverReport {
  recipe: string;
  /** What recovery did (--fix) or would do; empty when nothing was left behind. */
  actions: string[];
  /** Why the recipe's output could not be looked at. */
  problem?: string;
}

export function registerDoctorCommand(program: Command, out: Output): void {
  program
    .command('doctor')
    .description('show which compute backends are available here, and versions; find what stopped runs left beside recipe outputs')
    .argument('[recipes...]', 'recipes whose outputs to look beside (default: *.merge.yaml in the current folder)')
    .option('--fix', 'restore or remove what stopped runs left behind (as merge-studio clean does)')
    .option('--json', 'print as JSON')
    .action(async (recipes: string[], opts: { json?: boolean; fix?: boolean }) => {
      const backends: Backend[] = ['cpu', 'webgpu', 'cuda'];
      const statuses = [];
      for (const b of backends) statuses.push(await probeBackend(b));
      const v = versions();
      const leftovers = await findLeftovers(recipes.length ? recipes : await recipesHere(), !!opts.fix);
      if (opts.json) {
        out.info(JSON.stringify({ versions: v, backends: statuses, leftovers }, null, 2));
        return;
      }
      out.info(
        `merge-studio ${MERGE_STUDIO_VERSION} · onnxruntime-node ${v.onnxruntime} · node ${v.node} · ${process.platform}-${process.arch}`,
      );
      for (const s of statuses) out.info(`  ${s.available ? '✓' : '✗'} ${s.backend.padEnd(7)} ${s.detail}`);
      out.info(`device "auto" picks: ${statuses.find((s) => s.backend !== 'cpu' && s.available)?.backend ?? 'cpu'}`);
      for (const l of leftovers) {
        if (l.problem) out.info(`${l.recipe}: ${l.problem}`);
        for (const a of l.actions) out.info(`${l.recipe}: ${a}`);
        if (!opts.fix && l.actions.length) out.info(`${l.recipe}: run \`merge-studio clean ${l.recipe}\` (or doctor --fix) to do this`);
      }
      if (leftovers.length && leftovers.every((l) => !l.problem && l.actions.length === 0))
        out.info(`nothing left behind by stopped runs beside the outputs of ${leftovers.length} recipe(s)`);
    });
}

async function recipesHere(): Promise<string[]> {
  const names = await fs.readdir('.').catch(() => [] as string[]);
  return names.filter((n) => /\.merge\.ya?ml$/.test(n)).sort();
}

async function findLeftovers(recipes: string[], fix: boolean): Promise<LeftoverReport[]> {
  const reports: LeftoverReport[] = [];
  for (const recipe of recipes) {
    try {
      reports.push({ recipe, actions: await cleanOutput(recipe, !fix) });
    } catch (e) {
      reports.push({ recipe, actions: [], problem: describeError(e) });
    }
  }
  return reports;
}

declare const MERGE_STUDIO_VERSION: string;
