/**
 * Renders JobEvents for a person: one status line per stage with a bar, counts and an ETA on a TTY, plain lines
 * otherwise (CI logs, redirected output: no carriage returns, no escape codes, never half a line). `--progress json`
 * bypasses this and prints the events themselves, one per line.
 */
import { StageEta, type JobEvent, type JobStage } from '../engine/progress';

export class ProgressRenderer {
  private readonly eta = new StageEta();
  private lastLine = '';
  private lastPlain = 0;
  /** The last progress line not yet printed in plain mode (printed when the stage ends, so every bar ends full). */
  private pendingPlain = '';

  /** Whether the bar is redrawn in place: only on a terminal, whatever was asked. */
  private readonly tty: boolean;

  constructor(
    private readonly stream: Pick<NodeJS.WriteStream, 'write' | 'isTTY'>,
    bar = true,
  ) {
    this.tty = bar && Boolean(stream.isTTY);
  }

  handle(event: JobEvent, now = performance.now()): void {
    switch (event.type) {
      case 'stage':
        this.finishLine();
        this.eta.reset(event.stage);
        this.write(`${event.stage.padEnd(10)} ${event.message}`, true);
        break;
      case 'progress': {
        const { etaSeconds } = this.eta.update(event.stage, event.done, event.total, now);
        const line = progressLine(
          event.stage,
          event.done,
          event.total,
          etaSeconds === null ? '' : ` ETA ${formatSeconds(etaSeconds)}`,
          event.message,
        );
        if (this.tty) {
          this.write(line, false);
        } else if (event.done === event.total || now - this.lastPlain > 5000) {
          // Without a TTY, print at most every 5 s and at the end, so logs stay readable.
          this.lastPlain = now;
          this.pendingPlain = '';
          this.write(line, false);
        } else {
          this.pendingPlain = line;
        }
        break;
      }
      case 'log':
        this.finishLine();
        this.write(`${event.level === 'warning' ? 'warning: ' : ''}${event.message}`, true);
        break;
      case 'result':
      case 'error':
        this.finishLine();
        break;
    }
  }

  /** Ends the bar's line (before anything else is printed: a log, an error, the Ctrl-C message, the summary). */
  finishLine(): void {
    if (this.tty && this.lastLine) this.stream.write('\n');
    if (!this.tty && this.pendingPlain) this.stream.write(`${this.pendingPlain}\n`);
    this.pendingPlain = '';
    this.lastLine = '';
  }

  private write(line: string, permanent: boolean): void {
    if (this.tty) {
      this.stream.write(`\r\x1b[2K${line}`);
      this.lastLine = line;
      if (permanent) this.finishLine();
    } else {
      this.stream.write(`${line}\n`);
    }
  }
}

export function progressLine(stage: JobStage, done: number, total: number, etaText: string, message?: string): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const width = 24;
  const filled = Math.round(fraction * width);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
  return `${stage.padEnd(10)} ${bar} ${done}/${total}${etaText}${message ? `  ${message}` : ''}`;
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
}
