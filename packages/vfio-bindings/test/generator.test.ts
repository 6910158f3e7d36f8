import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { generatedDir, pinnedTree, repoRoot } from './helpers/headers';

// The generator is plain Node JS; load it as such.
const genDir = path.join(repoRoot, 'tools', 'gen-bindings', 'src');
const { parseHeader } = require(path.join(genDir, 'parse-header.js')) as { parseHeader(text: string): any };
const { generate } = require(path.join(genDir, 'gen.js')) as { generate(o: { includeDir: string; packageLabel: string; outDir: string }): string[] };

const tmpDirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-bindings-test-'));
  tmpDirs.push(d);
  return d;
};
afterAll(() => tmpDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

test('the header parser reads macros, enums and flattened records (anonymous unions and structs)', () => {
  const text = `
#ifndef X_H
#define X_H
#include <linux/types.h>
/* a comment with struct fake { int x; }; inside */
#define X_ONE (1 << 0) /* trailing */
#define X_MASK (X_ONE | \\
                2)
#define X_FN(a) ((a) + 1)
#define X_STR "s"
enum x_e { X_A, X_B = 1 << 4, X_C, };
struct x_rec {
  __u32 a, b;
#define X_INSIDE 3
  union {
    __u32 u1;
    struct { __u16 lo; __u16 hi; };
  };
  __u8 arr[X_INSIDE];
  __u64 *ptr;
  struct x_other nested;
  __s32 flex[];
};
#endif`;
  const r = parseHeader(text);
  expect(r.macros.map((m: { name: string }) => m.name)).toEqual(['X_H', 'X_ONE', 'X_MASK', 'X_STR', 'X_INSIDE']);
  expect(r.macros[2].body.replace(/\s+/g, ' ')).toBe('(X_ONE | 2)');
  expect(r.enums).toEqual([{ name: 'x_e', members: ['X_A', 'X_B', 'X_C'] }]);
  const rec = r.records[0];
  expect(rec.name).toBe('x_rec');
  expect(rec.members.map((m: any) => [m.name, m.ctype, m.array, m.flex, m.pointer, JSON.stringify(m.union ?? null)])).toEqual([
    ['a', '__u32', false, false, false, 'null'],
    ['b', '__u32', false, false, false, 'null'],
    ['u1', '__u32', false, false, false, '[[0,0]]'],
    ['lo', '__u16', false, false, false, '[[0,1]]'],
    ['hi', '__u16', false, false, false, '[[0,1]]'],
    ['arr', '__u8', true, false, false, 'null'],
    ['ptr', '__u64 *', false, false, true, 'null'],
    ['nested', 'struct x_other', false, false, false, 'null'],
    ['flex', '__s32', true, true, false, 'null'],
  ]);
});

test('the parser refuses constructs it does not understand instead of skipping them', () => {
  expect(() => parseHeader('typedef int foo;')).toThrow(/unsupported top-level/);
  expect(() => parseHeader('struct a { __u32 x[2][3]; };')).toThrow(/multi-dimensional/);
  expect(() => parseHeader('struct a { union { __u32 y; } named; };')).toThrow(/named members of inline/);
});

function fakeTree(vfio: string): string {
  const dir = tmp();
  fs.mkdirSync(path.join(dir, 'linux'));
  fs.writeFileSync(path.join(dir, 'linux', 'vfio.h'), `#include <linux/types.h>\n${vfio}`);
  fs.writeFileSync(path.join(dir, 'linux', 'iommufd.h'), '#include <linux/types.h>\n');
  fs.writeFileSync(path.join(dir, 'linux', 'version.h'), '#define LINUX_VERSION_MAJOR 9\n#define LINUX_VERSION_PATCHLEVEL 8\n#define LINUX_VERSION_SUBLEVEL 7\n');
  return dir;
}

test('the parser reads __counted_by on a flexible array and refuses it anywhere else', () => {
  const r = parseHeader('struct a { __u32 n; struct b items[] __counted_by(n); };');
  expect(r.records[0].members[1]).toMatchObject({ name: 'items', flex: true, countedBy: 'n' });
  expect(() => parseHeader('struct a { __u32 n; __u32 x[2] __counted_by(n); };')).toThrow(/not a flexible array/);
  expect(() => parseHeader('struct a { __u32 n; __u32 x[] __counted_by(n + 1); };')).toThrow(/does not name a member/);
  expect(() => parseHeader('struct a { __le32 n; __u32 x[] __counted_by_le(n); };')).toThrow(/expected ';' after member x/);
});

test('a __counted_by that disagrees with the hand-written table stops the generator', () => {
  // A struct name flex-table.js lists (dma_ranges counted by nr_ranges), with the header naming another count.
  const dir = fakeTree(
    '#define __counted_by(m)\nstruct vfio_region_dma_range { __u64 offset; __u64 length; };\n' +
      'struct vfio_device_feature_dma_buf { __u32 nr_ranges; __u32 other; struct vfio_region_dma_range dma_ranges[] __counted_by(other); };\n',
  );
  expect(() => generate({ includeDir: dir, packageLabel: 'test', outDir: tmp() })).toThrow(
    /vfio_device_feature_dma_buf\.dma_ranges: the header says __counted_by\(other\), flex-table\.js says "nr_ranges"/,
  );
});

test('a flexible array member missing from the hand-written table stops the generator', () => {
  const dir = fakeTree('struct vfio_new { __u32 n; __u64 items[]; };\n');
  expect(() => generate({ includeDir: dir, packageLabel: 'test', outDir: tmp() })).toThrow(/vfio_new\.items: flexible array missing from flex-table\.js/);
});

test('sizes and offsets come from the compiler, not from type names', () => {
  // A packed struct: any size guessed from the member types would be wrong.
  // Packed through a pragma, which the parser skips like any other directive.
  const dir = fakeTree('');
  fs.writeFileSync(path.join(dir, 'linux', 'vfio.h'), '#include <linux/types.h>\n#pragma pack(push, 1)\nstruct vfio_p { __u8 a; __u64 b; };\n#pragma pack(pop)\n#define VFIO_X (3 * 7)\n');
  const out = tmp();
  generate({ includeDir: dir, packageLabel: 'test', outDir: out });
  const text = fs.readFileSync(path.join(out, 'vfio.ts'), 'utf8');
  expect(text).toContain('export const VFIO_X = 21;');
  expect(text).toContain('defineStruct<vfio_p>("vfio_p", "struct", 9, 1, [');
  expect(text).toContain('["b", 1, "u64", "__u64"],');
  expect(fs.readFileSync(path.join(out, 'index.ts'), 'utf8')).toContain('HEADER_VERSION = "9.8.7"');
});

const pinned = pinnedTree();
if (pinned) {
  // Runs wherever `pnpm --filter gen-bindings fetch-headers` has populated the cache (CI does).
  test(`regenerating from the cached headers (${path.basename(path.dirname(pinned.dir))}) changes nothing`, () => {
    const out = tmp();
    execFileSync(process.execPath, [path.join(genDir, 'gen.js'), '--out', out], { stdio: 'pipe' });
    const committed = fs.readdirSync(generatedDir).sort();
    expect(fs.readdirSync(out).sort()).toEqual(committed);
    for (const f of committed) {
      expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(generatedDir, f)))).toBe(true);
    }
  });
} else if (process.env.CI) {
  // CI fetches the headers before the tests: their absence there is a broken set-up, not a reason to skip.
  test('the pinned headers are in the cache in CI', () => {
    throw new Error('pinned headers missing: run `pnpm --filter gen-bindings fetch-headers` before the tests');
  });
}
