// @guest-needs iommu iommufd cdev suite
/**
 * iommufd dirty tracking against the real kernel. QEMU 7.2's emulated
 * intel-iommu cannot track dirty pages (the VT-d driver offers it only in
 * scalable mode with second-stage A/D bits, ECAP.SLADS): the tests assert
 * the kernel's answer and the library's hint, and that a HWPT allocated by
 * hand without dirty tracking carries edu's DMA (the fake kernel's tracking
 * IOMMU: test/iommufd-dirty.test.ts).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Device, DmaBuffer, Hwpt, Iommufd } from 'vfio-ioctls';
import { device, EDU, PCI_COMMAND, PCI_COMMAND_MASTER, throwsVfio, trackResources , eduRoundTrip } from './helpers';

const { keep, assertNoLeaks } = trackResources();

/** edu on a fresh IOAS of its own iommufd, bus mastering on and BAR0 mapped. */
function eduOnIoas() {
  const iommufd = keep(Iommufd.open());
  const ioas = keep(iommufd.allocIoas());
  const dev = keep(Device.open(device('edu').address, { ioas }));
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  return { iommufd, ioas, dev, mmio: dev.region(0)!.map() };
}


test("QEMU's intel-iommu cannot track dirty pages: GET_HW_INFO says so, and HWPT_ALLOC with DIRTY_TRACKING is EOPNOTSUPP with the hint", () => {
  const { iommufd, ioas, dev } = eduOnIoas();
  const info = iommufd.hwInfo(dev);
  assert.equal(info.type, 'intel-vtd');
  assert.equal(info.dirtyTracking, false);
  // The reason in the VT-d driver (ssads_supported): no second-stage accessed/dirty support.
  const SLADS = 45n;
  assert.equal((info.vtd!.ecapReg >> SLADS) & 1n, 0n, `ECAP 0x${info.vtd!.ecapReg.toString(16)}`);
  const error = throwsVfio(() => ioas.allocHwpt(dev, { dirtyTracking: true }), {
    code: 'ENOTSUP', errno: -95, syscall: 'ioctl', operation: 'IOMMU_HWPT_ALLOC',
  });
  assert.match(error.hint ?? '', /cannot track dirty pages/);
  // Nothing was made: the device still DMAs through the IOAS's own domain, and a plain HWPT allocates.
  const plain = keep(ioas.allocHwpt(dev));
  assert.equal(plain.canTrackDirty, false);
});

test('a HWPT allocated by hand without dirty tracking: the device moved onto it, an edu DMA round trip through it, back to the IOAS on close', async () => {
  const { ioas, dev, mmio } = eduOnIoas();
  const buffer = keep(DmaBuffer.alloc(4096));
  const mapping = keep(ioas.map(buffer, { maxIova: EDU.MAX_IOVA }));
  const hwpt = keep(ioas.allocHwpt(dev));
  assert.ok(hwpt instanceof Hwpt);
  assert.ok(hwpt.id !== ioas.id);
  hwpt.attach(dev);
  await eduRoundTrip(mmio, mapping.iova, buffer.bytes);
  // Its domain has no dirty tracking: the kernel refuses both calls.
  const start = throwsVfio(() => hwpt.startDirtyTracking(), { code: 'ENOTSUP', operation: 'IOMMU_HWPT_SET_DIRTY_TRACKING' });
  assert.match(start.hint ?? '', /allocated without dirty tracking/);
  throwsVfio(() => hwpt.dirtyPages(mapping.iova, mapping.size), { code: 'ENOTSUP', operation: 'IOMMU_HWPT_GET_DIRTY_BITMAP' });
  // Closing it moves the device back to an automatic domain of the IOAS (destroying a HWPT in use is EBUSY).
  hwpt.close();
  assert.equal(hwpt.closed, true);
  await eduRoundTrip(mmio, mapping.iova, buffer.bytes);
  mapping.unmap();
  buffer.close();
});

test('closing the IOAS closes the device, then the HWPT it was on, then the IOAS', () => {
  const { iommufd, ioas, dev } = eduOnIoas();
  const hwpt = ioas.allocHwpt(dev);
  hwpt.attach(dev);
  const unused = ioas.allocHwpt(dev);
  ioas.close();
  assert.deepEqual([dev.closed, hwpt.closed, unused.closed, ioas.closed], [true, true, true, true]);
  iommufd.close();
});

test('no fd or pinned page left behind', () => {
  assertNoLeaks();
});
