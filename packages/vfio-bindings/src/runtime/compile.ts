// Turns a struct's field table into straight-line read/write functions, once
// per struct (on first use). The interpreted loop over the table dispatched on
// the scalar type per field and built an error label per element; the
// compiled form does one DataView call and one inline range test per scalar
// and leaves every error to the same checkScalar/rename code as before, which
// only runs when the inline test fails.
//
// Code generation is kept auditable: the only things spliced into source text
// are field names (checked to be identifiers in codec.ts and emitted through
// JSON.stringify), integer offsets, array indices and the fixed snippets below.
// Everything else (nested codecs, error paths) is passed in as arguments.
import { bindingsRangeError, bindingsTypeError } from './errors';
import { checkScalar, describe, LITTLE_ENDIAN, SCALAR_SIZE, type ScalarType } from './scalars';

export type Reader = (view: DataView, base: number) => Record<string, unknown>;
export type Writer = (view: DataView, base: number, value: Record<string, unknown>) => void;

/** A nested struct as the compiler needs it: its own compiled functions and its object check. */
export interface Nested {
  readonly name: string;
  checkValue(value: unknown): asserts value is Record<string, unknown>;
  compiled(): Compiled;
}

export interface LayoutField {
  readonly name: string;
  readonly offset: number;
  readonly element: ScalarType | Nested;
  /** 0 plain, -1 flexible, n array. */
  readonly arrayLength: number;
  readonly elemSize: number;
  readonly union?: unknown;
}

export interface Compiled {
  readonly read: Reader;
  readonly write: Writer;
  /** Reads n elements of the flexible array starting at `at`. */
  readonly readFlex: (view: DataView, at: number, n: number) => unknown[];
  /** value.<flexible array> and value.<its count field>: one monomorphic load each instead of value[name]. */
  readonly flexOf: (value: Record<string, unknown>) => unknown;
  readonly countOf: (value: Record<string, unknown>) => unknown;
}

const GET: Record<ScalarType, string> = {
  u8: 'getUint8', s8: 'getInt8', u16: 'getUint16', s16: 'getInt16', u32: 'getUint32', s32: 'getInt32', u64: 'getBigUint64', s64: 'getBigInt64',
};
const SET: Record<ScalarType, string> = {
  u8: 'setUint8', s8: 'setInt8', u16: 'setUint16', s16: 'setInt16', u32: 'setUint32', s32: 'setInt32', u64: 'setBigUint64', s64: 'setBigInt64',
};
// True when x is NOT already a valid value of the type. typeof comes first so
// that the bit operators never see (and never call valueOf on) a non-number.
const MISFIT: Record<ScalarType, string> = {
  u8: 'typeof x !== "number" || (x & 255) !== x',
  s8: 'typeof x !== "number" || (x << 24 >> 24) !== x',
  u16: 'typeof x !== "number" || (x & 65535) !== x',
  s16: 'typeof x !== "number" || (x << 16 >> 16) !== x',
  u32: 'typeof x !== "number" || (x >>> 0) !== x',
  s32: 'typeof x !== "number" || (x | 0) !== x',
  u64: 'typeof x !== "bigint" || BigInt.asUintN(64, x) !== x',
  s64: 'typeof x !== "bigint" || BigInt.asIntN(64, x) !== x',
};

const isArrayLike = (v: unknown): v is ArrayLike<unknown> => Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
const isScalar = (e: ScalarType | Nested): e is ScalarType => typeof e === 'string';

// One compiled accessor per scalar type for array elements, shared by all structs.
const build = <F>(params: string[], body: string): F => new Function(...params, body)() as F;
const elemGet = new Map<ScalarType, (v: DataView, at: number) => unknown>();
const elemFits = new Map<ScalarType, (x: unknown) => boolean>();
const elemSet = new Map<ScalarType, (v: DataView, at: number, x: unknown) => void>();
for (const t of Object.keys(SCALAR_SIZE) as ScalarType[]) {
  const le = SCALAR_SIZE[t] > 1 ? `, ${LITTLE_ENDIAN}` : '';
  elemGet.set(t, build([], `return function (v, at) { return v.${GET[t]}(at${le}); };`));
  elemFits.set(t, build([], `return function (x) { return !(${MISFIT[t]}); };`));
  elemSet.set(t, build([], `return function (v, at, x) { v.${SET[t]}(at, x${le}); };`));
}

/** Rewrites an inner struct's error to name the path from the outer one: vfio_region_info_cap_sparse_mmap.areas[1].size. */
export function rename(e: unknown, struct: string, label: string, innerName: string): unknown {
  const err = e as { struct?: string; field?: string; message?: string };
  if (err && err.struct === innerName && typeof err.message === 'string' && typeof err.field === 'string') {
    const field = err.field === '(value)' ? label : `${label}.${err.field}`;
    err.message = `${struct}.${field}: ${err.message.slice(`${innerName}.${err.field}: `.length)}`;
    err.struct = struct;
    err.field = field;
  }
  return e;
}

type ElemReader = (v: DataView, at: number) => unknown;
type ElemWriter = (v: DataView, at: number, x: unknown, index: number) => void;

function elementReader(f: LayoutField): ElemReader {
  return isScalar(f.element) ? elemGet.get(f.element)! : f.element.compiled().read;
}

/** Writes one array element; the label `field[i]` is built only when there is an error to report. */
function elementWriter(struct: string, f: LayoutField): ElemWriter {
  const e = f.element;
  if (isScalar(e)) {
    const fits = elemFits.get(e)!;
    const set = elemSet.get(e)!;
    return (v, at, x, i) => set(v, at, fits(x) ? x : checkScalar(e, x, struct, `${f.name}[${i}]`));
  }
  const inner: Nested = e;
  const write = inner.compiled().write;
  return (v, at, x, i) => {
    try {
      inner.checkValue(x);
      write(v, at, x);
    } catch (err) {
      throw rename(err, struct, `${f.name}[${i}]`, inner.name);
    }
  };
}

function arrayReader(f: LayoutField): ElemReader {
  const one = elementReader(f);
  const n = f.arrayLength;
  const step = f.elemSize;
  return (v, at) => {
    const a = new Array(n);
    for (let i = 0; i < n; i++) a[i] = one(v, at + i * step);
    return a;
  };
}

/** A fixed array member (max = its length) or the flexible array (max = Infinity). */
function arrayWriter(struct: string, f: LayoutField, max: number): (v: DataView, at: number, x: unknown) => void {
  const one = elementWriter(struct, f);
  const step = f.elemSize;
  return (v, at, x) => {
    if (!isArrayLike(x)) {
      throw bindingsTypeError(struct, f.name, max === Infinity ? `expected an array, got ${describe(x)}` : `expected an array of ${max}, got ${describe(x)}`);
    }
    if (x.length > max) throw bindingsRangeError(struct, f.name, `${x.length} elements given, the array holds ${max}`);
    for (let i = 0; i < x.length; i++) one(v, at + i * step, x[i], i);
  };
}

function nestedWriter(struct: string, f: LayoutField, inner: Nested): (v: DataView, at: number, x: unknown) => void {
  const write = inner.compiled().write;
  return (v, at, x) => {
    try {
      inner.checkValue(x);
      write(v, at, x);
    } catch (err) {
      throw rename(err, struct, f.name, inner.name);
    }
  };
}

/**
 * Compiles a struct. `checkUnions(view, base, givenIndices, value)` is called
 * when two or more union members were given, to check they agree.
 */
export function compileStruct(
  struct: string,
  fixed: readonly LayoutField[],
  flex: LayoutField | undefined,
  countField: string | undefined,
  checkUnions: (view: DataView, base: number, given: number[], value: Record<string, unknown>) => void,
): Compiled {
  const helpers: unknown[] = []; // H[k] in the generated code
  const helper = (h: unknown) => helpers.push(h) - 1;
  const reads: string[] = [];
  const writes: string[] = [];
  fixed.forEach((f, i) => {
    const key = JSON.stringify(f.name);
    const at = `b + ${f.offset}`;
    const track = f.union ? `(g || (g = [])).push(${i}); ` : '';
    const e = f.element;
    if (f.arrayLength === 0 && isScalar(e)) {
      const le = SCALAR_SIZE[e] > 1 ? ', le' : '';
      reads.push(`${key}: v.${GET[e]}(${at}${le})`);
      const chk = helper((x: unknown) => checkScalar(e, x, struct, f.name));
      writes.push(`x = o[${key}]; if (x !== undefined) { ${track}if (${MISFIT[e]}) x = H[${chk}](x); v.${SET[e]}(${at}, x${le}); }`);
    } else {
      const r = helper(f.arrayLength === 0 ? (e as Nested).compiled().read : arrayReader(f));
      const w = helper(f.arrayLength === 0 ? nestedWriter(struct, f, e as Nested) : arrayWriter(struct, f, f.arrayLength));
      reads.push(`${key}: H[${r}](v, ${at})`);
      writes.push(`x = o[${key}]; if (x !== undefined) { ${track}H[${w}](v, ${at}, x); }`);
    }
  });
  if (flex) {
    const w = helper(arrayWriter(struct, flex, Infinity));
    writes.push(`x = o[${JSON.stringify(flex.name)}]; if (x !== undefined) H[${w}](v, b + ${flex.offset}, x);`);
  }
  const u = helper(checkUnions);
  const factory = new Function(
    'le',
    'H',
    `"use strict";
return {
  read: function (v, b) { return { ${reads.join(', ')} }; },
  write: function (v, b, o) {
    let x, g = null;
    ${writes.join('\n    ')}
    if (g !== null && g.length > 1) H[${u}](v, b, g, o);
  },
  flexOf: function (o) { return ${flex ? `o[${JSON.stringify(flex.name)}]` : 'undefined'}; },
  countOf: function (o) { return ${countField ? `o[${JSON.stringify(countField)}]` : 'undefined'}; },
};`,
  );
  const { read, write, flexOf, countOf } = factory(LITTLE_ENDIAN, helpers) as Omit<Compiled, 'readFlex'>;
  let readFlex: Compiled['readFlex'] = () => [];
  if (flex) {
    const one = elementReader(flex);
    const step = flex.elemSize;
    readFlex = (v, at, n) => {
      const items = new Array(n);
      for (let i = 0; i < n; i++) items[i] = one(v, at + i * step);
      return items;
    };
  }
  return { read, write, readFlex, flexOf, countOf };
}
