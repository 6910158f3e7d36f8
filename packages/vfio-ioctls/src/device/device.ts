import { bindings as b, capabilityChain, decodeAnswer, encodeArg, hotResetArg, irqSet, publicCapability, queryInfo, vfTokenFeatureArg, type CapabilityRef } from '../abi/structs';
import { kernelCall, VfioContext, vfioOptionKeys, vfioOptionsOf, type VfioOptions } from '../core/context';
import { VfioError } from '../core/errors';
import type { Group } from '../iommu/container/group';
import type { DeviceOpenOptions } from '../open';
import { FdHandle, runAll } from '../core/handle';
import type { IommuContext } from '../iommu/context';
import { checkSuppliedEventFds, enableInterrupts, type Interrupts, type IrqPort } from './interrupts';
import type { EventFd } from './event-fd';
import { fillIrqInfoArg, irqIndexLabel, newIrqInfoArg, readIrqInfo, type IrqInfo } from '../abi/irq-info';
import type { ArgBuffer } from '../abi/arg-buffer';
import { probeRegion, setBeforeMap, unmapRegion, type Region, type RegionHost } from './region';
import { illegalConstructor } from '../core/illegal-constructor';
import { checkBoolean, checkInteger, checkOptions, checkString, checkUuid, optionKeys, rangeError, typeError } from '../core/validate';
import { featureArgWith } from '../abi/feature-args';
import { checkFeatureName, featureFlags, featureIoctl, getFeature, listFeatures, migrationFlags, probeFeature, setFeature, type DeviceFeatureName, type DeviceFeatures } from './features';
import { endMigrationSession, newMigration, type Migration } from './migration';
import { openIoeventfd, type Ioeventfd, type IoeventfdOptions } from './ioeventfd';
import { enterLowPower, enterLowPowerWithWakeup, exitLowPower, type LowPowerHost, type LowPowerWakeup } from './low-power';
import { startDmaLogging, type DmaLogging, type DmaLoggingOptions } from './dma-logging';
import { addToKvmVfio, type KvmVfioFile } from './kvm-vfio';

/** What VFIO_DEVICE_GET_INFO reports. */
export interface DeviceInfo {
  /** VFIO_DEVICE_FLAGS_* bits. */
  flags: number;
  /** Number of region indexes (the highest index + 1; some may be absent). */
  numRegions: number;
  /** Number of IRQ indexes. */
  numIrqs: number;
  /** The device supports VFIO_DEVICE_RESET. */
  reset: boolean;
  /** A vfio-pci device. */
  pci: boolean;
  /** The device info capability chain (ids per bus, e.g. zPCI). */
  capabilities: CapabilityRef[];
}

/** A device affected by a PCI hot reset. */
export interface HotResetDevice {
  /**
   * Its IOMMU group number; -1 when queried through a cdev (the kernel then
   * reports dev ids instead: see devId).
   */
  groupId: number;
  /**
   * Through a cdev: its dev id in the same iommufd, VFIO_PCI_DEVID_OWNED
   * (0) for a device this process owns by another iommufd, or
   * VFIO_PCI_DEVID_NOT_OWNED (-1); undefined through a group.
   */
  devId?: number;
  /** PCI segment (domain). */
  segment: number;
  /** PCI bus number. */
  bus: number;
  /** Device and function: slot << 3 | function. */
  devfn: number;
  /** 'DDDD:BB:DD.F'. */
  address: string;
}

/** What VFIO_DEVICE_GET_PCI_HOT_RESET_INFO reports. */
export interface HotResetInfo {
  /** The kernel's flags (none defined yet). */
  flags: number;
  /** Every device the bus reset would reset (the device itself included). */
  devices: HotResetDevice[];
}

/**
 * Device.open's implementation, installed by open.ts: the device layer
 * knows no IOMMU backend, so it cannot open one itself without an import
 * cycle (group -> device -> group).
 */
let opener: ((target: string, options?: DeviceOpenOptions) => Device) | undefined;

/** Device.fromFd's path for a cdev fd and an IOAS, installed by open.ts for the same reason. */
let cdevAdopter: ((fd: number, context: VfioContext, name: string, ioas: IommuContext) => Device) | undefined;

/** @internal open.ts installs the binding of a cdev fd given to Device.fromFd with an IOAS. */
export function installCdevAdopter(adopt: (fd: number, context: VfioContext, name: string, ioas: IommuContext) => Device): void {
  cdevAdopter = adopt;
}

/** @internal open.ts installs Device.open's implementation. */
export function installDeviceOpener(open: (target: string, options?: DeviceOpenOptions) => Device): void {
  opener = open;
}

/** Options of {@link Device.enableIrq}. */
export interface EnableIrqOptions {
  /** First vector (default 0). */
  start?: number;
  /** Number of vectors (default: as many as `eventfds`, else from start to the last vector of the index). */
  count?: number;
  /**
   * The caller's eventfds, one per vector (a KVM irqfd, say): the kernel
   * signals these, and the library neither watches nor closes them (no
   * 'interrupt' events). Default: eventfds of the library's own, watched.
   */
  eventfds?: readonly EventFd[];
  /**
   * For an automasked index (INTx): give the kernel a resample eventfd, so
   * that unmask() is an eventfd write rather than an ioctl, as VMMs do it:
   * true (the default) for one of the library's, or the caller's EventFd
   * (a KVM irqfd's resamplefd). `true`/`false` are ignored for other indexes.
   */
  resample?: boolean | EventFd;
}

const enableIrqOptionKeys = optionKeys<EnableIrqOptions>({ start: true, count: true, eventfds: true, resample: true });

/** Options of {@link Device.fromFd}. */
type FromFdOptions = VfioOptions & { name: string; iommu?: IommuContext };
const fromFdOptionKeys: readonly string[] = [...vfioOptionKeys, 'name', 'iommu'];

/** Read once: vfio-bindings' exports are getters (see irq.ts). */
const GET_IRQ_INFO = b.VFIO_DEVICE_GET_IRQ_INFO;

/** @internal Whoever handed the device its fd and must hear of its close. */
export interface DeviceOwner {
  deviceClosed(device: Device): void;
}

/** Only this module holds it: Device's constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('Device');

// Set by Device's static block, which may reach its private constructor.
let construct: (context: VfioContext, fd: number, name: string, info: DeviceInfo, links: AdoptOptions) => Device;

/**
 * An open VFIO device: its info, regions (keyed by their true index),
 * interrupts, and resets. It does not care how its fd was obtained (from a
 * group, or a pre-opened fd with {@link Device.fromFd}), so an iommufd cdev
 * can hand it one later. close() disables its interrupts and unmaps its
 * regions before closing the fd, then releases the group when it was the
 * group's last device.
 */
export class Device extends FdHandle implements RegionHost {
  /** Where it was opened. */
  readonly context: VfioContext;
  /** The device name (the PCI address for vfio-pci). */
  readonly name: string;
  /** Device info, queried at open. */
  readonly info: DeviceInfo;
  /** The group it was opened from, if any. */
  readonly group: Group | undefined;
  readonly #owner: DeviceOwner | undefined;
  readonly #iommu: IommuContext | undefined;
  #regions: Map<number, Region> | undefined;
  readonly #interrupts = new Set<Interrupts>();
  /** Reused by irqInfo(), which reads the answer before the next query. */
  #irqInfoArg: ArgBuffer | undefined;
  /** What this device's Interrupts may do to it; never reachable from the Device. */
  readonly #irqPort: IrqPort;
  /** What the feature helpers (migration, low power, ioeventfds, DMA logging) may do to this device. */
  readonly #featurePort: LowPowerHost & { region(index: number): Region | undefined };
  #migration: Migration | undefined;
  readonly #ioeventfds = new Set<Ioeventfd>();
  readonly #kvmFiles = new Set<KvmVfioFile>();
  #dmaLog: DmaLogging | undefined;
  #wakeup: LowPowerWakeup | undefined;
  /** Low power entered (LOW_POWER_ENTRY*) and not exited through this handle. */
  #lowPower = false;

  static {
    construct = (context, fd, name, info, links) => new Device(constructKey, context, fd, name, info, links);
  }

  private constructor(key: symbol, context: VfioContext, fd: number, name: string, info: DeviceInfo, links: AdoptOptions) {
    // Before super(): FdHandle would take charge of closing `fd`.
    if (key !== constructKey) throw illegalConstructor();
    super(context.backend, fd, `device ${name}`);
    this.context = context;
    this.name = name;
    this.info = info;
    this.group = links.group;
    this.#owner = links.owner;
    this.#iommu = links.iommu;
    const device = this;
    this.#featurePort = {
      get fd() {
        return device.fd;
      },
      name,
      context,
      mappedRegions: () => (this.#regions ? [...this.#regions.values()] : []),
      region: (index) => this.region(index),
    };
    this.#irqPort = {
      name,
      context,
      setIrqs: (flags, index, start, count, data) => this.#setIrqs(flags, index, start, count, data),
      soleRange: (irqs) => this.#soleRange(irqs),
      interruptsClosed: (irqs) => {
        this.#interrupts.delete(irqs);
      },
    };
    setBeforeMap(this, () => {
      if (this.#lowPower) this.exitLowPower();
    });
  }

  /**
   * Opens a device by PCI address or sysfs path, through the IOMMU backend
   * `options.iommu` chooses (see open.ts, the layer above, which knows the
   * backends). Devices of one group opened this way share the group, which
   * is detached when the last of them closes.
   * @param target - '0000:00:03.0' (or '00:03.0') or '/sys/bus/pci/devices/0000:00:03.0'.
   * @throws RangeError for a malformed target; VfioError from any step
   *   (ERR_VFIO_GROUP_NOT_VIABLE lists the devices to rebind).
   */
  static open(target: string, options?: DeviceOpenOptions): Device {
    if (!opener) throw new VfioError('ERR_VFIO_PROTOCOL', 'Device.open is not available: import the package entry point (vfio-ioctls), which installs it');
    return opener(target, options);
  }

  /**
   * Wraps a device fd obtained elsewhere (a VFIO cdev, an fd passed over a
   * socket). The Device owns it from now on and closes it.
   * @param options.name - the device name, for errors.
   * @param options.iommu - the IOMMU context its DMA goes through, if any;
   *   an Ioas binds the (cdev) fd to its iommufd and attaches it first.
   * @throws VfioError from the bind or attach (the fd is closed then, as
   *   when the device info query fails).
   */
  static fromFd(fd: number, options: FromFdOptions): Device {
    checkInteger('fd', fd, 0, 0x7fff_ffff);
    const opts = checkOptions('options', options, fromFdOptionKeys);
    const name = checkString('options.name', opts.name);
    const context = VfioContext.from(vfioOptionsOf(opts));
    // An IOAS means a cdev fd to bind and attach first (as rust-vmm's
    // new_from_fd does); open.ts, which knows iommufd, does that.
    if (opts.iommu?.kind === 'iommufd' && cdevAdopter) return cdevAdopter(fd, context, name, opts.iommu);
    return adoptDevice(fd, { context, name, iommu: opts.iommu });
  }

  protected errorContext(): { device: string } {
    return { device: this.name };
  }

  /** The IOMMU context (container) the device's DMA goes through. */
  get iommu(): IommuContext | undefined {
    return this.#iommu ?? this.group?.container;
  }

  /**
   * The regions the device has, keyed by region index (queried on first
   * use). Indexes whose info fails with EINVAL (VGA on a non-VGA device) or
   * that have size 0 are absent, never shifted.
   */
  get regions(): ReadonlyMap<number, Region> {
    this.assertOpen();
    if (!this.#regions) {
      const regions = new Map<number, Region>();
      for (let index = 0; index < this.info.numRegions; index++) {
        const region = probeRegion(this, index);
        if (region) regions.set(index, region);
      }
      this.#regions = regions;
    }
    return this.#regions;
  }

  /** The region at `index`, or undefined when the device has none there. */
  region(index: number): Region | undefined {
    checkInteger('index', index, 0, 0xffff_ffff);
    return this.regions.get(index);
  }

  /** PCI config space (region VFIO_PCI_CONFIG_REGION_INDEX) of a vfio-pci device. */
  get config(): Region | undefined {
    return this.info.pci ? this.region(b.VFIO_PCI_CONFIG_REGION_INDEX) : undefined;
  }

  /**
   * Queries VFIO_DEVICE_GET_IRQ_INFO.
   * @throws RangeError when `index` is not below info.numIrqs; VfioError
   *   EINVAL naming the index (and its vfio-pci name) when the kernel does
   *   not offer it for this device, as ERR on a conventional PCI device.
   */
  irqInfo(index: number): IrqInfo {
    this.#checkIrqIndex(index);
    const fd = this.fd;
    const arg = (this.#irqInfoArg ??= newIrqInfoArg());
    fillIrqInfoArg(arg, index);
    try {
      this.backend.ioctl(fd, GET_IRQ_INFO, arg.bytes);
    } catch (error) {
      throw irqInfoError(error, index, this.name, this.info.pci);
    }
    return readIrqInfo(arg);
  }

  /**
   * Enables vectors of an IRQ index, each signalling an eventfd the library
   * creates (or the caller's, `eventfds`), and returns them as an
   * {@link Interrupts}. Vectors past an enabled range of the same index
   * grow its block (see the README's interrupts section).
   * @throws RangeError for vectors outside the index or already enabled
   *   (ERR_VFIO_IRQ_BUSY), `eventfds` not one per vector, or an EventFd of
   *   another backend (ERR_INVALID_ARG_VALUE); TypeError for an `eventfds`
   *   entry or `resample` that is not an EventFd; VfioError ERR_VFIO_CLOSED
   *   for a closed EventFd,
   *   ERR_VFIO_UNSUPPORTED when the index has no vectors or no eventfd
   *   signalling, EINVAL from the kernel (the hint says why: another of
   *   INTx, MSI and MSI-X enabled, or a block that could not grow).
   */
  enableIrq(index: number, options?: EnableIrqOptions): Interrupts {
    this.#checkIrqIndex(index);
    const opts = checkOptions('options', options, enableIrqOptionKeys);
    if (opts.start !== undefined) checkInteger('options.start', opts.start);
    if (opts.count !== undefined) checkInteger('options.count', opts.count, 1);
    const supplied = checkSuppliedEventFds(opts.eventfds, opts.resample, opts.count, this.backend);
    const info = this.irqInfo(index);
    if (info.count === 0 || !info.eventfd) {
      throw new VfioError('ERR_VFIO_UNSUPPORTED', `${this.name} has no ${info.count === 0 ? 'vectors' : 'eventfd signalling'} at IRQ index ${index}`, {
        operation: 'VFIO_DEVICE_SET_IRQS',
        device: this.name,
      });
    }
    const start = opts.start ?? 0;
    if (start >= info.count) throw rangeError('options.start', `must be below ${info.count} (vectors of IRQ index ${index}), got ${start}`);
    const count = opts.count ?? supplied.eventfds?.length ?? info.count - start;
    if (start + count > info.count) {
      throw rangeError('options.count', `${start}+${count} exceeds the ${info.count} vectors of IRQ index ${index}`);
    }
    for (const other of this.#interrupts) {
      if (other.index === index && start < other.start + other.count && other.start < start + count) {
        throw rangeError('options.start', `vectors ${other.start}-${other.start + other.count - 1} of IRQ index ${index} are already enabled`, 'ERR_VFIO_IRQ_BUSY');
      }
    }
    if (typeof supplied.resample === 'object' && !(info.automasked && info.maskable && count === 1)) {
      throw rangeError('options.resample', `is for one vector of an automasked, maskable index (INTx); IRQ index ${index} is not one`, 'ERR_INVALID_ARG_VALUE');
    }
    const irqs = enableInterrupts(this.#irqPort, info, { start, count, ...supplied, enabled: [...this.#interrupts], pci: this.info.pci });
    this.#interrupts.add(irqs);
    return irqs;
  }

  /** The enabled interrupt ranges. */
  interrupts(): readonly Interrupts[] {
    return [...this.#interrupts];
  }

  /**
   * Sets the VF token of an SR-IOV PF (VFIO_DEVICE_FEATURE PCI_VF_TOKEN):
   * the shared secret its VFs must be opened with (`Device.open(vf, {
   * vfToken })`) while the PF is bound to vfio-pci. While VFs are open, the
   * kernel lets only the current token's holder change it.
   * @throws RangeError for a malformed UUID; VfioError from the kernel
   *   (EINVAL: the device is not a vfio-pci PF).
   */
  setVfToken(uuid: string): void {
    const token = checkUuid('uuid', uuid);
    const fd = this.fd;
    const arg = vfTokenFeatureArg(token);
    this.#ioctl('VFIO_DEVICE_FEATURE', () => this.backend.ioctl(fd, b.VFIO_DEVICE_FEATURE, arg));
  }

  /**
   * Probes every VFIO_DEVICE_FEATURE (PROBE with GET, and with SET) and
   * returns what the device offers: the supported features with their
   * accesses, and typed answers (the migration flags, DMA logging, low
   * power, bus master, VF token).
   */
  features(): DeviceFeatures {
    this.assertOpen();
    return listFeatures(this.#featurePort);
  }

  /**
   * Whether the device offers `feature` (VFIO_DEVICE_FEATURE PROBE), or
   * that access to it.
   * @throws RangeError for an unknown feature name; VfioError for a probe
   *   answer other than ENOTTY, EINVAL or EOPNOTSUPP.
   */
  probeFeature(feature: DeviceFeatureName, access?: 'get' | 'set'): boolean {
    const name = checkFeatureName('feature', feature);
    if (access !== undefined && access !== 'get' && access !== 'set') throw rangeError('access', `must be 'get' or 'set', got ${JSON.stringify(access)}`, 'ERR_INVALID_ARG_VALUE');
    return probeFeature(this.#featurePort, name, access);
  }

  /**
   * GET of `feature` with `size` bytes of data (the feature's struct, see
   * vfio.h); returns the bytes the kernel wrote.
   * @throws VfioError naming the feature and the kernel's answer.
   */
  getFeature(feature: DeviceFeatureName, size: number): Uint8Array {
    return getFeature(this.#featurePort, checkFeatureName('feature', feature), size);
  }

  /**
   * SET of `feature` with `data` (the feature's struct; none for
   * LOW_POWER_ENTRY, LOW_POWER_EXIT, DMA_LOGGING_STOP). The typed methods
   * (migration, enterLowPower, ...) keep the library's bookkeeping; this
   * raw form does not.
   * @throws VfioError naming the feature and the kernel's answer.
   */
  setFeature(feature: DeviceFeatureName, data?: Uint8Array): void {
    setFeature(this.#featurePort, checkFeatureName('feature', feature), data);
  }

  /**
   * Migration v2 of the device: its state machine, data sessions and
   * stop-copy size (see {@link Migration}).
   * @throws VfioError ERR_VFIO_UNSUPPORTED when the device cannot migrate.
   */
  get migration(): Migration {
    this.assertOpen();
    if (!this.#migration) {
      const flags = migrationFlags(this.#featurePort);
      if (!flags) {
        throw new VfioError('ERR_VFIO_UNSUPPORTED', `${this.name} cannot migrate (VFIO_DEVICE_FEATURE MIGRATION answers ENOTTY)`, {
          operation: 'VFIO_DEVICE_FEATURE',
          device: this.name,
          hint: 'only devices with a migration driver (a vendor vfio-pci variant, the mtty sample) can migrate',
        });
      }
      this.#migration = newMigration(this.#featurePort, flags);
    }
    return this.#migration;
  }

  /**
   * Starts the device's own DMA logging (DMA_LOGGING_START) over
   * `options.ranges`; one log at a time, stopped with the device.
   * @throws RangeError for empty, overlapping or misaligned ranges;
   *   VfioError from the kernel (ENOTTY: the device has no DMA logging).
   */
  startDmaLogging(options: DmaLoggingOptions): DmaLogging {
    this.assertOpen();
    if (this.#dmaLog?.active) {
      throw new VfioError('ERR_VFIO_UNSUPPORTED', `${this.name} is already logging its DMA`, {
        operation: 'VFIO_DEVICE_FEATURE', device: this.name, hint: 'stop() the running log first: the uAPI allows one at a time',
      });
    }
    this.#dmaLog = startDmaLogging(this.#featurePort, options, (log) => {
      if (this.#dmaLog === log) this.#dmaLog = undefined;
    });
    return this.#dmaLog;
  }

  /**
   * Registers a write of `options.value` (`options.width` bytes) at
   * `options.offset` of BAR `options.region`, made by the kernel each time
   * the returned ioeventfd's eventfd is signalled (VFIO_DEVICE_IOEVENTFD).
   * @throws RangeError for a region that is not a BAR of the device, an
   *   offset past it or not aligned to the width, a value wider than it;
   *   VfioError from the kernel.
   */
  ioeventfd(options: IoeventfdOptions): Ioeventfd {
    this.assertOpen();
    const ioeventfd = openIoeventfd(this.#featurePort, options, (closed) => this.#ioeventfds.delete(closed));
    this.#ioeventfds.add(ioeventfd);
    return ioeventfd;
  }

  /** The ioeventfds registered and not closed. */
  ioeventfds(): readonly Ioeventfd[] {
    return [...this.#ioeventfds];
  }

  /**
   * Adds this device's VFIO file to the KVM VFIO device at `kvmVfioFd`
   * (KVM_DEV_VFIO_FILE_ADD): its group's fd on the legacy container path,
   * its own fd when it has no group (an iommufd cdev). Devices of one group
   * share the group's entry. The device's close deletes it again.
   * @param kvmVfioFd - from KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO) on the VM fd.
   * @throws RangeError/TypeError for a bad fd number; VfioError from the kernel.
   */
  addToKvm(kvmVfioFd: number): KvmVfioFile {
    this.assertOpen();
    const group = this.group;
    const link = addToKvmVfio(
      { name: this.name, context: this.context, file: () => (group ? { fd: group.fd, kind: 'group', owner: group } : { fd: this.fd, kind: 'device', owner: this }) },
      kvmVfioFd,
      (closed) => this.#kvmFiles.delete(closed),
    );
    this.#kvmFiles.add(link);
    return link;
  }

  /**
   * LOW_POWER_ENTRY: lets the kernel put the device in a low power state
   * (D3) until it is used; any access brings it back. Mapping a region
   * exits low power first (LOW_POWER_EXIT): a mapping made while it is
   * entered would fault with SIGBUS on its first access.
   * @throws VfioError ERR_VFIO_BUFFER_MAPPED while a region is mapped (the
   *   kernel would revoke the mapping under the program); EINVAL when low
   *   power is already entered.
   */
  enterLowPower(): void {
    enterLowPower(this.#featurePort);
    this.#lowPower = true;
  }

  /**
   * LOW_POWER_ENTRY_WITH_WAKEUP: as enterLowPower(), with an eventfd the
   * kernel signals when the device wakes (which also ends low power).
   * @throws as enterLowPower().
   */
  enterLowPowerWithWakeup(): LowPowerWakeup {
    const wakeup = enterLowPowerWithWakeup(this.#featurePort);
    // A wake-up ended the previous entry: its eventfd has served.
    this.#wakeup?.close();
    this.#wakeup = wakeup;
    this.#lowPower = true;
    return wakeup;
  }

  /** LOW_POWER_EXIT (harmless when not entered); closes the wake-up eventfd. */
  exitLowPower(): void {
    exitLowPower(this.#featurePort);
    this.#lowPower = false;
    this.#wakeup?.close();
    this.#wakeup = undefined;
  }

  /**
   * BUS_MASTER: sets or clears the device's bus mastering where the bus
   * has no in-band control (CDX devices). A PCI device's bus master bit is
   * PCI_COMMAND_MASTER in its config space, and the kernel answers ENOTTY.
   */
  setBusMaster(enabled: boolean): void {
    const op = checkBoolean('enabled', enabled) ? b.VFIO_DEVICE_FEATURE_SET_MASTER : b.VFIO_DEVICE_FEATURE_CLEAR_MASTER;
    featureIoctl(this.#featurePort, 'BUS_MASTER', 'set', featureArgWith(featureFlags('BUS_MASTER', 'set'), b.vfio_device_feature_bus_master, { op }));
  }

  /**
   * Resets the device (VFIO_DEVICE_RESET).
   * @throws VfioError ERR_VFIO_UNSUPPORTED, before any syscall, when the device
   *   reports no reset method (VFIO_DEVICE_FLAGS_RESET unset, as for QEMU's edu).
   */
  reset(): void {
    const fd = this.fd;
    if (!this.info.reset) {
      throw new VfioError('ERR_VFIO_UNSUPPORTED', `${this.name} has no reset method (VFIO_DEVICE_FLAGS_RESET is not set)`, {
        operation: 'VFIO_DEVICE_RESET',
        device: this.name,
        hint: 'the device supports neither FLR, PM nor a slot/bus reset; see hotResetInfo() for a bus reset',
      });
    }
    this.#ioctl('VFIO_DEVICE_RESET', () => this.backend.ioctl(fd, b.VFIO_DEVICE_RESET));
    // A reset returns a migratable device to RUNNING: its data session is over.
    if (this.#migration) endMigrationSession(this.#migration, 'the device was reset');
  }

  /**
   * Lists the devices a PCI hot (bus) reset would reset.
   * @throws VfioError ENODEV when the device cannot be bus-reset (e.g. on the root bus).
   */
  hotResetInfo(): HotResetInfo {
    const fd = this.fd;
    let count = 0;
    for (let attempt = 0; attempt < 4; attempt++) {
      const devices = Array.from({ length: count }, () => ({}));
      const arg = encodeArg(b.vfio_pci_hot_reset_info, { flags: 0, count, devices });
      try {
        this.backend.ioctl(fd, b.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, arg);
      } catch (error) {
        // ENOSPC: the kernel wrote how many entries it needs; ask again with room for them.
        if ((error as { code?: string }).code === 'ENOSPC') {
          const needed = readU32(arg, b.vfio_pci_hot_reset_info.offsetOf('count'));
          if (needed > count && needed < 4096) {
            count = needed;
            continue;
          }
        }
        throw VfioError.annotate(error, { syscall: 'ioctl', operation: 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', device: this.name });
      }
      const answer = decodeAnswer(b.vfio_pci_hot_reset_info, arg, 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO');
      return {
        flags: answer.flags,
        // With FLAG_DEV_ID (a cdev asked) the union holds dev ids, not group ids.
        devices: (answer.devices ?? []).map((d) => ({
          groupId: answer.flags & b.VFIO_PCI_HOT_RESET_FLAG_DEV_ID ? -1 : d.group_id,
          ...(answer.flags & b.VFIO_PCI_HOT_RESET_FLAG_DEV_ID ? { devId: d.group_id | 0 } : {}),
          segment: d.segment,
          bus: d.bus,
          devfn: d.devfn,
          address: pciAddressOf(d.segment, d.bus, d.devfn),
        })),
      };
    }
    throw new VfioError('ERR_VFIO_PROTOCOL', `${this.name}: hot reset info kept growing`, { device: this.name });
  }

  /**
   * Resets the bus the device sits on (VFIO_DEVICE_PCI_HOT_RESET). The
   * kernel demands proof of ownership of every affected group: pass them all
   * (default: this device's group).
   * @throws VfioError EINVAL naming the groups the reset affects
   *   (hotResetInfo()) and the ones given, when the kernel refuses the proof.
   */
  hotReset(groups?: readonly Group[]): void {
    // A device opened through its cdev proves ownership through its
    // iommufd: the kernel's form with no group fds at all.
    const cdev = !this.group && this.iommu?.kind === 'iommufd';
    const list = groups ?? (this.group ? [this.group] : cdev ? [] : undefined);
    if (!Array.isArray(list)) throw typeError('groups', 'an array of Group (the device has no group of its own)', groups);
    const given = list.map((group, i) => checkGroup(`groups[${i}]`, group));
    const fd = this.fd;
    const arg = hotResetArg(given.map((group) => group.fd));
    try {
      this.backend.ioctl(fd, b.VFIO_DEVICE_PCI_HOT_RESET, arg);
    } catch (error) {
      throw this.#hotResetError(error, given.map((group) => group.id));
    }
  }

  /**
   * The kernel answers EINVAL, and nothing more, when a group the reset
   * affects is missing from the proof: name the groups hotResetInfo()
   * lists next to the ones given (best effort; without the list, the
   * kernel's error as it came).
   */
  #hotResetError(error: unknown, givenIds: number[]): unknown {
    const context = { syscall: 'ioctl', operation: 'VFIO_DEVICE_PCI_HOT_RESET', device: this.name };
    const annotated = VfioError.annotate(error, context);
    if (!(annotated instanceof VfioError) || annotated.code !== 'EINVAL') return annotated;
    let neededIds: number[];
    try {
      neededIds = [...new Set(this.hotResetInfo().devices.map((d) => d.groupId))].sort((x, y) => x - y);
    } catch {
      return annotated;
    }
    const given = new Set(givenIds);
    const missing = neededIds.filter((id) => !given.has(id));
    const groupList = (ids: number[]) => (ids.length === 0 ? 'none' : ids.join(', '));
    const message = `EINVAL: VFIO_DEVICE_PCI_HOT_RESET refused on ${this.name}: the reset affects groups ${groupList(neededIds)}; given groups ${groupList([...given])}`;
    const hint = missing.length > 0
      ? `the kernel demands an open fd of every affected group as proof of ownership: open group${missing.length > 1 ? 's' : ''} ${missing.join(', ')} too and pass ${missing.length > 1 ? 'them' : 'it'} with the others (see hotResetInfo())`
      : 'every group hotResetInfo() lists was given, so the kernel refused for another reason';
    return new VfioError('EINVAL', message, { ...context, errno: annotated.errno, hint });
  }

  /** VFIO_DEVICE_SET_IRQS, for this device's Interrupts (through #irqPort). */
  #setIrqs(flags: number, index: number, start: number, count: number, data?: { fds?: number[]; bools?: boolean[] }): void {
    const fd = this.fd;
    const arg = irqSet(flags, index, start, count, data);
    this.#ioctl('VFIO_DEVICE_SET_IRQS', () => this.backend.ioctl(fd, b.VFIO_DEVICE_SET_IRQS, arg));
  }

  /** True when `irqs` is the only enabled range of its index. */
  #soleRange(irqs: Interrupts): boolean {
    for (const other of this.#interrupts) if (other !== irqs && other.index === irqs.index) return false;
    return true;
  }

  protected override releaseDependents(): void {
    const regions = this.#regions ? [...this.#regions.values()] : [];
    const migration = this.#migration;
    const dmaLog = this.#dmaLog;
    const wakeup = this.#wakeup;
    runAll([
      // What the feature helpers hold first: the data session, the DMA log, ioeventfds, the wake-up eventfd.
      ...(migration ? [() => endMigrationSession(migration, 'the device was closed')] : []),
      ...(dmaLog ? [() => dmaLog.stop()] : []),
      ...[...this.#ioeventfds].map((ioeventfd) => () => ioeventfd.close()),
      ...(wakeup ? [() => wakeup.close()] : []),
      // KVM holds a reference to the file: delete it before the fd closes.
      ...[...this.#kvmFiles].map((link) => () => link.close()),
      ...this.interrupts().map((irqs) => () => irqs.disable()),
      ...regions.map((region) => () => unmapRegion(region)),
    ]);
  }

  protected override afterClose(): void {
    this.#owner?.deviceClosed(this);
  }

  #checkIrqIndex(index: number): void {
    checkInteger('index', index, 0, 0xffff_ffff);
    this.assertOpen();
    if (index >= this.info.numIrqs) throw rangeError('index', `must be below ${this.info.numIrqs} (IRQ indexes of ${this.name}), got ${index}`);
  }

  #ioctl<T>(operation: string, call: () => T): T {
    return kernelCall({ syscall: 'ioctl', operation, device: this.name }, call);
  }
}

interface AdoptOptions {
  owner?: DeviceOwner;
  group?: Group;
  iommu?: IommuContext;
}

/**
 * @internal Takes ownership of `fd` and queries the device info; closes the
 * fd when that fails, so a failed open leaves nothing behind. For the
 * layers that open device fds (open.ts, the IOMMU backends' wiring); not
 * exported from the package.
 */
export function adoptDevice(fd: number, options: AdoptOptions & { context: VfioContext; name: string }): Device {
  const { context, name } = options;
  try {
    return construct(context, fd, name, queryDeviceInfo(context, fd, name), options);
  } catch (error) {
    try {
      context.backend.close(fd);
    } catch {
      // The info failure is the one worth reporting.
    }
    throw error;
  }
}

/**
 * VFIO_DEVICE_GET_IRQ_INFO failed. EINVAL for an index below num_irqs means
 * the kernel does not offer that index for this device (vfio-pci: ERR on a
 * conventional PCI device): say which, by number and name.
 */
function irqInfoError(error: unknown, index: number, device: string, pci: boolean): unknown {
  const context = { syscall: 'ioctl', operation: 'VFIO_DEVICE_GET_IRQ_INFO', device };
  const annotated = VfioError.annotate(error, context);
  if (!(annotated instanceof VfioError) || annotated.code !== 'EINVAL') return annotated;
  const label = irqIndexLabel(index, pci);
  const onlyPcie = pci && index === b.VFIO_PCI_ERR_IRQ_INDEX ? ' (vfio-pci offers ERR on PCI Express devices only)' : '';
  return new VfioError('EINVAL', `EINVAL: VFIO_DEVICE_GET_IRQ_INFO refused IRQ index ${label} of ${device}`, {
    ...context,
    errno: annotated.errno,
    hint: `the kernel does not offer IRQ index ${label} for this device${onlyPcie}`,
  });
}

function queryDeviceInfo(context: VfioContext, fd: number, name: string): DeviceInfo {
  const { info, bytes } = queryInfo(
    b.vfio_device_info,
    {},
    (arg) => kernelCall({ syscall: 'ioctl', operation: 'VFIO_DEVICE_GET_INFO', device: name }, () =>
      context.backend.ioctl(fd, b.VFIO_DEVICE_GET_INFO, arg)),
    'VFIO_DEVICE_GET_INFO',
  );
  const capabilities = info.flags & b.VFIO_DEVICE_FLAGS_CAPS && info.cap_offset !== 0
    ? capabilityChain(bytes, 'device', info.cap_offset, 'VFIO_DEVICE_GET_INFO').map(publicCapability)
    : [];
  return {
    flags: info.flags,
    numRegions: info.num_regions,
    numIrqs: info.num_irqs,
    reset: (info.flags & b.VFIO_DEVICE_FLAGS_RESET) !== 0,
    pci: (info.flags & b.VFIO_DEVICE_FLAGS_PCI) !== 0,
    capabilities,
  };
}

/** One u32 field of a kernel answer that cannot be decoded whole (its array did not fit). */
function readU32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, true);
}

/** An open Group, checked by shape: the device layer does not import the IOMMU layer. */
function checkGroup(name: string, group: unknown): { fd: number; id: number } {
  const candidate = group as { fd?: unknown; id?: unknown } | null;
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.id !== 'number' || !('fd' in candidate)) {
    throw typeError(name, 'a Group', group);
  }
  // Read once: `fd` is a getter that throws ERR_VFIO_CLOSED for a closed group.
  return { fd: candidate.fd as number, id: candidate.id };
}

function pciAddressOf(segment: number, bus: number, devfn: number): string {
  const h = (value: number, width: number) => value.toString(16).padStart(width, '0');
  return `${h(segment, 4)}:${h(bus, 2)}:${h(devfn >> 3, 2)}.${devfn & 7}`;
}
