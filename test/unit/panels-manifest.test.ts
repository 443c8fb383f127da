// The panel table (protocol/panels.ts) and the extension manifest agree: every panel has its command, its palette
// entry and the activation event its serializer needs to restore it after a reload.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PANEL_KINDS, PANELS, isPanelKind } from '../../protocol/panels';
import { OPEN_PANEL_COMMANDS } from '../../protocol/lsp-ext';

const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  activationEvents: string[];
  contributes: { commands: { command: string }[]; menus: { commandPalette: { command: string }[] } };
};

describe('panel table', () => {
  it.each(PANEL_KINDS)('%s panel is contributed by the manifest', (kind) => {
    const p = PANELS[kind];
    expect(manifest.contributes.commands.map((c) => c.command)).toContain(p.command);
    expect(manifest.contributes.menus.commandPalette.map((c) => c.command)).toContain(p.command);
    expect(manifest.activationEvents).toContain(`onWebviewPanel:${p.viewType}`);
    expect(OPEN_PANEL_COMMANDS[kind]).toBe(p.command);
  });

  it('names each panel once and recognises only its own kinds', () => {
    const views = PANEL_KINDS.map((k) => PANELS[k].viewType);
    expect(new Set(views).size).toBe(views.length);
    expect(PANEL_KINDS.every(isPanelKind)).toBe(true);
    for (const x of ['toString', 'constructor', '', 'Results', 1, null, undefined]) expect(isPanelKind(x)).toBe(false);
  });
});
