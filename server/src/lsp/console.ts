/**
 * Over `--stdio`, stdout IS the protocol stream: a stray console.log from any module would corrupt it. The
 * server entry sends console.* and uncaught errors to the client's log instead (yaml-language-server does the
 * same in its server.ts).
 */
import { format } from 'node:util';
import type { Connection } from 'vscode-languageserver';

export function redirectConsole(connection: Connection): void {
  console.log = (...args: unknown[]) => connection.console.log(format(...args));
  console.info = (...args: unknown[]) => connection.console.info(format(...args));
  console.warn = (...args: unknown[]) => connection.console.warn(format(...args));
  console.error = (...args: unknown[]) => connection.console.error(format(...args));
  console.debug = (...args: unknown[]) => connection.console.log(format(...args));
  process.on('uncaughtException', (e) => connection.console.error(`uncaught exception: ${e.stack ?? e.message}`));
  process.on('unhandledRejection', (e) =>
    connection.console.error(`unhandled rejection: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`),
  );
}
