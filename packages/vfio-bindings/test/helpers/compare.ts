// Compares what the compiler says (OracleFacts) with what the package exports.
// Pure function so it can be fed deliberately wrong tables in its own tests.
import type { OracleFacts } from './oracle';

interface FieldLike {
  name: string;
  offset: number;
  size: number;
  count?: number | 'flexible';
  element: string | { name: string; size: number };
}
interface CodecLike {
  name: string;
  kind: string;
  size: number;
  align: number;
  fields: readonly FieldLike[];
  flex?: { field: string; element: { size: number } };
}

export interface CompareOptions {
  /**
   * The header the package was generated from: the package must not hold
   * constants or records the header lacks (`generated` lists the package's
   * own generated names). For an older header only what it has is checked.
   */
  exact?: { generated: Iterable<string> };
  /**
   * Collects, for an older header, what the package has beyond it: members the
   * header lacks, and structs that grew by trailing members (the argsz
   * convention lets the kernel extend a struct at its end).
   */
  extensions?: string[];
  /**
   * For an older header only: constants the package's header renamed (old
   * name -> new name). An older header may still define the old name; the
   * package's constant under the new name must then hold the same value.
   * The rename is listed in `extensions`, a different value is a mismatch.
   */
  renamed?: Readonly<Record<string, string>>;
  /**
   * For an older header only: constants that count the members of an enum
   * the kernel extends (VFIO_AP_NUM_IRQS: 1 up to 6.12, 2 once the AP
   * config-change IRQ index came). The package's count may be higher; that is
   * listed in `extensions`, a lower one is a mismatch.
   */
  growingCounts?: RegExp;
}

const isCodec = (v: unknown): v is CodecLike =>
  typeof v === 'object' && v !== null && Array.isArray((v as CodecLike).fields) && typeof (v as CodecLike).size === 'number';

export function compareWithOracle(facts: OracleFacts, exports: Record<string, unknown>, options: CompareOptions = {}): string[] {
  const bad: string[] = [];
  for (const [name, want] of facts.constants) {
    let key = name;
    if (!(name in exports)) {
      const to = options.exact ? undefined : options.renamed?.[name];
      if (to === undefined || !(to in exports)) {
        bad.push(`constant ${name}: missing from the package${to ? ` (and so is ${to}, its new name)` : ''}`);
        continue;
      }
      options.extensions?.push(`constant ${name}: renamed ${to}`);
      key = to;
    }
    const got = exports[key];
    const shown = key === name ? name : `${name} (renamed ${key})`;
    let ok: boolean;
    if (typeof want === 'string') ok = got === want;
    else {
      // Contract: a number when the value is a safe integer, a bigint otherwise.
      const safe = want >= BigInt(Number.MIN_SAFE_INTEGER) && want <= BigInt(Number.MAX_SAFE_INTEGER);
      ok = safe ? typeof got === 'number' && BigInt(got) === want : got === want;
    }
    if (!ok && options.growingCounts?.test(name) && !options.exact && typeof got === 'number' && typeof want === 'bigint' && BigInt(got) > want) {
      options.extensions?.push(`constant ${name}: grew from ${want} to ${got}`);
      continue;
    }
    if (!ok) bad.push(`constant ${shown}: package ${String(got)} (${typeof got}), compiler ${String(want)}`);
  }
  for (const [name, rec] of facts.records) {
    const codec = exports[name];
    if (!isCodec(codec)) {
      bad.push(`record ${name}: no codec in the package`);
      continue;
    }
    if (codec.name !== name) bad.push(`record ${name}: codec names itself ${codec.name}`);
    if (codec.kind !== rec.kind) bad.push(`record ${name}: kind ${codec.kind}, compiler ${rec.kind}`);
    const grew = codec.size > rec.size && !options.exact;
    if (codec.size !== rec.size && !grew) bad.push(`record ${name}: sizeof ${codec.size}, compiler ${rec.size}`);
    // A struct that grew may have grown its alignment too (a trailing
    // __aligned_u64: vfio_device_bind_iommufd, 4 -> 8 in 7.x).
    if (codec.align !== rec.align && !(grew && codec.align > rec.align)) bad.push(`record ${name}: alignment ${codec.align}, compiler ${rec.align}`);
    const fields = new Map(codec.fields.map((f) => [f.name, f]));
    for (const m of rec.members) {
      const f = fields.get(m.name);
      const where = `${name}.${m.name}`;
      if (!f) {
        bad.push(`member ${where}: missing from the codec`);
        continue;
      }
      fields.delete(m.name);
      if (f.offset !== m.offset) bad.push(`member ${where}: offset ${f.offset}, compiler ${m.offset}`);
      if (f.size !== m.size) bad.push(`member ${where}: size ${f.size}, compiler ${m.size}`);
      if ((f.count ?? null) !== (m.count ?? null)) bad.push(`member ${where}: count ${String(f.count)}, compiler ${String(m.count)}`);
      const el = typeof f.element === 'string' ? f.element : f.element.name;
      const want = typeof m.element === 'string' ? m.element : m.element.record;
      if (el !== want) bad.push(`member ${where}: element ${el}, compiler ${want}`);
      const elSize = typeof f.element === 'string' ? Number(f.element.slice(1)) / 8 : f.element.size;
      if (elSize !== m.elemSize) bad.push(`member ${where}: element size ${elSize}, compiler ${m.elemSize}`);
      if (m.count === 'flexible' && (!codec.flex || codec.flex.field !== m.name || codec.flex.element.size !== m.elemSize)) {
        bad.push(`member ${where}: flexible array not described by codec.flex`);
      }
    }
    if (options.exact) for (const extra of fields.keys()) bad.push(`member ${name}.${extra}: in the codec but not in the header`);
    else {
      const end = Math.max(0, ...rec.members.map((m) => m.offset + m.size));
      for (const [extra, f] of fields) options.extensions?.push(`member ${name}.${extra} (offset ${f.offset})`);
      if (grew) {
        const trailing = [...fields.values()].every((f) => f.offset >= end);
        if (trailing && fields.size > 0) {
          options.extensions?.push(`record ${name}: grew from ${rec.size} to ${codec.size} bytes` +
            (codec.align > rec.align ? `, alignment ${rec.align} to ${codec.align}` : ''));
        }
        else bad.push(`record ${name}: sizeof ${codec.size}, compiler ${rec.size}, and not by trailing members`);
      }
    }
  }
  if (options.exact) {
    for (const name of options.exact.generated) {
      if (!facts.constants.has(name) && !facts.records.has(name)) bad.push(`${name}: in the package but not in the header`);
    }
  }
  return bad;
}
