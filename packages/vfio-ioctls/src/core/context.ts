import type { Backend } from './backend';
import { VfioError, type VfioErrorContext } from './errors';
import { checkOptions, checkString, typeError } from './validate';

/**
 * Where the library finds the kernel. Every class takes these options so
 * that tests (or a chroot, or a container with another /sys) can swap them.
 */
export interface VfioOptions {
  /** The syscall layer; defaults to the native addon, loaded on first use. */
  backend?: Backend;
  /** Folder of the VFIO device nodes; defaults to '/dev/vfio'. */
  devRoot?: string;
  /** Mount point of sysfs; defaults to '/sys'. */
  sysfsRoot?: string;
}

let nativeBackend: Backend | undefined;

/**
 * Loads the addon only when a caller needs the real kernel: importing the
 * package must work on machines without the addon (tooling, the fake kernel).
 */
function loadNativeBackend(): Backend {
  if (nativeBackend) return nativeBackend;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    nativeBackend = (require('./native') as { nativeBackend: Backend }).nativeBackend;
  } catch (cause) {
    const error = new VfioError('ERR_VFIO_NATIVE', 'the vfio-ioctls native addon could not be loaded', {
      hint: 'build it with `pnpm --filter vfio-ioctls build:native`, or pass { backend } explicitly',
    });
    (error as { cause?: unknown }).cause = cause;
    throw error;
  }
  return nativeBackend;
}

/**
 * The resolved options plus the state that must be shared by everything
 * using the same kernel: the registry that lets several devices of one IOMMU
 * group share the group and its container (a group node opens only once).
 * One context exists per (backend, devRoot, sysfsRoot), so separate calls
 * with equal options share it.
 */
export class VfioContext {
  readonly backend: Backend;
  readonly devRoot: string;
  readonly sysfsRoot: string;

  private constructor(backend: Backend, devRoot: string, sysfsRoot: string) {
    this.backend = backend;
    this.devRoot = devRoot;
    this.sysfsRoot = sysfsRoot;
  }

  private static readonly cache = new WeakMap<Backend, Map<string, VfioContext>>();

  /** The context for these options (cached, so equal options give the same context). */
  static from(options?: VfioOptions | VfioContext): VfioContext {
    if (options instanceof VfioContext) return options;
    const opts = checkOptions('options', options);
    const backend = opts.backend === undefined ? loadNativeBackend() : checkBackend(opts.backend);
    const devRoot = trimSlash(opts.devRoot === undefined ? '/dev/vfio' : checkString('options.devRoot', opts.devRoot));
    const sysfsRoot = trimSlash(opts.sysfsRoot === undefined ? '/sys' : checkString('options.sysfsRoot', opts.sysfsRoot));
    let byRoots = VfioContext.cache.get(backend);
    if (!byRoots) VfioContext.cache.set(backend, (byRoots = new Map()));
    const key = `${devRoot}\0${sysfsRoot}`;
    let context = byRoots.get(key);
    if (!context) byRoots.set(key, (context = new VfioContext(backend, devRoot, sysfsRoot)));
    return context;
  }

  /** The path of the container node. */
  get containerPath(): string {
    return `${this.devRoot}/vfio`;
  }

  /** The path of group `id`'s node. */
  groupPath(id: number): string {
    return `${this.devRoot}/${id}`;
  }
}

function checkBackend(backend: unknown): Backend {
  const b = backend as Partial<Backend> | null;
  if (!b || typeof b !== 'object' || typeof b.ioctl !== 'function' || typeof b.open !== 'function') {
    throw typeError('options.backend', 'a Backend', backend);
  }
  return backend as Backend;
}

function trimSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

/**
 * Runs one backend call and turns its failure into a VfioError that says
 * which VFIO operation on which file or device failed (the backend only
 * knows the syscall).
 */
export function kernelCall<T>(context: VfioErrorContext, call: () => T): T {
  try {
    return call();
  } catch (error) {
    throw VfioError.annotate(error, context);
  }
}
