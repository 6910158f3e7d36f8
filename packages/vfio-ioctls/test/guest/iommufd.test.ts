// @guest-needs iommu iommufd cdev suite
/**
 * The iommufd backend against the real kernel: /dev/iommu, IOASes, device
 * cdevs bound and attached, DMA through an IOAS with edu's DMA engine, the
 * IOAS calls (IOVA ranges, allow, copy, unmap by range) and their errors.
 */
import assert from 'node:assert/strict';
import { existsSync, openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import { Device, DmaBuffer, Ioas, Iommufd, type RegionMapping } from 'vfio-ioctls';
import { device, EDU, PCI_COMMAND, PCI_COMMAND_MASTER, resources, throwsArg, throwsVfio, trackResources , eduRoundTrip } from './helpers';

const { keep, assertNoLeaks } = trackResources();

function cdevName(address: string): string {
  const names = readdirSync(`/sys/bus/pci/devices/${address}/vfio-dev`);
  assert.equal(names.length, 1, `one cdev for ${address}: ${names.join(', ')}`);
  return names[0];
}

function enableDma(dev: Device): RegionMapping {
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  return dev.region(0)!.map();
}


test("Device.open picks iommufd and the cdev when the kernel has both ('auto')", () => {
  const edu = device('edu');
  assert.ok(existsSync('/dev/iommu'));
  const cdev = cdevName(edu.address);
  const dev = keep(Device.open(edu.address));
  assert.equal(dev.iommu?.kind, 'iommufd');
  assert.ok(dev.iommu instanceof Ioas);
  assert.equal(dev.group, undefined);
  assert.equal(dev.region(0)!.readUint32(EDU.ID), EDU.IDENT);
  // The cdev is open: opening it again, or the device through its group, is refused.
  throwsVfio(() => Device.open(edu.address, { iommu: 'container' }), { code: 'EBUSY' });
  dev.close();
  // Closed in the kernel's order: the shared IOAS and iommufd went with the device.
  assert.equal((dev.iommu as Ioas).closed, true);
  assert.equal((dev.iommu as Ioas).iommufd.closed, true);
  assert.ok(cdev.startsWith('vfio'));
});

test("iommu: 'container' still opens the same device through its group", () => {
  const dev = keep(Device.open(device('edu').address, { iommu: 'container' }));
  assert.equal(dev.iommu?.kind, 'container');
  assert.equal(dev.group?.id, device('edu').iommuGroup);
});

test('DMA round trip through an IOAS with edu, at a library-chosen and a fixed IOVA', async () => {
  const dev = keep(Device.open(device('edu').address, { iommu: 'iommufd' }));
  const mmio = enableDma(dev);
  const ioas = dev.iommu as Ioas;
  const buffer = keep(DmaBuffer.alloc(4096));
  const mapping = keep(ioas.map(buffer, { maxIova: EDU.MAX_IOVA }));
  assert.ok(mapping.iova > 0n && mapping.end <= BigInt(EDU.MAX_IOVA));
  await eduRoundTrip(mmio, mapping.iova, buffer.bytes);
  mapping.unmap();
  const fixed = keep(ioas.map(buffer, { iova: 0x20_0000n }));
  assert.equal(fixed.iova, 0x20_0000n);
  await eduRoundTrip(mmio, fixed.iova, buffer.bytes);
  assert.equal(ioas.mappings().length, 1);
  // Checked before the kernel: overlap, misalignment, outside the ranges.
  const other = keep(DmaBuffer.alloc(4096));
  throwsArg(() => ioas.map(other, { iova: 0x20_0000n }), 'RangeError', 'ERR_VFIO_DMA_OVERLAP');
  throwsArg(() => ioas.map(other, { iova: 0x20_0100n }), 'RangeError', 'ERR_VFIO_MISALIGNED');
  throwsVfio(() => buffer.close(), { code: 'ERR_VFIO_BUFFER_MAPPED' });
});

test('a memfd-backed buffer mapped by fd (IOMMU_IOAS_MAP_FILE): the edu DMA round trip through it', async () => {
  const memfds = () => readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:');
    } catch {
      return false; // the fd readdir itself held, gone by now
    }
  }).length;
  const before = memfds();
  const dev = keep(Device.open(device('edu').address, { iommu: 'iommufd' }));
  const mmio = enableDma(dev);
  const ioas = dev.iommu as Ioas;
  const buffer = keep(DmaBuffer.alloc(4096, { memfd: true }));
  assert.equal(memfds(), before + 1);
  const mapping = keep(ioas.mapFile(buffer, { maxIova: EDU.MAX_IOVA }));
  assert.ok(mapping.iova > 0n && mapping.end <= BigInt(EDU.MAX_IOVA));
  assert.equal(mapping.size, 4096n);
  await eduRoundTrip(mmio, mapping.iova, buffer.bytes);
  throwsVfio(() => buffer.close(), { code: 'ERR_VFIO_BUFFER_MAPPED' });
  // Anonymous memory has no fd to map by.
  throwsArg(() => ioas.mapFile(keep(DmaBuffer.alloc(4096))), 'TypeError', 'ERR_INVALID_ARG_TYPE');
  mapping.unmap();
  // The same buffer still maps by address (IOMMU_IOAS_MAP of the shared mapping).
  const byAddress = keep(ioas.map(buffer, { maxIova: EDU.MAX_IOVA }));
  await eduRoundTrip(mmio, byAddress.iova, buffer.bytes);
  byAddress.unmap();
  buffer.close();
  assert.equal(memfds(), before);
});

test('IOVA ranges leave out the MSI window; allowIovas narrows what the library hands out', () => {
  const iommufd = keep(Iommufd.open());
  const ioas = keep(iommufd.allocIoas());
  const dev = keep(Device.open(device('edu').address, { ioas }));
  assert.equal(dev.iommu, ioas);
  const ranges = ioas.iovaRanges();
  assert.ok(ranges.length >= 2, JSON.stringify(ranges, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
  // x86's interrupt window 0xfee00000-0xfeefffff is reserved by the device's IOMMU group.
  assert.ok(!ranges.some((r) => r.start <= 0xfee0_0000n && r.end >= 0xfee0_0000n));
  assert.equal(ioas.pageSizes() & 0xfffn, 0n);
  const buffer = keep(DmaBuffer.alloc(4096));
  // The window itself is refused by the library before the kernel sees it.
  throwsArg(() => ioas.map(buffer, { iova: 0xfee0_0000n }), 'RangeError', 'ERR_OUT_OF_RANGE');
  const fresh = keep(iommufd.allocIoas());
  fresh.allowIovas([{ start: 0x100_0000n, end: 0x1ff_ffffn }]);
  assert.deepEqual(fresh.iovaRanges(), [{ start: 0x100_0000n, end: 0x1ff_ffffn }]);
  const inside = keep(fresh.map(buffer));
  assert.ok(inside.iova >= 0x100_0000n && inside.end <= 0x1ff_ffffn);
  throwsArg(() => fresh.allowIovas([{ start: 2n, end: 1n }]), 'RangeError');
});

test('IOAS_COPY maps the same pages in a second IOAS; unmap by range takes whole mappings only', async () => {
  const iommufd = keep(Iommufd.open());
  const source = keep(iommufd.allocIoas());
  const target = keep(iommufd.allocIoas());
  const buffer = keep(DmaBuffer.alloc(8192));
  const original = keep(source.map(buffer, { iova: 0x40_0000n }));
  const copy = keep(target.copyFrom(original, { iova: 0x80_0000n }));
  assert.equal(copy.iova, 0x80_0000n);
  assert.equal(copy.size, 8192n);
  // The device sees the copy: attach edu to the target IOAS and DMA through it.
  const dev = keep(Device.open(device('edu').address, { ioas: target }));
  const mmio = enableDma(dev);
  await eduRoundTrip(mmio, copy.iova, buffer.bytes);
  // The source must be a live mapping of another IOAS of the same iommufd.
  throwsArg(() => target.copyFrom(copy), "TypeError", "ERR_INVALID_ARG_TYPE");
  // Unmap by range: a range cutting the mapping is refused; the whole range unmaps it.
  throwsArg(() => target.unmapRange(0x80_0000n, 4096n), 'RangeError', 'ERR_VFIO_DMA_PARTIAL');
  const gone = target.unmapRange(0x80_0000n, 0x10_0000n);
  assert.deepEqual(gone, [copy]);
  assert.equal(copy.mapped, false);
  assert.equal(original.mapped, true);
  assert.deepEqual(target.unmapRange(0x80_0000n, 0x10_0000n), []);
});

test('pinned pages show in VmPin once a device is attached (iommufd pins when it fills a domain)', () => {
  const pinned = () => Number(/^VmPin:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
  const buffer = keep(DmaBuffer.alloc(8192));
  const start = pinned();
  const iommufd = keep(Iommufd.open());
  const lonely = keep(iommufd.allocIoas());
  const unpinned = lonely.map(buffer);
  assert.equal(pinned(), start);
  unpinned.unmap();
  const processMode = keep(Iommufd.open());
  processMode.setPinAccounting('process');
  const ioas = keep(processMode.allocIoas());
  keep(Device.open(device('edu').address, { ioas }));
  const counted = keep(ioas.map(buffer));
  assert.equal(pinned(), start + 8);
  counted.unmap();
  assert.equal(pinned(), start);
  throwsArg(() => processMode.setPinAccounting('mm' as never), 'TypeError');
});

test("GET_HW_INFO: the guest's IOMMU is QEMU's Intel VT-d; Device.fromFd binds a cdev fd to an IOAS", () => {
  const edu = device('edu');
  const iommufd = keep(Iommufd.open());
  const ioas = keep(iommufd.allocIoas());
  const fd = openSync(`/dev/vfio/devices/${cdevName(edu.address)}`, 'r+');
  const dev = keep(Device.fromFd(fd, { name: edu.address, iommu: ioas }));
  assert.equal(dev.iommu, ioas);
  assert.equal(dev.region(0)!.readUint32(EDU.ID), EDU.IDENT);
  const info = iommufd.hwInfo(dev);
  assert.equal(info.type, 'intel-vtd');
  // VT-d's capability register is never 0 (it names the supported address widths).
  assert.ok(info.vtd && info.vtd.capReg !== 0n, JSON.stringify(info, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v)));
  throwsArg(() => keep(Iommufd.open()).hwInfo(dev), 'TypeError', 'ERR_INVALID_ARG_TYPE');
});

test('hot reset through a cdev: dev ids instead of groups, ownership proven by the iommufd', () => {
  const nvmeInfo = device('nvme');
  const nvme = keep(Device.open(nvmeInfo.address, { iommu: 'iommufd' }));
  const info = nvme.hotResetInfo();
  // FLAG_DEV_ID: the kernel reports the device's dev id in this iommufd (> 0), not its group.
  assert.equal(info.flags & 1, 1);
  assert.deepEqual(info.devices.map((d) => [d.address, d.groupId]), [[nvmeInfo.address, -1]]);
  assert.ok((info.devices[0].devId ?? 0) > 0, JSON.stringify(info.devices[0]));
  // No group fds: the kernel accepts the iommufd's ownership, then finds no way
  // to reset the slot or bus behind QEMU's root port (as through a group).
  throwsVfio(() => nvme.hotReset(), { code: 'ENOTTY', operation: 'VFIO_DEVICE_PCI_HOT_RESET' });
  const edu = keep(Device.open(device('edu').address, { iommu: 'iommufd' }));
  throwsVfio(() => edu.hotResetInfo(), { code: 'ENODEV' });
});

test('closing the iommufd closes its IOASes and the devices attached, in order', () => {
  const before = resources();
  const iommufd = Iommufd.open();
  const ioas = iommufd.allocIoas();
  const dev = Device.open(device('edu').address, { ioas });
  const buffer = DmaBuffer.alloc(4096);
  const mapping = ioas.map(buffer);
  iommufd.close();
  assert.equal(dev.closed, true);
  assert.equal(ioas.closed, true);
  assert.equal(mapping.mapped, false);
  buffer.close();
  throwsVfio(() => ioas.map(buffer), { code: 'ERR_VFIO_CLOSED' });
  assert.deepEqual(resources(), before);
});

test('bad input: options, IOAS of a closed iommufd, wrong types', () => {
  const edu = device('edu');
  throwsArg(() => Device.open(edu.address, { iommu: 'iommufdd' as never }), 'RangeError', 'ERR_INVALID_ARG_VALUE');
  throwsArg(() => Device.open(edu.address, { ioas: {} as never }), 'TypeError', 'ERR_INVALID_ARG_TYPE');
  throwsArg(() => Device.open(edu.address, { vfToken: 'not-a-uuid' }), 'RangeError', 'ERR_INVALID_ARG_VALUE');
  const iommufd = Iommufd.open();
  const ioas = iommufd.allocIoas();
  iommufd.close();
  throwsVfio(() => Device.open(edu.address, { ioas }), { code: 'ERR_VFIO_CLOSED' });
  throwsArg(() => ioas.unmapRange('0' as never, 1n), 'TypeError');
});

test('no fd or pinned page left behind', () => {
  assertNoLeaks();
});
