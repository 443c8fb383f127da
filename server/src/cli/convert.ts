/** `merge-studio convert`: a PyTorch checkpoint (folder, file or Hub reference) → model.safetensors, once. */
import type { Command } from 'commander';
import { EngineError } from '../engine/errors';
import { parseHubRef, resolveModelRef, type HubProgress } from '../engine/io/hub';
import { convertToSafetensors } from '../engine/io/torch-convert';
import type { Output } from './common';

export function registerConvertCommand(program: Command, out: Output): void {
  program
    .command('convert')
    .description(
      'convert a PyTorch checkpoint (pytorch_model.bin, its sharded index, a .pt file or hf:org/name) to model.safetensors, without running its pickle',
    )
    .argument('<checkpoint>', 'model folder, .bin/.pt file, pytorch_model.bin.index.json, or hf:org/name[@revision]')
    .requiredOption('--to <format>', 'output format: safetensors')
    .option('--out <dir>', "output folder (default: the checkpoint's folder); config.json and preprocessor_config.json are copied there")
    .option('--force', 'replace an existing model.safetensors')
    .action(async (checkpoint: string, opts: { to: string; out?: string; force?: boolean }) => {
      if (opts.to !== 'safetensors') throw new EngineError('bad-config', `--to must be "safetensors", got "${opts.to}"`);
      let source = checkpoint;
      if (parseHubRef(checkpoint)) {
        if (!opts.out)
          throw new EngineError('bad-config', 'converting a Hub reference needs --out DIR (the Hugging Face cache is not written to)');
        source = await resolveModelRef(checkpoint, { baseDir: process.cwd(), onProgress: hubProgressPrinter(process.stderr) });
      }
      const started = performance.now();
      const r = await convertToSafetensors(source, opts.out, { force: !!opts.force });
      const mb = (r.bytes / 1024 / 1024).toFixed(1);
      out.info(
        `wrote ${r.file}: ${r.tensors} tensors, ${mb} MiB in ${((performance.now() - started) / 1000).toFixed(1)} s${r.copied.length ? `; copied ${r.copied.join(', ')}` : ''}`,
      );
    });
}

/** Download progress on a stream: one redrawn line per file on a terminal, a line per finished file otherwise. */
export function hubProgressPrinter(stream: NodeJS.WriteStream): (p: HubProgress) => void {
  const tty = Boolean(stream.isTTY);
  return (p) => {
    const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
    const what = `${p.repo}/${p.file}`;
    if (p.cached) {
      stream.write(`cached      ${what}\n`);
    } else if (p.done) {
      stream.write(`${tty ? '\r\x1b[K' : ''}downloaded  ${what} (${mib(p.total)} MiB)\n`);
    } else if (tty) {
      const pct = p.total > 0 ? Math.floor((p.received / p.total) * 100) : 0;
      stream.write(`\r\x1b[Kdownloading ${what} ${mib(p.received)}/${mib(p.total)} MiB ${pct}%`);
    }
  };
}
