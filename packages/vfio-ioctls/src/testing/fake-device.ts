import {
  VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
} from 'vfio-bindings';
import { Errno } from './errno';
import { FakeDeviceFeatures } from './fake-features';
import { FakeIrqs } from './fake-irqs';
import { FakeRegion } from './fake-region';
import { writeConfigHeader } from './pci-config';
import type { FakeDeviceSpec, FakeIrqState, FakeRegionSpec, MmioReadHook, MmioWriteHook } from './types';

/** What a device needs from the kernel around it: its IOMMU, for DMA. */
export interface DeviceHost {
  /** The bytes behind [iova, iova + length) in the device's container, or an Error (IOMMU fault). */
  dmaView(device: FakeDevice, iova: bigint, length: number, write: boolean): Uint8Array;
}

type Width = 1 | 2 | 4 | 8;

const MiB = 1 << 20;

/**
 * A fake PCI function: its regions and IRQs as the kernel reports them, plus
 * the knobs a test uses to play the hardware: register hooks, raising
 * interrupts, DMA through the IOMMU, reset counting.
 */
export class FakeDevice {
  /** PCI address, as in sysfs and GET_DEVICE_FD. */
  readonly address: string;
  /** IOMMU group number. */
  readonly group: number;
  /** Successful VFIO_DEVICE_RESETs so far. */
  resets = 0;
  /** The spec the device was made from (defaults filled in). */
  readonly spec: Readonly<Required<Pick<FakeDeviceSpec, 'vendor' | 'device' | 'class' | 'reset'>>> & FakeDeviceSpec;
  /** @internal */ readonly irqs: FakeIrqs;
  /** Migration, DMA logging, low power and ioeventfds, as the spec declares them. */
  readonly features: FakeDeviceFeatures;
  /** @internal */ openFiles = 0;
  private readonly regions = new Map<number, FakeRegion>();
  private readonly readHooks = new Map<number, MmioReadHook>();
  private readonly writeHooks = new Map<number, MmioWriteHook>();
  private readonly resetHooks: (() => void)[] = [];
  private driverName: string | null;

  /** @internal Made by FakeKernel.addDevice. */
  constructor(spec: FakeDeviceSpec, pageSize: number, private readonly host: DeviceHost) {
    this.address = spec.address;
    this.group = spec.group;
    this.spec = { vendor: 0x1234, device: 0x11e8, class: 0x00ff00, reset: false, ...spec };
    this.driverName = spec.driver === undefined ? 'vfio-pci' : spec.driver;
    const regions = spec.regions ?? [
      { index: VFIO_PCI_BAR0_REGION_INDEX, size: MiB, flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE | VFIO_REGION_INFO_FLAG_MMAP },
      { index: VFIO_PCI_CONFIG_REGION_INDEX, size: 256 },
    ];
    for (const r of regions) this.regions.set(r.index, new FakeRegion(r, pageSize));
    if (!this.regions.has(VFIO_PCI_CONFIG_REGION_INDEX)) {
      this.regions.set(VFIO_PCI_CONFIG_REGION_INDEX, new FakeRegion({ index: VFIO_PCI_CONFIG_REGION_INDEX, size: 256 }, pageSize));
    }
    this.irqs = new FakeIrqs(spec.irqs ?? [{ index: VFIO_PCI_INTX_IRQ_INDEX, count: 1 }, { index: VFIO_PCI_MSI_IRQ_INDEX, count: 1 }]);
    writeConfigHeader(this.regionBytes(VFIO_PCI_CONFIG_REGION_INDEX), this.spec, this.irqs.info(VFIO_PCI_INTX_IRQ_INDEX).count > 0);
    this.features = new FakeDeviceFeatures(spec, {
      region: (index) => this.regionBytes(index),
      regionSize: (index) => this.regions.get(index)?.size ?? 0,
      writeRegister: (index, offset, width, value) => this.writeRegister(index, offset, width, value),
    }, pageSize);
  }

  /** Whether any fd (or mapping) of the device is open. */
  get isOpen(): boolean {
    return this.openFiles > 0;
  }

  /** The driver the device is bound to in sysfs (null: none). */
  get driver(): string | null {
    return this.driverName;
  }

  /** @internal Rebinds; FakeKernel.setDriver keeps sysfs in step. */
  set driver(name: string | null) {
    this.driverName = name;
  }

  /** Regions: one past the highest index (at least the 9 fixed vfio-pci indexes). */
  get numRegions(): number {
    return Math.max(VFIO_PCI_NUM_REGIONS, ...[...this.regions.keys()].map((i) => i + 1));
  }

  /**
   * The backing bytes of region `index`: pread/pwrite and the MMIO accessors
   * read and write them, and a mapping of the whole region is this memory.
   * After such a mapping is unmapped, take a fresh view. A region over
   * 1 GiB has none (RangeError): use readRegion/writeRegion.
   */
  region(index: number): Uint8Array {
    return this.regionBytes(index);
  }

  /**
   * `length` backing bytes of region `index` at `offset`, as region() shows
   * them but for a region of any size: one over 1 GiB is stored sparsely
   * and has no single view. No register hook runs.
   */
  readRegion(index: number, offset: number, length: number): Uint8Array {
    return this.regionModel(index)?.read(offset, length) ?? this.noRegion(index);
  }

  /** Stores `data` in the backing bytes of region `index` at `offset` (no hook runs). */
  writeRegion(index: number, offset: number, data: Uint8Array): void {
    const region = this.regionModel(index) ?? this.noRegion(index);
    region.write(offset, data);
  }

  /** Emulates register reads of region `index` (MMIO accessors and pread); null removes the hook. */
  onMmioRead(index: number, hook: MmioReadHook | null): void {
    this.setHook(this.readHooks, index, hook);
  }

  /** Emulates register writes of region `index` (MMIO accessors and pwrite); null removes the hook. */
  onMmioWrite(index: number, hook: MmioWriteHook | null): void {
    this.setHook(this.writeHooks, index, hook);
  }

  /** Runs `hook` on every successful VFIO_DEVICE_RESET (to clear emulated registers). */
  onReset(hook: () => void): void {
    this.resetHooks.push(hook);
  }

  /**
   * Raises vector `vector` of IRQ index `index` as the hardware would: the
   * eventfd given by SET_IRQS is signalled; INTx then masks itself until
   * unmasked, and one raised while masked stays pending. Returns whether an
   * eventfd was signalled.
   */
  triggerIrq(index: number, vector = 0): boolean {
    return this.irqs.raise(index, vector);
  }

  irqState(index: number): FakeIrqState {
    return this.irqs.state(index);
  }

  /** Device DMA read of `length` bytes at `iova`, through the IOMMU (throws on an IOMMU fault). */
  dmaRead(iova: bigint, length: number): Uint8Array {
    return this.host.dmaView(this, iova, length, false).slice();
  }

  /** Device DMA write of `data` at `iova`, through the IOMMU (throws on an IOMMU fault). */
  dmaWrite(iova: bigint, data: Uint8Array): void {
    this.host.dmaView(this, iova, data.length, true).set(data);
    this.features.dmaLog?.dirty(iova, BigInt(data.length));
  }

  /** @internal */
  regionModel(index: number): FakeRegion | undefined {
    return this.regions.get(index);
  }

  /** @internal A register read of `width` bytes, through the hook when one answers. */
  readRegister(index: number, offset: number, width: Width): bigint {
    const answer = this.readHooks.get(index)?.(offset, width);
    if (answer !== undefined) return BigInt.asUintN(width * 8, BigInt(answer));
    const bytes = this.regions.get(index)!.read(offset, width);
    let value = 0n;
    for (let i = width - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
    return value;
  }

  /** @internal A register write; the backing bytes change unless the hook consumed it. */
  writeRegister(index: number, offset: number, width: Width, value: bigint): void {
    const hookValue = width === 8 ? value : Number(value);
    if (this.writeHooks.get(index)?.(offset, hookValue, width) === true) return;
    const bytes = new Uint8Array(width);
    for (let i = 0; i < width; i++) bytes[i] = Number((value >> BigInt(8 * i)) & 0xffn);
    this.regions.get(index)!.write(offset, bytes);
  }

  /** @internal VFIO_DEVICE_RESET succeeded. */
  didReset(): void {
    this.resets++;
    for (const hook of this.resetHooks) hook();
  }

  private regionBytes(index: number): Uint8Array {
    return (this.regions.get(index) ?? this.noRegion(index)).view();
  }

  private noRegion(index: number): never {
    throw new RangeError(`device ${this.address} has no region ${index}`);
  }

  private setHook<H>(hooks: Map<number, H>, index: number, hook: H | null): void {
    if (!this.regions.has(index)) throw new RangeError(`device ${this.address} has no region ${index}`);
    if (hook === null) hooks.delete(index);
    else hooks.set(index, hook);
  }
}

/** Region accesses from pread/pwrite are split as vfio-pci does: naturally aligned 4, 2 or 1 bytes. */
export function accessWidth(offset: number, remaining: number): 1 | 2 | 4 {
  if (offset % 4 === 0 && remaining >= 4) return 4;
  if (offset % 2 === 0 && remaining >= 2) return 2;
  return 1;
}

/** pread(2)/pwrite(2) on a region: bounds as vfio-pci (start past the end is EINVAL, the count is clipped). */
export function regionRw(device: FakeDevice, index: number, offset: number, buffer: Uint8Array, write: boolean): number {
  const region = device.regionModel(index);
  const need = write ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ;
  if (!region || region.size === 0 || (region.flags & need) === 0) throw new Errno('EINVAL');
  if (offset >= region.size) throw new Errno('EINVAL');
  const count = Math.min(buffer.length, region.size - offset);
  let done = 0;
  while (done < count) {
    const width = accessWidth(offset + done, count - done);
    if (write) {
      let value = 0n;
      for (let i = width - 1; i >= 0; i--) value = (value << 8n) | BigInt(buffer[done + i]);
      device.writeRegister(index, offset + done, width, value);
    } else {
      const value = device.readRegister(index, offset + done, width);
      for (let i = 0; i < width; i++) buffer[done + i] = Number((value >> BigInt(8 * i)) & 0xffn);
    }
    done += width;
  }
  return count;
}
