/** The Merge Studio language server: composition root and its parts. */
export { startServer, type ServerOptions } from './start-server';
export { bundledCliLauncher, type JobLauncher, type JobLaunch } from './jobs';
export { cliArgs, overallPercentage, type JobSpec } from './job-kinds';
export { redirectConsole } from './console';
export { runLanguageServer } from './node-main';
