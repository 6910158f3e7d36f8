// @guest-needs iommu suite
/**
 * Dirty page tracking of the legacy container (VFIO_IOMMU_DIRTY_PAGES) on
 * the real kernel: edu's group in a container, two buffers mapped, edu
 * writes one by DMA while tracking is on, and the report is read back.
 * Type1 cannot see device writes: for a device behind the IOMMU it reports
 * every mapped page dirty, at every report, which is what the test asserts
 * (the written page among them), and nothing past a mapping's end: asked for
 * both mappings at once, the kernel reported two pages past the second one
 * dirty at the second report (see src/iommu/container/dirty-pages.ts), so
 * the library asks per mapping. Where /dev/vfio/vfio is iommufd's
 * compatibility container (capability `compat`), the kernel has no dirty
 * tracking there and the test asserts its answer instead.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Container, DmaBuffer, Group, type RegionMapping } from 'vfio-ioctls';
import { device, EDU, GUEST_CAPS, PCI_COMMAND, PCI_COMMAND_MASTER, throwsVfio, trackResources , eduDma } from './helpers';

const { keep, assertNoLeaks } = trackResources();
const PAGE = 4096n;
const compat = GUEST_CAPS.includes('compat');

function attachedEdu(): { container: Container; mmio: RegionMapping } {
  const edu = device('edu');
  const container = keep(Container.open());
  const group = keep(Group.open(edu.iommuGroup));
  group.attach(container);
  const dev = keep(group.openDevice(edu.address));
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  return { container, mmio: dev.region(0)!.map() };
}

test(compat ? "iommufd's compatibility container has no dirty tracking: ENOTTY, with the reason in the hint" : 'start, edu writes by DMA, report: every page of each mapping is dirty, again at the next report; stop', async () => {
  const { container, mmio } = attachedEdu();
  const a = keep(DmaBuffer.alloc(Number(4n * PAGE)));
  const c = keep(DmaBuffer.alloc(Number(2n * PAGE)));
  const first = container.map(a, { iova: 0x100_0000n });
  const second = container.map(c, { iova: 0x100_0000n + 16n * PAGE });
  if (compat) {
    assert.equal(container.iommuInfo().migration, undefined, 'no migration capability in GET_INFO');
    const error = throwsVfio(() => container.startDirtyTracking(), { code: 'ENOTTY', operation: 'VFIO_IOMMU_DIRTY_PAGES' });
    assert.match(error.hint ?? '', /compatibility/);
    assert.equal(container.dirtyTracking, false);
  } else {
    const migration = container.iommuInfo().migration;
    assert.ok(migration, 'type1 reports the migration capability');
    assert.equal(migration.pageSizes & -migration.pageSizes, PAGE);
    container.startDirtyTracking();
    // edu writes its device buffer into the second page of the first mapping.
    await eduDma(mmio, BigInt(EDU.BUFFER), 0x100_0000n + PAGE, 256, EDU.DMA_TO_RAM);
    const expected = [{ iova: 0x100_0000n, size: 4n * PAGE }, { iova: 0x100_0000n + 16n * PAGE, size: 2n * PAGE }];
    assert.deepEqual(container.dirtyPages(0x100_0000n, 32n * PAGE), expected);
    assert.deepEqual(container.dirtyPages(0x100_0000n, 32n * PAGE), expected, 'type1 reports mapped pages dirty again');
    assert.deepEqual(container.dirtyPages(0x100_0000n + 16n * PAGE, 2n * PAGE), [expected[1]]);
    // A range over no mapping reports nothing (and asks the kernel nothing).
    assert.deepEqual(container.dirtyPages(0x200_0000n, PAGE), []);
    container.stopDirtyTracking();
    throwsVfio(() => container.dirtyPages(0x100_0000n, 4n * PAGE), { code: 'ERR_VFIO_DIRTY_TRACKING_OFF' });
  }
  first.unmap();
  second.unmap();
});

test('leaves no fd or pinned memory behind', () => {
  assertNoLeaks();
});
