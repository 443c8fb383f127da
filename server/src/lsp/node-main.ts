/** Runs the server on the connection Node's argv asks for (--stdio, --node-ipc, --socket=N). */
import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { redirectConsole } from './console';
import { startServer } from './start-server';

export function runLanguageServer(): void {
  const connection = createConnection(ProposedFeatures.all);
  redirectConsole(connection);
  startServer(connection);
}
