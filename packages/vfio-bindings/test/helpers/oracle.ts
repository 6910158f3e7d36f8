// The compiler oracle. For a header tree it asks gcc, independently of the
// generator: which macros the headers define (gcc -dM -E), which records and
// members exist (DWARF from gcc -g), and then compiles its own probe that
// prints every value, sizeof, _Alignof, offsetof and member size.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dieName, flatMembers, parseReadelf, recordKind, type DwarfType } from './dwarf';

export type Scalar = 'u8' | 's8' | 'u16' | 's16' | 'u32' | 's32' | 'u64' | 's64';

export interface OracleMember {
  name: string;
  offset: number;
  /** sizeof the member; 0 for a flexible array member. */
  size: number;
  /** Element size for arrays (flexible ones included), the member size otherwise. */
  elemSize: number;
  count?: number | 'flexible';
  /** Scalar kind (pointers are u64-sized scalars), or the name of a nested record. */
  element: Scalar | { record: string };
}

export interface OracleRecord {
  kind: 'struct' | 'union';
  size: number;
  align: number;
  members: OracleMember[];
}

export interface OracleFacts {
  includeDir: string;
  headers: string[];
  constants: Map<string, bigint | string>;
  records: Map<string, OracleRecord>;
}

const BASELINE = ['linux/types.h', 'linux/ioctl.h'];

function includeArgs(dir: string): string[] {
  const args = ['-I', dir];
  const triplet = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim();
  if (fs.existsSync(path.join(dir, triplet))) args.push('-I', path.join(dir, triplet));
  return args;
}

function withTemp<T>(fn: (dir: string) => T): T {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-oracle-'));
  try {
    return fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const includes = (headers: string[]) => headers.map((h) => `#include <${h}>\n`).join('');

/** Object-like macros the headers add on top of what linux/types.h and linux/ioctl.h define. */
function macros(dir: string, headers: string[]): Map<string, string> {
  const dump = (src: string) => {
    const out = execFileSync('gcc', ['-E', '-dM', ...includeArgs(dir), '-x', 'c', '-'], { input: src, encoding: 'utf8' });
    const map = new Map<string, string>();
    for (const line of out.split('\n')) {
      const m = /^#define (\w+)(\(?)\s?(.*)$/.exec(line);
      if (m && !m[2]) map.set(m[1], m[3].trim());
    }
    return map;
  };
  const base = dump(includes(BASELINE));
  const all = dump(includes([...BASELINE, ...headers]));
  const out = new Map<string, string>();
  for (const [name, body] of all) if (!base.has(name) && body !== '') out.set(name, body);
  return out;
}

interface DwarfRecord {
  kind: 'struct' | 'union';
  members: { name: string; type: DwarfType }[];
}

/** Named records and enumerators the headers add, read from DWARF. */
function dwarf(dir: string, headers: string[]) {
  const read = (src: string) =>
    withTemp((tmp) => {
      const c = path.join(tmp, 'd.c');
      const o = path.join(tmp, 'd.o');
      fs.writeFileSync(c, src);
      execFileSync('gcc', ['-g', '-fno-eliminate-unused-debug-types', '-c', ...includeArgs(dir), '-o', o, c]);
      const { top, byOffset } = parseReadelf(execFileSync('readelf', ['--debug-dump=info', o], { encoding: 'utf8', maxBuffer: 64 << 20 }));
      const records = new Map<string, DwarfRecord>();
      const enumerators = new Set<string>();
      for (const die of top) {
        const kind = recordKind(die);
        const name = dieName(die);
        if (kind && name && !die.attrs.has('DW_AT_declaration')) records.set(name, { kind, members: flatMembers(die, byOffset) });
        if (die.tag === 'DW_TAG_enumeration_type') {
          for (const e of die.children) if (e.tag === 'DW_TAG_enumerator') enumerators.add(dieName(e)!);
        }
      }
      return { records, enumerators };
    });
  const base = read(includes(BASELINE));
  const all = read(includes([...BASELINE, ...headers]));
  for (const n of base.records.keys()) all.records.delete(n);
  for (const n of base.enumerators) all.enumerators.delete(n);
  return all;
}

function scalarOf(t: DwarfType): Scalar | { record: string } {
  if (t.kind === 'scalar') return `${t.signed ? 's' : 'u'}${t.size * 8}` as Scalar;
  if (t.kind === 'pointer') return `u${t.size * 8}` as Scalar;
  if (t.kind === 'record') {
    if (!t.name) throw new Error('anonymous record as a named member');
    return { record: t.name };
  }
  throw new Error('array of arrays');
}

/** Gathers every fact the compiler has about the given headers in `dir`. */
export function collectOracle(dir: string, headers: string[]): OracleFacts {
  const defs = macros(dir, headers);
  const { records: drecs, enumerators } = dwarf(dir, headers);
  const lines: string[] = [
    '#include <stdio.h>',
    '#include <stddef.h>',
    includes(headers),
    'int main(void) {',
  ];
  const intNames = [...[...defs].filter(([, b]) => !b.startsWith('"')).map(([n]) => n), ...enumerators];
  for (const n of intNames) lines.push(`printf("i %s %d %lld %llu\\n", "${n}", (${n}) < 0, (long long)(${n}), (unsigned long long)(${n}));`);
  for (const [n, b] of defs) if (b.startsWith('"')) lines.push(`printf("s %s %s\\n", "${n}", ${n});`);
  for (const [name, r] of drecs) {
    const S = `${r.kind} ${name}`;
    lines.push(`printf("r %s %zu %zu\\n", "${name}", sizeof(${S}), _Alignof(${S}));`);
    for (const m of r.members) {
      const flex = m.type.kind === 'array' && m.type.count === 'flexible';
      const lv = `((${S} *)0)->${m.name}`;
      const size = flex ? '(size_t)0' : `sizeof(${lv})`;
      const elem = m.type.kind === 'array' ? `sizeof(${lv}[0])` : `sizeof(${lv})`;
      lines.push(`printf("m %s %s %zu %zu %zu\\n", "${name}", "${m.name}", offsetof(${S}, ${m.name}), ${size}, ${elem});`);
    }
  }
  lines.push('return 0; }', '');
  const output = withTemp((tmp) => {
    const c = path.join(tmp, 'probe.c');
    const exe = path.join(tmp, 'probe');
    fs.writeFileSync(c, lines.join('\n'));
    execFileSync('gcc', ['-std=gnu11', '-w', '-fwrapv', ...includeArgs(dir), '-o', exe, c]);
    return execFileSync(exe, { encoding: 'utf8' });
  });

  const constants = new Map<string, bigint | string>();
  const records = new Map<string, OracleRecord>();
  for (const line of output.split('\n')) {
    const [k, ...f] = line.split(' ');
    if (k === 'i') constants.set(f[0], BigInt(f[1] === '1' ? f[2] : f[3]));
    else if (k === 's') constants.set(f[0], f.slice(1).join(' '));
    else if (k === 'r') records.set(f[0], { kind: drecs.get(f[0])!.kind, size: Number(f[1]), align: Number(f[2]), members: [] });
    else if (k === 'm') {
      const t = drecs.get(f[0])!.members.find((m) => m.name === f[1])!.type;
      records.get(f[0])!.members.push({
        name: f[1],
        offset: Number(f[2]),
        size: Number(f[3]),
        elemSize: Number(f[4]),
        count: t.kind === 'array' ? t.count : undefined,
        element: scalarOf(t.kind === 'array' ? t.element : t),
      });
    }
  }
  return { includeDir: dir, headers, constants, records };
}
