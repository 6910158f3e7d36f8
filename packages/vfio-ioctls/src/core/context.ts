import type { Backend } from './backend';
import { VfioError, type VfioErrorContext } from './errors';
import { checkOptions, checkString, optionKeys, typeError } from './validate';

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
  /** The iommufd node; defaults to '/dev/iommu'. */
  iommufdPath?: string;
}

/** The keys of VfioOptions: VfioContext.from rejects any other. */
export const vfioOptionKeys = optionKeys<VfioOptions>({ backend: true, devRoot: true, sysfsRoot: true, iommufdPath: true });

/**
 * The VfioOptions part of a wider options bag (Device.open's, with its
 * `container`), for VfioContext.from, which takes nothing else. The caller
 * checks the other keys against its own list.
 */
export function vfioOptionsOf(options: VfioOptions): VfioOptions {
  const picked: Record<string, unknown> = {};
  for (const key of vfioOptionKeys) if (options[key] !== undefined) picked[key] = options[key];
  return picked as VfioOptions;
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
    const error = new VfioError('ERR_VFIO_NO_ADDON', 'the vfio-ioctls native addon could not be loaded', {
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
  readonly iommufdPath: string;

  private constructor(backend: Backend, devRoot: string, sysfsRoot: string, iommufdPath: string) {
    this.backend = backend;
    this.devRoot = devRoot;
    this.sysfsRoot = sysfsRoot;
    this.iommufdPath = iommufdPath;
  }

  private static readonly cache = new WeakMap<Backend, Map<string, VfioContext>>();

  /**
   * The context for these options (cached, so equal options give the same context).
   * @throws TypeError for an option of the wrong type or an unknown option name.
   */
  static from(options?: VfioOptions | VfioContext): VfioContext {
    if (options instanceof VfioContext) return options;
    const opts = checkOptions('options', options, vfioOptionKeys);
    const backend = opts.backend === undefined ? loadNativeBackend() : checkBackend(opts.backend);
    const devRoot = trimSlash(opts.devRoot === undefined ? '/dev/vfio' : checkString('options.devRoot', opts.devRoot));
    const sysfsRoot = trimSlash(opts.sysfsRoot === undefined ? '/sys' : checkString('options.sysfsRoot', opts.sysfsRoot));
    let byRoots = VfioContext.cache.get(backend);
    if (!byRoots) VfioContext.cache.set(backend, (byRoots = new Map()));
    const iommufdPath = opts.iommufdPath === undefined ? '/dev/iommu' : checkString('options.iommufdPath', opts.iommufdPath);
    const key = `${devRoot}\0${sysfsRoot}\0${iommufdPath}`;
    let context = byRoots.get(key);
    if (!context) byRoots.set(key, (context = new VfioContext(backend, devRoot, sysfsRoot, iommufdPath)));
    return context;
  }

  /** The path of the container node. */
  get containerPath(): string {
    return `${this.devRoot}/vfio`;
  }

  /** The path of a device cdev ('vfio3', 'noiommu-vfio0'). */
  cdevPath(name: string): string {
    return `${this.devRoot}/devices/${name}`;
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
