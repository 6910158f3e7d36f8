// @guest-needs noiommu
/**
 * DMA in no-IOMMU mode (vfio.enable_unsafe_noiommu_mode=1) through the
 * noiommu-N group: edu opened with Group.open(n, { noiommu: true }) reports
 * a NoIommu context that refuses map(), and its DMA engine is given the
 * physical addresses of a DmaBuffer instead (physicalSegments/physicalAddress:
 * mlock plus /proc/self/pagemap, as root). (Device.open with iommu 'noiommu'
 * takes the noiommu-vfioN cdev where the kernel has iommufd's no-IOMMU mode:
 * noiommu-cdev.test.ts.)
 *
 * edu keeps only the low 28 bits of a DMA address (its dma_mask) and silently
 * clamps the rest, so a transfer to a higher physical address would write
 * into some other memory of the guest. The test therefore looks for a page
 * below 256 MiB first and never starts a transfer elsewhere.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Container, Device, DmaBuffer, Group, NoIommu, physicalAddress, physicalSegments, type RegionMapping } from 'vfio-ioctls';
import { device, EDU, PCI_COMMAND, PCI_COMMAND_MASTER, resources, throwsVfio, trackResources, eduDma } from './helpers';

const { keep, assertNoLeaks } = trackResources();

const PAGE = 4096;
// The guest has 2 GiB; a few chunks usually reach a page below 256 MiB.
const CHUNK = 16 * 1024 * 1024;
const MAX_CHUNKS = 64;

/** Opens edu through its noiommu-N group, with bus mastering on and BAR0 mapped. */
function openNoIommuEdu(): { dev: Device; mmio: RegionMapping } {
  const edu = device('edu');
  // keep() closes newest first: the device, then the group (detaching it), then the container.
  const container = keep(Container.open());
  const group = keep(Group.open(edu.iommuGroup, { noiommu: true }));
  assert.equal(group.path, `/dev/vfio/noiommu-${edu.iommuGroup}`);
  group.attach(container);
  const dev = keep(group.openDevice(edu.address));
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  return { dev, mmio: dev.region(0)!.map() };
}

/**
 * A locked page edu can reach: physical address + PAGE - 1 within its DMA
 * mask. Chunks stay allocated while searching, so each brings new pages; the
 * ones without such a page are closed before returning.
 */
function pageWithinMask(): { buffer: DmaBuffer; offset: number; physical: bigint } {
  const limit = BigInt(EDU.MAX_IOVA);
  const chunks: DmaBuffer[] = [];
  try {
    for (let i = 0; i < MAX_CHUNKS; i++) {
      const chunk = keep(DmaBuffer.alloc(CHUNK));
      chunks.push(chunk);
      const low = physicalSegments(chunk).find((s) => s.physical + BigInt(PAGE) - 1n <= limit);
      if (low) {
        chunks.pop();
        return { buffer: chunk, offset: low.offset, physical: low.physical };
      }
    }
  } finally {
    for (const chunk of chunks) chunk.close();
  }
  assert.fail(`no page below edu's DMA mask (0x${limit.toString(16)}) in ${(MAX_CHUNKS * CHUNK) >> 20} MiB of DMA buffers`);
}


test('edu opened through its noiommu group reports a NoIommu context: no IOVA space, nothing mapped, map() refused clearly', () => {
  const { dev } = openNoIommuEdu();
  const iommu = dev.iommu!;
  assert.equal(iommu.kind, 'noiommu');
  assert.ok(iommu instanceof NoIommu);
  assert.deepEqual(iommu.iovaRanges(), []);
  assert.deepEqual(iommu.mappings(), []);
  assert.equal(iommu.pageSizes(), 0n);
  const buffer = keep(DmaBuffer.alloc(PAGE));
  const error = throwsVfio(() => iommu.map(buffer), { code: 'ERR_VFIO_IOMMU_UNAVAILABLE' });
  assert.match(error.message, /no IOMMU in no-IOMMU mode/);
  assert.match(error.hint ?? '', /physicalSegments/);
  assert.equal(buffer.mapped, false);
  buffer.close();
  dev.close();
});

test('physical addresses of a DmaBuffer: locked, non-zero, page-aligned runs covering the buffer', () => {
  const locked = resources().lockedKiB;
  const buffer = keep(DmaBuffer.alloc(8 * PAGE));
  const segments = physicalSegments(buffer);
  assert.equal(resources().lockedKiB, locked + (8 * PAGE) / 1024);
  assert.equal(segments.reduce((sum, s) => sum + s.size, 0), 8 * PAGE);
  for (const s of segments) {
    assert.ok(s.physical > 0n && s.physical % BigInt(PAGE) === 0n, `physical 0x${s.physical.toString(16)}`);
    assert.equal(physicalAddress(buffer, s.offset + 100), s.physical + 100n);
  }
  buffer.close();
  assert.equal(resources().lockedKiB, locked);
});

test('DMA round trip with physical addresses: RAM to edu and back', async () => {
  const { dev, mmio } = openNoIommuEdu();
  const { buffer, offset, physical } = pageWithinMask();
  const half = EDU.MAX_TRANSFER;
  assert.equal(physicalAddress(buffer, offset + half), physical + BigInt(half));

  const bytes = buffer.bytes;
  for (let i = 0; i < half; i++) bytes[offset + i] = (i * 13 + 5) & 0xff;
  bytes.fill(0, offset + half, offset + 2 * half);
  await eduDma(mmio, physical, BigInt(EDU.BUFFER), half, 0);
  await eduDma(mmio, BigInt(EDU.BUFFER), physical + BigInt(half), half, EDU.DMA_TO_RAM);
  assert.deepEqual(bytes.subarray(offset + half, offset + 2 * half), bytes.subarray(offset, offset + half));

  buffer.close();
  dev.close();
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
