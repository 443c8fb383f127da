/** `merge-studio lsp --stdio`: the language server for any LSP editor (Neovim, Helix, Emacs…). */
import type { Command } from 'commander';
import { runLanguageServer } from '../lsp/node-main';

export function registerLspCommand(program: Command): void {
  program
    .command('lsp')
    .description('run the recipe language server (for editors other than VS Code)')
    .option('--stdio', 'talk LSP over stdin/stdout (default)')
    .option('--node-ipc', 'talk LSP over a Node IPC channel')
    .option('--socket <port>', 'talk LSP over a socket on this port')
    .action((opts: { stdio?: boolean; nodeIpc?: boolean; socket?: string }) => {
      // vscode-languageserver picks the transport from process.argv; default to stdio when none is given.
      if (!opts.stdio && !opts.nodeIpc && !opts.socket) process.argv.push('--stdio');
      runLanguageServer();
      // Never resolve: the server runs until the client says exit.
      return new Promise<never>(() => undefined);
    });
}
