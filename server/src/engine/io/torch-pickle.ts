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
import { isOpcode, OP, opName, PickleReader, type OpName } from './pickle-opcodes';

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

export type PyValue =
  null | boolean | number | bigint | string | Uint8Array | PyTuple | PyValue[] | PyDict | PySet | PyGlobal | TorchStorage | TorchTensor;

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
  if ((module === 'torch' || module === 'torch.storage') && name in STORAGE_TYPES)
    return new PyGlobal(module, name, 'storage-type', STORAGE_TYPES[name]);
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

/**
 * Budgets that bound what a hostile pickle can make us hold or compute, far above what a state dict needs (a
 * 95M-parameter model's data.pkl holds a few thousand values): container elements in total, digits of a text
 * integer, bytes of a binary integer (LONG4 is decoded in quadratic time), bytes of a text argument.
 */
export const PICKLE_LIMITS = {
  maxElements: 20_000_000,
  maxIntDigits: 4096,
  maxLongBytes: 4096,
  maxLineBytes: 65536,
} as const;

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

/** Parses a pickle into plain data; throws EngineError('unsafe-pickle' | 'bad-checkpoint') on anything else. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): PyValue {
  return new Unpickler(bytes, opts.file).run();
}

type Handler = (vm: Unpickler, op: number, at: number) => void;

/** Opcodes that would build arbitrary objects or need machinery a state dict never uses: refused by name. */
const REFUSED: { readonly [K in OpName]?: string } = {
  PERSID: 'a text persistent id (PERSID)',
  INST: 'object construction (INST)',
  OBJ: 'object construction (OBJ)',
  NEWOBJ: 'object construction (NEWOBJ)',
  NEWOBJ_EX: 'object construction (NEWOBJ_EX)',
  EXT1: 'the copyreg extension registry (EXT1)',
  EXT2: 'the copyreg extension registry (EXT2)',
  EXT4: 'the copyreg extension registry (EXT4)',
  NEXT_BUFFER: 'out-of-band buffers (NEXT_BUFFER)',
  READONLY_BUFFER: 'out-of-band buffers (READONLY_BUFFER)',
  STRING: 'protocol-0 string opcode STRING',
  UNICODE: 'protocol-0 string opcode UNICODE',
};

/** What each opcode does to the machine. Integers and strings are pushed as values; containers as PyValues. */
const HANDLERS: { readonly [K in OpName]?: Handler } = {
  PROTO: (vm) => {
    const proto = vm.r.u8();
    if (proto < 2 || proto > 5) throw vm.refuse(`pickle protocol ${proto} (only 2–5 are read)`);
  },
  FRAME: (vm) => void vm.r.u64(), // framing is a hint for buffered readers; the whole pickle is in memory
  MARK: (vm) => vm.pushMark(),
  POP: (vm) => (vm.stack.length ? void vm.stack.pop() : void vm.popMark()),
  POP_MARK: (vm) => void vm.popMark(),
  DUP: (vm) => vm.push(vm.top()),
  NONE: (vm) => vm.push(null),
  NEWTRUE: (vm) => vm.push(true),
  NEWFALSE: (vm) => vm.push(false),
  BININT: (vm) => vm.push(vm.r.i32()),
  BININT1: (vm) => vm.push(vm.r.u8()),
  BININT2: (vm) => vm.push(vm.r.u16()),
  LONG1: (vm) => vm.push(vm.long(vm.r.u8())),
  LONG4: (vm) => vm.push(vm.long(vm.r.i32())),
  INT: (vm) => {
    const s = vm.r.line(PICKLE_LIMITS.maxIntDigits);
    if (s === '01' || s === '00')
      vm.push(s === '01'); // how protocol 0/1 writes True/False
    else vm.push(vm.textInt(s, 'INT'));
  },
  LONG: (vm) => vm.push(vm.textInt(vm.r.line(PICKLE_LIMITS.maxIntDigits).replace(/L$/, ''), 'LONG')),
  BINFLOAT: (vm) => vm.push(vm.r.f64be()),
  FLOAT: (vm) => {
    const v = Number(vm.r.line(PICKLE_LIMITS.maxLineBytes));
    if (Number.isNaN(v)) throw vm.bad('FLOAT is not a number');
    vm.push(v);
  },
  BINUNICODE: (vm) => vm.push(utf8(vm.r.take(vm.r.u32()))),
  SHORT_BINUNICODE: (vm) => vm.push(utf8(vm.r.take(vm.r.u8()))),
  BINUNICODE8: (vm) => vm.push(utf8(vm.r.take(vm.r.u64()))),
  // Protocol-1 str: latin-1, as Python 3 reads it by default.
  BINSTRING: (vm) => vm.push(Buffer.from(vm.r.take(vm.r.i32())).toString('latin1')),
  SHORT_BINSTRING: (vm) => vm.push(Buffer.from(vm.r.take(vm.r.u8())).toString('latin1')),
  BINBYTES: (vm) => vm.push(Uint8Array.from(vm.r.take(vm.r.u32()))),
  SHORT_BINBYTES: (vm) => vm.push(Uint8Array.from(vm.r.take(vm.r.u8()))),
  BINBYTES8: (vm) => vm.push(Uint8Array.from(vm.r.take(vm.r.u64()))),
  BYTEARRAY8: (vm) => vm.push(Uint8Array.from(vm.r.take(vm.r.u64()))),
  EMPTY_TUPLE: (vm) => vm.push(new PyTuple([])),
  TUPLE1: (vm) => vm.push(vm.tuple(vm.popN(1))),
  TUPLE2: (vm) => vm.push(vm.tuple(vm.popN(2))),
  TUPLE3: (vm) => vm.push(vm.tuple(vm.popN(3))),
  TUPLE: (vm) => vm.push(vm.tuple(vm.popMark())),
  EMPTY_LIST: (vm) => vm.push([]),
  LIST: (vm) => vm.push(vm.count(vm.popMark())),
  APPEND: (vm) => vm.append(vm.popN(1)),
  APPENDS: (vm) => vm.append(vm.popMark()),
  EMPTY_DICT: (vm) => vm.push(new PyDict()),
  DICT: (vm) => {
    const d = new PyDict();
    vm.setItems(d, vm.popMark());
    vm.push(d);
  },
  // Pop first: the target is what is on top once the items are off the stack.
  SETITEM: (vm) => {
    const kv = vm.popN(2);
    vm.setItems(vm.top(), kv);
  },
  SETITEMS: (vm) => {
    const kv = vm.popMark();
    vm.setItems(vm.top(), kv);
  },
  EMPTY_SET: (vm) => vm.push(new PySet()),
  ADDITEMS: (vm) => vm.append(vm.popMark()),
  FROZENSET: (vm) => {
    const s = new PySet();
    pushAll(s.items, vm.count(vm.popMark()));
    vm.push(s);
  },
  BINPUT: (vm) => vm.memo.set(vm.r.u8(), vm.top()),
  LONG_BINPUT: (vm) => vm.memo.set(vm.r.u32(), vm.top()),
  MEMOIZE: (vm) => vm.memo.set(vm.memo.size, vm.top()),
  PUT: (vm) => {
    const n = Number(vm.r.line(PICKLE_LIMITS.maxIntDigits));
    if (!Number.isSafeInteger(n)) throw vm.bad('PUT index');
    vm.memo.set(n, vm.top());
  },
  BINGET: (vm, _op, at) => vm.get(vm.r.u8(), at),
  LONG_BINGET: (vm, _op, at) => vm.get(vm.r.u32(), at),
  GET: (vm, _op, at) => vm.get(Number(vm.r.line(PICKLE_LIMITS.maxIntDigits)), at),
  GLOBAL: (vm) => {
    const module = vm.r.line(PICKLE_LIMITS.maxLineBytes);
    const name = vm.r.line(PICKLE_LIMITS.maxLineBytes);
    vm.push(resolveGlobal(module, name, vm.file));
  },
  STACK_GLOBAL: (vm) => {
    const [module, name] = vm.popN(2);
    if (typeof module !== 'string' || typeof name !== 'string') throw vm.bad('STACK_GLOBAL with non-string names');
    vm.push(resolveGlobal(module, name, vm.file));
  },
  REDUCE: (vm) => {
    const [fn, args] = vm.popN(2);
    vm.push(vm.call(fn!, args!));
  },
  BUILD: (vm) => {
    const [state] = vm.popN(1);
    vm.build(vm.top(), state!);
  },
  BINPERSID: (vm) => vm.push(vm.persistentLoad(vm.popN(1)[0]!)),
};

/** HANDLERS indexed by opcode byte, for dispatch without a name lookup per opcode. */
const DISPATCH: (Handler | undefined)[] = Array.from({ length: 256 }, (_, code) =>
  isOpcode(code) ? HANDLERS[opName(code) as OpName] : undefined,
);

/** The machine: a stack with marks, a memo, and the storages met so far. One instance per pickle. */
class Unpickler {
  readonly r: PickleReader;
  stack: StackItem[] = [];
  private readonly marks: StackItem[][] = [];
  readonly memo = new Map<number, PyValue>();
  private readonly storages = new Map<string, TorchStorage>();
  private elements = 0;

  constructor(
    bytes: Uint8Array,
    readonly file: string,
  ) {
    this.r = new PickleReader(bytes, (why) => this.bad(why));
  }

  run(): PyValue {
    for (;;) {
      const at = this.r.pos;
      const op = this.r.u8();
      if (op === OP.STOP) {
        const result = this.popN(1)[0]!;
        if (this.stack.length !== 0 || this.marks.length !== 0) throw this.bad('data left on the stack at STOP');
        return result;
      }
      const handler = DISPATCH[op];
      if (handler) {
        handler(this, op, at);
        continue;
      }
      const name = opName(op) as OpName;
      const refused = isOpcode(op) ? REFUSED[name] : undefined;
      if (refused)
        throw this.refuse(
          `${refused} at byte ${at}${name === 'STRING' || name === 'UNICODE' ? ' (torch.save writes protocol 2 or later)' : ''}`,
        );
      throw this.bad(`unknown opcode ${opName(op)} at byte ${at}`);
    }
  }

  bad(why: string): EngineError {
    return new EngineError('bad-checkpoint', `${this.file}: corrupt pickle: ${why}`, this.file);
  }

  refuse(what: string): EngineError {
    return new EngineError('unsafe-pickle', `${this.file}: refused to load: ${what} (nothing in the file was executed)`, this.file);
  }

  push(v: PyValue): void {
    this.stack.push(v);
  }

  top(): PyValue {
    const v = this.stack[this.stack.length - 1];
    if (v === undefined || v === MARK) throw this.bad(`empty stack at byte ${this.r.pos}`);
    return v;
  }

  /** The top `n` values, in stack order. */
  popN(n: number): PyValue[] {
    if (this.stack.length < n) throw this.bad(`stack underflow at byte ${this.r.pos}`);
    const items = this.stack.splice(this.stack.length - n, n);
    if (items.includes(MARK)) throw this.bad(`unexpected mark at byte ${this.r.pos}`);
    return items as PyValue[];
  }

  pushMark(): void {
    this.marks.push(this.stack);
    this.stack = [];
  }

  /** Everything pushed since the last MARK (a fresh array the caller may keep), restoring the stack below it. */
  popMark(): PyValue[] {
    const items = this.stack as PyValue[];
    const prev = this.marks.pop();
    if (!prev) throw this.bad(`no mark at byte ${this.r.pos}`);
    this.stack = prev;
    return items;
  }

  /** Counts container elements against the budget. */
  count<T extends PyValue[]>(items: T): T {
    this.elements += items.length;
    if (this.elements > PICKLE_LIMITS.maxElements) {
      throw this.bad(`more than ${PICKLE_LIMITS.maxElements} container elements (a state dict holds a few thousand)`);
    }
    return items;
  }

  tuple(items: PyValue[]): PyTuple {
    return new PyTuple(this.count(items));
  }

  long(n: number): number | bigint {
    if (n < 0) throw this.bad('negative LONG4 length');
    if (n > PICKLE_LIMITS.maxLongBytes)
      throw this.bad(`a ${n}-byte integer at byte ${this.r.pos} (at most ${PICKLE_LIMITS.maxLongBytes} are read)`);
    return longFrom(this.r.take(n));
  }

  textInt(s: string, what: string): number | bigint {
    if (!/^-?\d+$/.test(s)) throw this.bad(`${what} ${JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}…` : s)}`);
    return Number.isSafeInteger(Number(s)) ? Number(s) : BigInt(s);
  }

  get(n: number, at: number): void {
    if (!this.memo.has(n)) throw this.bad(`memo ${n} read before it was written (byte ${at})`);
    this.push(this.memo.get(n)!);
  }

  key(k: PyValue): PyKey {
    if (k === null || typeof k === 'string' || typeof k === 'number' || typeof k === 'bigint' || typeof k === 'boolean') return k;
    throw this.bad(`unsupported dict key (${describe(k)}) at byte ${this.r.pos}`);
  }

  setItems(target: PyValue, kv: PyValue[]): void {
    if (!(target instanceof PyDict)) throw this.bad(`SETITEM on ${describe(target)} at byte ${this.r.pos}`);
    if (kv.length % 2) throw this.bad(`odd number of items for SETITEMS at byte ${this.r.pos}`);
    this.count(kv);
    for (let i = 0; i < kv.length; i += 2) target.items.set(this.key(kv[i]!), kv[i + 1]!);
  }

  /** APPEND(S)/ADDITEMS onto the list or set on top of the stack; element by element (a spread of millions overflows the call stack). */
  append(items: PyValue[]): void {
    const target = this.top();
    this.count(items);
    if (Array.isArray(target)) pushAll(target, items);
    else if (target instanceof PySet) pushAll(target.items, items);
    else throw this.bad(`APPEND on ${describe(target)} at byte ${this.r.pos}`);
  }

  persistentLoad(pid: PyValue): TorchStorage {
    const t = pid instanceof PyTuple ? pid.items : undefined;
    if (!t || t[0] !== 'storage' || t.length !== 5) throw this.refuse(`persistent id ${describe(pid)} is not a torch storage reference`);
    const [, type, k, location, numel] = t;
    if (!(type instanceof PyGlobal) || type.kind !== 'storage-type')
      throw this.refuse(`storage type ${describe(type ?? null)} is not a known torch storage type`);
    if (typeof k !== 'string' || !/^[A-Za-z0-9_]+$/.test(k)) throw this.bad(`storage key ${describe(k ?? null)} is not a plain name`);
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0)
      throw this.bad(`storage ${k} has an invalid size ${describe(numel ?? null)}`);
    const prev = this.storages.get(k);
    if (prev) {
      if (prev.dtype !== type.dtype) throw this.bad(`storage ${k} is used both as ${prev.dtype} and ${type.dtype}`);
      return prev;
    }
    const s = new TorchStorage(k, type.dtype!, numel, typeof location === 'string' ? location : describe(location ?? null));
    this.storages.set(k, s);
    return s;
  }

  /** REDUCE: only the allow-listed functions, each interpreted here as data (nothing is called). */
  call(fn: PyValue, args: PyValue): PyValue {
    if (!(fn instanceof PyGlobal) || fn.kind !== 'function')
      throw this.refuse(`the pickle calls ${describe(fn)}, which is not an allowed function`);
    if (!(args instanceof PyTuple)) throw this.bad(`arguments to ${fn.qualified} are not a tuple`);
    const a = args.items;
    switch (fn.qualified) {
      case 'collections.OrderedDict': {
        const d = new PyDict();
        if (a.length === 1 && Array.isArray(a[0])) {
          for (const pair of a[0]) {
            if (!(pair instanceof PyTuple) || pair.items.length !== 2) throw this.bad('OrderedDict() argument is not a list of pairs');
            d.items.set(this.key(pair.items[0]!), pair.items[1]!);
          }
        } else if (a.length !== 0) throw this.bad(`OrderedDict() with ${a.length} arguments`);
        return d;
      }
      case 'torch._utils._rebuild_tensor_v2':
        if (a.length < 6 || a.length > 7) throw this.bad(`_rebuild_tensor_v2 with ${a.length} arguments`);
        return this.rebuildTensor(a[0]!, a[1]!, a[2]!, a[3]!, undefined);
      case 'torch._utils._rebuild_tensor_v3': {
        if (a.length < 7 || a.length > 8) throw this.bad(`_rebuild_tensor_v3 with ${a.length} arguments`);
        const dt = a[6];
        if (!(dt instanceof PyGlobal) || dt.kind !== 'dtype')
          throw this.bad(`_rebuild_tensor_v3 dtype ${describe(dt ?? null)} is not a torch dtype`);
        return this.rebuildTensor(a[0]!, a[1]!, a[2]!, a[3]!, dt.dtype);
      }
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        // A Parameter is its tensor; requires_grad, hooks and Python state do not change the weights.
        if (!(a[0] instanceof TorchTensor)) throw this.bad(`${fn.name} of ${describe(a[0] ?? null)}`);
        return a[0];
      case 'torch._tensor._rebuild_from_type_v2': {
        // Only the plain Tensor/Parameter types, with no Python state: anything else is a subclass we cannot honour.
        const [inner, type, innerArgs, state] = a;
        if (!(type instanceof PyGlobal) || type.kind !== 'class')
          throw this.refuse(`a tensor of type ${describe(type ?? null)} (tensor subclasses are not supported)`);
        if (state !== null && !(state instanceof PyDict && state.items.size === 0))
          throw this.refuse('a tensor carrying Python attributes');
        if (inner instanceof PyGlobal && inner.qualified === fn.qualified) throw this.refuse('a nested _rebuild_from_type_v2');
        return this.call(inner ?? null, innerArgs ?? null);
      }
      case 'torch.Size':
        if (a.length === 0) return new PyTuple([]);
        if (a.length === 1 && a[0] instanceof PyTuple) return a[0];
        throw this.bad('torch.Size() argument is not a tuple');
      case '_codecs.encode':
        // How protocol 2 writes Python 3 bytes: encode(str, 'latin1').
        if (a.length === 2 && typeof a[0] === 'string' && a[1] === 'latin1') return Uint8Array.from(a[0], (c) => c.charCodeAt(0) & 0xff);
        throw this.refuse('_codecs.encode with an encoding other than latin1');
      default:
        throw this.refuse(`the pickle calls ${fn.qualified}`);
    }
  }

  private ints(v: PyValue, what: string): number[] {
    if (!(v instanceof PyTuple)) throw this.bad(`tensor ${what} is not a tuple`);
    return v.items.map((x) => {
      if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) throw this.bad(`tensor ${what} holds ${describe(x)}`);
      return x;
    });
  }

  private rebuildTensor(storage: PyValue, offset: PyValue, size: PyValue, stride: PyValue, dtype: Dtype | undefined): TorchTensor {
    if (!(storage instanceof TorchStorage)) throw this.bad(`tensor storage is ${describe(storage)}`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
      throw this.bad(`tensor storage offset is ${describe(offset)}`);
    const shape = this.ints(size, 'size');
    const strides = this.ints(stride, 'stride');
    if (shape.length !== strides.length) throw this.bad(`tensor size has ${shape.length} dims but stride ${strides.length}`);
    return new TorchTensor(storage, dtype ?? storage.dtype, offset, shape, strides);
  }

  /** BUILD: OrderedDict.__reduce__ passes the instance __dict__ (e.g. a state dict's `_metadata`) as state. */
  build(target: PyValue, state: PyValue): void {
    if (!(target instanceof PyDict)) throw this.refuse(`BUILD (setting state) on ${describe(target)}`);
    if (state === null) return;
    if (!(state instanceof PyDict)) throw this.refuse(`BUILD with a ${describe(state)} state`);
    for (const [k, v] of state.items) {
      if (typeof k !== 'string') throw this.bad('BUILD state with a non-string attribute name');
      target.attrs.set(k, v);
    }
  }
}

function pushAll<T>(target: T[], items: readonly T[]): void {
  for (let i = 0; i < items.length; i++) target.push(items[i]!);
}

function utf8(b: Uint8Array): string {
  return Buffer.from(b).toString('utf8');
}

/** Little-endian two's-complement integer of any width (LONG1/LONG4). */
function longFrom(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

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
 * `state_dict`/`model` (Lightning-style checkpoints). Other values are ignored. The walk is iterative (no recursion
 * depth to exhaust), cycles are cut, and visits are bounded, so a hostile pickle cannot make it explode.
 */
export function collectTensors(root: PyValue, file?: string): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  const onPath = new Set<PyDict>();
  let visits = 0;
  // Depth-first in insertion order; `leave` entries take a dict off the current path once its children are done.
  const todo: ({ value: PyValue; prefix: string } | { leave: PyDict })[] = [{ value: root, prefix: '' }];
  while (todo.length) {
    const item = todo.pop()!;
    if ('leave' in item) {
      onPath.delete(item.leave);
      continue;
    }
    const { value: v, prefix } = item;
    if (v instanceof TorchTensor) {
      if (prefix) out.set(prefix, v);
      continue;
    }
    if (!(v instanceof PyDict) || onPath.has(v)) continue;
    if (++visits > 1_000_000) {
      throw new EngineError(
        'bad-checkpoint',
        `${file ? `${file}: ` : ''}checkpoint pickle nests dictionaries too deeply or too often`,
        file,
      );
    }
    onPath.add(v);
    todo.push({ leave: v });
    const children: { value: PyValue; prefix: string }[] = [];
    for (const [k, child] of v.items) {
      if (typeof k !== 'string' && typeof k !== 'number') continue;
      children.push({ value: child, prefix: prefix ? `${prefix}.${k}` : String(k) });
    }
    for (let i = children.length - 1; i >= 0; i--) todo.push(children[i]!);
  }
  return out;
}
