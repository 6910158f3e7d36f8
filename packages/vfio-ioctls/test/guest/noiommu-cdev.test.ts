// @guest-needs noiommu iommufd cdev
/**
 * no-IOMMU mode through the device cdev (Linux 7.3's IOMMUFD_NOIOMMU): on a
 * kernel booted with vfio.enable_unsafe_noiommu_mode=1 that has iommufd,
 * Device.open with iommu 'noiommu' binds edu's noiommu-vfioN cdev to an IOAS.
 * Mapping a buffer there pins it in a software page table, and the kernel
 * answers its physical addresses (IOMMU_IOAS_NOIOMMU_GET_PA), which edu's DMA
 * engine is given. The answers are checked against /proc/self/pagemap.
 *
 * edu keeps only the low 28 bits of a DMA address, so the round trip first
 * looks for a mapped page below 256 MiB (as noiommu-dma.test.ts does).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { test } from 'node:test';
import { Device, DmaBuffer, Ioas, physicalSegments, type DmaMapping, type RegionMapping } from 'vfio-ioctls';
import { device, EDU, PCI_COMMAND, PCI_COMMAND_MASTER, throwsVfio, trackResources, eduDma } from './helpers';

const { keep, assertNoLeaks } = trackResources();

const PAGE = 4096;
const CHUNK = 16 * 1024 * 1024;
const MAX_CHUNKS = 64;

/** Opens edu in no-IOMMU mode (the cdev), with bus mastering on and BAR0 mapped. */
function openEdu(): { dev: Device; ioas: Ioas; mmio: RegionMapping } {
  const dev = keep(Device.open(device('edu').address, { iommu: 'noiommu' }));
  assert.ok(dev.iommu instanceof Ioas, `device.iommu is ${dev.iommu?.kind}`);
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  return { dev, ioas: dev.iommu, mmio: dev.region(0)!.map() };
}

/** A mapped page whose physical address edu's DMA mask reaches; chunks without one are unmapped and closed. */
function mappedPageWithinMask(ioas: Ioas): { mapping: DmaMapping; offset: number; physical: bigint } {
  const limit = BigInt(EDU.MAX_IOVA);
  const tried: DmaMapping[] = [];
  try {
    for (let i = 0; i < MAX_CHUNKS; i++) {
      const mapping = ioas.map(keep(DmaBuffer.alloc(CHUNK)));
      tried.push(mapping);
      const low = ioas.physicalSegments(mapping).find((s) => s.physical + BigInt(PAGE) - 1n <= limit);
      if (low) {
        tried.pop();
        return { mapping, offset: low.offset, physical: low.physical };
      }
    }
  } finally {
    for (const mapping of tried) {
      mapping.unmap();
      mapping.buffer.close();
    }
  }
  assert.fail(`no page below edu's DMA mask (0x${limit.toString(16)}) in ${(MAX_CHUNKS * CHUNK) >> 20} MiB of mapped buffers`);
}


test("iommu 'noiommu' opens the noiommu-vfioN cdev bound to an IOAS: no group, the device's iommu is the Ioas", () => {
  const edu = device('edu');
  const cdevs = readdirSync(`/sys/bus/pci/devices/${edu.address}/vfio-dev`);
  assert.equal(cdevs.length, 1);
  assert.match(cdevs[0], /^noiommu-vfio\d+$/);
  const { dev, ioas } = openEdu();
  assert.equal(dev.iommu?.kind, 'iommufd');
  assert.equal(dev.group, undefined);
  assert.equal(ioas.closed, false);
  dev.close();
  assert.equal(ioas.closed, true, 'the shared IOAS closes with its last device');
});

test('physicalSegments of a mapping: page-aligned runs covering it, the frames /proc/self/pagemap shows', () => {
  const { ioas } = openEdu();
  const buffer = keep(DmaBuffer.alloc(64 * PAGE));
  const mapping = ioas.map(buffer);
  const segments = ioas.physicalSegments(mapping);
  assert.equal(segments.reduce((sum, s) => sum + s.size, 0), 64 * PAGE);
  let offset = 0;
  for (const s of segments) {
    assert.equal(s.offset, offset);
    assert.ok(s.physical > 0n && s.physical % BigInt(PAGE) === 0n, `physical 0x${s.physical.toString(16)}`);
    assert.equal(ioas.physicalAddress(mapping, s.offset + 100), s.physical + 100n);
    offset += s.size;
  }
  // The kernel's page table and the process's page table agree on every frame (pagemap locks the buffer too).
  assert.deepEqual(physicalSegments(buffer), segments);
  mapping.unmap();
});

test('DMA round trip with the physical addresses the IOAS answers: RAM to edu and back', async () => {
  const { mmio, ioas } = openEdu();
  const { mapping, offset, physical } = mappedPageWithinMask(ioas);
  const half = EDU.MAX_TRANSFER;
  assert.equal(ioas.physicalAddress(mapping, offset + half), physical + BigInt(half));
  const bytes = mapping.buffer.bytes;
  for (let i = 0; i < half; i++) bytes[offset + i] = (i * 29 + 3) & 0xff;
  bytes.fill(0, offset + half, offset + 2 * half);
  await eduDma(mmio, physical, BigInt(EDU.BUFFER), half, 0);
  await eduDma(mmio, BigInt(EDU.BUFFER), physical + BigInt(half), half, EDU.DMA_TO_RAM);
  assert.deepEqual(bytes.subarray(offset + half, offset + 2 * half), bytes.subarray(offset, offset + half));
  mapping.unmap();
});

test("iommu 'iommufd' refuses the no-IOMMU cdev; an IOAS with no no-IOMMU device answers ENOTSUP for physical addresses", () => {
  throwsVfio(() => Device.open(device('edu').address, { iommu: 'iommufd' }), { code: 'ERR_VFIO_IOMMU_UNAVAILABLE' });
  const { ioas } = openEdu();
  const other = keep(ioas.iommufd.allocIoas());
  const buffer = keep(DmaBuffer.alloc(PAGE));
  const mapping = other.map(buffer);
  const error = throwsVfio(() => other.physicalSegments(mapping), { code: 'ENOTSUP', operation: 'IOMMU_IOAS_NOIOMMU_GET_PA' });
  assert.match(error.hint ?? '', /no-IOMMU device attached/);
  mapping.unmap();
});

test('leaves no fd or pinned memory behind', () => {
  assertNoLeaks();
});
