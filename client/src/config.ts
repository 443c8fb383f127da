import * as vscode from 'vscode';
import { DEFAULT_LOW_CORRELATION_THRESHOLD, type Device } from '../../protocol/lsp-ext';

export const SECTION = 'mergeStudio';

/** Typed access to the `mergeStudio.*` settings; read on use, so changes apply without a reload. */
export class Config {
  private get cfg(): vscode.WorkspaceConfiguration {
    return vscode.workspace.getConfiguration(SECTION);
  }

  /** The device override for jobs; undefined keeps the recipe's own `runtime.device`. */
  get device(): Device | undefined {
    const d = this.cfg.get<Device>('device', 'auto');
    return d === 'auto' ? undefined : d;
  }

  /** The threads override for jobs; undefined (setting 0) keeps the recipe's `runtime.threads`. */
  get threads(): number | undefined {
    const t = this.cfg.get<number>('threads', 0);
    return Number.isInteger(t) && t > 0 ? t : undefined;
  }

  /** `mergeStudio.lowCorrelationThreshold`: taps below it after permutation get a warning in the recipe. */
  get lowCorrelationThreshold(): number {
    const t = this.cfg.get<number>('lowCorrelationThreshold', DEFAULT_LOW_CORRELATION_THRESHOLD);
    return typeof t === 'number' && Number.isFinite(t) ? t : DEFAULT_LOW_CORRELATION_THRESHOLD;
  }

  recipeGlobs(scope?: vscode.Uri): string[] {
    const globs = vscode.workspace.getConfiguration(SECTION, scope).get<unknown>('recipeGlobs', []);
    return Array.isArray(globs) ? globs.filter((g): g is string => typeof g === 'string' && g.trim() !== '') : [];
  }

  /** A custom server module; VS Code itself ignores a workspace value in Restricted Mode (restrictedConfigurations). */
  get serverPath(): string | undefined {
    const p = this.cfg.get<string | null>('server.path', null);
    return p ? p : undefined;
  }

  /** Settings whose change needs a server restart. */
  static needsRestart(e: vscode.ConfigurationChangeEvent): boolean {
    return e.affectsConfiguration(`${SECTION}.server.path`);
  }
}
