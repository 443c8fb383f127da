/**
 * Engine jobs as child processes: `merge-studio run|stats <recipe> … --progress json` (job-kinds.ts) prints one JobEvent per line;
 * the job maps them to an overall percentage and a stage message, and a cancel kills the child (onnxruntime
 * cannot abort a running session; killing the process is the only real stop, and the engine writes its output
 * atomically, so nothing partial is left). No LSP types here: the handlers adapt this to work-done progress.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { engineProcessEnv } from '../engine/process-env';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { StageEta, type JobEvent, type JobStage } from '../engine/progress';
import { formatEta, type JobFinishedParams, type RunningJobStatus } from '../../../protocol/lsp-ext';
import { cliArgs, overallPercentage, type JobSpec } from './job-kinds';

export interface JobLaunch {
  command: string;
  args: string[];
}

export type JobLauncher = (recipeFile: string, spec: JobSpec) => JobLaunch;

/** `node <dir>/cli.js run|stats …`: the CLI bundled beside the server bundle; undefined when it is missing. */
export function bundledCliLauncher(dir: string = __dirname): JobLauncher | undefined {
  const cli = path.join(dir, 'cli.js');
  if (!existsSync(cli)) return undefined;
  return (recipeFile, spec) => ({ command: process.execPath, args: [cli, ...cliArgs(recipeFile, spec)] });
}

export interface JobObserver {
  /** Stage or percentage changed; `message` is one line for a progress UI. */
  progress(job: Job, percentage: number, message: string): void;
  log(job: Job, line: string): void;
  finished(job: Job, result: JobFinishedParams): void;
}

/** Seconds between SIGTERM and SIGKILL when a cancelled child does not exit. */
const KILL_GRACE_MS = 5000;
/** Kept for `getReport` after a job ends. */
const FINISHED_KEPT = 20;

export class Job {
  stage: JobStage | null = null;
  percentage = 0;
  /** The current stage's own progress and ETA (engine/progress.ts StageEta): what a status bar shows. */
  private stageProgress: { percentage: number; etaSeconds: number | null } | null = null;
  private readonly eta = new StageEta();
  result: JobFinishedParams | undefined;
  private child: ChildProcess | undefined;
  private cancelled = false;
  private lastError: { code: string; message: string; file?: string } | undefined;
  private resultEvent: Extract<JobEvent, { type: 'result' }> | undefined;
  private readonly stderrTail: string[] = [];
  private readonly started = Date.now();
  /** Resolves when the job has ended, however it ended. */
  readonly done: Promise<JobFinishedParams>;
  private resolveDone!: (r: JobFinishedParams) => void;

  constructor(
    readonly id: string,
    readonly uri: string,
    readonly recipeFile: string,
    readonly spec: JobSpec,
    /** Progress token the job reports on, if any (also accepted by `window/workDoneProgress/cancel`). */
    readonly progressToken: string | number | undefined,
    private readonly observer: JobObserver,
  ) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get status(): RunningJobStatus {
    return {
      jobId: this.id,
      uri: this.uri,
      kind: this.spec.kind,
      ...(this.spec.kind === 'stats' ? { shard: this.spec.shard } : {}),
      stage: this.stage,
      percentage: this.percentage,
      stagePercentage: this.stageProgress?.percentage ?? null,
      etaSeconds: this.stageProgress?.etaSeconds ?? null,
    };
  }

  start(launch: JobLaunch): void {
    let child: ChildProcess;
    try {
      child = spawn(launch.command, launch.args, {
        cwd: path.dirname(this.recipeFile),
        env: engineProcessEnv(process.env),
        stdio: ['ignore', 'pipe', 'pipe'],
        windowsHide: true,
      });
    } catch (e) {
      this.finish(null, null, { code: 'runtime-error', message: `cannot start the engine: ${(e as Error).message}` });
      return;
    }
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => this.onStdout(line));
    createInterface({ input: child.stderr! }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 20) this.stderrTail.shift();
      this.observer.log(this, line);
    });
    child.on('error', (e) => this.finish(null, null, { code: 'runtime-error', message: `cannot start the engine: ${e.message}` }));
    child.on('close', (code, signal) => this.finish(code, signal));
  }

  /** Kills the child; the job then finishes as cancelled. False when it had already ended. */
  cancel(): boolean {
    if (this.result) return false;
    this.cancelled = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.finish(null, null);
      return true;
    }
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    timer.unref();
    child.once('close', () => clearTimeout(timer));
    return true;
  }

  private onStdout(line: string): void {
    if (line.trim() === '') return;
    let event: JobEvent;
    try {
      event = JSON.parse(line) as JobEvent;
    } catch {
      this.observer.log(this, line);
      return;
    }
    switch (event.type) {
      case 'stage':
        this.stage = event.stage;
        this.eta.reset(event.stage);
        this.stageProgress = null;
        this.percentage = Math.max(this.percentage, overallPercentage(event.stage, 0, 0, this.spec.kind));
        this.observer.progress(this, this.percentage, `${event.stage}: ${event.message}`);
        break;
      case 'progress': {
        this.stage = event.stage;
        this.percentage = Math.max(this.percentage, overallPercentage(event.stage, event.done, event.total, this.spec.kind));
        const { fraction, etaSeconds } = this.eta.update(event.stage, event.done, event.total, Date.now());
        this.stageProgress = { percentage: Math.round(100 * fraction), etaSeconds };
        const detail = event.message ?? `${event.done}/${event.total}`;
        this.observer.progress(
          this,
          this.percentage,
          `${event.stage}: ${detail}${etaSeconds === null ? '' : ` (${formatEta(etaSeconds)} left)`}`,
        );
        break;
      }
      case 'log':
        this.observer.log(this, `${event.level}: ${event.message}`);
        break;
      case 'result':
        this.resultEvent = event;
        break;
      case 'error':
        this.lastError = event.file
          ? { code: event.code, message: event.message, file: event.file }
          : { code: event.code, message: event.message };
        break;
      default:
        this.observer.log(this, line);
    }
  }

  private finish(code: number | null, signal: NodeJS.Signals | null, spawnError?: { code: string; message: string }): void {
    if (this.result) return;
    const base = {
      jobId: this.id,
      uri: this.uri,
      kind: this.spec.kind,
      ...(this.spec.kind === 'stats' ? { shard: this.spec.shard } : {}),
      seconds: (Date.now() - this.started) / 1000,
    };
    const resolve = (p: string) => path.resolve(path.dirname(this.recipeFile), p);
    let result: JobFinishedParams;
    if (this.cancelled) {
      result = { ...base, ok: false, cancelled: true, error: { code: 'cancelled', message: 'The job was cancelled; nothing was written' } };
    } else if (!spawnError && code === 0 && this.resultEvent) {
      const r = this.resultEvent;
      // A shard's "report" is its manifest: the shard folder is its result; only runs have a report to show.
      result = {
        ...base,
        ok: true,
        cancelled: false,
        outputDir: resolve(r.outputDir),
        ...(this.spec.kind === 'stats' ? {} : { reportPath: resolve(r.reportPath) }),
        summary: r.summary,
      };
    } else {
      const why = signal ? `was killed by ${signal}` : code === 0 ? 'exited without a result' : `exited with code ${code}`;
      const tail = this.stderrTail[this.stderrTail.length - 1];
      const error = spawnError ?? this.lastError ?? { code: 'runtime-error', message: `The engine ${why}${tail ? `: ${tail}` : ''}` };
      result = { ...base, ok: false, cancelled: false, error };
    }
    this.result = result;
    this.observer.finished(this, result);
    this.resolveDone(result);
  }
}

/** One job at a time (a merge saturates the machine), plus the last few finished ones for their reports. */
export class JobManager {
  private current: Job | undefined;
  private readonly finishedJobs = new Map<string, Job>();
  private counter = 0;

  constructor(
    private readonly launcher: JobLauncher | undefined,
    private readonly observer: JobObserver,
  ) {}

  get available(): boolean {
    return this.launcher !== undefined;
  }

  get running(): Job | undefined {
    return this.current;
  }

  start(uri: string, recipeFile: string, spec: JobSpec, progressToken: string | number | undefined): Job {
    if (!this.launcher) throw new Error('no engine to run jobs with');
    if (this.current) throw new Error(`job ${this.current.id} is running`);
    const id = `job-${Date.now().toString(36)}-${++this.counter}`;
    const job = new Job(id, uri, recipeFile, spec, progressToken, {
      progress: (j, p, m) => this.observer.progress(j, p, m),
      log: (j, l) => this.observer.log(j, l),
      finished: (j, r) => {
        if (this.current === j) this.current = undefined;
        this.finishedJobs.set(j.id, j);
        while (this.finishedJobs.size > FINISHED_KEPT) this.finishedJobs.delete(this.finishedJobs.keys().next().value!);
        this.observer.finished(j, r);
      },
    });
    this.current = job;
    job.start(this.launcher(recipeFile, spec));
    return job;
  }

  find(jobId: string): Job | undefined {
    return this.current?.id === jobId ? this.current : this.finishedJobs.get(jobId);
  }

  byProgressToken(token: string | number): Job | undefined {
    return this.current?.progressToken === token ? this.current : undefined;
  }

  /** The parsed report.json of a job that finished ok. */
  async report(jobId: string): Promise<{ reportPath: string; report: unknown }> {
    const job = this.find(jobId);
    if (!job) throw new Error(`no job ${jobId} (unknown, or too old)`);
    if (!job.result) throw new Error(`job ${jobId} is still running`);
    if (!job.result.ok || !job.result.reportPath)
      throw new Error(
        `job ${jobId} ${job.result.cancelled ? 'was cancelled' : job.result.ok ? 'computed a statistics shard' : 'failed'}; it has no report`,
      );
    const reportPath = job.result.reportPath;
    const text = await fs.readFile(reportPath, 'utf8');
    return { reportPath, report: JSON.parse(text) as unknown };
  }

  /** Kills the running job (server shutdown). */
  dispose(): void {
    this.current?.cancel();
  }
}
