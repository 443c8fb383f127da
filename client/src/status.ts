import * as vscode from 'vscode';
import { formatEta, type RunningJobStatus, type ServerHealth } from '../../protocol/lsp-ext';
import { displayName } from './recipes';

/** Where the client is in its lifecycle (the server's own health comes from `mergeStudio/serverStatus`). */
export type ClientPhase = 'idle' | 'starting' | 'running' | 'stopped' | 'failed';

export interface StatusState {
  phase: ClientPhase;
  health: ServerHealth;
  /** One line about health (last internal error) or about why the client failed / stopped. */
  message?: string;
  runningJob: RunningJobStatus | null;
}

/** What the status-bar item shows for a state; a pure function so the rendering rules are easy to read. */
export function renderStatus(s: StatusState): { text: string; tooltip: string; command?: string; background?: string } {
  const links = '[Show Output](command:mergeStudio.showOutput) · [Restart Server](command:mergeStudio.restartServer)';
  if (s.phase === 'starting') return { text: '$(loading~spin) Merge Studio', tooltip: 'Starting the Merge Studio language server…' };
  if (s.phase === 'failed')
    return {
      text: '$(error) Merge Studio',
      tooltip: `The language server failed: ${s.message ?? 'see the output'}\n\n${links}`,
      command: 'mergeStudio.showOutput',
      background: 'statusBarItem.errorBackground',
    };
  if (s.phase === 'stopped')
    return {
      text: '$(circle-slash) Merge Studio',
      tooltip: `The language server is stopped.\n\n${links}`,
      command: 'mergeStudio.restartServer',
    };
  if (s.runningJob) {
    const j = s.runningJob;
    // The stage's own progress and ETA when the server reports them (one ETA per stage), else the overall percentage.
    const stagePct = j.stagePercentage ?? null;
    const pct =
      stagePct !== null
        ? ` ${stagePct}%${j.etaSeconds != null ? ` · ${formatEta(j.etaSeconds)} left` : ''}`
        : j.percentage === null
          ? ''
          : ` ${Math.round(j.percentage)}%`;
    const shard = j.kind === 'stats' && j.shard ? `shard ${j.shard.index}/${j.shard.count} ` : '';
    const doing =
      j.kind === 'stats'
        ? `Computing statistics ${shard}of ${displayName(j.uri)}`
        : `Running ${displayName(j.uri)}${j.kind === 'run-with-stats' ? ' from statistics shards' : ''}`;
    return {
      text: `$(sync~spin) Merge Studio: ${shard}${j.stage ?? 'starting'}${pct}`,
      tooltip: `${doing} (job ${j.jobId})${j.percentage === null ? '' : `, ${Math.round(j.percentage)}% overall`}. Click to cancel.\n\n${links}`,
      command: 'mergeStudio.cancelJob',
    };
  }
  const icon = s.health === 'ok' ? '$(check)' : s.health === 'warning' ? '$(warning)' : '$(error)';
  const detail = s.message ? `${s.message}\n\n` : s.health === 'ok' ? 'Merge Studio is ready.\n\n' : '';
  return {
    text: `${icon} Merge Studio`,
    tooltip: `${detail}${links}`,
    command: 'mergeStudio.showOutput',
    ...(s.health === 'ok'
      ? {}
      : { background: s.health === 'warning' ? 'statusBarItem.warningBackground' : 'statusBarItem.errorBackground' }),
  };
}

/** The status-bar item: server state and the running job; hidden until the server was first started. */
export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('mergeStudio.status', vscode.StatusBarAlignment.Left);
  private state: StatusState = { phase: 'idle', health: 'ok', runningJob: null };
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;

  constructor() {
    this.item.name = 'Merge Studio';
  }

  get current(): Readonly<StatusState> {
    return this.state;
  }

  update(patch: Partial<StatusState>): void {
    this.state = { ...this.state, ...patch };
    const r = renderStatus(this.state);
    this.item.text = r.text;
    const tooltip = new vscode.MarkdownString(r.tooltip, true);
    tooltip.isTrusted = { enabledCommands: ['mergeStudio.showOutput', 'mergeStudio.restartServer'] };
    this.item.tooltip = tooltip;
    this.item.command = r.command;
    this.item.backgroundColor = r.background ? new vscode.ThemeColor(r.background) : undefined;
    if (this.state.phase === 'idle') this.item.hide();
    else this.item.show();
    this.changed.fire();
  }

  /** Where the language server is in its life (commands act on it: a failed server offers Restart Server). */
  get phase(): ClientPhase {
    return this.state.phase;
  }

  /** What a person sees, for the extension-host tests. */
  snapshot(): { text: string; command: string | undefined; visible: boolean } {
    return {
      text: this.item.text,
      command: typeof this.item.command === 'string' ? this.item.command : this.item.command?.command,
      visible: this.state.phase !== 'idle',
    };
  }

  dispose(): void {
    this.changed.dispose();
    this.item.dispose();
  }
}
