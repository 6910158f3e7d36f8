/** `--memory SIZE`: a size as people write it, in bytes (cli/format.ts's size() writes them back). */
import { rangeError, typeError } from '../../core/validate';

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
