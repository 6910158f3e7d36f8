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
  // Issue 12 asks the same figure after the faster JS path (one drained
  // wake-up per interrupt, one poller per range): target on the minima there.
  { id: 'irq-latency', item: 5, label: 'interrupt latency, edu MSI raise -> JS listener', target: 'irqLatency', batch: 1, samplesFactor: 5, async: true },
  // The same library path against C's own event loop (epoll_wait, then
  // read: libuv's syscalls) instead of a read that finds the count there.
  { id: 'irq-latency-vs-epoll', c: 'irq-latency-epoll', item: 12, label: 'interrupt latency, edu MSI raise -> JS listener, against C\'s own event loop (epoll_wait + read)', batch: 1, samplesFactor: 5, async: true },
  // Not in the issue: the raw addon call with no library code around it, on
  // the same ops as C. Splits a library/C ratio into what the JS-to-native
  // transition costs (addon/C) and what the safe API adds (library/addon).
  { id: 'addon-irq-info', c: 'irq-info', item: 1, label: 'floor: addon ioctl GET_IRQ_INFO (no library)', batch: 500 },
  { id: 'addon-mmio-read32', c: 'mmio-read32', item: 3, label: 'floor: addon mmioRead32 (no library)', batch: 20000 },
  // The floor of any JavaScript delivery of an interrupt: the same raise,
  // then the eventfd read through the addon until it counts, synchronously
  // (no listener, no event loop turn), as C's read() does.
  { id: 'addon-irq-latency', c: 'irq-latency', item: 5, label: 'floor: edu MSI raise -> eventfd read by the addon, spinning (no listener, no event loop)', batch: 1, samplesFactor: 5 },
  { id: 'irq-rate', item: 5, label: 'interrupts, closed loop (per interrupt)', batch: 500, async: true },
  // Issue 12's guest memory rows: 1 GiB of memfd memory (a VMM's guest RAM)
  // mapped whole at 1 GiB of IOVA and unmapped, with 4 KiB pages and with
  // 2 MiB huge pages (reserved through sysfs for the row); both backends.
  // Batch 1: one map pins 262,144 (or 512) pages.
  { id: 'gmem-1g-4k', iommufd: true, item: 12, label: 'DMA map + unmap 1 GiB guest memory, memfd 4 KiB pages', target: 'dma', batch: 1 },
  { id: 'gmem-1g-2m', iommufd: true, item: 12, label: 'DMA map + unmap 1 GiB guest memory, hugetlbfs 2 MiB pages', target: 'dma', batch: 1 },
  // Issue 13's numbers (item 13): the dirty-page report of 1 GiB mapped as
  // one mapping, tracking on (type1's VFIO_IOMMU_DIRTY_PAGES: container
  // only; iommufd's HWPT dirty tracking is refused by QEMU's intel-iommu).
  // Last, so that no map/unmap row runs with tracking on. C counts the set
  // bits; the library decodes them into runs. The floor row is the addon's
  // ioctl on a pre-encoded argument, against C's bare ioctl.
  { id: 'dirty-1g', item: 13, label: 'dirty bitmap report, 1 GiB in one mapping (C: ioctl + popcount; library: dirtyPages() runs)', batch: 10 },
  { id: 'dirty-1g-ioctl', item: 13, label: 'floor: addon ioctl GET_BITMAP 1 GiB (no library, no decode)', batch: 10 },
];

// Issue 13's migration rows, on an mtty-2 mdev (c/mig_bench.c is the C
// side, src/guest/migration-ops.js the library's): a STOP_COPY save, from
// RUNNING and back. mtty's state is ~100 bytes: this is the fixed cost of
// a save; src/guest/derive.js turns it into bytes/s and the read-to-end
// cost (cycle minus arcs).
const MTTY_OPS = [
  { id: 'mig-save-cycle', item: 13, label: 'migration save cycle, mtty: RUNNING -> STOP_COPY, data fd read to its end, -> RUNNING (library: for await of the session)', batch: 20, async: true },
  { id: 'mig-save-cycle-read', c: 'mig-save-cycle', item: 13, label: 'migration save cycle, mtty (library: session.read() loop)', batch: 20 },
  { id: 'mig-save-arcs', item: 13, label: 'migration arcs only, mtty: RUNNING -> STOP_COPY -> RUNNING, data fd closed unread', batch: 20 },
];

// Issue 12's MSI-X storm (src/guest/storm-ops.js, c/irq_storm.c): 64 nvme
// MSI-X vectors fired by one SET_IRQS (DATA_BOOL) until each is counted
// once; the time is per storm of 64 interrupts. Container backend only.
const NVME_OPS = [
  { id: 'msix-storm', item: 12, label: 'MSI-X storm, 64 nvme vectors: one DATA_BOOL trigger, wait until each is counted once (per storm of 64)', batch: 10 },
];

// Issue 12's interrupt latency into a nested KVM guest (src/guest/kvm-irq-ops.js,
// c/kvm_irq_bench.c): edu passed through as examples/mini-vmm does it. irqfd
// and forwarder: timed inside the nested guest (kvm-tsc-payload.js), rdtsc
// before its write to edu 0x60 to rdtsc at its handler's entry, per
// interrupt, ticks -> ns by the TSC rate over the run; a sample is the mean
// of `batch` interrupts. The floor: one port exit and re-entry, timed in the
// VMM. Container backend where it runs, else the first of --backends.
// The target is on the MSI route's row: a passed-through MSI is routed as
// an MSI by VMMs, and KVM injects it in the irqfd's wake-up. The pin
// route's kworker makes two context switches per interrupt, which under
// TCG cost Node's VMM more than C's (its PKRU: README, the irqfd analysis).
const KVM_OPS = [
  { id: 'kvm-irqfd', item: 12, label: 'interrupt edu -> nested KVM guest handler via irqfd on the 8259\'s pin (GSI 5, injected by a kworker), timed in the guest (rdtsc at the write to edu 0x60 -> rdtsc at handler entry; no exit)', batch: 20 },
  { id: 'kvm-exit', item: 12, label: 'floor: one KVM_RUN port exit and re-entry alone, timed in the VMM (no device, no interrupt)', batch: 20 },
  { id: 'kvm-forward', item: 12, label: 'the same interrupt via a userspace forwarder, timed in the guest (port exit after the write; C: blocking read + KVM_IRQ_LINE; library: \'interrupt\' event + KVM_IRQ_LINE)', batch: 20 },
  { id: 'kvm-irqfd-msi', item: 12, label: 'interrupt edu -> nested KVM guest handler via irqfd on an MSI route (local APIC vector 0x40, as VMMs route a passed-through MSI), timed in the guest', target: 'kvmIrqfd', batch: 20 },
  { id: 'kvm-forward-msi', item: 12, label: 'the same MSI via a userspace forwarder, timed in the guest (C: blocking read + KVM_SIGNAL_MSI; library: \'interrupt\' event + KVM_SIGNAL_MSI)', batch: 20 },
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

/**
 * `--only`: the rows whose id starts with one of `words` (all rows when
 * there are none). Each word must select some row, so a typo is an error.
 */
function onlyRows(ops, words) {
  if (!words) return ops;
  return ops.filter((op) => words.some((w) => op.id.startsWith(w)));
}

/** Throws for a word of `--only` that selects no guest row; names the ids. */
function checkOnly(words) {
  const ids = [...GUEST_OPS, ...MTTY_OPS, ...NVME_OPS, ...KVM_OPS].map((op) => op.id);
  const unknown = words.filter((w) => !w || !ids.some((id) => id.startsWith(w)));
  if (unknown.length) throw new Error(`--only: ${unknown.map((w) => JSON.stringify(w)).join(', ')} selects no row; the rows are ${ids.join(', ')}`);
}

module.exports = { GUEST_OPS, MTTY_OPS, NVME_OPS, KVM_OPS, BACKENDS, opsFor, cOpOf, onlyRows, checkOnly };
