/**
 * Renders JobEvents for a person: one status line per stage with a bar, counts and an ETA on a TTY, plain lines
 * otherwise (CI logs). `--progress json` bypasses this and prints the events themselves, one per line.
 */
import type { JobEvent, JobStage } from '../engine/progress';

export class ProgressRenderer {
  private stage: JobStage | undefined;
  private stageStarted = 0;
  private lastLine = '';
  private lastPlain = 0;

  constructor(
    private readonly stream: NodeJS.WriteStream,
    private readonly tty = Boolean(stream.isTTY),
  ) {}

  handle(event: JobEvent): void {
    switch (event.type) {
      case 'stage':
        this.finishLine();
        this.stage = event.stage;
        this.stageStarted = performance.now();
        this.write(`${event.stage.padEnd(10)} ${event.message}`, true);
        break;
      case 'progress': {
        if (event.stage !== this.stage) {
          this.stage = event.stage;
          this.stageStarted = performance.now();
        }
        const fraction = event.total > 0 ? event.done / event.total : 0;
        const elapsed = (performance.now() - this.stageStarted) / 1000;
        const eta = fraction > 0 && fraction < 1 ? ` ETA ${formatSeconds((elapsed / fraction) * (1 - fraction))}` : '';
        const width = 24;
        const filled = Math.round(fraction * width);
        const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
        const line = `${event.stage.padEnd(10)} ${bar} ${event.done}/${event.total}${eta}${event.message ? `  ${event.message}` : ''}`;
        // Without a TTY, print at most every 5 s and at the end, so logs stay readable.
        const now = performance.now();
        if (this.tty || event.done === event.total || now - this.lastPlain > 5000) {
          this.lastPlain = now;
          this.write(line, false);
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

  finishLine(): void {
    if (this.tty && this.lastLine) this.stream.write('\n');
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

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
}
