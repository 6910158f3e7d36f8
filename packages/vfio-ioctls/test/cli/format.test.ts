import { className, json, pageSizeList, pageSizes, size, table } from '../../src/cli/format';

test('sizes use the largest unit that divides them exactly', () => {
  expect(size(0)).toBe('0 B');
  expect(size(256)).toBe('256 B');
  expect(size(1500)).toBe('1500 B');
  expect(size(0x6000)).toBe('24 KiB');
  expect(size(1n << 20n)).toBe('1 MiB');
  expect(size(1n << 63n)).toBe('8 EiB');
});

test('page-size bitmaps: a few sizes listed, a long run shown by its ends', () => {
  expect(pageSizeList(0x40201000n)).toEqual([0x1000n, 0x200000n, 0x40000000n]);
  expect(pageSizes(0x40201000n)).toBe('4 KiB, 2 MiB, 1 GiB (0x40201000)');
  expect(pageSizes(0xfffffffffffff000n)).toBe('4 KiB .. 8 EiB (52 sizes) (0xfffffffffffff000)');
  expect(pageSizes(0n)).toBe('none (0x0)');
});

test('tables align columns and trim trailing space', () => {
  expect(table([['a', 'bbb', ''], ['cccc', 'd', 'e']], '  ')).toEqual(['  a     bbb', '  cccc  d    e']);
});

test('JSON writes bigints as 0x strings', () => {
  expect(JSON.parse(json({ size: 1n << 60n, n: 3 }))).toEqual({ size: '0x1000000000000000', n: 3 });
});

test('class names come from the base class', () => {
  expect(className(0x010802)).toBe('Mass storage controller');
  expect(className(0x060400)).toBe('Bridge');
  expect(className(0xff0000)).toBe('Unassigned class');
  expect(className(0x400000)).toBe('class 40');
});
