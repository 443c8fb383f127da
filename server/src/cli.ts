/**
 * `merge-studio` command line: the same engine as the editor, for scripts, CI and remote GPU boxes.
 * Every command exits non-zero with a one-line reason on bad input.
 */
import { Command, CommanderError } from 'commander';
import { describeError, EngineError } from './engine/errors';
import { consoleOutput, endQuietlyOnClosedOutput, reportUncaughtErrorsInOneLine } from './cli/common';
import { registerCleanCommand } from './cli/clean';
import { registerConvertCommand } from './cli/convert';
import { registerDoctorCommand } from './cli/doctor';
import { registerForwardCommand } from './cli/forward';
import { registerCheckCommand } from './cli/check';
import { registerLspCommand } from './cli/lsp';
import { registerRunCommand } from './cli/run';
import { registerStatsCommand } from './cli/stats';
import { engineRelaunch, runInFront, watchLauncher } from './cli/relaunch';

declare const MERGE_STUDIO_VERSION: string;

export function buildProgram(out = consoleOutput): Command {
  const program = new Command('merge-studio')
    .description('merge speech and music audio encoders with correlation-permutation alignment')
    .version(MERGE_STUDIO_VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerRunCommand(program, out);
  registerStatsCommand(program, out);
  registerForwardCommand(program, out);
  registerDoctorCommand(program, out);
  registerConvertCommand(program, out);
  registerCheckCommand(program, out);
  registerCleanCommand(program, out);
  registerLspCommand(program);
  program.hook('preAction', (_, command) => {
    if (command.name() !== 'lsp') reportUncaughtErrorsInOneLine();
  });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const relaunch = engineRelaunch(argv, process.env);
  if (relaunch) return runInFront(relaunch);
  watchLauncher(process.env);
  endQuietlyOnClosedOutput();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    consoleOutput.error(`merge-studio: ${describeError(e)}`);
    if (!(e instanceof EngineError) && process.env.MERGE_STUDIO_DEBUG) console.error(e);
    return e instanceof EngineError && e.code === 'cancelled' ? 130 : 1;
  }
}

// Run when executed directly (`node dist/cli.js …`, as the language server's job runner does); bin/merge-studio.js
// calls main() itself.
if (require.main === module) {
  void main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
