'use strict';
// The library side of every guest row, through the public API only: the
// same operation as the C op of the same row (c/vfio_bench.c), set up once
// per round outside the timed loops, closed at the end of the round so the
// C program can open the device next (a group node opens only once).
const b = require('vfio-bindings');
const { DmaBuffer } = require('vfio-ioctls');
const { nativeBackend: addon } = require('../addon');
const { measureSync, measureAsync } = require('../timing');
const { openOnBackend, closeOnBackend } = require('./open-device');
const edu = require('./edu');
const { setupGuestMemory, closeGuestMemory, mapUnmapGuestMemory } = require('./guest-memory-ops');

/** Everything a round needs, opened once, on one backend ('container' | 'iommufd'). */
function openRig(dev, backend) {
  const opened = openOnBackend(dev, backend);
  const { device } = opened;
  const bar0 = device.region(b.VFIO_PCI_BAR0_REGION_INDEX);
  const mmio = bar0.map();
  const config = device.config;
  config.writeUint16(edu.PCI_COMMAND, config.readUint16(edu.PCI_COMMAND) | edu.PCI_COMMAND_MASTER);
  // Time the right thing or nothing: the mapping must show edu's id.
  const id = mmio.read32(edu.EDU_ID);
  if (id !== edu.EDU_ID_VALUE) throw new Error(`BAR0 id register reads 0x${id.toString(16)}, not edu's 0x${edu.EDU_ID_VALUE.toString(16)}`);
  const irqs = device.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX);
  // One persistent listener that settles whichever wait is pending: adding
  // and removing a listener per interrupt would be measured too.
  let wake = null;
  irqs.on('interrupt', () => {
    const w = wake;
    wake = null;
    if (w) w();
  });
  const nextInterrupt = () => new Promise((resolve) => (wake = resolve));
  const buf4k = DmaBuffer.alloc(4096);
  const buf2m = DmaBuffer.alloc(2 << 20);
  return { opened, iommu: opened.iommu, device, bar0, mmio, irqs, nextInterrupt, buf4k, buf2m };
}

/**
 * The dirty rows' state, made before the first of them (not timed): 1 GiB
 * DmaBuffer mapped as one mapping at DIRTY_IOVA, tracking started (the
 * order of c/vfio_bench.c), and for the addon floor the same GET_BITMAP
 * argument the library builds, encoded once, with a bitmap from the addon.
 */
function setupDirty(rig) {
  if (rig.dirty) return;
  closeGuestMemory(rig); // 1 GiB of each would not fit the guest
  const { iommu } = rig;
  if (iommu.kind !== 'container') throw new Error(`the dirty rows need the container backend (type1's VFIO_IOMMU_DIRTY_PAGES), not ${iommu.kind}`);
  const native = addon();
  const buffer = DmaBuffer.alloc(Number(edu.DIRTY_SIZE));
  const dirty = { buffer, mapping: iommu.map(buffer, { iova: edu.DIRTY_IOVA }) };
  rig.dirty = dirty;
  iommu.startDirtyTracking();
  // Time the right thing or nothing: type1 reports the whole mapping dirty.
  const runs = iommu.dirtyPages(edu.DIRTY_IOVA, edu.DIRTY_SIZE);
  if (runs.length !== 1 || runs[0].iova !== edu.DIRTY_IOVA || runs[0].size !== edu.DIRTY_SIZE) {
    throw new Error(`dirtyPages of the 1 GiB mapping gave ${JSON.stringify(runs, (k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}, not one run of all of it`);
  }
  const pageSize = 4096n;
  const bitmapBytes = Number(edu.DIRTY_SIZE / pageSize / 8n);
  dirty.bitmapMemory = native.allocDma(bitmapBytes);
  dirty.bitmap = new Uint8Array(dirty.bitmapMemory);
  const head = b.vfio_iommu_type1_dirty_bitmap.size;
  dirty.arg = new Uint8Array(head + b.vfio_iommu_type1_dirty_bitmap_get.size);
  b.vfio_iommu_type1_dirty_bitmap.encode({ argsz: dirty.arg.length, flags: b.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP }, dirty.arg, 0);
  b.vfio_iommu_type1_dirty_bitmap_get.encode(
    { iova: edu.DIRTY_IOVA, size: edu.DIRTY_SIZE, bitmap: { pgsize: pageSize, size: BigInt(bitmapBytes), data: native.addressOf(dirty.bitmapMemory) } },
    dirty.arg,
    head,
  );
}

function closeDirty(rig) {
  const { dirty, iommu } = rig;
  if (!dirty) return;
  if (iommu.dirtyTracking) iommu.stopDirtyTracking();
  dirty.mapping?.unmap();
  dirty.buffer.close();
  if (dirty.bitmapMemory) addon().freeDma(dirty.bitmapMemory);
  rig.dirty = undefined;
}

function closeRig(rig) {
  closeDirty(rig);
  closeGuestMemory(rig);
  if (rig.rawBar) addon().munmap(rig.rawBar);
  rig.irqs.close();
  rig.mmio.unmap();
  closeOnBackend(rig.opened);
  rig.buf4k.close();
  rig.buf2m.close();
}

/** The row functions; each is one operation. */
function rowFunctions(rig) {
  const { iommu, device, bar0, mmio } = rig;
  const page = new Uint8Array(4096);
  const word = new Uint8Array(4);
  let sink = 0;
  // Region info is queried once per device and cached by the safe API, so
  // the per-call round trip is the one Region does on first use: encode
  // with vfio-bindings, the addon's ioctl, decode.
  const regionInfoArg = new Uint8Array(b.vfio_region_info.size);
  const native = addon();
  const regionInfo = () => {
    b.vfio_region_info.encode({ argsz: b.vfio_region_info.size, index: b.VFIO_PCI_BAR0_REGION_INDEX }, regionInfoArg);
    native.ioctl(device.fd, b.VFIO_DEVICE_GET_REGION_INFO, regionInfoArg);
    sink ^= Number(b.vfio_region_info.decode(regionInfoArg).size);
  };
  // The addon floors: a pre-encoded argument, and BAR0 mapped by the addon
  // itself (the safe API does not hand out its mapping's ArrayBuffer).
  const irqInfoArg = b.vfio_irq_info.encode({ argsz: b.vfio_irq_info.size, index: b.VFIO_PCI_MSI_IRQ_INDEX });
  const fd = device.fd;
  const rawBar = rig.rawBar ?? (rig.rawBar = native.mmap(fd, 4096, 3, bar0.offset));
  // Container.map or Ioas.map: the same call on either backend.
  const mapUnmap = (buffer) => () => iommu.map(buffer, { iova: edu.DMA_IOVA }).unmap();
  const DIRTY_PAGES = b.VFIO_IOMMU_DIRTY_PAGES;
  const containerFd = iommu.kind === 'container' ? iommu.fd : -1;
  const eventfd = rig.irqs.fd();
  /** The eventfd's count, 0n when it has none yet (the addon reads it non-blocking: EAGAIN). */
  const eventfdCount = () => {
    try {
      return native.eventfdRead(eventfd);
    } catch (error) {
      if (error.code === 'EAGAIN') return 0n;
      throw error;
    }
  };
  const interrupt = async () => {
    const done = rig.nextInterrupt();
    mmio.write32(edu.EDU_IRQ_RAISE, 1);
    await done;
    mmio.write32(edu.EDU_IRQ_ACK, 1);
  };
  return {
    'region-info': regionInfo,
    'irq-info': () => (sink ^= device.irqInfo(b.VFIO_PCI_MSI_IRQ_INDEX).count),
    'dma-4k': mapUnmap(rig.buf4k),
    'dma-2m': mapUnmap(rig.buf2m),
    'mmio-read32': () => (sink ^= mmio.read32(edu.EDU_ID)),
    'mmio-write32': () => mmio.write32(edu.EDU_LIVENESS, 0x5a5a5a5a),
    'pread-4': () => (sink ^= bar0.readUint32(edu.EDU_ID)),
    'pwrite-4': () => bar0.writeUint32(edu.EDU_LIVENESS, 0x5a5a5a5a),
    'region-read-4': () => (sink ^= bar0.read(edu.EDU_ID, 4)[0]),
    'region-write-4': () => bar0.write(edu.EDU_LIVENESS, word),
    'region-read-4k': () => (sink ^= bar0.read(edu.EDU_SCRATCH, 4096)[0]),
    'region-write-4k': () => bar0.write(edu.EDU_SCRATCH, page),
    'addon-irq-info': () => native.ioctl(fd, b.VFIO_DEVICE_GET_IRQ_INFO, irqInfoArg),
    'addon-mmio-read32': () => (sink ^= native.mmioRead32(rawBar, edu.EDU_ID)),
    'irq-latency': interrupt,
    'irq-latency-vs-epoll': interrupt,
    'addon-irq-latency': () => {
      mmio.write32(edu.EDU_IRQ_RAISE, 1);
      while (eventfdCount() === 0n);
      mmio.write32(edu.EDU_IRQ_ACK, 1);
    },
    'irq-rate': interrupt,
    'gmem-1g-4k': () => mapUnmapGuestMemory(rig),
    'gmem-1g-2m': () => mapUnmapGuestMemory(rig),
    'dirty-1g': () => (sink ^= iommu.dirtyPages(edu.DIRTY_IOVA, edu.DIRTY_SIZE).length),
    'dirty-1g-ioctl': () => {
      const { bitmap, arg } = rig.dirty;
      bitmap.fill(0); // the kernel's bitmap arrives zeroed, as C's memset
      native.ioctl(containerFd, DIRTY_PAGES, arg);
      sink ^= bitmap[0];
    },
  };
}

/** Untimed preparation a row needs before its first sample. */
const SETUPS = {
  'dirty-1g': setupDirty,
  'dirty-1g-ioctl': setupDirty,
  'gmem-1g-4k': (rig) => setupGuestMemory(rig, '4k'),
  'gmem-1g-2m': (rig) => setupGuestMemory(rig, '2m'),
};

/** One round of `ops` (all of one backend: ops.js opsFor). */
async function runLibraryRound(dev, o, backend, ops) {
  const rig = openRig(dev, backend);
  try {
    if (rig.iommu.kind !== backend) throw new Error(`asked for ${backend}, the device's IOMMU is ${rig.iommu.kind}`);
    const fns = rowFunctions(rig);
    const out = {};
    for (const op of ops) {
      const plan = { batch: op.batch, samples: o.samples * (op.samplesFactor ?? 1), warmup: o.warmup };
      const base = op.id.replace(/@.*$/, '');
      SETUPS[base]?.(rig);
      const fn = fns[base];
      const samples = op.async ? await measureAsync(fn, plan) : measureSync(fn, plan);
      out[op.id] = { batch: op.batch, samples };
    }
    return out;
  } finally {
    closeRig(rig);
  }
}

module.exports = { runLibraryRound, openRig, closeRig };
