'use strict';
// Issue 12's guest memory rows, library side: 1 GiB of DmaBuffer guest
// memory (a memfd, as a VMM's guest RAM) mapped whole at 1 GiB of IOVA and
// unmapped, backed by 4 KiB pages or by 2 MiB huge pages. The huge pages
// are reserved through sysfs for the row and the pool's count is put back
// after it, as c/vfio_bench.c does; one kind of memory lives at a time
// (the guest has 2 GiB).
const fs = require('node:fs');
const { DmaBuffer } = require('vfio-ioctls');

const GMEM_IOVA = 1n << 30n;
const GMEM_SIZE = 1 << 30;
const HUGE = 2 * 1024 * 1024;
const POOL = '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages';

const readPool = () => Number(fs.readFileSync(POOL, 'utf8'));

/** Frees the rig's guest memory and gives back any huge pages reserved for it. */
function closeGuestMemory(rig) {
  const gmem = rig.gmem;
  if (!gmem) return;
  rig.gmem = undefined;
  gmem.buffer?.close();
  if (gmem.poolBefore !== undefined) fs.writeFileSync(POOL, `${gmem.poolBefore}\n`);
}

/** Makes the memory of `kind` ('4k' | '2m'), pre-faulted, unless the rig has it already. */
function setupGuestMemory(rig, kind) {
  if (rig.gmem?.kind === kind) return;
  closeGuestMemory(rig);
  const gmem = { kind };
  rig.gmem = gmem;
  if (kind === '2m') {
    gmem.poolBefore = readPool();
    const want = gmem.poolBefore + GMEM_SIZE / HUGE;
    fs.writeFileSync(POOL, `${want}\n`);
    if (readPool() < want) throw new Error(`the guest reserved ${readPool()} of ${want} 2 MiB huge pages`);
  }
  gmem.buffer = DmaBuffer.alloc(GMEM_SIZE, kind === '2m' ? { hugePageSize: HUGE } : { memfd: true });
  // Fault the pages in now, not in the first map (C memsets them).
  const bytes = gmem.buffer.bytes;
  for (let at = 0; at < bytes.length; at += 4096) bytes[at] = 0;
}

/** The row: map the whole memory at GMEM_IOVA and unmap it. */
function mapUnmapGuestMemory(rig) {
  rig.iommu.map(rig.gmem.buffer, { iova: GMEM_IOVA }).unmap();
}

module.exports = { setupGuestMemory, closeGuestMemory, mapUnmapGuestMemory };
