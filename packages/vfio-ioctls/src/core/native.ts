/**
 * The native backend: the C++ addon (native/*.cc), loaded on first use.
 *
 * Loading is lazy so that importing the package on a machine without the
 * addon (no prebuild, no compiler) still works for everything that uses the
 * fake kernel; the first real syscall then fails with ERR_VFIO_NO_ADDON.
 */
import * as path from 'node:path';
import { MAX_MAPPING_LENGTH, type Backend, type EventfdsWake, type MemfdFile, type Poller } from './backend';
import { VfioError } from './errors';

/** Linux's values (identical on x86-64 and arm64); test/native checks them against the C headers. */
export const O_RDONLY = 0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const EFD_SEMAPHORE = 1;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

/** What the addon exports: the Backend's functions plus start-up plumbing. */
export interface Addon extends Backend {
  /** Hands over the error class the addon throws for failed syscalls. */
  setErrorClass(errorClass: typeof VfioError): void;
  /** Tells the addon this Node's longest ArrayBuffer (it assumes Node 20's 2^32 until told). */
  setMaxMappingLength(length: number): void;
  /** The C values of the constants above. */
  readonly constants: Readonly<Record<string, number>>;
}

/** src/core/ under ts-jest, dist/core/ once built: the package root is two levels up either way. */
const packageRoot = path.resolve(__dirname, '..', '..');

let addon: Addon | undefined;

/**
 * Loads the addon from `root` (prebuilds/ or build/, via node-gyp-build) and
 * hands it VfioError. Exported for tests; use `nativeBackend`.
 * @internal
 */
export function loadAddon(root: string = packageRoot): Addon {
  let loaded: Addon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    loaded = nodeGypBuild(root) as Addon;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const error = new VfioError(
      'ERR_VFIO_NO_ADDON',
      `the vfio-ioctls native addon could not be loaded from ${root}: ${reason}`,
      {
        errno: 0,
        hint: 'no prebuilt binary for this platform and no source build: run `pnpm run build:native` '
          + '(or `npm rebuild vfio-ioctls`) with a C++ compiler and the Node headers available',
      },
    );
    Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true });
    throw error;
  }
  loaded.setErrorClass(VfioError);
  loaded.setMaxMappingLength(MAX_MAPPING_LENGTH);
  return loaded;
}

/**
 * Loads the addon on first use, then puts its functions on nativeBackend
 * in place of the loading stubs below: from then on a call is the native
 * call itself, without a JS frame around it (one less transition per MMIO
 * access). The addon's functions do not use `this`.
 */
function native(): Addon {
  if (addon) return addon;
  const loaded = loadAddon();
  const target = nativeBackend as unknown as Record<string, unknown>;
  // Functions only: `directMmio` is a fact about this backend, not an addon export.
  for (const name of Object.keys(nativeBackend)) {
    if (typeof target[name] === 'function') target[name] = (loaded as unknown as Record<string, unknown>)[name];
  }
  return (addon = loaded);
}

/** The real kernel behind the Backend interface. Every call goes straight to one syscall. */
export const nativeBackend: Backend = {
  directMmio: true,
  open: (file: string, flags: number): number => native().open(file, flags),
  close: (fd: number): void => native().close(fd),
  dup: (fd: number): number => native().dup(fd),
  ioctl: (fd: number, request: number, arg?: number | Uint8Array): number => native().ioctl(fd, request, arg),
  pread: (fd: number, buffer: Uint8Array, offset: bigint): number => native().pread(fd, buffer, offset),
  pwrite: (fd: number, buffer: Uint8Array, offset: bigint): number => native().pwrite(fd, buffer, offset),
  read: (fd: number, buffer: Uint8Array): number => native().read(fd, buffer),
  write: (fd: number, buffer: Uint8Array): number => native().write(fd, buffer),

  mmap: (fd: number, length: number, prot: number, offset: bigint): ArrayBuffer =>
    native().mmap(fd, length, prot, offset),
  munmap: (buffer: ArrayBuffer): void => native().munmap(buffer),
  mmioRead8: (buffer: ArrayBuffer, offset: number): number => native().mmioRead8(buffer, offset),
  mmioRead16: (buffer: ArrayBuffer, offset: number): number => native().mmioRead16(buffer, offset),
  mmioRead32: (buffer: ArrayBuffer, offset: number): number => native().mmioRead32(buffer, offset),
  mmioRead64: (buffer: ArrayBuffer, offset: number): bigint => native().mmioRead64(buffer, offset),
  mmioWrite8: (buffer: ArrayBuffer, offset: number, value: number): void =>
    native().mmioWrite8(buffer, offset, value),
  mmioWrite16: (buffer: ArrayBuffer, offset: number, value: number): void =>
    native().mmioWrite16(buffer, offset, value),
  mmioWrite32: (buffer: ArrayBuffer, offset: number, value: number): void =>
    native().mmioWrite32(buffer, offset, value),
  mmioWrite64: (buffer: ArrayBuffer, offset: number, value: bigint): void =>
    native().mmioWrite64(buffer, offset, value),

  eventfd: (initval: number, flags: number): number => native().eventfd(initval, flags),
  eventfdRead: (fd: number): bigint => native().eventfdRead(fd),
  eventfdWrite: (fd: number, value: bigint): void => native().eventfdWrite(fd, value),
  poll: (fd: number, onReadable: (error: Error | null) => void): Poller => native().poll(fd, onReadable),
  watchEventfds: (fds: readonly number[], onWake: EventfdsWake): Poller => native().watchEventfds(fds, onWake),
  memfd: (name: string, size: number, hugePageSize?: number): number => native().memfd(name, size, hugePageSize),
  memfdDup: (fd: number): MemfdFile => native().memfdDup(fd),

  allocDma: (size: number): ArrayBuffer => native().allocDma(size),
  freeDma: (buffer: ArrayBuffer): void => native().freeDma(buffer),
  addressOf: (buffer: ArrayBuffer): bigint => native().addressOf(buffer),
  pageSize: (): number => native().pageSize(),
  mlock: (buffer: ArrayBuffer): void => native().mlock(buffer),
  munlock: (buffer: ArrayBuffer): void => native().munlock(buffer),
};
