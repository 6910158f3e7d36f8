import * as B from '../src';
import * as vfio from '../src/generated/vfio';
import * as iommufd from '../src/generated/iommufd';
import { compareWithOracle } from './helpers/compare';
import { headerTrees, pinnedTree } from './helpers/headers';
import { collectOracle, type OracleFacts } from './helpers/oracle';

const exportsOf = B as unknown as Record<string, unknown>;
const trees = headerTrees();
const pinned = pinnedTree();
const facts = new Map<string, OracleFacts>();
const factsFor = (t: (typeof trees)[number]) => {
  if (!facts.has(t.dir)) facts.set(t.dir, collectOracle(t.dir, t.headers));
  return facts.get(t.dir)!;
};

describe.each(trees)('compiler oracle against $label', (tree) => {
  test('the oracle sees the header (guards against a vacuous pass)', () => {
    const f = factsFor(tree);
    expect(tree.headers).toContain('linux/vfio.h');
    expect(f.constants.get('VFIO_API_VERSION')).toBe(0n);
    expect(f.constants.size).toBeGreaterThan(150);
    expect(f.records.size).toBeGreaterThan(40);
    expect(f.records.get('vfio_region_info')!.members.length).toBe(6);
  });

  test('every constant, ioctl number, sizeof, alignment and member matches the package', () => {
    const f = factsFor(tree);
    const exact = pinned && pinned.dir === tree.dir ? { generated: [...Object.keys(vfio), ...Object.keys(iommufd)] } : undefined;
    const extensions: string[] = [];
    const mismatches = compareWithOracle(f, exportsOf, { exact, extensions });
    // One line per header for the report.
    console.log(
      `oracle ${tree.label} (${tree.headers.join(', ')}): ${f.constants.size} constants, ${f.records.size} records, ` +
        `${[...f.records.values()].reduce((n, r) => n + r.members.length, 0)} members, ${mismatches.length} mismatches${exact ? ' (exact)' : ''}` +
        (extensions.length ? `; newer in the package: ${extensions.join('; ')}` : ''),
    );
    expect(mismatches).toEqual([]);
  });
});

describe('the comparison catches a wrong table', () => {
  // A slice of the real oracle, so each case can expect exactly its own mismatch.
  const base = (): OracleFacts => {
    const f = factsFor(trees[trees.length - 1]);
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
