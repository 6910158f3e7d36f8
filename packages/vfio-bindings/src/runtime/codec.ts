import { checkBytes, checkCount, checkOffset, viewOf } from './bytes';
import { bindingsRangeError, bindingsTypeError } from './errors';
import { compileStruct, type Compiled, type LayoutField, type Nested } from './compile';
import { checkScalar, describe, isScalarType, readScalar, SCALAR_SIZE, type ScalarType, writeScalar } from './scalars';

/** What encode accepts for a decoded type T: every field optional (zero when missing), 64-bit fields also as safe-integer numbers. */
export type EncodeInput<T> = 0 extends 1 & T ? any : { [K in keyof T]?: EncodeValue<T[K]> }; // StructCodec<any> takes anything
export type EncodeValue<V> = [V] extends [bigint]
  ? bigint | number
  : [V] extends [number]
    ? number
    : V extends readonly (infer E)[]
      ? readonly EncodeValue<E>[]
      : V extends object
        ? EncodeInput<V>
        : V;

export interface DecodeOptions {
  /** Elements of the flexible array member to decode when the struct holds no count for it. */
  flexCount?: number;
}

/** Anything with a fixed size that can be packed into and read from bytes: a struct codec or a scalar. */
export interface ElementCodec<T, In = EncodeValue<T>> {
  readonly name: string;
  readonly size: number;
  readonly align: number;
  encode(value: In, target?: Uint8Array, offset?: number): Uint8Array;
  decode(bytes: Uint8Array, offset?: number): T;
}

export interface FieldInfo {
  readonly name: string;
  readonly offset: number;
  /** Bytes the member occupies; 0 for a flexible array member. */
  readonly size: number;
  /** The C type as written in the header, with the array dimension: "__u32", "struct vfio_iova_range[]". */
  readonly type: string;
  /** Scalar kind, or the codec of a nested struct/union. */
  readonly element: ScalarType | StructCodec<any>;
  /** Array length; undefined for a plain member, 'flexible' for a flexible array member. */
  readonly count?: number | 'flexible';
  /** [unionId, alternative] pairs: members of the same union id but another alternative share bytes. */
  readonly union?: readonly (readonly [number, number])[];
}

export interface FlexInfo {
  readonly field: string;
  readonly element: ElementCodec<any, any>;
  /** The member that counts the elements, when the struct has one. */
  readonly countField?: string;
}

export interface PointerArrayInfo {
  /** The __u64 member that holds the user address of the array. */
  readonly field: string;
  readonly countField: string;
  readonly element: StructCodec<any>;
}

export interface StructCodec<T> extends ElementCodec<T, EncodeInput<T>> {
  readonly kind: 'struct' | 'union';
  /** sizeof, without any flexible array elements. */
  readonly size: number;
  readonly align: number;
  readonly fields: readonly FieldInfo[];
  readonly flex?: FlexInfo;
  readonly pointerArrays?: readonly PointerArrayInfo[];
  /** Byte offset of a member; nested members as "header.next". */
  offsetOf(field: (keyof T & string) | string): number;
  /** Bytes encode(value) produces: size plus the flexible array elements given. */
  encodedSize(value: EncodeInput<T>): number;
  encode(value: EncodeInput<T>, target?: Uint8Array, offset?: number): Uint8Array;
  decode(bytes: Uint8Array, offset?: number, options?: DecodeOptions): T;
}

/** [name, offset, element, ctype, count (0 plain, -1 flexible, n array), union "id:alt,..."] as the generator writes it. */
export type FieldRow = readonly [string, number, ScalarType | StructCodec<any>, string, number?, string?];

export interface StructExtras {
  countField?: string;
  pointerArrays?: readonly { field: string; countField: string; element: () => StructCodec<any> }[];
}

const scalarCodecs = new Map<ScalarType, ElementCodec<number | bigint>>();

/** A codec for one scalar, used as the element of scalar flexible arrays. */
export function scalarCodec(type: ScalarType): ElementCodec<number | bigint> {
  let c = scalarCodecs.get(type);
  if (!c) {
    const size = SCALAR_SIZE[type];
    c = Object.freeze({
      name: type,
      size,
      align: size,
      encode(value: unknown, target?: Uint8Array, offset = 0) {
        const v = checkScalar(type, value, type, 'value');
        const out = target ?? new Uint8Array(size);
        checkTarget(out, offset, size, type, 'value');
        writeScalar(viewOf(out), offset, type, v);
        return out;
      },
      decode(bytes: Uint8Array, offset = 0) {
        checkBytes(bytes, type, 'value');
        checkOffset(offset, type, 'value');
        if (offset + size > bytes.length) throw bindingsRangeError(type, 'value', `needs ${size} bytes at offset ${offset}, buffer has ${bytes.length}`);
        return readScalar(viewOf(bytes), offset, type);
      },
    });
    scalarCodecs.set(type, c);
  }
  return c;
}

function checkTarget(target: unknown, offset: unknown, need: number, struct: string, field: string): asserts target is Uint8Array {
  checkBytes(target, struct, field);
  checkOffset(offset, struct, field);
  if (offset + need > target.length) {
    throw bindingsRangeError(struct, field, `target too short: needs ${need} bytes at offset ${offset}, target has ${target.length}`);
  }
}

interface Field extends FieldInfo {
  readonly arrayLength: number; // 0 plain, -1 flexible, n array
  readonly elemSize: number;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);

const isArrayLike = (v: unknown): v is ArrayLike<unknown> => Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));

// Field names become object keys in compiled code (see compile.ts), so they
// must be C identifiers; '__proto__' would set the prototype instead.
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

class Codec<T> implements StructCodec<T>, Nested {
  readonly fields: readonly Field[];
  readonly flex?: FlexInfo;
  readonly pointerArrays?: readonly PointerArrayInfo[];
  private readonly byName: ReadonlyMap<string, Field>;
  private readonly fixed: readonly Field[];
  private readonly flexField?: Field;
  // The scalar member that counts the flexible array's elements, if any.
  private readonly countField?: Field;
  private readonly countType?: ScalarType;
  // Compiled on first use (the object stays mutable although the codec is frozen).
  private readonly impl: { c?: Compiled } = {};

  constructor(
    readonly name: string,
    readonly kind: 'struct' | 'union',
    readonly size: number,
    readonly align: number,
    rows: readonly FieldRow[],
    extras: StructExtras,
  ) {
    this.fields = rows.map(([fname, offset, element, ctype, count = 0, union = '']) => {
      if (!IDENTIFIER.test(fname) || fname === '__proto__') throw bindingsTypeError(name, String(fname), 'field name must be a C identifier');
      checkOffset(offset, name, fname);
      const elemSize = isScalarType(element) ? SCALAR_SIZE[element] : element.size;
      const info: Field = {
        name: fname,
        offset,
        size: count === -1 ? 0 : elemSize * Math.max(count, 1),
        type: count === -1 ? `${ctype}[]` : count > 0 ? `${ctype}[${count}]` : ctype,
        element,
        count: count === -1 ? 'flexible' : count > 0 ? count : undefined,
        union: union ? union.split(',').map((p) => p.split(':').map(Number) as unknown as readonly [number, number]) : undefined,
        arrayLength: count,
        elemSize,
      };
      return Object.freeze(info);
    });
    Object.freeze(this.fields);
    this.byName = new Map(this.fields.map((f) => [f.name, f]));
    this.fixed = this.fields.filter((f) => f.arrayLength !== -1);
    this.flexField = this.fields.find((f) => f.arrayLength === -1);
    if (extras.countField !== undefined) {
      const cf = this.byName.get(extras.countField);
      if (!cf) throw bindingsTypeError(name, String(extras.countField), 'count field is not a member');
      // encode compares it with the array length and fills it in.
      if (!isScalarType(cf.element) || cf.arrayLength !== 0) throw bindingsTypeError(name, cf.name, 'count field must be a plain scalar member');
      this.countField = cf;
      this.countType = cf.element;
    }
    if (this.flexField) {
      const f = this.flexField;
      this.flex = Object.freeze({
        field: f.name,
        element: isScalarType(f.element) ? scalarCodec(f.element) : f.element,
        ...(extras.countField ? { countField: extras.countField } : {}),
      });
    }
    if (extras.pointerArrays) {
      // Elements are looked up lazily: the header may define them after this struct.
      this.pointerArrays = extras.pointerArrays.map((p) =>
        Object.freeze({ field: p.field, countField: p.countField, get element() { return p.element(); } }),
      );
    }
    Object.freeze(this);
  }

  compiled(): Compiled {
    return (this.impl.c ??= compileStruct(this.name, this.fixed as readonly LayoutField[], this.flexField as LayoutField | undefined, this.flex?.countField, (view, base, given, value) =>
      this.checkUnions(view, base, given.map((i) => this.fixed[i]), value),
    ));
  }

  offsetOf(path: string): number {
    let codec: Codec<any> = this;
    let offset = 0;
    for (const part of String(path).split('.')) {
      const f = codec.byName.get(part);
      if (!f) throw bindingsRangeError(codec.name, part, `no such field`);
      offset += f.offset;
      if (isScalarType(f.element) || f.arrayLength !== 0) {
        if (part !== String(path).split('.').pop()) throw bindingsRangeError(codec.name, part, 'is not a struct');
        return offset;
      }
      codec = f.element as Codec<any>;
    }
    return offset;
  }

  private flexItems(value: Record<string, unknown>): ArrayLike<unknown> | undefined {
    const f = this.flexField;
    if (!f) return undefined;
    const items = this.compiled().flexOf(value);
    if (items === undefined) return undefined;
    if (!isArrayLike(items)) throw bindingsTypeError(this.name, f.name, `expected an array, got ${describe(items)}`);
    return items;
  }

  checkValue(value: unknown): asserts value is Record<string, unknown> {
    if (!isPlainObject(value)) throw bindingsTypeError(this.name, '(value)', `expected an object, got ${describe(value)}`);
    for (const k of Object.keys(value)) {
      if (!this.byName.has(k)) throw bindingsTypeError(this.name, k, 'no such field');
    }
  }

  encodedSize(value: EncodeInput<T>): number {
    this.checkValue(value);
    this.countToFill(value);
    return this.extent(value);
  }

  /**
   * A count field given together with its flexible array must equal the
   * array's length: otherwise the bytes would not decode (too many elements
   * claimed) or would silently lose elements (too few). A count left out is
   * taken from the array; this returns that value to write, or undefined
   * when there is nothing to fill in. Runs before anything is written, so a
   * target is left untouched.
   */
  private countToFill(value: Record<string, unknown>): number | bigint | undefined {
    const cf = this.countField;
    if (!cf) return undefined;
    const items = this.flexItems(value);
    if (items === undefined) return undefined; // a header alone: elements may follow separately
    const n = items.length;
    const flex = this.flexField!.name;
    const count = this.compiled().countOf(value);
    if (count === undefined) {
      const type = this.countType!;
      const max = 2 ** (SCALAR_SIZE[type] * 8 - (type[0] === 's' ? 1 : 0)) - 1;
      if (n > max) throw bindingsRangeError(this.name, cf.name, `${flex} has ${n} elements, more than ${cf.name} (${type}) can count`);
      return SCALAR_SIZE[type] === 8 ? BigInt(n) : n;
    }
    // The field's own check first: a count of the wrong type is a TypeError, not a disagreement.
    if (Number(checkScalar(this.countType!, count, this.name, cf.name)) !== n) {
      throw bindingsRangeError(this.name, cf.name, `${cf.name} is ${count} but ${flex} has ${n} element${n === 1 ? '' : 's'}; give matching values or leave ${cf.name} out to have it filled in`);
    }
    return undefined;
  }

  /** encodedSize of a value already checked (or decoded by this codec). */
  extent(value: Record<string, unknown>): number {
    const items = this.flexItems(value);
    if (!items) return this.size;
    return Math.max(this.size, this.flexField!.offset + items.length * this.flexField!.elemSize);
  }

  encode(value: EncodeInput<T>, target?: Uint8Array, offset = 0): Uint8Array {
    this.checkValue(value);
    const fill = this.countToFill(value);
    const total = this.extent(value);
    let out: Uint8Array;
    if (target === undefined) {
      out = new Uint8Array(total);
      offset = 0;
    } else {
      checkTarget(target, offset, total, this.name, '(target)');
      out = target;
      out.fill(0, offset, offset + total); // padding and missing fields are zero
    }
    const view = viewOf(out);
    this.write(view, offset, value as Record<string, unknown>);
    if (fill !== undefined) writeScalar(view, offset + this.countField!.offset, this.countType!, fill);
    return out;
  }

  /** Writes into zeroed bytes; value already checked to be an object. */
  write(view: DataView, base: number, value: Record<string, unknown>): void {
    this.compiled().write(view, base, value);
  }

  // Members of one union that were both given must agree on the bytes they
  // share; otherwise the later one silently overwrote the first.
  private checkUnions(view: DataView, base: number, given: Field[], value: Record<string, unknown>): void {
    const tagged = given.filter((f) => f.union);
    if (tagged.length < 2) return;
    for (const f of tagged) {
      for (const g of tagged) {
        if (f === g || !conflict(f, g)) continue;
        const scratch = new Uint8Array(this.size);
        // Only f is given, so this write cannot come back here.
        this.write(viewOf(scratch), 0, { [f.name]: value[f.name] });
        const lo = Math.max(f.offset, g.offset);
        const hi = Math.min(f.offset + f.size, g.offset + g.size);
        for (let i = lo; i < hi; i++) {
          if (scratch[i] !== view.getUint8(base + i)) {
            throw bindingsRangeError(this.name, g.name, `shares its bytes with ${f.name} (same union) and the two values differ; give only one`);
          }
        }
      }
    }
  }

  decode(bytes: Uint8Array, offset = 0, options?: DecodeOptions): T {
    checkBytes(bytes, this.name, '(bytes)');
    checkOffset(offset, this.name, '(bytes)');
    // Checked before a DataView exists: a detached buffer must give this error, not DataView's.
    if (offset + this.size > bytes.length) throw this.tooShort(bytes.length, offset);
    return this.decodeView(viewOf(bytes), bytes.length, offset, options);
  }

  private tooShort(length: number, offset: number): RangeError {
    const f = this.fields.find((x) => offset + x.offset + x.size > length) ?? this.fields[0];
    return bindingsRangeError(this.name, f ? f.name : '(bytes)', `buffer too short: struct needs ${this.size} bytes at offset ${offset}, buffer has ${length}`);
  }

  /** decode over a view the caller already has (walkCapabilities reuses one per buffer); offset checked. */
  decodeView(view: DataView, length: number, offset: number, options?: DecodeOptions): T {
    if (offset + this.size > length) throw this.tooShort(length, offset);
    const c = this.compiled();
    const out = c.read(view, offset);
    const flex = this.flexField;
    if (flex) {
      let n: number | undefined;
      if (this.flex!.countField) n = Number(c.countOf(out));
      else if (options && options.flexCount !== undefined) {
        checkCount(options.flexCount, this.name, flex.name, 'flexCount');
        n = options.flexCount;
      }
      if (n !== undefined) {
        const start = offset + flex.offset;
        const room = Math.floor(Math.max(0, length - start) / flex.elemSize);
        if (n > room) {
          throw bindingsRangeError(this.name, flex.name, `count ${n} needs ${n * flex.elemSize} bytes at offset ${start}, buffer has room for ${room} elements`);
        }
        out[flex.name] = c.readFlex(view, start, n);
      }
    }
    return out as T;
  }

  read(view: DataView, base: number): Record<string, unknown> {
    return this.compiled().read(view, base);
  }
}

function conflict(a: FieldInfo, b: FieldInfo): boolean {
  for (const [ga, aa] of a.union!) for (const [gb, ab] of b.union!) if (ga === gb && aa !== ab) return true;
  return false;
}

/** The package's own entry to decodeView/extent (walkCapabilities); every StructCodec is made by defineStruct. */
export function internals(codec: StructCodec<any>): Codec<any> {
  return codec as Codec<any>;
}

/** Builds a codec from the generator's table. */
export function defineStruct<T>(
  name: string,
  kind: 'struct' | 'union',
  size: number,
  align: number,
  rows: readonly FieldRow[],
  extras: StructExtras = {},
): StructCodec<T> {
  return new Codec<T>(name, kind, size, align, rows, extras);
}
