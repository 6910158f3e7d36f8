'use strict';
// The guest measurements, one row each: the C op of c/vfio_bench.c that is
// the floor, the issue item, the target, and the batch size (chosen from a
// first TCG run so that one batch takes about a millisecond or more).
// `samplesFactor` gives single-shot measurements (batch 1) more samples.
// `iommufd: true` rows run a second time on the iommufd backend (the device
// opened through its cdev, DMA in an IOAS): the ioctl round trip and DMA
// map + unmap, where the two backends differ.

const GUEST_OPS = [
  { id: 'region-info', iommufd: true, item: 1, label: 'ioctl GET_REGION_INFO (BAR0)', target: 'ioctl', batch: 500 },
  { id: 'irq-info', iommufd: true, item: 1, label: 'ioctl GET_IRQ_INFO (MSI)', target: 'ioctl', batch: 500 },
  { id: 'dma-4k', iommufd: true, item: 2, label: 'DMA map + unmap 4 KiB', target: 'dma', batch: 50 },
  { id: 'dma-2m', iommufd: true, item: 2, label: 'DMA map + unmap 2 MiB', target: 'dma', batch: 4 },
  { id: 'mmio-read32', item: 3, label: 'MMIO read32, mapped BAR0', target: 'mmio', batch: 20000 },
  { id: 'mmio-write32', item: 3, label: 'MMIO write32, mapped BAR0', target: 'mmio', batch: 20000 },
  { id: 'pread-4', item: 3, label: 'read32 via pread (region.readUint32)', batch: 500 },
  { id: 'pwrite-4', item: 3, label: 'write32 via pwrite (region.writeUint32)', batch: 500 },
  { id: 'region-read-4', c: 'pread-4', item: 4, label: 'region.read 4 B', batch: 500 },
  { id: 'region-write-4', c: 'pwrite-4', item: 4, label: 'region.write 4 B', batch: 500 },
  { id: 'region-read-4k', c: 'pread-4k', item: 4, label: 'region.read 4 KiB', batch: 10 },
  { id: 'region-write-4k', c: 'pwrite-4k', item: 4, label: 'region.write 4 KiB', batch: 10 },
  { id: 'irq-latency', item: 5, label: 'interrupt latency (raise -> handler)', target: 'irqLatency', batch: 1, samplesFactor: 5, async: true },
  // Not in the issue: the raw addon call with no library code around it, on
  // the same ops as C. Splits a library/C ratio into what the JS-to-native
  // transition costs (addon/C) and what the safe API adds (library/addon).
  { id: 'addon-irq-info', c: 'irq-info', item: 1, label: 'floor: addon ioctl GET_IRQ_INFO (no library)', batch: 500 },
  { id: 'addon-mmio-read32', c: 'mmio-read32', item: 3, label: 'floor: addon mmioRead32 (no library)', batch: 20000 },
  { id: 'irq-rate', item: 5, label: 'interrupts, closed loop (per interrupt)', batch: 500, async: true },
];

const BACKENDS = ['container', 'iommufd'];
const BACKEND_LABEL = { container: 'container, group fd', iommufd: 'iommufd, cdev fd' };

/**
 * The rows run on one backend. Container rows keep their ids (comparable
 * with earlier runs); iommufd rows get an `@iommufd` suffix. Both say
 * their backend in the label.
 */
function opsFor(backend) {
  if (!BACKENDS.includes(backend)) throw new Error(`unknown backend ${backend}`);
  return GUEST_OPS.filter((op) => backend === 'container' || op.iommufd).map((op) => ({
    ...op,
    backend,
    id: backend === 'container' ? op.id : `${op.id}@${backend}`,
    label: op.iommufd ? `${op.label}, ${BACKEND_LABEL[backend]}` : op.label,
  }));
}

/** The C op name for a row (most rows share their id with the C op). */
const cOpOf = (op) => op.c ?? op.id.replace(/@.*$/, '');

module.exports = { GUEST_OPS, BACKENDS, opsFor, cOpOf };
