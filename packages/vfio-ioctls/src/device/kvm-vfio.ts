/**
 * The KVM VFIO device (KVM_DEV_TYPE_VFIO): a VMM tells KVM which VFIO files
 * its VM uses (KVM_DEV_VFIO_FILE_ADD/DEL through KVM_SET_DEVICE_ATTR), so
 * KVM knows about non-coherent DMA and drivers that need the VM get it. The
 * file is the IOMMU group's fd on the legacy container path, the device's
 * own fd on iommufd (a cdev). The kernel holds a reference to each file it
 * was given, so the library deletes the entry before it closes the file,
 * as rust-vmm's group does on drop. The library holds its own fd for the
 * KVM VFIO device too (a dup, as rust-vmm's container holds an Arc of it):
 * the caller may close theirs first, and a reused fd number never makes
 * the delete land on another file.
 */
import { withUserMemory } from '../abi/iommufd-args';
import { KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_FILE_DEL, KVM_SET_DEVICE_ATTR, kvmDeviceAttrArg } from '../abi/kvm-device-attr';
import { kernelCall, type VfioContext } from '../core/context';
import { VfioError } from '../core/errors';
import { runAll } from '../core/handle';
import { illegalConstructor } from '../core/illegal-constructor';
import { checkInteger } from '../core/validate';

/** The VFIO file a device hands to KVM. */
export interface KvmVfioFileSource {
  fd: number;
  kind: 'group' | 'device';
  /** What the entry belongs to: devices of one group share their group's entry. */
  owner: object;
}

/** What the KVM VFIO link needs of its device. */
export interface KvmVfioHost {
  readonly name: string;
  readonly context: VfioContext;
  /** The file to add; throws once the device is closed. */
  file(): KvmVfioFileSource;
}

/** One file added to one KVM VFIO device, and how many links share it. */
interface Entry {
  source: KvmVfioFileSource;
  links: number;
  /** The library's own fd for the KVM VFIO device, closed with the last link. */
  ownFd: number;
}

/** Entries by owner (a group or a device), then by the caller's KVM VFIO device fd. */
const entries = new WeakMap<object, Map<number, Entry>>();

const constructKey = Symbol('KvmVfioFile');
let construct: (host: KvmVfioHost, kvmVfioFd: number, entry: Entry, closed: (link: KvmVfioFile) => void) => KvmVfioFile;

/**
 * A device's VFIO file added to a KVM VFIO device (Device.addToKvm).
 * close() (or the device's close) takes it out again; devices of one group
 * share the group's entry, which leaves KVM with the last link to it.
 * A link holds its own fd for the KVM VFIO device, so the VM (which that
 * device holds) lives on until the last link closes, whenever the caller
 * closes their fds.
 */
export class KvmVfioFile implements Disposable {
  /** The KVM VFIO device fd the caller gave (from KVM_CREATE_DEVICE with KVM_DEV_TYPE_VFIO); the link uses a dup of it. */
  readonly kvmVfioFd: number;
  /** 'group' when the IOMMU group's fd was added (legacy container), 'device' for the device's own fd (iommufd cdev). */
  readonly kind: 'group' | 'device';
  readonly #host: KvmVfioHost;
  readonly #entry: Entry;
  readonly #closed: (link: KvmVfioFile) => void;
  #open = true;

  static {
    construct = (host, kvmVfioFd, entry, closed) => new KvmVfioFile(constructKey, host, kvmVfioFd, entry, closed);
  }

  private constructor(key: symbol, host: KvmVfioHost, kvmVfioFd: number, entry: Entry, closed: (link: KvmVfioFile) => void) {
    if (key !== constructKey) throw illegalConstructor();
    this.#host = host;
    this.kvmVfioFd = kvmVfioFd;
    this.kind = entry.source.kind;
    this.#entry = entry;
    this.#closed = closed;
  }

  /** True once close() has run. */
  get closed(): boolean {
    return !this.#open;
  }

  /**
   * Drops this link; the last link to the file deletes it from the KVM VFIO
   * device (KVM_DEV_VFIO_FILE_DEL) and closes the library's fd for that
   * device. Idempotent.
   * @throws VfioError when the kernel refuses the delete (the link counts as closed, its fd is closed).
   */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#closed(this);
    const entry = this.#entry;
    if (--entry.links > 0) return;
    const perKvm = entries.get(entry.source.owner);
    // A newer entry may have taken the key (the caller's fd number was reused: addToKvmVfio).
    if (perKvm?.get(this.kvmVfioFd) === entry) perKvm.delete(this.kvmVfioFd);
    if (perKvm?.size === 0) entries.delete(entry.source.owner);
    const { backend } = this.#host.context;
    runAll([
      () => setFile(this.#host, entry.ownFd, KVM_DEV_VFIO_FILE_DEL, entry.source, this.kvmVfioFd),
      () => kernelCall({ syscall: 'close', device: this.#host.name }, () => backend.close(entry.ownFd)),
    ]);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Adds the host's VFIO file to the KVM VFIO device at `kvmVfioFd`, or
 * shares the entry a device of the same group already made.
 * @internal Device.addToKvm's implementation.
 */
export function addToKvmVfio(host: KvmVfioHost, kvmVfioFd: number, closed: (link: KvmVfioFile) => void): KvmVfioFile {
  checkInteger('kvmVfioFd', kvmVfioFd, 0, 0x7fff_ffff);
  const source = host.file();
  let perKvm = entries.get(source.owner);
  let entry = perKvm?.get(kvmVfioFd);
  // The ADD goes through the caller's fd every time: with an entry for this
  // number, EEXIST says the file is in that entry's device (a device of the
  // same group added it), and a success that the number now names another
  // KVM VFIO device (the caller closed theirs and the number came back).
  const alreadyIn = addFile(host, kvmVfioFd, source, entry !== undefined);
  if (!alreadyIn || !entry) {
    entry = { source, links: 0, ownFd: ownFdFor(host, kvmVfioFd, source) };
    if (!perKvm) entries.set(source.owner, (perKvm = new Map()));
    perKvm.set(kvmVfioFd, entry);
  }
  entry.links++;
  return construct(host, kvmVfioFd, entry, closed);
}

/** FILE_ADD: false once added; true on EEXIST where `mayBeThere` (an entry says so), which is an error otherwise. */
function addFile(host: KvmVfioHost, kvmVfioFd: number, source: KvmVfioFileSource, mayBeThere: boolean): boolean {
  try {
    setFile(host, kvmVfioFd, KVM_DEV_VFIO_FILE_ADD, source, kvmVfioFd);
    return false;
  } catch (error) {
    if (mayBeThere && error instanceof VfioError && error.code === 'EEXIST') return true;
    throw error;
  }
}

/** The library's dup of the caller's fd, just after the ADD through it; undoes the ADD when the dup fails. */
function ownFdFor(host: KvmVfioHost, kvmVfioFd: number, source: KvmVfioFileSource): number {
  try {
    return kernelCall({ syscall: 'fcntl', operation: 'F_DUPFD_CLOEXEC', device: host.name }, () => host.context.backend.dup(kvmVfioFd));
  } catch (error) {
    try {
      setFile(host, kvmVfioFd, KVM_DEV_VFIO_FILE_DEL, source, kvmVfioFd);
    } catch {
      // The dup's failure is the one to report.
    }
    throw error;
  }
}

/** KVM_SET_DEVICE_ATTR(KVM_DEV_VFIO_FILE, ADD or DEL) through `fd` with a pointer to the file's fd; errors name the caller's `kvmVfioFd`. */
function setFile(host: KvmVfioHost, fd: number, attr: number, source: KvmVfioFileSource, kvmVfioFd: number): void {
  const { backend } = host.context;
  const operation = attr === KVM_DEV_VFIO_FILE_ADD ? 'KVM_DEV_VFIO_FILE_ADD' : 'KVM_DEV_VFIO_FILE_DEL';
  try {
    withUserMemory(backend, 4, (bytes, address) => {
      new DataView(bytes.buffer, bytes.byteOffset, 4).setInt32(0, source.fd, true);
      backend.ioctl(fd, KVM_SET_DEVICE_ATTR, kvmDeviceAttrArg(KVM_DEV_VFIO_FILE, BigInt(attr), address));
    });
  } catch (error) {
    throw setFileError(error, host.name, kvmVfioFd, operation, source.kind);
  }
}

function hints(kind: 'group' | 'device'): Record<string, string> {
  return {
    EBADF: 'kvmVfioFd is not an open fd (or the VFIO file was closed)',
    ENOTTY: 'kvmVfioFd is not a KVM device fd: make one with KVM_CREATE_DEVICE and KVM_DEV_TYPE_VFIO on the VM fd',
    ENXIO: 'kvmVfioFd is a KVM device of another type: the VFIO file attributes belong to KVM_DEV_TYPE_VFIO',
    EINVAL: `the kernel does not take the ${kind} fd as a VFIO file`,
    EEXIST: `the ${kind} is already in this KVM VFIO device, added outside this library`,
    ENOENT: `the ${kind} is not in this KVM VFIO device: deleted outside this library?`,
  };
}

function setFileError(error: unknown, device: string, kvmVfioFd: number, operation: string, kind: 'group' | 'device'): unknown {
  const context = { syscall: 'ioctl', operation: `KVM_SET_DEVICE_ATTR(${operation})`, device };
  const annotated = VfioError.annotate(error, context);
  if (!(annotated instanceof VfioError) || annotated.errno === 0) return annotated;
  return new VfioError(annotated.code, `${annotated.code}: ${operation} of the ${kind} of ${device} refused on kvmVfioFd ${kvmVfioFd}`, {
    ...context,
    errno: annotated.errno,
    hint: hints(kind)[annotated.code],
  });
}
