// Reads struct/union/enum definitions out of gcc's debug info (readelf's dump
// of DWARF). This gives the oracle its own list of records and members, taken
// from the compiler rather than from the generator's header parser.

export interface Die {
  tag: string;
  attrs: Map<string, string>;
  children: Die[];
}

const DIE_LINE = /^\s*<(\d+)><([0-9a-f]+)>: Abbrev Number: (\d+)(?: \((\w+)\))?/;
const ATTR_LINE = /^\s*<[0-9a-f]+>\s+(DW_AT_\w+)\s*:\s*(.*)$/;

export function parseReadelf(text: string): { top: Die[]; byOffset: Map<number, Die> } {
  const byOffset = new Map<number, Die>();
  const stack: Die[] = [];
  const top: Die[] = [];
  let current: Die | undefined;
  for (const line of text.split('\n')) {
    const d = DIE_LINE.exec(line);
    if (d) {
      const depth = Number(d[1]);
      if (d[3] === '0') {
        current = undefined; // end of a sibling list
        continue;
      }
      const die: Die = { tag: d[4], attrs: new Map(), children: [] };
      byOffset.set(parseInt(d[2], 16), die);
      stack.length = depth;
      stack[depth] = die;
      if (depth === 1) top.push(die);
      else if (depth > 1 && stack[depth - 1]) stack[depth - 1].children.push(die);
      current = die;
      continue;
    }
    const a = ATTR_LINE.exec(line);
    if (a && current) current.attrs.set(a[1], a[2].trim());
  }
  return { top, byOffset };
}

export function dieName(die: Die): string | undefined {
  const v = die.attrs.get('DW_AT_name');
  if (v === undefined) return undefined;
  // "(indirect string, offset: 0x123): name" or just "name"
  const m = /^\(indirect[^)]*\):\s*(.*)$/.exec(v);
  return m ? m[1] : v;
}

function num(die: Die, attr: string): number | undefined {
  const v = die.attrs.get(attr);
  if (v === undefined) return undefined;
  const m = /^(-?(?:0x[0-9a-f]+|\d+))/.exec(v);
  return m ? Number(m[1]) : undefined;
}

export type DwarfType =
  | { kind: 'scalar'; size: number; signed: boolean }
  | { kind: 'pointer'; size: number }
  | { kind: 'record'; name: string | undefined; die: Die }
  | { kind: 'array'; element: DwarfType; count: number | 'flexible' };

export function resolveType(die: Die | undefined, byOffset: Map<number, Die>): DwarfType {
  for (let guard = 0; die && guard < 64; guard++) {
    switch (die.tag) {
      case 'DW_TAG_typedef':
      case 'DW_TAG_const_type':
      case 'DW_TAG_volatile_type':
        die = typeOf(die, byOffset);
        continue;
      case 'DW_TAG_base_type': {
        const enc = die.attrs.get('DW_AT_encoding') ?? '';
        return { kind: 'scalar', size: num(die, 'DW_AT_byte_size')!, signed: /\(signed/.test(enc) };
      }
      case 'DW_TAG_pointer_type':
        return { kind: 'pointer', size: num(die, 'DW_AT_byte_size')! };
      case 'DW_TAG_structure_type':
      case 'DW_TAG_union_type':
        return { kind: 'record', name: dieName(die), die };
      case 'DW_TAG_array_type': {
        const subs = die.children.filter((c) => c.tag === 'DW_TAG_subrange_type');
        if (subs.length !== 1) throw new Error('multi-dimensional array in header');
        const upper = num(subs[0], 'DW_AT_upper_bound');
        const count = num(subs[0], 'DW_AT_count');
        return {
          kind: 'array',
          element: resolveType(typeOf(die, byOffset), byOffset),
          count: upper !== undefined ? upper + 1 : count !== undefined ? count : 'flexible',
        };
      }
      default:
        throw new Error(`unexpected DWARF type ${die.tag}`);
    }
  }
  throw new Error('unresolvable DWARF type');
}

function typeOf(die: Die, byOffset: Map<number, Die>): Die | undefined {
  const v = die.attrs.get('DW_AT_type');
  const m = v && /<0x([0-9a-f]+)>/.exec(v);
  return m ? byOffset.get(parseInt(m[1], 16)) : undefined;
}

export interface DwarfMember {
  name: string;
  type: DwarfType;
}

/** Members as C names them: those of anonymous structs/unions are lifted into the parent. */
export function flatMembers(record: Die, byOffset: Map<number, Die>): DwarfMember[] {
  const out: DwarfMember[] = [];
  for (const c of record.children) {
    if (c.tag !== 'DW_TAG_member') continue;
    const type = resolveType(typeOf(c, byOffset), byOffset);
    const name = dieName(c);
    if (name === undefined) {
      if (type.kind !== 'record') throw new Error('unnamed member that is not a struct or union');
      out.push(...flatMembers(type.die, byOffset));
    } else out.push({ name, type });
  }
  return out;
}

export function recordKind(die: Die): 'struct' | 'union' | undefined {
  return die.tag === 'DW_TAG_structure_type' ? 'struct' : die.tag === 'DW_TAG_union_type' ? 'union' : undefined;
}
