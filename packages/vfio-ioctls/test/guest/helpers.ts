/**
 * What every guest test file shares: the devices of the test bed by role,
 * the resource counters behind the leak checks, edu's register map, and
 * assertions for the library's errors.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, before } from 'node:test';
import { Device, VfioError, type Interrupts, type IommuChoice, type RegionMapping } from 'vfio-ioctls';
import { EDU_DMA_BUFFER, EDU_ID, EDU_REG } from 'vfio-ioctls/testing';

/**
 * The IOMMU backend the backend-neutral files open devices with. The
 * harness runs those files once with 'auto' (iommufd where the kernel has
 * it) and, on kernels with iommufd, again with 'container'
 * (VFIO_GUEST_IOMMU), so the same public API is seen to behave the same on
 * both.
 */
export const GUEST_IOMMU = (process.env.VFIO_GUEST_IOMMU ?? 'auto') as IommuChoice;

/** The capabilities the harness promises for this entry ($VFIO_VM_CAPS, see tools/vm/lib/kernels.js). */
export const GUEST_CAPS: readonly string[] = (process.env.VFIO_VM_CAPS ?? '').split(',').filter(Boolean);

/** Device.open through {@link GUEST_IOMMU}. */
export function openDevice(address: string): Device {
  return Device.open(address, { iommu: GUEST_IOMMU });
}

/** One device of $VFIO_TESTBED (written by the guest's init, see tools/vm/README.md). */
export interface TestbedDevice {
  role: string;
  model: string;
  address: string;
  vendorDevice: string;
  iommuGroup: number;
  groupPath: string;
  driver: string;
}

let cachedTestbed: Record<string, TestbedDevice> | undefined;

/**
 * The device with `role` ('edu', 'e1000e', 'nvme', 'shared-edu-1', ...).
 * A missing device throws: the suite runs only in the guest, and a test bed
 * without the device is a failure, never a reason to skip.
 */
export function device(role: string): TestbedDevice {
  if (!cachedTestbed) {
    const file = process.env.VFIO_TESTBED;
    if (!file) throw new Error('VFIO_TESTBED is not set: run this suite in the guest (pnpm test:guest)');
    cachedTestbed = (JSON.parse(readFileSync(file, 'utf8')) as { devices: Record<string, TestbedDevice> }).devices;
  }
  const found = cachedTestbed[role];
  if (!found) throw new Error(`the test bed has no '${role}' device; use the suite profile`);
  return found;
}

/** The process resources a VFIO program holds: open fds, and memory pinned by DMA mappings (VmLck). */
export interface Resources {
  fds: number;
  lockedKiB: number;
}

export function resources(): Resources {
  const fds = readdirSync('/proc/self/fd').length - 1; // minus the one readdir itself holds
  const status = readFileSync('/proc/self/status', 'utf8');
  // VFIO's type1 container charges pinned pages to VmLck (locked_vm);
  // iommufd in process accounting mode to VmPin (pinned_vm).
  const locked = /^VmLck:\s+(\d+) kB$/m.exec(status);
  const pinned = /^VmPin:\s+(\d+) kB$/m.exec(status);
  if (!locked || !pinned) throw new Error('no VmLck or VmPin line in /proc/self/status');
  return { fds, lockedKiB: Number(locked[1]) + Number(pinned[1]) };
}

/**
 * Asserts that `fn` throws a VfioError with these properties (code,
 * operation, errno...). Returns the error for further checks.
 */
export function throwsVfio(fn: () => unknown, expected: Partial<Record<keyof VfioError, unknown>>): VfioError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof VfioError, `expected a VfioError ${JSON.stringify(expected)}, got ${caught === undefined ? 'no error' : String(caught)}`);
  for (const [key, value] of Object.entries(expected)) {
    assert.equal((caught as unknown as Record<string, unknown>)[key], value, `VfioError.${key} (${caught.message})`);
  }
  return caught;
}

/** Asserts a RangeError/TypeError raised in TypeScript, before any syscall. */
export function throwsArg(fn: () => unknown, name: 'RangeError' | 'TypeError', code?: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.equal((error as Error).name, name, String(error));
    if (code !== undefined) assert.equal((error as { code?: string }).code, code, String(error));
    return true;
  });
}

/**
 * Generous for TCG: the guest runs 15-20x slower than the host, and an
 * interrupt that never comes must fail the test, not hang the suite.
 */
export const IRQ_TIMEOUT_MS = 10_000;

/** The next interrupt, or a failure after IRQ_TIMEOUT_MS. */
export function nextInterrupt(irqs: Interrupts) {
  return irqs.next({ signal: AbortSignal.timeout(IRQ_TIMEOUT_MS) });
}

/** Asserts that no interrupt arrives within `ms`. */
export async function assertNoInterrupt(irqs: Interrupts, ms: number): Promise<void> {
  try {
    const event = await irqs.next({ signal: AbortSignal.timeout(ms) });
    assert.fail(`unexpected interrupt ${JSON.stringify(event)}`);
  } catch (error) {
    if ((error as Error).name !== 'AbortError') throw error;
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `done` every few ms until it holds, failing after `ms`. */
export async function waitFor(what: string, done: () => boolean, ms = IRQ_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/**
 * QEMU's edu device (docs/specs/edu.rst): BAR0 registers and facts. The
 * register offsets are the ones the fake kernel's edu model uses, so the
 * model and the real device are held to one table.
 */
export const EDU = {
  ...EDU_REG,
  /** The identification register's value (version 1.0, 'ed'). */
  IDENT: EDU_ID,
  /** STATUS bit 0: computing; bit 7: raise an interrupt when the factorial is done. */
  STATUS_COMPUTING: 0x01,
  STATUS_IRQ_ON_FACTORIAL: 0x80,
  /** Interrupt status bits: factorial done, DMA done. */
  IRQ_FACTORIAL: 0x001,
  IRQ_DMA: 0x100,
  DMA_START: 0x1,
  DMA_TO_RAM: 0x2,
  DMA_IRQ: 0x4,
  /** The device-side DMA buffer (4 KiB; QEMU 7.2 aborts on a transfer covering all of it). */
  BUFFER: Number(EDU_DMA_BUFFER),
  MAX_TRANSFER: 2048,
  /** edu's DMA mask is 28 bits. */
  MAX_IOVA: 2 ** 28 - 1,
} as const;

/** PCI config space: the command register and its bus master bit. */
export const PCI_COMMAND = 0x04;
export const PCI_COMMAND_MASTER = 0x4;

/**
 * The per-file leak check. Records the resources before the first test;
 * the returned assertion, run as the file's last test, checks that every fd
 * and every pinned page came back. Handles passed to keep() are closed
 * after each test, newest first, so a test that fails half-way does not
 * leave a device open for the tests after it (closing twice is harmless).
 */
export function trackResources(): { keep: <T extends { close(): void }>(handle: T) => T; assertNoLeaks: () => void } {
  let start: Resources | undefined;
  const handles: { close(): void }[] = [];
  before(() => {
    start = resources();
  });
  afterEach(() => {
    for (const handle of handles.splice(0).reverse()) {
      try {
        handle.close();
      } catch {
        // The test that failed has reported it.
      }
    }
  });
  return {
    keep: (handle) => {
      handles.push(handle);
      return handle;
    },
    assertNoLeaks: () => {
      assert.ok(start, 'before() ran');
      assert.deepEqual(resources(), start);
    },
  };
}

/** Opens the test bed's edu with bus mastering on and BAR0 mapped; `keep` closes the device after the test. */
export function openEdu(keep: <T extends { close(): void }>(handle: T) => T): { dev: Device; mmio: RegionMapping } {
  const dev = keep(openDevice(device('edu').address));
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  return { dev, mmio: dev.region(0)!.map() };
}

/** Starts one edu DMA transfer (`command`: 0 to the device, EDU.DMA_TO_RAM from it; | EDU.DMA_IRQ to be interrupted when done). */
export function startEduDma(mmio: RegionMapping, src: bigint, dst: bigint, count: number, command: number): void {
  mmio.write64(EDU.DMA_SRC, src);
  mmio.write64(EDU.DMA_DST, dst);
  mmio.write64(EDU.DMA_COUNT, count);
  mmio.write64(EDU.DMA_CMD, EDU.DMA_START | command);
}

/** Waits for edu to clear the DMA command's start bit (the transfer is done). */
export function eduDmaDone(mmio: RegionMapping): Promise<void> {
  return waitFor('the edu DMA to finish', () => (Number(mmio.read64(EDU.DMA_CMD)) & EDU.DMA_START) === 0);
}

/** One edu DMA transfer, waited for. */
export async function eduDma(mmio: RegionMapping, src: bigint, dst: bigint, count: number, command: number): Promise<void> {
  startEduDma(mmio, src, dst, count, command);
  await eduDmaDone(mmio);
}

/** 256 bytes RAM -> edu's buffer -> RAM 1 KiB further, through whatever maps `iova` for the device; asserts they arrive. */
export async function eduRoundTrip(mmio: RegionMapping, iova: bigint, bytes: Uint8Array): Promise<void> {
  const pattern = Uint8Array.from({ length: 256 }, (_, i) => (i * 13 + 5) & 0xff);
  bytes.set(pattern, 0);
  bytes.fill(0, 1024, 1024 + 256);
  await eduDma(mmio, iova, BigInt(EDU.BUFFER), 256, 0);
  await eduDma(mmio, BigInt(EDU.BUFFER), iova + 1024n, 256, EDU.DMA_TO_RAM);
  assert.deepEqual(bytes.subarray(1024, 1024 + 256), pattern);
}
