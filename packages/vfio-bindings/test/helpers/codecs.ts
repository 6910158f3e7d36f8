// Test helpers over the package's own codec metadata: all codecs, random
// values for a codec (fast-check), and which bytes of a struct are padding.
import fc from 'fast-check';
import * as B from '../../src';
import type { FieldInfo, ScalarType, StructCodec } from '../../src';

export type AnyCodec = StructCodec<any>;

export const allCodecs: AnyCodec[] = Object.values(B).filter(
  (v): v is AnyCodec => typeof v === 'object' && v !== null && Array.isArray((v as AnyCodec).fields) && typeof (v as AnyCodec).decode === 'function',
);

export function scalarArb(t: ScalarType): fc.Arbitrary<number | bigint> {
  const bits = Number(t.slice(1));
  if (bits === 64) return t[0] === 'u' ? fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) : fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
  return t[0] === 'u' ? fc.integer({ min: 0, max: 2 ** bits - 1 }) : fc.integer({ min: -(2 ** (bits - 1)), max: 2 ** (bits - 1) - 1 });
}

function elementArb(f: FieldInfo): fc.Arbitrary<unknown> {
  return typeof f.element === 'string' ? scalarArb(f.element as ScalarType) : valueArb(f.element);
}

/**
 * A random full value: every fixed field, one alternative per union (members
 * of other alternatives left out), and 0..4 flexible array elements with the
 * count field set to match.
 */
export function valueArb(codec: AnyCodec, maxFlex = 4): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of codec.fields) {
    if (f.count === 'flexible') parts[f.name] = fc.array(elementArb(f), { maxLength: maxFlex });
    else if (typeof f.count === 'number') parts[f.name] = fc.array(elementArb(f), { minLength: f.count, maxLength: f.count });
    else parts[f.name] = elementArb(f);
  }
  const groups = [...new Set(codec.fields.flatMap((f) => (f.union ?? []).map(([g]) => g)))];
  return fc.tuple(fc.record(parts), fc.array(fc.nat(), { minLength: groups.length, maxLength: groups.length })).map(([v, picks]) => {
    const chosen = new Map(groups.map((g, i) => {
      const alts = [...new Set(codec.fields.flatMap((f) => (f.union ?? []).filter(([x]) => x === g).map(([, a]) => a)))];
      return [g, alts[picks[i] % alts.length]];
    }));
    for (const f of codec.fields) {
      if (f.union && f.union.some(([g, a]) => chosen.get(g) !== a)) delete v[f.name];
    }
    if (codec.flex?.countField) v[codec.flex.countField] = (v[codec.flex.field] as unknown[]).length;
    return v;
  });
}

/** The value as decode returns it: 64-bit fields as bigint. */
export function normalize(v: unknown): unknown {
  if (typeof v === 'number') return v;
  if (Array.isArray(v)) return v.map(normalize);
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

/** Marks the bytes some member covers (recursively); the rest is padding. */
export function coverage(codec: AnyCodec, mask = new Uint8Array(codec.size), base = 0): Uint8Array {
  for (const f of codec.fields) {
    if (f.count === 'flexible') continue;
    if (typeof f.element === 'string') mask.fill(1, base + f.offset, base + f.offset + f.size);
    else {
      const n = typeof f.count === 'number' ? f.count : 1;
      for (let i = 0; i < n; i++) coverage(f.element, mask, base + f.offset + i * f.element.size);
    }
  }
  return mask;
}
