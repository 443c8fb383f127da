/** The Merge Studio language server: composition root and its parts. */
export { startServer, type ServerOptions } from './start-server';
export { bundledCliLauncher, overallPercentage, type JobLauncher, type JobLaunch } from './jobs';
export { redirectConsole } from './console';
export { runLanguageServer } from './node-main';
