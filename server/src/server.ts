/**
 * Language server entry, bundled to dist/server.js: `node dist/server.js --stdio` (or --node-ipc,
 * --socket=N). `merge-studio lsp --stdio` runs the same server from the CLI bundle.
 */
import { runLanguageServer } from './lsp/node-main';

runLanguageServer();
