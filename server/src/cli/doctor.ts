/** `merge-studio doctor`: which backends run here, and versions. */
import type { Command } from 'commander';
import { probeBackend, versions, type Backend } from '../engine/model/runtime';
import type { Output } from './common';

export function registerDoctorCommand(program: Command, out: Output): void {
  program
    .command('doctor')
    .description('show which compute backends are available here, and versions')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      const backends: Backend[] = ['cpu', 'webgpu', 'cuda'];
      const statuses = [];
      for (const b of backends) statuses.push(await probeBackend(b));
      const v = versions();
      if (opts.json) {
        out.info(JSON.stringify({ versions: v, backends: statuses }, null, 2));
        return;
      }
      out.info(`merge-studio ${MERGE_STUDIO_VERSION} · onnxruntime-node ${v.onnxruntime} · node ${v.node} · ${process.platform}-${process.arch}`);
      for (const s of statuses) out.info(`  ${s.available ? '✓' : '✗'} ${s.backend.padEnd(7)} ${s.detail}`);
      out.info(`device "auto" picks: ${statuses.find((s) => s.backend !== 'cpu' && s.available)?.backend ?? 'cpu'}`);
    });
}

declare const MERGE_STUDIO_VERSION: string;
