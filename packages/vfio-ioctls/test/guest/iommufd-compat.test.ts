// @guest-needs compat suite
// @guest-backends container
/**
 * The legacy container API on iommufd's emulation of /dev/vfio/vfio
 * (CONFIG_IOMMUFD_VFIO_CONTAINER, drivers/iommu/iommufd/vfio_compat.c): the
 * library's Container and Group attach edu with TYPE1v2, map and unmap, and
 * edu's DMA reaches RAM through the IOMMU. Where the emulation answers
 * otherwise than VFIO's own type1 container (drivers/vfio/vfio_iommu_type1.c),
 * the difference is asserted here, so that it is seen, not skipped:
 * - the container fd is an iommufd whose compat IOAS the group's devices
 *   join when they are opened, not when the group attaches: until then the
 *   IOAS has no IOMMU domain and no reserved ranges;
 * - GET_INFO has no MIGRATION capability, and DMA_AVAIL is U32_MAX;
 * - no dirty tracking (VFIO_IOMMU_DIRTY_PAGES), no VFIO_UPDATE_VADDR;
 * - pinned pages show in VmPin, not VmLck (the guest runs as root);
 * - the IOAS, mappings included, lives as long as the container fd, not as
 *   long as a group is attached;
 * - a group that is not viable attaches; its devices are refused when opened.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, Group, VfioContext, type RegionMapping } from 'vfio-ioctls';
import { device, EDU, PCI_COMMAND, PCI_COMMAND_MASTER, throwsVfio, trackResources , eduDma } from './helpers';

const edu = device('edu');
const { backend } = VfioContext.from();
const { keep, assertNoLeaks } = trackResources();

const ALL_64_BITS = 0xffff_ffff_ffff_ffffn;
/** x86's MSI window, reserved in every IOMMU domain of the test bed's VT-d. */
const MSI_WINDOW = { start: 0xfee0_0000n, end: 0xfeef_ffffn };
const hex = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));

/** Container and edu's group, attached (TYPE1v2 set by the attach); no device open yet. */
function attached(): { container: Container; group: Group } {
  const container = keep(Container.open());
  const group = keep(Group.open(edu.iommuGroup));
  group.attach(container);
  return { container, group };
}

/** The process's VmLck and VmPin, in KiB. */
function pins(): { lockedKiB: number; pinnedKiB: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(status)![1]);
  return { lockedKiB: field('VmLck'), pinnedKiB: field('VmPin') };
}

/** A raw VFIO_IOMMU_UNMAP_DMA of [iova, iova + size): how many bytes the kernel unmapped. */
function rawUnmap(container: Container, iova: bigint, size: bigint): bigint {
  const arg = b.vfio_iommu_type1_dma_unmap.encode({ argsz: b.vfio_iommu_type1_dma_unmap.size, flags: 0, iova, size });
  backend.ioctl(container.fd, b.VFIO_IOMMU_UNMAP_DMA, arg);
  return b.vfio_iommu_type1_dma_unmap.decode(arg).size;
}

test('the container: TYPE1, TYPE1v2 and UNMAP_ALL; no UPDATE_VADDR; no cache-coherency answer before a group', () => {
  const container = keep(Container.open());
  assert.equal(container.apiVersion, b.VFIO_API_VERSION);
  assert.equal(container.checkExtension(b.VFIO_TYPE1v2_IOMMU), true);
  assert.equal(container.checkExtension(b.VFIO_TYPE1_IOMMU), true);
  assert.equal(container.checkExtension(b.VFIO_UNMAP_ALL), true);
  assert.equal(container.checkExtension(b.VFIO_SPAPR_TCE_IOMMU), false);
  assert.equal(container.checkExtension(b.VFIO_UPDATE_VADDR), false);
  // Built with VFIO_NOIOMMU, the emulation offers it on an IOMMU boot too
  // (VFIO's container offers it only in no-IOMMU mode).
  assert.equal(container.checkExtension(b.VFIO_NOIOMMU_IOMMU), true);
  // It asks the compat IOAS, which only a group's attach creates: ENODEV
  // where VFIO's container answers 0 (iommufd_vfio_cc_iommu).
  throwsVfio(() => container.checkExtension(b.VFIO_DMA_CC_IOMMU), { code: 'ENODEV', operation: 'VFIO_CHECK_EXTENSION' });
  container.close();
});

test('attach sets TYPE1v2; GET_INFO is the emulation\'s, and the IOMMU\'s geometry arrives with the device', () => {
  const { container, group } = attached();
  assert.equal(container.iommuType, b.VFIO_TYPE1v2_IOMMU);
  assert.equal(group.status().containerSet, true);
  assert.equal(container.checkExtension(b.VFIO_UPDATE_VADDR), false); // type1 says 1 once set
  assert.equal(typeof container.checkExtension(b.VFIO_DMA_CC_IOMMU), 'boolean');

  // No device in the compat IOAS yet: no IOMMU domain, nothing reserved,
  // every page size from 4 KiB up (iommufd_get_pagesizes with no domain).
  const before = container.iommuInfo();
  assert.equal(before.flags, b.VFIO_IOMMU_INFO_PGSIZES | b.VFIO_IOMMU_INFO_CAPS);
  assert.deepEqual(before.capabilities.map((c) => c.id), [b.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, b.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE]);
  assert.equal(before.migration, undefined);
  assert.equal(before.dmaAvail, 0xffff_ffff);
  assert.deepEqual(before.iovaRanges, [{ start: 0n, end: ALL_64_BITS }]);
  assert.equal(before.pageSizes, ALL_64_BITS & ~0xfffn);

  // Opening the device attaches it to the compat IOAS: VT-d's domain brings
  // its page sizes, aperture and the MSI window.
  const dev = keep(group.openDevice(edu.address));
  assert.equal(dev.iommu, container);
  const after = container.iommuInfo();
  assert.equal(after.migration, undefined);
  assert.equal(after.pageSizes & 0x1000n, 0x1000n);
  assert.ok(after.pageSizes < before.pageSizes, hex(after.pageSizes));
  assert.equal(after.iovaRanges[0]?.start, 0n);
  assert.ok(after.iovaRanges.length >= 2, hex(after.iovaRanges));
  assert.ok(after.iovaRanges.every((r) => r.end < MSI_WINDOW.start || r.start > MSI_WINDOW.end), `the MSI window is reserved: ${hex(after.iovaRanges)}`);
  group.close();
  container.close();
});

/** Opens edu on the container backend with bus mastering on and BAR0 mapped. */
function openEduOnContainer(): { dev: Device; container: Container; mmio: RegionMapping } {
  const dev = keep(Device.open(edu.address, { iommu: 'container' }));
  assert.ok(dev.iommu instanceof Container, `Device.open chose ${dev.iommu?.kind}`);
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  return { dev, container: dev.iommu, mmio: dev.region(0)!.map() };
}


test('DMA through the emulated container: an edu round trip; the pin shows in VmPin, not VmLck', async () => {
  const { dev, container, mmio } = openEduOnContainer();
  assert.equal(container.iommuType, b.VFIO_TYPE1v2_IOMMU);
  assert.equal(dev.region(0)!.readUint32(EDU.ID), EDU.IDENT);
  const buffer = keep(DmaBuffer.alloc(4096));
  const start = pins();
  const mapping = container.map(buffer, { maxIova: EDU.MAX_IOVA });
  // iommufd counts every pin in VmPin; its VFIO-style rlimit accounting
  // (VmLck) is off for a caller with CAP_IPC_LOCK (iopt_alloc_pages), as
  // root is. type1 charges VmLck whatever the caller's capabilities.
  assert.deepEqual(pins(), { lockedKiB: start.lockedKiB, pinnedKiB: start.pinnedKiB + 4 });
  assert.deepEqual(container.mappings(), [mapping]);

  const half = EDU.MAX_TRANSFER;
  const bytes = buffer.bytes;
  for (let i = 0; i < half; i++) bytes[i] = (i * 13 + 5) & 0xff;
  await eduDma(mmio, mapping.iova, BigInt(EDU.BUFFER), half, 0);
  await eduDma(mmio, BigInt(EDU.BUFFER), mapping.iova + BigInt(half), half, EDU.DMA_TO_RAM);
  assert.deepEqual(bytes.subarray(half, 2 * half), bytes.subarray(0, half));

  mapping.unmap();
  assert.deepEqual(pins(), start);
  assert.equal(buffer.mapped, false);
  // unmapAll takes the VFIO_DMA_UNMAP_FLAG_ALL path, which the emulation has.
  const again = container.map(buffer, { maxIova: EDU.MAX_IOVA });
  container.unmapAll();
  assert.equal(again.mapped, false);
  assert.deepEqual(pins(), start);
  buffer.close();
  dev.close();
});

test('what the emulation refuses: dirty tracking, VADDR updates, the dirty bitmap on unmap', () => {
  const { dev, container } = openEduOnContainer();
  const buffer = keep(DmaBuffer.alloc(4096));
  const mapping = container.map(buffer);
  // VFIO_IOMMU_DIRTY_PAGES is not emulated: the ioctl is unknown (ENOTTY).
  const dirty = b.vfio_iommu_type1_dirty_bitmap.encode({ argsz: b.vfio_iommu_type1_dirty_bitmap.size, flags: b.VFIO_IOMMU_DIRTY_PAGES_FLAG_START });
  throwsVfio(() => backend.ioctl(container.fd, b.VFIO_IOMMU_DIRTY_PAGES, dirty), { code: 'ENOTTY', syscall: 'ioctl' });
  // MAP_DMA takes READ and WRITE only: VADDR (re-pointing a mapping) is EINVAL.
  const vaddr = backend.addressOf(buffer.bytes.buffer as ArrayBuffer);
  const map = b.vfio_iommu_type1_dma_map.encode({
    argsz: b.vfio_iommu_type1_dma_map.size, flags: b.VFIO_DMA_MAP_FLAG_VADDR, vaddr, iova: mapping.iova, size: 4096n,
  });
  throwsVfio(() => backend.ioctl(container.fd, b.VFIO_IOMMU_MAP_DMA, map), { code: 'EINVAL' });
  // UNMAP_DMA takes ALL only: GET_DIRTY_BITMAP is EINVAL, and nothing is unmapped.
  const unmap = b.vfio_iommu_type1_dma_unmap.encode({
    argsz: b.vfio_iommu_type1_dma_unmap.size, flags: b.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, iova: mapping.iova, size: 4096n,
  });
  throwsVfio(() => backend.ioctl(container.fd, b.VFIO_IOMMU_UNMAP_DMA, unmap), { code: 'EINVAL' });
  assert.deepEqual(container.mappings(), [mapping]);
  mapping.unmap();
  buffer.close();
  dev.close();
});

test('before a device joins, nothing is reserved: a mapping over the MSI window keeps the device out', () => {
  const { container, group } = attached();
  const buffer = keep(DmaBuffer.alloc(4096));
  // type1 reserves the window when the group attaches (this map would be a
  // RangeError); the compat IOAS learns of it only from the device.
  const blocking = container.map(buffer, { iova: MSI_WINDOW.start });
  throwsVfio(() => group.openDevice(edu.address), { code: 'EADDRINUSE', operation: 'VFIO_GROUP_GET_DEVICE_FD' });
  blocking.unmap();
  const dev = keep(group.openDevice(edu.address));
  assert.equal(dev.region(0)!.readUint32(EDU.ID), EDU.IDENT);
  buffer.close();
  group.close();
  container.close();
});

test("the compat IOAS lives with the container fd, so the library unmaps before the last group's detach: nothing outlives it", () => {
  const { container, group } = attached();
  const dev = keep(group.openDevice(edu.address));
  const buffer = keep(DmaBuffer.alloc(4096));
  const iova = 0x40_0000n;
  const mapping = container.map(buffer, { iova });
  assert.equal(dev.closed, false);
  // type1 releases its IOMMU, mappings and all, when the last group leaves;
  // iommufd keeps the compat IOAS (and what it maps) until the container fd
  // closes, so a device opened later could still reach the freed buffer.
  // The library unmaps first (UNMAP_DMA ALL), then detaches.
  group.detach();
  assert.equal(mapping.mapped, false);
  assert.equal(container.iommuType, undefined);
  buffer.close();
  group.attach(container);
  assert.equal(rawUnmap(container, iova, 4096n), 0n, 'the kernel holds nothing at the old IOVA');
  group.close();
  container.close();
});

/** Binds a PCI device to `driver` through driver_override (uio_pci_generic is built into compat-7.3). */
function rebind(address: string, driver: string): void {
  const link = `/sys/bus/pci/devices/${address}/driver`;
  if (existsSync(link)) writeFileSync(`/sys/bus/pci/drivers/${basename(readlinkSync(link))}/unbind`, address);
  writeFileSync(`/sys/bus/pci/devices/${address}/driver_override`, driver);
  writeFileSync('/sys/bus/pci/drivers_probe', address);
  assert.equal(basename(readlinkSync(link)), driver, `${address} bound to ${driver}`);
}

test('a group that is not viable attaches; its device is refused (EPERM) when opened', () => {
  const one = device('shared-edu-1');
  const two = device('shared-edu-2');
  rebind(two.address, 'uio_pci_generic');
  try {
    const container = keep(Container.open());
    const group = keep(Group.open(one.iommuGroup));
    assert.equal(group.viable, false);
    // The library refuses first, whatever the container.
    throwsVfio(() => group.attach(container), { code: 'ERR_VFIO_GROUP_NOT_VIABLE' });
    // The kernel: VFIO's container refuses the group itself (EPERM, see
    // errors.test); the emulation takes it and claims DMA ownership device
    // by device, when one is opened (iommufd_device_bind), which
    // uio_pci_generic's claim on the group refuses.
    const fd = new Uint8Array(4);
    new DataView(fd.buffer).setInt32(0, container.fd, true);
    backend.ioctl(group.fd, b.VFIO_GROUP_SET_CONTAINER, fd);
    assert.equal(group.status().containerSet, true);
    throwsVfio(() => backend.ioctl(group.fd, b.VFIO_GROUP_GET_DEVICE_FD, new TextEncoder().encode(`${one.address}\0`)), { code: 'EPERM' });
    backend.ioctl(group.fd, b.VFIO_GROUP_UNSET_CONTAINER);
    group.close();
    container.close();
  } finally {
    rebind(two.address, 'vfio-pci');
  }
});

test('leaves no fd, pinned or locked memory behind', () => {
  assertNoLeaks();
});
