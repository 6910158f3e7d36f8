'use strict';
// edu's BAR0 registers (QEMU docs/specs/edu.rst), the same as c/vfio_bench.c.
module.exports = {
  EDU_ID: 0x00, // identification, read-only
  EDU_ID_VALUE: 0x010000ed,
  EDU_LIVENESS: 0x04, // reads back inverted: a harmless write target
  EDU_IRQ_RAISE: 0x60, // value ORed into the interrupt status; MSI sent
  EDU_IRQ_ACK: 0x64,
  EDU_SCRATCH: 0x1000, // past the registers: reads all-ones, writes ignored
  DMA_IOVA: 0x100000n,
  // The dirty rows' mapping: 1 GiB at 1 GiB of IOVA, clear of DMA_IOVA and of
  // the MSI window at 0xfee00000 (the same as c/vfio_bench.c).
  DIRTY_IOVA: 1n << 30n,
  DIRTY_SIZE: 1n << 30n,
  PCI_COMMAND: 4,
  PCI_COMMAND_MASTER: 4, // MSI is a memory write: QEMU drops it without bus mastering
};
