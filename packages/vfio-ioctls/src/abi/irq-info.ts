import { bindings as b } from './structs';
import { ArgBuffer, fieldAt } from './arg-buffer';

/** What VFIO_DEVICE_GET_IRQ_INFO reports for one IRQ index. */
export interface IrqInfo {
  /** The IRQ index (VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, ...). */
  index: number;
  /** Number of vectors; 0 when the device lacks this kind of interrupt. */
  count: number;
  /** VFIO_IRQ_INFO_* bits. */
  flags: number;
  /** Can signal an eventfd. */
  eventfd: boolean;
  /** Can be masked and unmasked. */
  maskable: boolean;
  /** Masked by the kernel after each interrupt until unmasked (INTx). */
  automasked: boolean;
  /** The vector count cannot be changed while enabled (MSI). */
  noresize: boolean;
}

// Copied out of vfio-bindings once: its exports are getters, and a getter
// call per use is measurable on this path (most of all before the JIT
// optimizes it, which is much of a TCG guest's run).
const info = b.vfio_irq_info;
const SIZE = info.size;
const EVENTFD = b.VFIO_IRQ_INFO_EVENTFD;
const MASKABLE = b.VFIO_IRQ_INFO_MASKABLE;
const AUTOMASKED = b.VFIO_IRQ_INFO_AUTOMASKED;
const NORESIZE = b.VFIO_IRQ_INFO_NORESIZE;
const ARGSZ = fieldAt(info, 'argsz', 4);
const FLAGS = fieldAt(info, 'flags', 4);
const INDEX = fieldAt(info, 'index', 4);
const COUNT = fieldAt(info, 'count', 4);

/** @internal A VFIO_DEVICE_GET_IRQ_INFO argument, reused by one device for every query. */
export function newIrqInfoArg(): ArgBuffer {
  return new ArgBuffer(SIZE);
}

/**
 * @internal Fills the argument for `index` (already checked to be a u32):
 * every field is written, as the codec's encode would, so no answer of a
 * previous query is handed back to the kernel.
 */
export function fillIrqInfoArg(arg: ArgBuffer, index: number): void {
  const { view } = arg;
  view.setUint32(ARGSZ, SIZE, true);
  view.setUint32(FLAGS, 0, true);
  view.setUint32(INDEX, index, true);
  view.setUint32(COUNT, 0, true);
}

/** @internal Reads the kernel's answer (all u32 fields: nothing to reject). */
export function readIrqInfo(arg: ArgBuffer): IrqInfo {
  const { view } = arg;
  const flags = view.getUint32(FLAGS, true);
  return {
    index: view.getUint32(INDEX, true),
    count: view.getUint32(COUNT, true),
    flags,
    eventfd: (flags & EVENTFD) !== 0,
    maskable: (flags & MASKABLE) !== 0,
    automasked: (flags & AUTOMASKED) !== 0,
    noresize: (flags & NORESIZE) !== 0,
  };
}

/** vfio-pci's IRQ indexes by name (enum in vfio.h: INTX, MSI, MSIX, ERR, REQ). */
const PCI_IRQ_NAMES: Record<number, string> = {
  [b.VFIO_PCI_INTX_IRQ_INDEX]: 'INTx',
  [b.VFIO_PCI_MSI_IRQ_INDEX]: 'MSI',
  [b.VFIO_PCI_MSIX_IRQ_INDEX]: 'MSI-X',
  [b.VFIO_PCI_ERR_IRQ_INDEX]: 'ERR',
  [b.VFIO_PCI_REQ_IRQ_INDEX]: 'REQ',
};

/** An IRQ index for messages: '3 (ERR)' on a vfio-pci device, the bare number elsewhere. */
export function irqIndexLabel(index: number, pci: boolean): string {
  const name = pci ? PCI_IRQ_NAMES[index] : undefined;
  return name === undefined ? String(index) : `${index} (${name})`;
}
