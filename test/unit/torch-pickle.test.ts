import { describe, expect, it } from 'vitest';
import { collectTensors, PyDict, type PySet, type PyTuple, TorchTensor, unpickle } from '../../server/src/engine/io/torch-pickle';

/** A tiny pickle assembler: strings are opcodes/ASCII, numbers bytes. */
function pk(...parts: (string | number | number[] | Uint8Array)[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (const c of Buffer.from(p, 'utf8')) out.push(c);
    else out.push(...p);
  }
  return Uint8Array.from(out);
}
const u32 = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff];
const uni = (s: string) => ['X', u32(Buffer.byteLength(s)), s] as const;
const short = (s: string) => [0x8c, Buffer.byteLength(s), s] as const;
const opts = { file: 'x.pkl' };

/** protocol-2 `{'w': _rebuild_tensor_v2(persistent('storage', FloatStorage, '0', 'cpu', 6), 1, (2, 2), (1, 2), False, OrderedDict())}` */
const TENSOR = pk(
  'ctorch._utils\n_rebuild_tensor_v2\n',
  '(',
  '(',
  ...uni('storage'),
  'ctorch\nFloatStorage\n',
  ...uni('0'),
  ...uni('cpu'),
  'K',
  6,
  't',
  'Q',
  'K',
  1,
  'K',
  2,
  'K',
  2,
  0x86,
  'K',
  1,
  'K',
  2,
  0x86,
  0x89,
  'ccollections\nOrderedDict\n',
  ')',
  'R',
  't',
  'R',
);
const TENSOR_DICT = pk(0x80, 2, '}', 'q', 0, ...uni('w'), TENSOR, 's', '.');

describe('restricted unpickler', () => {
  it('rebuilds a state dict entry: storage, offset, size, stride', () => {
    const root = unpickle(TENSOR_DICT, opts);
    const t = collectTensors(root).get('w')!;
    expect(t).toBeInstanceOf(TorchTensor);
    expect({ key: t.storage.key, dtype: t.dtype, numel: t.storage.numel, offset: t.offset, shape: t.shape, stride: t.stride }).toEqual({
      key: '0',
      dtype: 'F32',
      numel: 6,
      offset: 1,
      shape: [2, 2],
      stride: [1, 2],
    });
  });

  it('_rebuild_tensor_v3 over an UntypedStorage takes its dtype from the call (offsets in elements of that dtype)', () => {
    const root = unpickle(
      pk(
        0x80,
        2,
        'ctorch._utils\n_rebuild_tensor_v3\n',
        '(',
        '(',
        ...uni('storage'),
        'ctorch\nUntypedStorage\n',
        ...uni('7'),
        ...uni('cpu'),
        'K',
        16,
        't',
        'Q',
        'K',
        2,
        'K',
        3,
        0x85,
        'K',
        1,
        0x85,
        0x89,
        'ccollections\nOrderedDict\n',
        ')',
        'R',
        'ctorch\nfloat16\n',
        't',
        'R',
        '.',
      ),
      opts,
    );
    expect(root).toBeInstanceOf(TorchTensor);
    const t = root as TorchTensor;
    expect([t.storage.dtype, t.storage.numel, t.dtype, t.offset, t.shape]).toEqual(['U8', 16, 'F16', 2, [3]]);
  });

  it('protocol 4: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, and a _metadata BUILD on an OrderedDict', () => {
    const root = unpickle(
      pk(
        0x80,
        4,
        0x95,
        8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        ...short('collections'),
        0x94,
        ...short('OrderedDict'),
        0x94,
        0x93,
        0x94,
        ')',
        'R',
        0x94,
        '}',
        ...short('_metadata'),
        '}',
        ...short('version'),
        'K',
        1,
        's',
        's',
        'b',
        ...short('n'),
        0x8a,
        2,
        0x00,
        0x80,
        's', // LONG1 −32768
        ...short('again'),
        'h',
        2,
        's', // BINGET memo 2 = the OrderedDict class
        '.',
      ),
      opts,
    );
    expect(root).toBeInstanceOf(PyDict);
    const d = root as PyDict;
    expect(d.items.get('n')).toBe(-32768);
    expect((d.attrs.get('_metadata') as PyDict).items.get('version')).toBe(1);
    expect(String((d.items.get('again') as { qualified: string }).qualified)).toBe('collections.OrderedDict');
  });

  it('refuses a global outside the allow-list at GLOBAL and STACK_GLOBAL, naming it', () => {
    expect(() => unpickle(pk(0x80, 2, 'cbuiltins\neval\n', '.'), opts)).toThrow(/refers to builtins\.eval/);
    expect(() => unpickle(pk(0x80, 4, ...short('os'), ...short('system'), 0x93, '.'), opts)).toThrow(/refers to os\.system/);
    expect(() => unpickle(pk(0x80, 2, 'ctorch\nload\n', '.'), opts)).toThrow(/refers to torch\.load/);
  });

  it('refuses object construction and extension opcodes, and calling a non-function', () => {
    expect(() => unpickle(pk(0x80, 2, 'ccollections\nOrderedDict\n', ')', 0x81, '.'), opts)).toThrow(/object construction \(NEWOBJ\)/);
    expect(() => unpickle(pk(0x80, 2, '(', 'i', 'os\nsystem\n', '.'), opts)).toThrow(/INST/);
    expect(() => unpickle(pk(0x80, 2, 0x82, 1, '.'), opts)).toThrow(/extension registry/);
    expect(() => unpickle(pk(0x80, 2, 'ctorch\nFloatStorage\n', ')', 'R', '.'), opts)).toThrow(
      /calls torch\.FloatStorage, which is not an allowed function/,
    );
    expect(() => unpickle(pk(0x80, 2, ']', '}', 'b', '.'), opts)).toThrow(/BUILD \(setting state\) on a list/);
  });

  it('refuses a persistent id that is not a torch storage', () => {
    expect(() => unpickle(pk(0x80, 2, ...uni('module'), 0x85, 'Q', '.'), opts)).toThrow(/not a torch storage reference/);
  });

  it('reports corrupt pickles: truncation, unknown opcodes, stack underflow, unknown memo, protocol 0/1 strings', () => {
    expect(() => unpickle(TENSOR_DICT.subarray(0, 40), opts)).toThrow(/corrupt pickle: truncated|corrupt pickle/);
    expect(() => unpickle(pk(0x80, 2, 0xff), opts)).toThrow(/unknown opcode 0xff/);
    expect(() => unpickle(pk(0x80, 2, 'R'), opts)).toThrow(/stack underflow/);
    expect(() => unpickle(pk(0x80, 2, 'h', 7, '.'), opts)).toThrow(/memo 7 read before it was written/);
    expect(() => unpickle(pk(0x80, 2, "S'x'\n", '.'), opts)).toThrow(/protocol-0 string opcode/);
    expect(() => unpickle(pk(0x80, 6, '.'), opts)).toThrow(/protocol 6/);
    expect(() => unpickle(pk('X', 0xff, 0xff, 0xff, 0x7f), opts)).toThrow(/truncated/);
  });

  it('collects nested state dicts by dotted name and survives cycles', () => {
    // {'state_dict': {'a': <tensor>}, 'loop': <list containing itself>}
    const root = unpickle(
      pk(
        0x80,
        2,
        '}',
        'q',
        0,
        ...uni('state_dict'),
        '}',
        ...uni('a'),
        TENSOR,
        's',
        's',
        ...uni('loop'),
        ']',
        'q',
        1,
        'h',
        1,
        'a',
        's',
        '.',
      ),
      opts,
    );
    expect([...collectTensors(root).keys()]).toEqual(['state_dict.a']);
    const loop = (root as PyDict).items.get('loop') as unknown[];
    expect(loop[0]).toBe(loop);
  });

  it('tuples, lists, sets, bytes, floats and big integers are plain data', () => {
    // ((1, 2, 3, 4), [None, True], {9}, (b'\xde\xad', 1.5, 2**64))
    const root = unpickle(
      pk(
        0x80,
        4,
        '(',
        '(',
        'K',
        1,
        'K',
        2,
        'K',
        3,
        'K',
        4,
        't',
        ']',
        '(',
        'N',
        0x88,
        'e',
        0x8f,
        '(',
        'K',
        9,
        0x90,
        'C',
        2,
        0xde,
        0xad,
        'G',
        0x3f,
        0xf8,
        0,
        0,
        0,
        0,
        0,
        0,
        0x8a,
        9,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        1,
        0x87,
        't',
        '.',
      ),
      opts,
    ) as PyTuple;
    const [t, l, s, b] = root.items as [PyTuple, unknown[], PySet, PyTuple];
    expect(t.items).toEqual([1, 2, 3, 4]);
    expect(l).toEqual([null, true]);
    expect(s.items).toEqual([9]);
    expect(b.items).toEqual([Uint8Array.from([0xde, 0xad]), 1.5, 1n << 64n]);
  });

  it('budgets: a 5000-byte LONG4, a 5000-digit INT, a list of millions (no call-stack overflow), a deep dict chain', () => {
    expect(() => unpickle(pk(0x80, 2, 0x8b, u32(5000), new Uint8Array(5000), '.'), opts)).toThrow(
      /x\.pkl: corrupt pickle: a 5000-byte integer/,
    );
    expect(() => unpickle(pk(0x80, 2, 'I', '9'.repeat(5000), '\n', '.'), opts)).toThrow(/a 5000-byte text argument/);
    const n = 1_000_000;
    const list = unpickle(Buffer.concat([pk(0x80, 2, ']', '('), Buffer.alloc(n, 0x4e), pk('e', '.')]), opts) as unknown[];
    expect(list).toHaveLength(n);
    // 100,000 nested dicts {'a': {'a': … <tensor>}}: the walk is iterative, so depth cannot exhaust the stack.
    const depth = 100_000;
    const open = Buffer.from(pk('}', ...uni('a')));
    const nested = Buffer.concat([pk(0x80, 2), ...new Array<Buffer>(depth).fill(open), TENSOR, Buffer.alloc(depth, 's'), pk('.')]);
    const tensors = collectTensors(unpickle(nested, opts), 'x.pkl');
    expect([...tensors.keys()]).toEqual([Array(depth).fill('a').join('.')]);
  });
});
