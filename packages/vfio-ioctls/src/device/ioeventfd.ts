/**
 * VFIO_DEVICE_IOEVENTFD: the kernel writes a fixed value of a fixed width
 * to a BAR offset each time an eventfd is signalled, with no trip through
 * userspace (a VMM hands the same eventfd to KVM_IOEVENTFD, so a guest's
 * doorbell write reaches the device directly).
 */
import { ioeventfdArg } from '../abi/feature-args';
import { bindings as b } from '../abi/structs';
import { kernelCall, type VfioContext } from '../core/context';
import { VfioError } from '../core/errors';
import { FdHandle } from '../core/handle';
import { illegalConstructor } from '../core/illegal-constructor';
import { checkInteger, checkOptions, checkU64, hex, optionKeys, rangeError } from '../core/validate';
import type { Region } from './region';

/** Options of {@link Device.ioeventfd}. */
export interface IoeventfdOptions {
  /** The BAR's region index (VFIO_PCI_BAR0_REGION_INDEX .. BAR5). */
  region: number;
  /** Byte offset in the BAR, aligned to `width`. */
  offset: number | bigint;
  /** Bytes written: 1, 2, 4 or 8. */
  width: 1 | 2 | 4 | 8;
  /** The value written each time. */
  value: number | bigint;
}

const optionNames = optionKeys<IoeventfdOptions>({ region: true, offset: true, width: true, value: true });

/** What an ioeventfd needs of its device. */
export interface IoeventfdHost {
  /** The device fd; throws once the device is closed. */
  readonly fd: number;
  readonly name: string;
  readonly context: VfioContext;
  region(index: number): Region | undefined;
}

/** Only this module holds it: the constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('Ioeventfd');

let construct: (host: IoeventfdHost, fd: number, spec: Spec, closed: (ioeventfd: Ioeventfd) => void) => Ioeventfd;

interface Spec {
  region: number;
  offset: bigint;
  width: 1 | 2 | 4 | 8;
  value: bigint;
  fileOffset: bigint;
}

/**
 * One ioeventfd: its eventfd (`fd`, for KVM_IOEVENTFD) and the write it
 * triggers. close() removes it from the device, then closes the eventfd;
 * the device's close does that for every ioeventfd still open.
 */
export class Ioeventfd extends FdHandle {
  /** The BAR's region index. */
  readonly region: number;
  /** Byte offset in the BAR. */
  readonly offset: bigint;
  /** Bytes written each time. */
  readonly width: 1 | 2 | 4 | 8;
  /** The value written each time. */
  readonly value: bigint;
  readonly #host: IoeventfdHost;
  readonly #fileOffset: bigint;
  readonly #closed: (ioeventfd: Ioeventfd) => void;

  static {
    construct = (host, fd, spec, closed) => new Ioeventfd(constructKey, host, fd, spec, closed);
  }

  private constructor(key: symbol, host: IoeventfdHost, fd: number, spec: Spec, closed: (ioeventfd: Ioeventfd) => void) {
    if (key !== constructKey) throw illegalConstructor();
    super(host.context.backend, fd, `ioeventfd ${hex(spec.offset)} of region ${spec.region} of ${host.name}`);
    this.#host = host;
    this.region = spec.region;
    this.offset = spec.offset;
    this.width = spec.width;
    this.value = spec.value;
    this.#fileOffset = spec.fileOffset;
    this.#closed = closed;
  }

  /** Signals the eventfd once, as KVM does on the guest's write: the kernel then makes the device write. */
  signal(): void {
    const fd = this.fd;
    kernelCall({ syscall: 'write', operation: 'eventfd', device: this.#host.name }, () => this.backend.eventfdWrite(fd, 1n));
  }

  protected errorContext(): { device: string } {
    return { device: this.#host.name };
  }

  protected override releaseDependents(): void {
    // The same request with fd -1 removes it; the device being closed removes every one anyway.
    const arg = ioeventfdArg(this.#fileOffset, this.value, this.width, -1);
    const deviceFd = this.#host.fd;
    kernelCall({ syscall: 'ioctl', operation: 'VFIO_DEVICE_IOEVENTFD', device: this.#host.name }, () =>
      this.backend.ioctl(deviceFd, b.VFIO_DEVICE_IOEVENTFD, arg));
  }

  protected override afterClose(): void {
    this.#closed(this);
  }
}

/**
 * Creates the eventfd and registers the write (VFIO_DEVICE_IOEVENTFD);
 * the eventfd is closed again when the kernel refuses.
 * @internal Device.ioeventfd's implementation.
 */
export function openIoeventfd(host: IoeventfdHost, options: IoeventfdOptions, closed: (ioeventfd: Ioeventfd) => void): Ioeventfd {
  const opts = checkOptions('options', options, optionNames);
  const index = checkInteger('options.region', opts.region, 0, 0xffff_ffff);
  const width = opts.width;
  if (width !== 1 && width !== 2 && width !== 4 && width !== 8) throw rangeError('options.width', `must be 1, 2, 4 or 8, got ${String(width)}`, 'ERR_INVALID_ARG_VALUE');
  const offset = checkU64('options.offset', opts.offset);
  const value = checkU64('options.value', opts.value, 0n, (1n << BigInt(8 * width)) - 1n);
  if (index > b.VFIO_PCI_BAR5_REGION_INDEX) throw rangeError('options.region', `must be a BAR (0 to ${b.VFIO_PCI_BAR5_REGION_INDEX}), got ${index}: the kernel writes ioeventfds into BARs only`);
  const region = host.region(index);
  if (!region) throw rangeError('options.region', `is ${index}, which ${host.name} does not have`, 'ERR_INVALID_ARG_VALUE');
  if (offset % BigInt(width) !== 0n) throw rangeError('options.offset', `${hex(offset)} is not aligned to the ${width}-byte width`, 'ERR_VFIO_MISALIGNED');
  if (offset + BigInt(width) > region.size) throw rangeError('options.offset', `${hex(offset)}+${width} is past the end of region ${index} (size ${hex(region.size)})`);
  const { backend } = host.context;
  const fd = kernelCall({ syscall: 'eventfd', device: host.name }, () => backend.eventfd(0, 0));
  const fileOffset = region.offset + offset;
  try {
    const deviceFd = host.fd;
    const arg = ioeventfdArg(fileOffset, value, width, fd);
    backend.ioctl(deviceFd, b.VFIO_DEVICE_IOEVENTFD, arg);
  } catch (error) {
    try {
      backend.close(fd);
    } catch {
      // The refusal is the one worth reporting.
    }
    throw ioeventfdError(error, host.name, index, offset, width);
  }
  return construct(host, fd, { region: index, offset, width, value, fileOffset }, closed);
}

const HINTS: Record<string, string> = {
  EINVAL: 'the kernel writes into BARs only, within the BAR and outside the MSI-X table',
  EEXIST: 'an ioeventfd with the same region, offset, width and value is already registered',
  ENOSPC: 'the device has the most ioeventfds vfio-pci allows (1000)',
  ENOTTY: 'the device\'s driver has no ioeventfds (vfio-pci has them; mdev drivers may not)',
};

function ioeventfdError(error: unknown, device: string, region: number, offset: bigint, width: number): unknown {
  const context = { syscall: 'ioctl', operation: 'VFIO_DEVICE_IOEVENTFD', device };
  const annotated = VfioError.annotate(error, context);
  if (!(annotated instanceof VfioError) || annotated.errno === 0) return annotated;
  return new VfioError(annotated.code, `${annotated.code}: VFIO_DEVICE_IOEVENTFD refused a ${width}-byte write at ${hex(offset)} of region ${region} on ${device}`, {
    ...context,
    errno: annotated.errno,
    hint: HINTS[annotated.code],
  });
}
