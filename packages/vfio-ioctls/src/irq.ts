import { bindings as b, decodeAnswer, encodeArg } from './abi';

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

/** @internal Encodes the VFIO_DEVICE_GET_IRQ_INFO argument. */
export function irqInfoArg(index: number): Uint8Array {
  return encodeArg(b.vfio_irq_info, { index });
}

/** @internal Decodes the VFIO_DEVICE_GET_IRQ_INFO answer. */
export function decodeIrqInfo(bytes: Uint8Array): IrqInfo {
  const { flags, index, count } = decodeAnswer(b.vfio_irq_info, bytes, 'VFIO_DEVICE_GET_IRQ_INFO');
  return {
    index,
    count,
    flags,
    eventfd: (flags & b.VFIO_IRQ_INFO_EVENTFD) !== 0,
    maskable: (flags & b.VFIO_IRQ_INFO_MASKABLE) !== 0,
    automasked: (flags & b.VFIO_IRQ_INFO_AUTOMASKED) !== 0,
    noresize: (flags & b.VFIO_IRQ_INFO_NORESIZE) !== 0,
  };
}
