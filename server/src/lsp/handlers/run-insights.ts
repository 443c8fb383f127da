/**
 * The last run of each recipe in the editor: a finished job's report, or a report.json that appears on disk
 * (file watching), becomes lenses, warnings and hovers; the warning threshold follows the settings.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { DidChangeConfigurationNotification, DidChangeWatchedFilesNotification, FileChangeType } from 'vscode-languageserver';
import type * as lsp from '../../../../protocol/lsp-ext';
import { uriToPath } from '../documents';
import type { Job } from '../jobs';
import type { ServerContext } from '../server-context';
import type { Validation } from './validation';

/** Files whose change can change a disk diagnostic. */
const WATCHED_GLOBS = [
  '**/report.json',
  // A run's staging folder: its removal is the rename that puts a new report.json in place.
  '**/.*.staging-*',
  '**/config.json',
  '**/preprocessor_config.json',
  '**/*.safetensors',
  '**/*.bin',
  '**/*.index.json',
  '**/labels.csv',
  '**/*.{wav,flac,mp3}',
];

export interface RunInsightHandlers {
  /** `initializationOptions` of `initialize`: the first settings. */
  configure(initializationOptions: unknown): void;
  /** After `initialized`: registers the file watchers and the settings section. */
  initialized(): void;
  /** A job of this server finished with a report. */
  attachRun(job: Job, reportPath: string): Promise<void>;
}

/**
 * A run writes report.json into a hidden staging folder (`.<name>.staging-…`) and then renames the folder into
 * place. Watchers may report the staged file, the staging folder's creation or its removal (the rename), in any
 * order, and may miss a file created at once in a new folder. So the removal of a staging folder triggers a new
 * look for the recipes' reports, and a staging folder seen to appear is also polled until it is gone (bounded).
 */
const STAGING_POLL_MS = 250;
const STAGING_POLL_LIMIT_MS = 15 * 60_000;
const STAGING_POLLED_AT_ONCE = 32;
const STAGING_FOLDER = /^\..+\.staging-[^/\\]+$/;

export function registerRunInsights(ctx: ServerContext, validation: Validation): RunInsightHandlers {
  const { connection, insights } = ctx;

  /** Looks for each open recipe's report again; refreshes the lenses when one changed. */
  const rediscover = async (): Promise<boolean> => {
    let changed = false;
    for (const doc of ctx.documents.all()) {
      const file = uriToPath(doc.uri);
      if (file && (await insights.discover(doc.uri, file, ctx.parses.structure(doc), true))) changed = true;
    }
    return changed;
  };
  const rediscoverAndRefresh = () =>
    void ctx.guard('file watching', undefined, async () => {
      if (!(await rediscover())) return;
      ctx.refreshLenses();
      validation.revalidateAll();
    });
  const polled = new Map<string, NodeJS.Timeout>();
  /** Looks for the reports again once `folder` is gone (renamed into place or cleaned up). */
  const awaitPublish = (folder: string): void => {
    if (polled.has(folder) || polled.size >= STAGING_POLLED_AT_ONCE) return;
    const started = Date.now();
    const timer = setInterval(() => {
      if (existsSync(folder) && Date.now() - started < STAGING_POLL_LIMIT_MS) return;
      clearInterval(timer);
      polled.delete(folder);
      rediscoverAndRefresh();
    }, STAGING_POLL_MS);
    // unref: a pending poll never keeps a shut-down server alive.
    timer.unref();
    polled.set(folder, timer);
  };

  connection.onDidChangeWatchedFiles((params) =>
    ctx.guard('file watching', undefined, async () => {
      let reports = false;
      for (const change of Array.isArray(params?.changes) ? params.changes : []) {
        const file = typeof change?.uri === 'string' ? uriToPath(change.uri) : undefined;
        if (!file) continue;
        ctx.disk.cache.invalidate(file);
        if (STAGING_FOLDER.test(path.basename(file))) {
          if (change.type === FileChangeType.Deleted) reports = true;
          else awaitPublish(file);
        } else if (path.basename(file) === 'report.json') {
          reports = true;
          if (STAGING_FOLDER.test(path.basename(path.dirname(file)))) awaitPublish(path.dirname(file));
        }
      }
      // A run from the command line (or a deleted output folder): look for each recipe's report again.
      if (reports) {
        await rediscover();
        ctx.refreshLenses();
      }
      validation.revalidateAll();
    }),
  );

  // Settings: `mergeStudio.lowCorrelationThreshold`, pushed with the notification or pulled when it comes empty.
  connection.onDidChangeConfiguration((params) =>
    ctx.guard('configuration', undefined, async () => {
      let settings = (params?.settings as { mergeStudio?: lsp.MergeStudioSettings } | null | undefined)?.mergeStudio;
      if (!settings && ctx.client.configurationPull)
        settings = ((await connection.workspace.getConfiguration('mergeStudio')) as lsp.MergeStudioSettings | null) ?? undefined;
      if (insights.setThreshold(settings?.lowCorrelationThreshold)) validation.revalidateAll();
    }),
  );

  return {
    configure(initializationOptions) {
      insights.setThreshold((initializationOptions as lsp.MergeStudioSettings | null | undefined)?.lowCorrelationThreshold);
    },
    initialized() {
      if (ctx.client.watcherRegistration) {
        void connection.client
          .register(DidChangeWatchedFilesNotification.type, { watchers: WATCHED_GLOBS.map((globPattern) => ({ globPattern })) })
          .catch((e: unknown) => ctx.internalError('registering file watchers', e));
      }
      if (ctx.client.configurationRegistration) {
        void connection.client
          .register(DidChangeConfigurationNotification.type, { section: 'mergeStudio' })
          .catch((e: unknown) => ctx.internalError('registering for configuration changes', e));
      }
    },
    async attachRun(job, reportPath) {
      const doc = ctx.documents.get(job.uri);
      if (!(await insights.attachJob(job.uri, job.recipeFile, job.id, reportPath, doc?.getText()))) return;
      if (doc) await validation.validate(doc);
      ctx.refreshLenses();
    },
  };
}
