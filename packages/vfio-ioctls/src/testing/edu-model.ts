import { VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX, VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX } from 'vfio-bindings';
import type { FakeDevice } from './fake-device';

/**
 * QEMU's `edu` teaching device (docs/specs/edu.rst), as register hooks on a
 * FakeDevice's BAR0: identification, liveness, factorial, interrupt raise and
 * acknowledge, and the DMA engine moving bytes between its 4 KiB buffer and
 * process memory through the fake IOMMU. Work completes at once (real edu
 * takes a while): a driver polling the busy bits sees them clear on the
 * first read.
 *
 * Like the real device, DMA happens only with bus mastering enabled in the
 * PCI command register, addresses are clipped to edu's 28-bit DMA mask, and
 * a transfer outside the device buffer is fatal (QEMU aborts; here it throws).
 */
export const EDU_REG = {
  ID: 0x00,
  LIVENESS: 0x04,
  FACTORIAL: 0x08,
  STATUS: 0x20,
  IRQ_STATUS: 0x24,
  IRQ_RAISE: 0x60,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
} as const;

export const EDU_ID = 0x010000ed;
/** Where the device's own buffer sits in its DMA address space. */
export const EDU_DMA_BUFFER = 0x40000n;
export const EDU_DMA_BUFFER_SIZE = 4096;

const STATUS_IRQ_ON_FACTORIAL = 0x80;
const IRQ_FACTORIAL = 0x01;
const IRQ_DMA = 0x100;
const CMD_START = 0x1;
const CMD_TO_RAM = 0x2;
const CMD_IRQ = 0x4;
const DMA_MASK = (1n << 28n) - 1n;
// PCI command register (PCI spec 6.2.2): bit 2 is Bus Master Enable.
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MASTER = 0x4;

/** What emulateEdu leaves a test to look at. */
export interface EduModel {
  /** The device's own 4 KiB DMA buffer (device address EDU_DMA_BUFFER). */
  readonly buffer: Uint8Array;
}

/** Installs the edu register model on `device`'s BAR0. */
export function emulateEdu(device: FakeDevice): EduModel {
  const state = { liveness: 0, factorial: 0, status: 0, irqStatus: 0, src: 0n, dst: 0n, count: 0n, cmd: 0 };
  const buffer = new Uint8Array(EDU_DMA_BUFFER_SIZE);

  const raise = (bits: number) => {
    state.irqStatus |= bits;
    // edu signals MSI when the driver enabled it, INTx otherwise.
    const msi = device.irqState(VFIO_PCI_MSI_IRQ_INDEX).enabled;
    device.triggerIrq(msi ? VFIO_PCI_MSI_IRQ_INDEX : VFIO_PCI_INTX_IRQ_INDEX, 0);
  };

  const runDma = () => {
    const command = new DataView(device.region(VFIO_PCI_CONFIG_REGION_INDEX).buffer).getUint16(PCI_COMMAND, true);
    const toRam = (state.cmd & CMD_TO_RAM) !== 0;
    const deviceSide = (toRam ? state.src : state.dst) & DMA_MASK;
    const hostSide = (toRam ? state.dst : state.src) & DMA_MASK;
    const count = Number(state.count);
    if (deviceSide < EDU_DMA_BUFFER || deviceSide + BigInt(count) > EDU_DMA_BUFFER + BigInt(EDU_DMA_BUFFER_SIZE)) {
      throw new Error(`edu: DMA range out of bounds (0x${deviceSide.toString(16)}, ${count} bytes)`);
    }
    const at = Number(deviceSide - EDU_DMA_BUFFER);
    if (command & PCI_COMMAND_MASTER) {
      if (toRam) device.dmaWrite(hostSide, buffer.subarray(at, at + count));
      else buffer.set(device.dmaRead(hostSide, count), at);
    }
    state.cmd &= ~CMD_START;
    if (state.cmd & CMD_IRQ) raise(IRQ_DMA);
  };

  device.onMmioRead(VFIO_PCI_BAR0_REGION_INDEX, (offset, width) => {
    // edu answers 32-bit accesses below 0x80, 32- or 64-bit ones above, and all ones otherwise.
    if (!validWidth(offset, width)) return BigInt.asUintN(width * 8, -1n);
    switch (offset) {
      case EDU_REG.ID: return EDU_ID;
      case EDU_REG.LIVENESS: return ~state.liveness >>> 0;
      case EDU_REG.FACTORIAL: return state.factorial;
      case EDU_REG.STATUS: return state.status;
      case EDU_REG.IRQ_STATUS: return state.irqStatus;
      case EDU_REG.DMA_SRC: return width === 8 ? state.src : Number(state.src & 0xffff_ffffn);
      case EDU_REG.DMA_DST: return width === 8 ? state.dst : Number(state.dst & 0xffff_ffffn);
      case EDU_REG.DMA_COUNT: return width === 8 ? state.count : Number(state.count & 0xffff_ffffn);
      case EDU_REG.DMA_CMD: return state.cmd;
      default: return 0xffff_ffff; // unassigned registers read as all ones
    }
  });

  device.onMmioWrite(VFIO_PCI_BAR0_REGION_INDEX, (offset, value, width) => {
    if (!validWidth(offset, width)) return true;
    const v = BigInt(value);
    const n = Number(v & 0xffff_ffffn);
    switch (offset) {
      case EDU_REG.LIVENESS: state.liveness = n; break;
      case EDU_REG.FACTORIAL:
        state.factorial = factorial(n);
        if (state.status & STATUS_IRQ_ON_FACTORIAL) raise(IRQ_FACTORIAL);
        break;
      case EDU_REG.STATUS: state.status = n & STATUS_IRQ_ON_FACTORIAL; break; // bit 0 (busy) is read-only
      case EDU_REG.IRQ_RAISE: raise(n); break;
      case EDU_REG.IRQ_ACK: state.irqStatus &= ~n; break;
      case EDU_REG.DMA_SRC: state.src = v; break;
      case EDU_REG.DMA_DST: state.dst = v; break;
      case EDU_REG.DMA_COUNT: state.count = v; break;
      case EDU_REG.DMA_CMD:
        state.cmd = n;
        if (n & CMD_START) runDma();
        break;
      default: break; // writes elsewhere are dropped
    }
    return true;
  });

  device.onReset(() => {
    Object.assign(state, { liveness: 0, factorial: 0, status: 0, irqStatus: 0, src: 0n, dst: 0n, count: 0n, cmd: 0 });
  });
  return { buffer };
}

function validWidth(offset: number, width: number): boolean {
  return offset < 0x80 ? width === 4 : width === 4 || width === 8;
}

function factorial(n: number): number {
  let f = 1;
  for (let i = 2; i <= n; i++) f = Math.imul(f, i) >>> 0;
  return f;
}
