import { constants as osConstants } from 'node:os';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import type { ErrnoCode } from './codes';

/**
 * The errno names, computed in one place for every TypeScript caller (the
 * errors of the safe API, the fake kernel). They are the names the native
 * addon reports, which asks libuv (uv_err_name) as Node does: EAGAIN, not
 * its alias EWOULDBLOCK; `E<n>` where libuv has no name (EBADFD is 'E77').
 */
export function errnoName(errno: number): ErrnoCode {
  const name = getSystemErrorName(-Math.abs(errno));
  return (name.startsWith('E') ? name : `E${Math.abs(errno)}`) as ErrnoCode;
}

/**
 * Name to errno: os.constants (aliases included) and the libuv names it
 * lacks (EUNATCH); libuv's own codes past the kernel's errnos (UV_EOF,
 * EAI_*) are no errno and left out.
 */
const errnoByName = new Map<string, number>(Object.entries(osConstants.errno as Record<string, number>));
for (const [negative, [name]] of getSystemErrorMap()) {
  if (negative < 0 && negative > -512 && !errnoByName.has(name)) errnoByName.set(name, -negative);
}

/**
 * The errno (positive) a code stands for: 'EBUSY' is 16, 'E77' is 77;
 * undefined for a library code such as 'ERR_VFIO_CLOSED'.
 */
export function errnoNumber(code: string): number | undefined {
  const known = errnoByName.get(code);
  if (known !== undefined) return known;
  const numbered = /^E([1-9]\d*)$/.exec(code);
  return numbered ? Number(numbered[1]) : undefined;
}
