/** Byte counts for `--memory SIZE` and for people. */
import { rangeError, typeError } from '../../core/validate';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
const SHIFT: Record<string, bigint> = { '': 0n, k: 10n, m: 20n, g: 30n, t: 40n, p: 50n, e: 60n };

/**
 * A size such as '4096', '512M', '2GiB' or '1g' in bytes. Units are binary
 * (K = 1024), as memory is counted.
 * @throws TypeError when `text` is not a string; RangeError naming `name`
 *   when it is not a size or exceeds 2^64 - 1.
 */
export function parseSize(text: string, name = 'size'): bigint {
  if (typeof text !== 'string') throw typeError(name, 'a string', text);
  const match = /^(\d+)\s*([kmgtpe]?)(?:i?b)?$/i.exec(text.trim());
  if (!match) throw rangeError(name, `must be a size like 4096, 512M or 2G, got ${JSON.stringify(text)}`, 'ERR_INVALID_ARG_VALUE');
  const bytes = BigInt(match[1]!) << SHIFT[match[2]!.toLowerCase()]!;
  if (bytes > 0xffff_ffff_ffff_ffffn) throw rangeError(name, `must be below 16 EiB, got ${JSON.stringify(text)}`);
  return bytes;
}

/**
 * `bytes` in the largest binary unit that divides it exactly ('8 MiB',
 * '1000000 B'): a rounded figure could hide that a limit is a page short.
 */
export function formatSize(bytes: bigint): string {
  let value = bytes;
  let unit = 0;
  while (value !== 0n && value % 1024n === 0n && unit < UNITS.length - 1) {
    value /= 1024n;
    unit++;
  }
  return `${value} ${UNITS[unit]}`;
}
