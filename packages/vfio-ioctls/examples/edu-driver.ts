/**
 * A userspace driver for QEMU's `edu` teaching device, written against the
 * public API of vfio-ioctls and nothing else. Read it top to bottom:
 *
 *   1. find the device and open it (VFIO opens its IOMMU group and a container)
 *   2. map BAR0 and talk to the registers: identification and liveness
 *   3. enable MSI and let the device interrupt us when a factorial is done
 *   4. give the device memory through the IOMMU and let it DMA in and out
 *
 * Run it in the QEMU test bed with `pnpm demo` (the guest binds edu to
 * vfio-pci). On your own machine: bind the device to vfio-pci, then
 * `node dist-guest/examples/edu-driver.js [PCI address]` as root.
 *
 * The device is described in QEMU's docs/specs/edu.rst.
 */
import { createHash } from 'node:crypto';
import { Device, DmaBuffer, listIommuGroups, type Interrupts, type RegionMapping } from 'vfio-ioctls';

/** edu's PCI vendor and device id. */
const EDU_VENDOR = 0x1234;
const EDU_DEVICE = 0x11e8;

/** BAR0 register offsets. The 0x80+ DMA registers are 64 bits wide, the others 32. */
const REG = {
  ID: 0x00,
  LIVENESS: 0x04,
  FACTORIAL: 0x08,
  STATUS: 0x20,
  IRQ_STATUS: 0x24,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
} as const;

const STATUS_IRQ_ON_FACTORIAL = 0x80;
const DMA_START = 0x1;
const DMA_TO_RAM = 0x2;
const DMA_IRQ_WHEN_DONE = 0x4;
/** Where the device's own 4 KiB DMA buffer sits in its address space. */
const DEVICE_BUFFER = 0x40000n;
/**
 * QEMU 7.2's edu aborts on a transfer that covers its whole buffer, so
 * keep transfers at half of it.
 */
const MAX_TRANSFER = 2048;
/** edu can only address 28 bits: the IOMMU mapping must sit below 256 MiB. */
const DMA_MASK = 2 ** 28 - 1;

/** PCI config space: the command register, whose bit 2 lets a device master the bus (DMA). */
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MASTER = 0x4;

/** MSI is IRQ index 1 of a vfio-pci device (0 is INTx, 2 MSI-X). */
const MSI = 1;

/** How long to wait for the device before calling it stuck (the emulated guest is slow). */
const TIMEOUT_MS = 10_000;

/** What the device says about itself. */
export interface EduIdentity {
  id: number;
  major: number;
  minor: number;
}

/** The result of a DMA round trip. */
export interface DmaReport {
  bytes: number;
  /** The IO virtual address the device used for our buffer. */
  iova: bigint;
  /** Checksums of what we sent and of what came back. */
  sent: string;
  returned: string;
}

/** A driver for one edu device. */
export class EduDevice {
  readonly address: string;
  readonly #device: Device;
  readonly #bar0: RegionMapping;
  readonly #msi: Interrupts;

  private constructor(device: Device, bar0: RegionMapping, msi: Interrupts) {
    this.address = device.name;
    this.#device = device;
    this.#bar0 = bar0;
    this.#msi = msi;
  }

  /** The first edu device bound to vfio-pci, found in sysfs. */
  static find(): string {
    for (const group of listIommuGroups()) {
      for (const pci of group.devices) {
        if (pci.vendor === EDU_VENDOR && pci.device === EDU_DEVICE && pci.driver === 'vfio-pci') return pci.address;
      }
    }
    throw new Error('no edu device bound to vfio-pci (is this the test bed guest?)');
  }

  /**
   * Opens the device, maps its registers, turns on bus mastering and MSI.
   * Device.open finds the device's IOMMU group, opens it, attaches it to a
   * new container and asks the group for the device: the whole VFIO dance.
   */
  static open(address: string): EduDevice {
    const device = Device.open(address);
    try {
      // Region 0 is BAR0. mmap gives direct, uncached access to the registers.
      const bar0 = device.region(0)!.map();
      // Config space is not mmappable: it goes through pread/pwrite (and the kernel filters it).
      const config = device.config!;
      config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
      // One eventfd per vector, watched on Node's event loop.
      const msi = device.enableIrq(MSI);
      return new EduDevice(device, bar0, msi);
    } catch (error) {
      device.close();
      throw error;
    }
  }

  /** What VFIO set up for us, in words. */
  describe(): string {
    const group = this.#device.group!;
    const bar0Size = Number(this.#device.region(0)!.size);
    return `IOMMU group ${group.id} (${group.path}), BAR0 ${bar0Size / 1024} KiB mmapped, MSI with ${this.#msi.count} vector`;
  }

  /** Reads the identification register: 0xRRrr00ed, major.minor version. */
  identify(): EduIdentity {
    const id = this.#bar0.read32(REG.ID);
    if ((id & 0xff) !== 0xed) throw new Error(`not an edu device: id register is 0x${id.toString(16)}`);
    return { id, major: id >>> 24, minor: (id >>> 16) & 0xff };
  }

  /** The liveness register answers with the bitwise inverse of what it was given. */
  isAlive(): boolean {
    return [0x0000_0000, 0x1234_5678, 0xffff_ffff].every((value) => {
      this.#bar0.write32(REG.LIVENESS, value);
      return this.#bar0.read32(REG.LIVENESS) === ~value >>> 0;
    });
  }

  /** Has the device compute n! and waits for its "done" interrupt. */
  async factorial(n: number): Promise<number> {
    if (!Number.isInteger(n) || n < 0 || n > 12) throw new RangeError('n must be an integer in [0, 12] (n! fits 32 bits)');
    this.#bar0.write32(REG.STATUS, STATUS_IRQ_ON_FACTORIAL);
    // Start listening before starting the work, so the interrupt cannot be missed.
    const done = this.#nextInterrupt();
    this.#bar0.write32(REG.FACTORIAL, n);
    await done;
    this.#bar0.write32(REG.STATUS, 0);
    return this.#bar0.read32(REG.FACTORIAL);
  }

  /**
   * Sends `bytes` random bytes to the device's buffer and has the device
   * send them back, both by DMA through the IOMMU.
   */
  async dmaRoundTrip(bytes: number): Promise<DmaReport> {
    if (!Number.isInteger(bytes) || bytes < 1 || bytes > MAX_TRANSFER) throw new RangeError(`bytes must be in [1, ${MAX_TRANSFER}]`);
    // Memory the library allocated: the only kind it lets a device reach.
    // One page: what we send in the first half, what comes back in the second.
    using buffer = DmaBuffer.alloc(2 * MAX_TRANSFER);
    // Map it into the IOMMU of the device's container at an IOVA edu can address.
    using mapping = this.#device.iommu!.map(buffer, { maxIova: DMA_MASK });
    const outgoing = buffer.bytes.subarray(0, bytes);
    const incoming = buffer.bytes.subarray(MAX_TRANSFER, MAX_TRANSFER + bytes);
    crypto.getRandomValues(outgoing);

    await this.#dma(mapping.iova, DEVICE_BUFFER, bytes, 0);
    await this.#dma(DEVICE_BUFFER, mapping.iova + BigInt(MAX_TRANSFER), bytes, DMA_TO_RAM);
    // Leaving the function unmaps the buffer, then frees it (`using`, in reverse order).
    return { bytes, iova: mapping.iova, sent: checksum(outgoing), returned: checksum(incoming) };
  }

  /** One transfer, finished when the device raises its DMA interrupt. */
  async #dma(source: bigint, destination: bigint, bytes: number, direction: number): Promise<void> {
    this.#bar0.write64(REG.DMA_SRC, source);
    this.#bar0.write64(REG.DMA_DST, destination);
    this.#bar0.write64(REG.DMA_COUNT, bytes);
    const done = this.#nextInterrupt();
    this.#bar0.write64(REG.DMA_CMD, DMA_START | direction | DMA_IRQ_WHEN_DONE);
    await done;
  }

  /** Waits for the next MSI, then acknowledges at the device whatever it raised. */
  async #nextInterrupt(): Promise<void> {
    await this.#msi.next({ signal: AbortSignal.timeout(TIMEOUT_MS) });
    this.#bar0.write32(REG.IRQ_ACK, this.#bar0.read32(REG.IRQ_STATUS));
  }

  /** Closes the device: interrupts off, BAR0 unmapped, then its group and container. */
  close(): void {
    this.#device.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function checksum(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

/** The demo: each step printed as it happens. */
export async function main(address = process.argv[2], log: (line: string) => void = console.log): Promise<void> {
  const target = address ?? EduDevice.find();
  log(`1. open ${target}: its IOMMU group, a container (TYPE1v2 IOMMU), the device`);
  {
    // `using` closes the device when the block ends, even if a step throws.
    using edu = EduDevice.open(target);
    log(`   ${edu.describe()}`);
    const { id, major, minor } = edu.identify();
    log(`2. identify: register 0x${id.toString(16).padStart(8, '0')}, edu version ${major}.${minor}`);
    log(`3. liveness check: ${edu.isAlive() ? 'the device inverts what it is given: alive' : 'NOT answering'}`);
    for (const n of [5, 10, 12]) log(`4. factorial: ${n}! = ${await edu.factorial(n)} (done interrupt received over MSI)`);
    const dma = await edu.dmaRoundTrip(MAX_TRANSFER);
    log(`5. DMA: ${dma.bytes} bytes to the device and back through the IOMMU at IOVA 0x${dma.iova.toString(16)}`);
    log(`   checksum sent ${dma.sent}, returned ${dma.returned}: ${dma.sent === dma.returned ? 'match' : 'MISMATCH'}`);
    if (dma.sent !== dma.returned) throw new Error('DMA round trip corrupted the data');
  }
  log('6. closed: interrupts disabled, BAR0 unmapped, device, group and container closed');
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
