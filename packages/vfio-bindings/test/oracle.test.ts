import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as B from '../src';
import * as vfio from '../src/generated/vfio';
import * as iommufd from '../src/generated/iommufd';
import { compareWithOracle } from './helpers/compare';
import { headerTrees, pinnedTree, type HeaderTree } from './helpers/headers';
import { collectOracle, type OracleFacts } from './helpers/oracle';

const exportsOf = B as unknown as Record<string, unknown>;
const generated = [...Object.keys(vfio), ...Object.keys(iommufd)];
// The machine's own headers (Debian 12: Linux 6.1, vfio.h only; Debian 13:
// 6.12, with iommufd.h) and the pinned
// tree the package was generated from. Other versions left in the cache by an
// earlier pin are not checked: the package does not claim to match them, and
// some values legitimately differ (VFIO_AP_NUM_IRQS is 1 in 6.12, 2 in 7.3).
const all = headerTrees();
const system = all[0];
const pinned = pinnedTree();
const trees = pinned ? [system, pinned] : [system];
const facts = new Map<string, OracleFacts>();
const factsFor = (t: HeaderTree) => {
  if (!facts.has(t.dir)) facts.set(t.dir, collectOracle(t.dir, t.headers));
  return facts.get(t.dir)!;
};

// Constants the pinned headers renamed (old -> new). An older header that
// still has the old name must agree with the package's new one.
const RENAMED: Record<string, string> = {
  // Dropped after 6.12 (the type1 nesting IOMMU type); its number stays reserved.
  VFIO_TYPE1_NESTING_IOMMU: '__VFIO_RESERVED_TYPE1_NESTING_IOMMU',
};

// Constants that count an enum's members: an older header counts fewer.
const GROWING_COUNTS = /^VFIO_\w+_NUM_IRQS$/;

const skipped = all.filter((t) => !trees.some((c) => c.dir === t.dir));
if (skipped.length) console.log(`oracle: not checking ${skipped.map((t) => t.label).join(', ')} (not the pinned version)`);

describe.each(trees)('compiler oracle against $label', (tree) => {
  const exact = tree === pinned;

  test('the oracle sees the header (guards against a vacuous pass)', () => {
    const f = factsFor(tree);
    expect(tree.headers).toContain('linux/vfio.h');
    expect(f.constants.get('VFIO_API_VERSION')).toBe(0n);
    expect(f.constants.size).toBeGreaterThan(150);
    expect(f.records.size).toBeGreaterThan(40);
    expect(f.records.get('vfio_region_info')!.members.length).toBe(6);
  });

  if (exact) {
    test('it is the tree the package was generated from (version and header text)', () => {
      expect(tree.headers).toEqual(['linux/vfio.h', 'linux/iommufd.h']);
      const version = fs.readFileSync(path.join(tree.dir, 'linux', 'version.h'), 'utf8');
      const part = (n: string) => new RegExp(`#define LINUX_VERSION_${n} (\\d+)`).exec(version)![1];
      expect(B.HEADER_VERSION).toBe(`${part('MAJOR')}.${part('PATCHLEVEL')}.${part('SUBLEVEL')}`);
      for (const h of tree.headers) {
        expect(B.HEADER_SHA256[h]).toBe(createHash('sha256').update(fs.readFileSync(path.join(tree.dir, h))).digest('hex'));
      }
    });

    test('the rename table is right for the pinned headers', () => {
      const f = factsFor(tree);
      for (const [from, to] of Object.entries(RENAMED)) {
        expect([from, f.constants.has(from)]).toEqual([from, false]);
        expect([to, f.constants.has(to)]).toEqual([to, true]);
      }
    });
  }

  test(`every constant, ioctl number, sizeof, alignment and member matches the package${exact ? ', and nothing else is in it' : ''}`, () => {
    const f = factsFor(tree);
    const extensions: string[] = [];
    const mismatches = compareWithOracle(f, exportsOf, exact ? { exact: { generated } } : { extensions, renamed: RENAMED, growingCounts: GROWING_COUNTS });
    // One line per header for the report.
    console.log(
      `oracle ${tree.label} (${tree.headers.join(', ')}): ${f.constants.size} constants, ${f.records.size} records, ` +
        `${[...f.records.values()].reduce((n, r) => n + r.members.length, 0)} members, ${mismatches.length} mismatches` +
        (exact ? ` (exact: the package's ${generated.length} generated names are all in the header)` : '') +
        (extensions.length ? `; newer in the package: ${extensions.join('; ')}` : ''),
    );
    expect(mismatches).toEqual([]);
    if (exact) expect(generated.length).toBe(f.constants.size + f.records.size);
  });
});

if (!pinned && process.env.CI) {
  // CI fetches the headers before the tests: without them the exact check would silently not run.
  test('the pinned headers are in the cache in CI', () => {
    throw new Error('pinned headers missing: run `pnpm --filter gen-bindings fetch-headers` before the tests');
  });
}

describe('the comparison catches a wrong table', () => {
  // A slice of the real oracle, so each case can expect exactly its own mismatch.
  const base = (): OracleFacts => {
    const f = factsFor(pinned ?? system);
    const keep = ['vfio_region_info', 'vfio_irq_info', 'vfio_irq_set', 'vfio_device_info'];
    return {
      ...f,
      constants: new Map([...f.constants].filter(([n]) => /^VFIO_(API_VERSION|DEVICE_RESET|GET_API_VERSION)$/.test(n))),
      records: new Map([...f.records].filter(([n]) => keep.includes(n))),
    };
  };

  test('a wrong constant value', () => {
    const f = base();
    const wrong = { ...f, constants: new Map(f.constants).set('VFIO_DEVICE_RESET', 15216n) };
    expect(compareWithOracle(wrong, exportsOf)).toEqual([expect.stringContaining('constant VFIO_DEVICE_RESET')]);
  });

  test('a constant exported as the wrong JS type', () => {
    const patched = { ...exportsOf, VFIO_API_VERSION: 0n };
    expect(compareWithOracle(base(), patched)).toEqual([expect.stringContaining('constant VFIO_API_VERSION')]);
  });

  test('a wrong member offset, size and alignment in a codec', () => {
    const c = B.vfio_region_info;
    const fields = c.fields.map((x) => (x.name === 'size' ? { ...x, offset: x.offset + 4 } : x));
    const patched = { ...exportsOf, vfio_region_info: { ...c, name: c.name, kind: c.kind, size: c.size, align: 4, fields } };
    const bad = compareWithOracle(base(), patched);
    expect(bad).toEqual([
      'record vfio_region_info: alignment 4, compiler 8',
      'member vfio_region_info.size: offset 20, compiler 16',
    ]);
  });

  test('a member missing from a codec, and an extra one under exact comparison', () => {
    const c = B.vfio_irq_info;
    const fields = c.fields.filter((x) => x.name !== 'count').concat([{ ...c.fields[0], name: 'bogus' }]);
    const patched = { ...exportsOf, vfio_irq_info: { name: c.name, kind: c.kind, size: c.size, align: c.align, fields } };
    expect(compareWithOracle(base(), patched, { exact: { generated: [] } })).toEqual([
      'member vfio_irq_info.count: missing from the codec',
      'member vfio_irq_info.bogus: in the codec but not in the header',
    ]);
  });

  test('a record the package lacks, and a package name the header lacks', () => {
    const f = base();
    const records = new Map(f.records).set('vfio_not_a_struct', { kind: 'struct', size: 4, align: 4, members: [] });
    expect(compareWithOracle({ ...f, records }, exportsOf, { exact: { generated: ['VFIO_MADE_UP'] } })).toEqual([
      'record vfio_not_a_struct: no codec in the package',
      'VFIO_MADE_UP: in the package but not in the header',
    ]);
  });

  test('a constant an older header still has under the name the package replaced', () => {
    const f = base();
    const older = (v: bigint) => ({ ...f, constants: new Map(f.constants).set('VFIO_TYPE1_NESTING_IOMMU', v) });
    const renamed = { VFIO_TYPE1_NESTING_IOMMU: '__VFIO_RESERVED_TYPE1_NESTING_IOMMU' };
    const ext: string[] = [];
    expect(compareWithOracle(older(6n), exportsOf, { renamed, extensions: ext })).toEqual([]);
    expect(ext).toEqual(['constant VFIO_TYPE1_NESTING_IOMMU: renamed __VFIO_RESERVED_TYPE1_NESTING_IOMMU']);
    expect(compareWithOracle(older(7n), exportsOf, { renamed })).toEqual([
      'constant VFIO_TYPE1_NESTING_IOMMU (renamed __VFIO_RESERVED_TYPE1_NESTING_IOMMU): package 6 (number), compiler 7',
    ]);
    // Not listed, or the package's header itself: the old name is simply missing.
    expect(compareWithOracle(older(6n), exportsOf)).toEqual(['constant VFIO_TYPE1_NESTING_IOMMU: missing from the package']);
    expect(compareWithOracle(older(6n), exportsOf, { renamed, exact: { generated: [] } })).toEqual(['constant VFIO_TYPE1_NESTING_IOMMU: missing from the package']);
    expect(compareWithOracle(older(6n), exportsOf, { renamed: { VFIO_TYPE1_NESTING_IOMMU: 'VFIO_NOT_THERE' } })).toEqual([
      'constant VFIO_TYPE1_NESTING_IOMMU: missing from the package (and so is VFIO_NOT_THERE, its new name)',
    ]);
  });

  test('a struct that is larger than the header says, not by trailing members', () => {
    const f = base();
    const rec = f.records.get('vfio_irq_info')!;
    // Pretend an older header had a 12-byte vfio_irq_info without `index`.
    const older = { ...rec, size: 12, members: rec.members.filter((m) => m.name !== 'index').map((m) => (m.name === 'count' ? { ...m, offset: 8 } : m)) };
    const ext: string[] = [];
    const bad = compareWithOracle({ ...f, records: new Map([['vfio_irq_info', older]]) }, exportsOf, { extensions: ext });
    expect(bad).toEqual([
      'member vfio_irq_info.count: offset 12, compiler 8',
      'record vfio_irq_info: sizeof 16, compiler 12, and not by trailing members',
    ]);
    // Whereas growth by a trailing member is reported as an extension, not a mismatch.
    const trailing = { ...rec, size: 12, members: rec.members.filter((m) => m.name !== 'count') };
    const ext2: string[] = [];
    expect(compareWithOracle({ ...f, records: new Map([['vfio_irq_info', trailing]]) }, exportsOf, { extensions: ext2 })).toEqual([]);
    expect(ext2).toEqual(['member vfio_irq_info.count (offset 12)', 'record vfio_irq_info: grew from 12 to 16 bytes']);
  });

  test('an older header counting fewer IRQ indexes, and one counting more', () => {
    const f = base();
    const older = (v: bigint) => ({ ...f, records: new Map(), constants: new Map([['VFIO_AP_NUM_IRQS', v]]) });
    const ext: string[] = [];
    expect(compareWithOracle(older(1n), exportsOf, { growingCounts: GROWING_COUNTS, extensions: ext })).toEqual([]);
    expect(ext).toEqual(['constant VFIO_AP_NUM_IRQS: grew from 1 to 2']);
    expect(compareWithOracle(older(3n), exportsOf, { growingCounts: GROWING_COUNTS })).toEqual([
      'constant VFIO_AP_NUM_IRQS: package 2 (number), compiler 3',
    ]);
    // Not for the package's own header, nor for a constant that is no count.
    expect(compareWithOracle(older(1n), exportsOf, { growingCounts: GROWING_COUNTS, exact: { generated: [] } })).toEqual([
      'constant VFIO_AP_NUM_IRQS: package 2 (number), compiler 1',
    ]);
    expect(compareWithOracle(older(1n), exportsOf, { growingCounts: /^NOTHING$/ })).toEqual([
      'constant VFIO_AP_NUM_IRQS: package 2 (number), compiler 1',
    ]);
  });

  test('a struct that grew by an aligned trailing member may grow its alignment; a lone alignment change may not', () => {
    const f = base();
    const rec = f.records.get('vfio_irq_info')!;
    const trailing = { ...rec, size: 12, align: 2, members: rec.members.filter((m) => m.name !== 'count') };
    const ext: string[] = [];
    expect(compareWithOracle({ ...f, records: new Map([['vfio_irq_info', trailing]]) }, exportsOf, { extensions: ext })).toEqual([]);
    expect(ext).toEqual(['member vfio_irq_info.count (offset 12)', 'record vfio_irq_info: grew from 12 to 16 bytes, alignment 2 to 4']);
    const sameSize = { ...rec, align: 2 };
    expect(compareWithOracle({ ...f, records: new Map([['vfio_irq_info', sameSize]]) }, exportsOf, {})).toEqual([
      'record vfio_irq_info: alignment 4, compiler 2',
    ]);
  });

  test('a flexible array member the codec treats as fixed', () => {
    const c = B.vfio_irq_set;
    const fields = c.fields.map((x) => (x.name === 'data' ? { ...x, count: 1, size: 1 } : x));
    const patched = { ...exportsOf, vfio_irq_set: { name: c.name, kind: c.kind, size: c.size, align: c.align, fields, flex: undefined } };
    const bad = compareWithOracle(base(), patched);
    expect(bad).toEqual([
      'member vfio_irq_set.data: size 1, compiler 0',
      'member vfio_irq_set.data: count 1, compiler flexible',
      'member vfio_irq_set.data: flexible array not described by codec.flex',
    ]);
  });
});
