import * as vscode from 'vscode';
import type { JobFinishedParams, RunningJobStatus } from '../../protocol/lsp-ext';

/**
 * What the client knows about jobs: the running one (from `serverStatus` and its own runs), finished ones by id
 * (a `jobFinished` may arrive before a waiter asks), and the last finished one for Show Report. Also mirrors
 * that into the `mergeStudio.jobRunning` / `mergeStudio.hasReport` context keys used by menus.
 */
export class JobTracker implements vscode.Disposable {
  private readonly finished = new Map<string, JobFinishedParams>();
  private readonly waiters = new Map<string, { resolve: (p: JobFinishedParams) => void; reject: (e: Error) => void }[]>();
  private runningJob: RunningJobStatus | null = null;
  private lastFinished: JobFinishedParams | undefined;
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;

  get running(): RunningJobStatus | null {
    return this.runningJob;
  }

  /** The last job that finished with a report (a statistics shard has none). */
  get lastReportJob(): JobFinishedParams | undefined {
    const hasReport = (j: JobFinishedParams | undefined) => Boolean(j?.ok && j.reportPath);
    return hasReport(this.lastFinished) ? this.lastFinished : [...this.finished.values()].reverse().find(hasReport);
  }

  setRunning(job: RunningJobStatus | null): void {
    // A late serverStatus for a job that already finished must not bring it back.
    if (job && this.finished.has(job.jobId)) job = null;
    this.runningJob = job;
    void vscode.commands.executeCommand('setContext', 'mergeStudio.jobRunning', job !== null);
    this.changed.fire();
  }

  finish(p: JobFinishedParams): void {
    this.finished.set(p.jobId, p);
    if (this.finished.size > 50) this.finished.delete(this.finished.keys().next().value!);
    this.lastFinished = p;
    if (this.runningJob?.jobId === p.jobId) this.setRunning(null);
    if (p.ok && p.reportPath) void vscode.commands.executeCommand('setContext', 'mergeStudio.hasReport', true);
    for (const w of this.waiters.get(p.jobId) ?? []) w.resolve(p);
    this.waiters.delete(p.jobId);
    this.changed.fire();
  }

  /** Resolves when `jobFinished` for this id arrives (or already has). */
  waitFor(jobId: string): Promise<JobFinishedParams> {
    const done = this.finished.get(jobId);
    if (done) return Promise.resolve(done);
    return new Promise((resolve, reject) => {
      this.waiters.set(jobId, [...(this.waiters.get(jobId) ?? []), { resolve, reject }]);
    });
  }

  /** The server went away: nobody will send `jobFinished` for the jobs it ran. */
  serverLost(reason: string): void {
    for (const ws of this.waiters.values()) for (const w of ws) w.reject(new Error(reason));
    this.waiters.clear();
    this.setRunning(null);
  }

  dispose(): void {
    this.serverLost('Merge Studio was deactivated');
    this.changed.dispose();
  }
}
