/**
 * A restricted unpickler for the `data.pkl` of a `torch.save` archive. It is a data parser, not a Python VM: it
 * understands the binary opcodes of pickle protocols 2–5 and a fixed allow-list of globals, exactly what a state dict
 * needs (OrderedDict, the tensor/parameter rebuild functions, storage types, dtypes). Every other global, and every
 * opcode that would construct an arbitrary object (INST, OBJ, NEWOBJ, EXT*), is refused by name before anything is
 * built, so a hostile pickle can only make this function throw. Values are plain JS data; dicts are Maps (no object
 * keys → no prototype pollution).
 */
import { EngineError } from '../errors';
import type { Dtype } from './dtype';

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export type PyKey = string | number | bigint | boolean | null;

export class PyDict {
  readonly items = new Map<PyKey, PyValue>();
  /** Instance attributes set by BUILD (a state dict's `_metadata`); kept apart from the items. */
  readonly attrs = new Map<string, PyValue>();
}

export class PySet {
  readonly items: PyValue[] = [];
}

/** An allow-listed global, resolved to what it means here. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    readonly kind: 'function' | 'storage-type' | 'dtype' | 'class',
    /** Element dtype of a storage type or a torch dtype. */
    readonly dtype?: Dtype,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** A `persistent_load` storage: the bytes of zip entry `data/<key>`, `numel` elements of `dtype`. */
export class TorchStorage {
  constructor(
    readonly key: string,
    readonly dtype: Dtype,
    readonly numel: number,
    readonly location: string,
  ) {}
}

/** A tensor as `_rebuild_tensor_v2` describes it: a strided view into a storage (offsets in elements). */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly dtype: Dtype,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyTuple | PyValue[] | PyDict | PySet | PyGlobal | TorchStorage | TorchTensor;

const STORAGE_TYPES: Record<string, Dtype> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  UntypedStorage: 'U8',
};

const TORCH_DTYPES: Record<string, Dtype> = {
  float32: 'F32',
  float: 'F32',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  float64: 'F64',
  double: 'F64',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  short: 'I16',
  int8: 'I8',
  uint8: 'U8',
  bool: 'BOOL',
};

const FUNCTIONS = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
  'torch.Size',
  '_codecs.encode',
]);
const CLASSES = new Set(['torch.Tensor', 'torch.nn.parameter.Parameter']);

/** Resolves GLOBAL/STACK_GLOBAL against the allow-list; anything else is refused here, before any use. */
function resolveGlobal(module: string, name: string, file: string): PyGlobal {
  const q = `${module}.${name}`;
  if (FUNCTIONS.has(q)) return new PyGlobal(module, name, 'function');
  if (CLASSES.has(q)) return new PyGlobal(module, name, 'class');
  if ((module === 'torch' || module === 'torch.storage') && name in STORAGE_TYPES) return new PyGlobal(module, name, 'storage-type', STORAGE_TYPES[name]);
  if (module === 'torch' && name in TORCH_DTYPES) return new PyGlobal(module, name, 'dtype', TORCH_DTYPES[name]);
  throw new EngineError(
    'unsafe-pickle',
    `${file}: refused to load: the pickle refers to ${q}, which a PyTorch state dict never needs (only tensors, storages and OrderedDict are allowed; nothing in the file was executed)`,
    file,
  );
}

export interface UnpickleOptions {
  /** For messages. */
  file: string;
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

/** Parses a pickle into plain data; throws EngineError('unsafe-pickle' | 'bad-checkpoint') on anything else. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): PyValue {
  const { file } = opts;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string) => new EngineError('bad-checkpoint', `${file}: corrupt pickle: ${why}`, file);
  const refuse = (what: string) => new EngineError('unsafe-pickle', `${file}: refused to load: ${what} (nothing in the file was executed)`, file);
  let pos = 0;
  let stack: StackItem[] = [];
  const marks: StackItem[][] = [];
  const memo = new Map<number, PyValue>();
  const storages = new Map<string, TorchStorage>();

  const need = (n: number) => {
    if (n < 0 || pos + n > bytes.length) throw bad(`truncated at byte ${pos} (needs ${n} more of ${bytes.length})`);
  };
  const u8 = () => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = () => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = () => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) throw bad(`length ${v} at byte ${pos - 8} is longer than the pickle`);
    return Number(v);
  };
  const take = (n: number) => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw bad(`unterminated line at byte ${pos}`);
    const s = Buffer.from(bytes.subarray(pos, end)).toString('latin1');
    pos = end + 1;
    return s;
  };
  const utf8 = (b: Uint8Array) => Buffer.from(b).toString('utf8');
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined) throw bad(`stack underflow at byte ${pos}`);
    if (v === MARK) throw bad(`unexpected mark at byte ${pos}`);
    return v;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) throw bad(`empty stack at byte ${pos}`);
    return v;
  };
  const popMark = (): PyValue[] => {
    const items = stack as PyValue[];
    const prev = marks.pop();
    if (!prev) throw bad(`no mark at byte ${pos}`);
    stack = prev;
    return items;
  };
  const key = (k: PyValue): PyKey => {
    if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return k;
    throw bad(`unsupported dict key (${describe(k)}) at byte ${pos}`);
  };
  const setItems = (target: PyValue, kv: PyValue[]) => {
    if (!(target instanceof PyDict)) throw bad(`SETITEM on ${describe(target)} at byte ${pos}`);
    if (kv.length % 2) throw bad(`odd number of items for SETITEMS at byte ${pos}`);
    for (let i = 0; i < kv.length; i += 2) target.items.set(key(kv[i]!), kv[i + 1]!);
  };
  const appendItems = (target: PyValue, items: PyValue[]) => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof PySet) target.items.push(...items);
    else throw bad(`APPEND on ${describe(target)} at byte ${pos}`);
  };
  const longFrom = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const global = (module: string, name: string) => resolveGlobal(module, name, file);

  const persistentLoad = (pid: PyValue): TorchStorage => {
    const t = pid instanceof PyTuple ? pid.items : undefined;
    if (!t || t[0] !== 'storage' || t.length !== 5) throw refuse(`persistent id ${describe(pid)} is not a torch storage reference`);
    const [, type, k, location, numel] = t;
    if (!(type instanceof PyGlobal) || type.kind !== 'storage-type') throw refuse(`storage type ${describe(type ?? null)} is not a known torch storage type`);
    if (typeof k !== 'string' || !/^[A-Za-z0-9_]+$/.test(k)) throw bad(`storage key ${describe(k ?? null)} is not a plain name`);
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) throw bad(`storage ${k} has an invalid size ${describe(numel ?? null)}`);
    const prev = storages.get(k);
    if (prev) {
      if (prev.dtype !== type.dtype) throw bad(`storage ${k} is used both as ${prev.dtype} and ${type.dtype}`);
      return prev;
    }
    const s = new TorchStorage(k, type.dtype!, numel, typeof location === 'string' ? location : describe(location ?? null));
    storages.set(k, s);
    return s;
  };

  const call = (fn: PyValue, args: PyValue): PyValue => {
    if (!(fn instanceof PyGlobal) || fn.kind !== 'function') throw refuse(`the pickle calls ${describe(fn)}, which is not an allowed function`);
    if (!(args instanceof PyTuple)) throw bad(`arguments to ${fn.qualified} are not a tuple`);
    const a = args.items;
    switch (fn.qualified) {
      case 'collections.OrderedDict': {
        const d = new PyDict();
        if (a.length === 1 && Array.isArray(a[0])) {
          for (const pair of a[0]) {
            if (!(pair instanceof PyTuple) || pair.items.length !== 2) throw bad('OrderedDict() argument is not a list of pairs');
            d.items.set(key(pair.items[0]!), pair.items[1]!);
          }
        } else if (a.length !== 0) throw bad(`OrderedDict() with ${a.length} arguments`);
        return d;
      }
      case 'torch._utils._rebuild_tensor_v2':
        if (a.length < 6 || a.length > 7) throw bad(`_rebuild_tensor_v2 with ${a.length} arguments`);
        return rebuildTensor(a[0]!, a[1]!, a[2]!, a[3]!, undefined);
      case 'torch._utils._rebuild_tensor_v3': {
        if (a.length < 7 || a.length > 8) throw bad(`_rebuild_tensor_v3 with ${a.length} arguments`);
        const dt = a[6];
        if (!(dt instanceof PyGlobal) || dt.kind !== 'dtype') throw bad(`_rebuild_tensor_v3 dtype ${describe(dt ?? null)} is not a torch dtype`);
        return rebuildTensor(a[0]!, a[1]!, a[2]!, a[3]!, dt.dtype);
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        // A Parameter is its tensor; requires_grad, hooks and Python state do not change the weights.
        if (!(a[0] instanceof TorchTensor)) throw bad(`${fn.name} of ${describe(a[0] ?? null)}`);
        return a[0];
      case 'torch._tensor._rebuild_from_type_v2': {
        // Only the plain Tensor/Parameter types, with no Python state: anything else is a subclass we cannot honour.
        const [inner, type, innerArgs, state] = a;
        if (!(type instanceof PyGlobal) || type.kind !== 'class') throw refuse(`a tensor of type ${describe(type ?? null)} (tensor subclasses are not supported)`);
        if (state !== null && !(state instanceof PyDict && state.items.size === 0)) throw refuse('a tensor carrying Python attributes');
        return call(inner ?? null, innerArgs ?? null);
      }
      case 'torch.Size':
        if (a.length === 0) return new PyTuple([]);
        if (a.length === 1 && a[0] instanceof PyTuple) return a[0];
        throw bad('torch.Size() argument is not a tuple');
      case '_codecs.encode':
        // How protocol 2 writes Python 3 bytes: encode(str, 'latin1').
        if (a.length === 2 && typeof a[0] === 'string' && a[1] === 'latin1') return Uint8Array.from(a[0], (c) => c.charCodeAt(0) & 0xff);
        throw refuse('_codecs.encode with an encoding other than latin1');
      default:
        throw refuse(`the pickle calls ${fn.qualified}`);
    }
  };

  const ints = (v: PyValue, what: string): number[] => {
    if (!(v instanceof PyTuple)) throw bad(`tensor ${what} is not a tuple`);
    return v.items.map((x) => {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw bad(`tensor ${what} holds ${describe(x)}`);
      return x;
    });
  };
  const rebuildTensor = (storage: PyValue, offset: PyValue, size: PyValue, stride: PyValue, dtype: Dtype | undefined): TorchTensor => {
    if (!(storage instanceof TorchStorage)) throw bad(`tensor storage is ${describe(storage)}`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw bad(`tensor storage offset is ${describe(offset)}`);
    const shape = ints(size, 'size');
    const strides = ints(stride, 'stride');
    if (shape.length !== strides.length) throw bad(`tensor size has ${shape.length} dims but stride ${strides.length}`);
    return new TorchTensor(storage, dtype ?? storage.dtype, offset, shape, strides);
  };

  const build = (target: PyValue, state: PyValue) => {
    // OrderedDict.__reduce__ passes the instance __dict__ (e.g. a state dict's `_metadata`) as state.
    if (!(target instanceof PyDict)) throw refuse(`BUILD (setting state) on ${describe(target)}`);
    if (state === null) return;
    if (!(state instanceof PyDict)) throw refuse(`BUILD with a ${describe(state)} state`);
    for (const [k, v] of state.items) {
      if (typeof k !== 'string') throw bad('BUILD state with a non-string attribute name');
      target.attrs.set(k, v);
    }
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        const proto = u8();
        if (proto < 2 || proto > 5) throw refuse(`pickle protocol ${proto} (only 2–5 are read)`);
        break;
      }
      case 0x95: // FRAME: framing is a hint for buffered readers; the whole pickle is in memory.
        u64();
        break;
      case 0x2e: {
        // STOP
        const result = pop();
        if (stack.length !== 0 || marks.length !== 0) throw bad('data left on the stack at STOP');
        return result;
      }
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        if (stack.length) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(longFrom(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) throw bad('negative LONG4 length');
        stack.push(longFrom(take(n)));
        break;
      }
      case 0x49: {
        // INT (text): also how protocol 0/1 writes True/False
        const s = line();
        if (s === '01' || s === '00') stack.push(s === '01');
        else if (/^-?\d+$/.test(s)) stack.push(Number.isSafeInteger(Number(s)) ? Number(s) : BigInt(s));
        else throw bad(`INT ${JSON.stringify(s)}`);
        break;
      }
      case 0x4c: {
        // LONG (text)
        const s = line().replace(/L$/, '');
        if (!/^-?\d+$/.test(s)) throw bad(`LONG ${JSON.stringify(s)}`);
        stack.push(Number.isSafeInteger(Number(s)) ? Number(s) : BigInt(s));
        break;
      }
      case 0x47: {
        // BINFLOAT: big-endian double
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const v = Number(line());
        if (Number.isNaN(v)) throw bad('FLOAT is not a number');
        stack.push(v);
        break;
      }
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8(take(u64())));
        break;
      case 0x54: // BINSTRING (protocol 1 str): latin-1 as Python 3 reads it by default
        stack.push(Buffer.from(take(i32())).toString('latin1'));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(Buffer.from(take(u8())).toString('latin1'));
        break;
      case 0x42: // BINBYTES
        stack.push(Uint8Array.from(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(Uint8Array.from(take(u8())));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(Uint8Array.from(take(u64())));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x85: // TUPLE1
        stack.push(new PyTuple([pop()]));
        break;
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b]));
        break;
      }
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push(new PyTuple([a, b, c]));
        break;
      }
      case 0x74: {
        // TUPLE (popMark() swaps `stack`, so it must run before `stack.push` is looked up)
        const t = new PyTuple(popMark());
        stack.push(t);
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x6c: {
        // LIST
        const l = popMark();
        stack.push(l);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x64: {
        // DICT
        const d = new PyDict();
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push(new PySet());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x91: {
        // FROZENSET
        const s = new PySet();
        s.items.push(...popMark());
        stack.push(s);
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x70: {
        // PUT (text)
        const n = Number(line());
        if (!Number.isSafeInteger(n)) throw bad('PUT index');
        memo.set(n, top());
        break;
      }
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET (text)
        const n = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(n)) throw bad(`memo ${n} read before it was written (byte ${at})`);
        stack.push(memo.get(n)!);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw bad('STACK_GLOBAL with non-string names');
        stack.push(global(module, name));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(call(fn, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        build(top(), state);
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      case 0x50: // PERSID (text): torch never writes it
        throw refuse('a text persistent id (PERSID)');
      case 0x69: // INST
      case 0x6f: // OBJ
      case 0x81: // NEWOBJ
      case 0x92: // NEWOBJ_EX
        throw refuse(`object construction (${OPCODE_NAMES[op]}) at byte ${at}`);
      case 0x82:
      case 0x83:
      case 0x84:
        throw refuse(`the copyreg extension registry (${OPCODE_NAMES[op]}) at byte ${at}`);
      case 0x97:
      case 0x98:
        throw refuse(`out-of-band buffers (${OPCODE_NAMES[op]}) at byte ${at}`);
      case 0x53:
      case 0x56:
        throw refuse(`protocol-0 string opcode ${OPCODE_NAMES[op]} at byte ${at} (torch.save writes protocol 2 or later)`);
      default:
        throw bad(`unknown opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
    }
  }
}

const OPCODE_NAMES: Record<number, string> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
  0x53: 'STRING',
  0x56: 'UNICODE',
};

/** A short description of a value for messages (never its full contents). */
export function describe(v: PyValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (v instanceof PyTuple) return `a tuple of ${v.items.length}`;
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (v instanceof PyDict) return `a dict of ${v.items.size}`;
  if (v instanceof PySet) return 'a set';
  if (v instanceof PyGlobal) return v.qualified;
  if (v instanceof TorchTensor) return `a ${v.dtype} tensor [${v.shape.join(', ')}]`;
  return `storage ${v.key}`;
}

/**
 * The tensors of a loaded pickle by dotted name: a state dict at the top, or nested under keys such as
 * `state_dict`/`model` (Lightning-style checkpoints). Other values are ignored. Shared sub-structures are visited
 * once per path and cycles are cut, so a hostile pickle cannot make this walk explode.
 */
export function collectTensors(root: PyValue): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  const onPath = new Set<PyDict>();
  let visits = 0;
  const walk = (v: PyValue, prefix: string) => {
    if (v instanceof TorchTensor) {
      if (prefix) out.set(prefix, v);
      return;
    }
    if (!(v instanceof PyDict) || onPath.has(v)) return;
    if (++visits > 1_000_000) throw new EngineError('bad-checkpoint', 'checkpoint pickle nests dictionaries too deeply or too often');
    onPath.add(v);
    for (const [k, child] of v.items) {
      if (typeof k !== 'string' && typeof k !== 'number') continue;
      walk(child, prefix ? `${prefix}.${k}` : String(k));
    }
    onPath.delete(v);
  };
  walk(root, '');
  return out;
}
