/** Text helpers shared by the commands: hex, sizes, tables, JSON. */

/** `value` in hex without a prefix, zero-padded to `width` digits. */
export function hex(value: number | bigint, width = 0): string {
  return value.toString(16).padStart(width, '0');
}

/** `value` in hex with a 0x prefix. */
export function hex0x(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];

/**
 * A byte count in the largest binary unit that divides it exactly: region
 * and page sizes are powers of two, and a rounded size would hide an odd one.
 */
export function size(bytes: number | bigint): string {
  let value = BigInt(bytes);
  let unit = 0;
  while (value !== 0n && value % 1024n === 0n && unit < UNITS.length - 1) {
    value /= 1024n;
    unit++;
  }
  return `${value} ${UNITS[unit]}`;
}

/** The sizes whose bits are set in an IOMMU page-size bitmap, smallest first. */
export function pageSizeList(bitmap: bigint): bigint[] {
  const sizes: bigint[] = [];
  for (let bit = 0n; bit < 64n; bit++) {
    if ((bitmap >> bit) & 1n) sizes.push(1n << bit);
  }
  return sizes;
}

/**
 * A page-size bitmap for people: a few sizes are listed, a long run (AMD
 * IOMMUs report every size from 4 KiB up) is shown as its ends.
 */
export function pageSizes(bitmap: bigint): string {
  const sizes = pageSizeList(bitmap);
  const listed = sizes.length <= 6
    ? sizes.map(size).join(', ')
    : `${size(sizes[0]!)} .. ${size(sizes[sizes.length - 1]!)} (${sizes.length} sizes)`;
  return `${listed || 'none'} (${hex0x(bitmap)})`;
}

/** Names of the set bits of `flags`, from a table of [bit, name]. */
export function flagNames(flags: number, table: readonly (readonly [number, string])[]): string[] {
  return table.filter(([bit]) => (flags & bit) !== 0).map(([, name]) => name);
}

/** Left-aligned columns, two spaces apart; trailing spaces trimmed. */
export function table(rows: readonly (readonly string[])[], indent = ''): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => indent + row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}

/**
 * JSON with 64-bit values (sizes, offsets, IOVAs, bitmaps) as 0x strings:
 * a JSON number is exact only up to 2^53.
 */
export function json(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? hex0x(v) : v), 2);
}

/** PCI base class names (the class code's top byte), as lspci spells them. */
const BASE_CLASSES: readonly string[] = [
  'Unclassified device', 'Mass storage controller', 'Network controller', 'Display controller',
  'Multimedia controller', 'Memory controller', 'Bridge', 'Communication controller',
  'Generic system peripheral', 'Input device controller', 'Docking station', 'Processor',
  'Serial bus controller', 'Wireless controller', 'Intelligent controller', 'Satellite communications controller',
  'Encryption controller', 'Signal processing controller', 'Processing accelerators', 'Non-Essential Instrumentation',
];

/** The name of a 24-bit PCI class code's base class. */
export function className(classCode: number): string {
  const base = classCode >>> 16;
  return BASE_CLASSES[base] ?? (base === 0xff ? 'Unassigned class' : `class ${hex(base, 2)}`);
}
