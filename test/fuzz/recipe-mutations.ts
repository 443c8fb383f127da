/**
 * Seeded recipe mutations for the fuzz tier: the fixture recipes (good and bad) changed a few edits at a time, and
 * hostile constructs (alias bombs, cycles, deep nesting, huge scalars, NUL, invalid UTF-8, pipes and devices as
 * paths, tabs, anchors). A case is bytes (what a file on disk holds) and the text an editor would send for them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Rng } from './fuzz-util';

const RECIPES = path.resolve(__dirname, '../fixtures/recipes');

/** The fixture recipes, good and bad: the seeds every mutation starts from. */
export function seedRecipes(): { name: string; text: string }[] {
  const out: { name: string; text: string }[] = [];
  for (const kind of ['good', 'bad']) {
    for (const f of readdirSync(path.join(RECIPES, kind)).sort()) {
      if (f.endsWith('.yaml')) out.push({ name: `${kind}/${f}`, text: readFileSync(path.join(RECIPES, kind, f), 'utf8') });
    }
  }
  return out;
}

export interface RecipeCase {
  /** What was done, for the failure report. */
  label: string;
  /** The file's bytes (may be invalid UTF-8). */
  bytes: Buffer;
  /** The text as an editor decodes and sends it. */
  text: string;
}

/** Paths a hostile recipe points at: pipes and devices (made in the case folder by the test), the root, escapes. */
export const HOSTILE_PATHS = [
  './fifo',
  './fifo.wav',
  './fifo-model',
  '/dev/zero',
  '/dev/urandom',
  '/dev/null',
  '/',
  '/proc/self/mem',
  '../../..',
  './dev-config',
  './missing/deeper',
  'hf:../../etc/passwd',
  'hf:a/b@../../x',
  '~/.ssh',
];

const HOSTILE_SCALARS = [
  '-1',
  '0',
  '1e309',
  '.nan',
  '-.inf',
  '99999999999999999999',
  '0x10',
  'null',
  '~',
  '[]',
  '{}',
  '""',
  "''",
  '!!binary AAAA',
  '!!js/function "x"',
  '&a x',
  '*nope',
  '|\n  block',
  '>-\n  folded',
  '"\\u0000"',
  '"\\uD800"',
];

const PUNCT = '[]{}:,-&*!|>\'"#%@`?\t\n\r\\';

const KEYS = [
  'version',
  'models',
  'anchor',
  'other',
  'probe',
  'audio',
  'align',
  'method',
  'permute',
  'heads',
  'merge',
  'lambda',
  'overrides',
  'sweep',
  'evaluate',
  'tasks',
  'output',
  'runtime',
  'device',
  '<<',
  'name',
  'data',
];

type Mutation = (lines: string[], rng: Rng) => string;

const MUTATIONS: Record<string, Mutation> = {
  'delete a line': (lines, rng) => (lines.length > 1 && lines.splice(rng.int(0, lines.length - 1), 1), 'deleted'),
  'duplicate a line': (lines, rng) => {
    const i = rng.int(0, lines.length - 1);
    lines.splice(i, 0, lines[i]!);
    return `line ${i}`;
  },
  'swap two lines': (lines, rng) => {
    const i = rng.int(0, lines.length - 1);
    const j = rng.int(0, lines.length - 1);
    [lines[i], lines[j]] = [lines[j]!, lines[i]!];
    return `${i}<->${j}`;
  },
  'reindent a line': (lines, rng) => {
    const i = rng.int(0, lines.length - 1);
    const ws = rng.pick(['', ' ', '  ', '   ', '    ', '\t', ' \t', '      ']);
    lines[i] = ws + lines[i]!.trimStart();
    return `line ${i} ${JSON.stringify(ws)}`;
  },
  punctuation: (lines, rng) => {
    const i = rng.int(0, lines.length - 1);
    const l = lines[i]!;
    const at = rng.int(0, l.length);
    const c = rng.pick([...PUNCT]);
    lines[i] = l.slice(0, at) + c + l.slice(rng.bool() ? at + 1 : at);
    return `line ${i}:${at} ${JSON.stringify(c)}`;
  },
  'hostile value': (lines, rng) => {
    const withValue = lines.map((l, i) => [l, i] as const).filter(([l]) => /:\s+\S/.test(l));
    if (!withValue.length) return 'none';
    const [l, i] = rng.pick(withValue);
    const v = rng.bool(0.6) ? rng.pick(HOSTILE_PATHS) : rng.pick(HOSTILE_SCALARS);
    lines[i] = l.replace(/:\s+.*$/, `: ${v}`);
    return `line ${i} ${JSON.stringify(v)}`;
  },
  'list of hostile paths': (lines, rng) => {
    const key = rng.pick([
      'probe:\n  audio',
      'evaluate:\n  tasks:\n    - name: t\n      domain: speech\n      data',
      'models:\n  anchor',
      'output',
    ]);
    const v = rng.bool() ? `[${rng.pick(HOSTILE_PATHS)}, ${rng.pick(HOSTILE_PATHS)}]` : rng.pick(HOSTILE_PATHS);
    lines.push(`${key}: ${v}`);
    return `${key.replace(/\n.*/s, '')} ${v}`;
  },
  'unknown or misspelt key': (lines, rng) => {
    const k = rng.pick(KEYS);
    const typo = rng.bool() ? k.slice(0, -1) : k + k.slice(-1);
    lines.splice(rng.int(0, lines.length), 0, `${' '.repeat(rng.pick([0, 2, 4]))}${typo}: ${rng.pick(['1', 'x', '[a]', '{b: 1}', ''])}`);
    return typo;
  },
  'anchor and alias': (lines, rng) => {
    const i = rng.int(0, lines.length - 1);
    lines[i] = lines[i]!.replace(/:\s+(\S)/, ': &x $1');
    lines.push(`${rng.pick(KEYS)}: ${rng.pick(['*x', '[*x, *x]', '{<<: *x}', '*y'])}`);
    return `line ${i}`;
  },
  truncate: (lines, rng) => {
    const text = lines.join('\n');
    const at = rng.int(0, text.length);
    lines.splice(0, lines.length, ...text.slice(0, at).split('\n'));
    return `at ${at}`;
  },
  'control characters': (lines, rng) => {
    const i = rng.int(0, lines.length - 1);
    const c = String.fromCharCode(rng.pick([0, 1, 7, 8, 11, 12, 27, 0x7f, 0x85, 0xa0, 0x2028, 0xfeff, 0xfffe]));
    const l = lines[i]!;
    const at = rng.int(0, l.length);
    lines[i] = l.slice(0, at) + c + l.slice(at);
    return `U+${c.charCodeAt(0).toString(16)} line ${i}`;
  },
  'second document': (lines) => (lines.push('---', 'version: 1'), '---'),
  'flow style': (lines, rng) => {
    const i = rng.int(0, lines.length - 1);
    lines[i] = lines[i]!.replace(/:\s+(.*)$/, rng.bool() ? ': [$1' : ': { $1 }');
    return `line ${i}`;
  },
};

/** Texts built to exhaust a YAML reader or a server; each must still get a located diagnostic and answers. */
const HOSTILE: Record<string, (rng: Rng) => string> = {
  'alias bomb': (rng) => {
    const levels = rng.int(4, 12);
    const width = rng.int(5, 12);
    let s = 'version: 1\nx0: &a0 [lol]\n';
    for (let i = 1; i <= levels; i++)
      s += `x${i}: &a${i} [${Array(width)
        .fill(`*a${i - 1}`)
        .join(', ')}]\n`;
    return s;
  },
  'self-referencing merge key': () => 'version: 1\nmodels: &m {<<: *m}\nmerge: &g {lambda: *g}\n',
  'alias cycle in a list': () => 'version: 1\nprobe: &p\n  audio: [*p, *p]\nalign: &a [*a]\n',
  'deep flow nesting': (rng) => `version: 1\nmerge:\n  lambda: ${'['.repeat(rng.int(20, 5000))}0.5`,
  'deep block nesting': (rng) => Array.from({ length: rng.int(20, 400) }, (_, i) => `${' '.repeat(i)}k${i}:`).join('\n'),
  'deep list nesting': (rng) => `version: 1\nprobe:\n  audio:\n    ${'- '.repeat(rng.int(10, 3000))}x\n`,
  'huge scalar': (rng) => `version: 1\noutput: ${'x'.repeat(rng.int(1_000, 600_000))}\n`,
  'huge quoted scalar with escapes': (rng) => `version: 1\nname: "${'\\u0041\\n'.repeat(rng.int(100, 60_000))}"\n`,
  'many keys': (rng) => Array.from({ length: rng.int(100, 40_000) }, (_, i) => `k${i}: ${i}`).join('\n'),
  'many list items': (rng) =>
    `version: 1\nprobe:\n  audio: [${Array.from({ length: rng.int(100, 30_000) }, (_, i) => `./a${i}.wav`).join(', ')}]\n`,
  'many aliases': (rng) => `a: &a 1\nlist: [${Array(rng.int(100, 3000)).fill('*a').join(', ')}]\n`,
  'NUL bytes': (rng) => `version: 1\nmodels:\n  anchor: ./a\0b\n  other: ${'\0'.repeat(rng.int(1, 100))}\noutput: ./o\0\n`,
  'tabs everywhere': () => 'version:\t1\nmodels:\n\tanchor:\t./a\n\tother: ./b\nmerge:\n\t\tlambda:\t0.5\n',
  'only punctuation': (rng) => Array.from({ length: rng.int(1, 2000) }, () => rng.pick([...PUNCT])).join(''),
  'every path a pipe or a device': (rng) =>
    `version: 1\nmodels:\n  anchor: ${rng.pick(['./fifo-model', './dev-config', '/dev/zero'])}\n  other: ./fifo\nprobe:\n  audio: [./fifo, ./fifo.wav, /dev/urandom, /dev/zero]\nevaluate:\n  tasks:\n    - { name: t, domain: speech, data: ./fifo-task }\nmerge: { lambda: 0.5 }\noutput: ./out\n`,
  'output over the case folder and its parents': (rng) =>
    `version: 1\nmodels:\n  anchor: ../models/tiny-a\n  other: ../models/tiny-b\nalign: { method: none }\nmerge: { lambda: 0.5 }\noutput: ${rng.pick(['.', '..', '../..', '../outside', '/', '/tmp', './recipes'])}\n`,
  'long line of keys in flow': (rng) =>
    `version: 1\nmerge: {${Array.from({ length: rng.int(10, 20_000) }, (_, i) => `k${i}: ${i}`).join(', ')}}\n`,
};

/** Invalid UTF-8 sequences a file may hold (an editor shows them as U+FFFD). */
const BAD_UTF8 = [
  Buffer.from([0xff]),
  Buffer.from([0xc3]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
  Buffer.from([0xc0, 0xaf]),
];

export function makeRecipeCase(rng: Rng, seeds: { name: string; text: string }[]): RecipeCase {
  let label: string;
  let text: string;
  if (rng.bool(0.2)) {
    const name = rng.pick(Object.keys(HOSTILE));
    text = HOSTILE[name]!(rng);
    label = `hostile: ${name}`;
  } else {
    const seed = rng.pick(seeds);
    const lines = seed.text.split('\n');
    const done: string[] = [];
    for (let n = rng.int(1, 4); n > 0; n--) {
      const name = rng.pick(Object.keys(MUTATIONS));
      done.push(`${name} (${MUTATIONS[name]!(lines, rng)})`);
    }
    text = lines.join('\n');
    label = `${seed.name}: ${done.join('; ')}`;
  }
  if (rng.bool(0.05)) text = `\ufeff${text}`;
  if (rng.bool(0.05)) text = text.replace(/\n/g, '\r\n');
  let bytes = Buffer.from(text, 'utf8');
  if (rng.bool(0.1)) {
    const at = rng.int(0, bytes.length);
    const bad = rng.pick(BAD_UTF8);
    bytes = Buffer.concat([bytes.subarray(0, at), bad, bytes.subarray(at)]);
    text = new TextDecoder('utf-8').decode(bytes);
    label += ` + invalid UTF-8 at byte ${at}`;
  }
  return { label, bytes, text };
}
