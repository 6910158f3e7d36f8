import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
import { errnoName } from '../core/errno';
import { VfioError } from '../core/errors';

// Linux errnos libuv does not list (so os.constants.errno lacks them); the kernel still returns them.
const linuxOnly: Record<string, number> = { EBADFD: 77 };
const errnoByName: Record<string, number> = { ...linuxOnly, ...(constants.errno as Record<string, number>) };

/** True when `code` is an errno name this platform knows ('EINVAL', 'EBUSY', ...). */
export function isErrnoName(code: string): boolean {
  return typeof errnoByName[code] === 'number';
}

/**
 * A refusal from inside the fake kernel. Model code throws it without knowing
 * which syscall it runs under; the FakeKernel boundary turns it into the
 * VfioError the native addon would throw.
 */
export class Errno extends Error {
  constructor(readonly code: string) {
    super(code);
    this.name = 'Errno';
  }
}

/**
 * The error the native addon throws for a failed syscall: a VfioError with
 * libuv's name for the errno ('EAGAIN', as uv_err_name gives it, where
 * VfioError.fromErrno would pick the alias 'EWOULDBLOCK'), 'E<n>' for errnos
 * libuv does not know, the negative errno, the syscall, and the native
 * message shape `CODE: strerror, syscall`.
 */
export function kernelError(code: string, syscall: string): VfioError {
  const errno = errnoByName[code];
  if (errno === undefined) throw new TypeError(`unknown errno name: ${code}`);
  const known = getSystemErrorMap().get(-errno);
  const name = errnoName(errno);
  const text = known ? known[1] : `Unknown system error -${errno}`;
  return new VfioError(name, `${name}: ${text}, ${syscall}`, { errno: -errno, syscall });
}

/** Runs one syscall body, turning an Errno refusal into a VfioError for `syscall`. */
export function asSyscall<T>(syscall: string, body: () => T): T {
  try {
    return body();
  } catch (error) {
    if (error instanceof Errno) throw kernelError(error.code, syscall);
    throw error;
  }
}
