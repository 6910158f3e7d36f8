// @guest-needs iommu suite
/**
 * Container, group and device set-up and teardown against the real kernel,
 * in every order, plus sysfs discovery. Mostly on the lone edu device.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { Container, Device, Group, groupDevices, groupOf, listIommuGroups, pciDevice, VfioContext } from 'vfio-ioctls';
import { device, EDU, throwsArg, throwsVfio, trackResources } from './helpers';

const edu = device('edu');
const { keep, assertNoLeaks } = trackResources();

/** Opens container + group and attaches them: the explicit path. */
function openExplicit(): { container: Container; group: Group } {
  const container = keep(Container.open());
  const group = keep(Group.open(edu.iommuGroup));
  group.attach(container);
  return { container, group };
}

test('discovery: sysfs agrees with the test bed', () => {
  const info = pciDevice(edu.address);
  assert.equal(info.address, edu.address);
  assert.equal(info.vendor, 0x1234);
  assert.equal(info.device, 0x11e8);
  assert.equal(info.driver, 'vfio-pci');
  assert.equal(info.iommuGroup, edu.iommuGroup);
  assert.equal(groupOf(edu.address), edu.iommuGroup);
  // The short form (domain 0) names the same device.
  assert.equal(groupOf(edu.address.slice(5)), edu.iommuGroup);

  const context = VfioContext.from();
  assert.equal(VfioContext.from({}), context); // equal options, one shared context
  assert.equal(context.containerPath, '/dev/vfio/vfio');
  assert.equal(context.groupPath(edu.iommuGroup), edu.groupPath);

  const groups = listIommuGroups();
  const mine = groups.find((g) => g.id === edu.iommuGroup);
  assert.deepEqual(mine?.devices.map((d) => d.address), [edu.address]);
  assert.deepEqual(groups.map((g) => g.id), [...groups.map((g) => g.id)].sort((x, y) => x - y));

  const shared = device('shared-edu-1');
  const members = groupDevices(shared.iommuGroup).map((d) => d.address);
  assert.ok(members.includes(shared.address) && members.includes(device('shared-edu-2').address), members.join(' '));
});

test('container: API version, extensions, and no IOMMU before a group', () => {
  const container = keep(Container.open());
  assert.equal(container.apiVersion, b.VFIO_API_VERSION);
  assert.equal(container.path, '/dev/vfio/vfio');
  assert.equal(container.checkExtension(b.VFIO_TYPE1v2_IOMMU), true);
  assert.equal(container.checkExtension(b.VFIO_TYPE1_IOMMU), true);
  // Kernel 6.1 has no SPAPR IOMMU on x86.
  assert.equal(container.checkExtension(b.VFIO_SPAPR_TCE_IOMMU), false);
  assert.equal(container.iommuType, undefined);
  assert.deepEqual(container.groups(), []);
  assert.deepEqual(container.mappings(), []);
  throwsVfio(() => container.setIommu(), { code: 'ERR_VFIO_NOT_ATTACHED', operation: 'VFIO_SET_IOMMU' });
  throwsVfio(() => container.iommuInfo(), { code: 'ERR_VFIO_NOT_ATTACHED' });
  container.close();
  assert.equal(container.closed, true);
  container.close(); // idempotent
  throwsVfio(() => container.fd, { code: 'ERR_VFIO_CLOSED' });
  throwsVfio(() => container.checkExtension(b.VFIO_TYPE1v2_IOMMU), { code: 'ERR_VFIO_CLOSED' });
});

test('group: opened by number, PCI address or sysfs path; status before attaching', () => {
  for (const target of [edu.iommuGroup, String(edu.iommuGroup), edu.address, `/sys/bus/pci/devices/${edu.address}`]) {
    const group = keep(Group.open(target));
    assert.equal(group.id, edu.iommuGroup, String(target));
    assert.equal(group.path, edu.groupPath);
    group.close();
  }
  const group = keep(Group.open(edu.iommuGroup));
  assert.deepEqual(group.status(), { viable: true, containerSet: false, flags: b.VFIO_GROUP_FLAGS_VIABLE });
  assert.equal(group.viable, true);
  group.assertViable();
  assert.deepEqual(group.blockingDevices(), []);
  assert.equal(group.container, undefined);
  throwsVfio(() => group.openDevice(edu.address), { code: 'ERR_VFIO_NOT_ATTACHED' });
  group.detach(); // not attached: nothing to do
  group.close();
  throwsVfio(() => group.status(), { code: 'ERR_VFIO_CLOSED' });
});

test('attach: sets TYPE1v2, reports the IOMMU, and refuses a second container', () => {
  const { container, group } = openExplicit();
  assert.equal(group.status().containerSet, true);
  assert.equal(group.container, container);
  assert.deepEqual(container.groups(), [group]);
  assert.equal(container.iommuType, b.VFIO_TYPE1v2_IOMMU);
  assert.equal(container.setIommu(), b.VFIO_TYPE1v2_IOMMU);
  throwsVfio(() => container.setIommu(b.VFIO_TYPE1_IOMMU), { code: 'ERR_VFIO_IOMMU_SET' });
  group.attach(container); // the same container again: nothing to do

  const other = keep(Container.open());
  throwsVfio(() => group.attach(other), { code: 'ERR_VFIO_GROUP_ATTACHED' });
  other.close();

  // What testbed.md saw: flags 3, 4 KiB/2 MiB/1 GiB pages, two IOVA ranges around the MSI window.
  const info = container.iommuInfo();
  assert.equal(info.flags & b.VFIO_IOMMU_INFO_PGSIZES, b.VFIO_IOMMU_INFO_PGSIZES);
  assert.equal(info.pageSizes & 0x1000n, 0x1000n);
  assert.equal(info.iovaRanges[0]?.start, 0n);
  assert.ok(info.iovaRanges.length >= 2, JSON.stringify(info.iovaRanges, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v)));
  assert.ok(info.iovaRanges.every((r) => r.end < 0xfee0_0000n || r.start > 0xfeef_ffffn), 'the MSI window is reserved');
  assert.ok(info.dmaAvail !== undefined && info.dmaAvail > 0);
  assert.ok(info.capabilities.some((c) => c.id === b.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE));
  assert.deepEqual(container.iovaRanges(), info.iovaRanges);
  assert.equal(container.pageSizes(), info.pageSizes);

  group.close();
  container.close();
});

test('device: info of an edu opened from its group', () => {
  const { container, group } = openExplicit();
  const dev = keep(group.openDevice(edu.address));
  assert.equal(dev.name, edu.address);
  assert.equal(dev.group, group);
  assert.equal(dev.iommu, container);
  assert.deepEqual(group.devices(), [dev]);
  assert.equal(dev.info.pci, true);
  assert.equal(dev.info.reset, false);
  assert.equal(dev.info.numRegions, b.VFIO_PCI_NUM_REGIONS);
  assert.equal(dev.info.numIrqs, b.VFIO_PCI_NUM_IRQS);
  assert.equal(dev.info.flags & b.VFIO_DEVICE_FLAGS_PCI, b.VFIO_DEVICE_FLAGS_PCI);
  assert.ok(Number.isInteger(dev.fd));
  // A second handle on the same device is refused by the library.
  throwsVfio(() => group.openDevice(edu.address), { code: 'ERR_VFIO_DEVICE_OPEN' });
  group.close();
  container.close();
});

test('teardown bottom-up: device, detach, group, container', () => {
  const { container, group } = openExplicit();
  const dev = group.openDevice(edu.address);
  dev.close();
  assert.equal(dev.closed, true);
  assert.deepEqual(group.devices(), []);
  throwsVfio(() => dev.regions, { code: 'ERR_VFIO_CLOSED' });
  group.detach();
  assert.equal(group.container, undefined);
  assert.equal(group.status().containerSet, false);
  assert.deepEqual(container.groups(), []);
  // With its last group gone the kernel drops the IOMMU; the container forgets its type.
  assert.equal(container.iommuType, undefined);
  group.close();
  container.close();
});

test('teardown container first: closes the device, detaches the group; the group is reusable', () => {
  const { container, group } = openExplicit();
  const dev = group.openDevice(edu.address);
  container.close();
  assert.equal(dev.closed, true);
  assert.equal(group.closed, false);
  assert.equal(group.container, undefined);
  assert.equal(group.status().containerSet, false);

  const again = keep(Container.open());
  group.attach(again);
  const dev2 = group.openDevice(edu.address);
  assert.equal(dev2.region(0)?.readUint32(EDU.ID), EDU.IDENT);
  group.close();
  assert.equal(dev2.closed, true);
  assert.deepEqual(again.groups(), []);
  again.close();
});

test('teardown group first: closes the device and leaves the container usable', () => {
  const { container, group } = openExplicit();
  const dev = group.openDevice(edu.address);
  group.close();
  assert.equal(dev.closed, true);
  assert.equal(container.closed, false);
  assert.deepEqual(container.groups(), []);
  assert.equal(container.iommuType, undefined);
  // The container takes a group again afterwards.
  const group2 = keep(Group.open(edu.iommuGroup));
  group2.attach(container);
  assert.equal(container.iommuType, b.VFIO_TYPE1v2_IOMMU);
  group2.close();
  container.close();
});

test('teardown with `using`: disposed device, group, container in reverse order', () => {
  let seen: { container?: Container; group?: Group; dev?: Device } = {};
  {
    using container = Container.open();
    using group = Group.open(edu.iommuGroup);
    group.attach(container);
    using dev = group.openDevice(edu.address);
    assert.equal(dev.region(0)?.readUint32(EDU.ID), EDU.IDENT);
    seen = { container, group, dev };
  }
  assert.equal(seen.dev?.closed, true);
  assert.equal(seen.group?.closed, true);
  assert.equal(seen.container?.closed, true);
});

test('Device.open: group and container opened for the device and closed with it', () => {
  const dev = keep(Device.open(edu.address, { iommu: 'container' }));
  const group = dev.group;
  const container = dev.iommu;
  assert.ok(group instanceof Group);
  assert.ok(container instanceof Container);
  assert.equal(group.id, edu.iommuGroup);
  assert.equal(group.container, container);
  dev.close();
  assert.equal(group.closed, true);
  assert.equal(container.closed, true);

  // By sysfs path, and again: nothing of the first open lingers.
  const again = keep(Device.open(`/sys/bus/pci/devices/${edu.address}`, { iommu: 'container' }));
  assert.equal(again.name, edu.address);
  again.close();
});

test('Device.open with a container: the caller keeps the container', () => {
  const container = keep(Container.open());
  const dev = keep(Device.open(edu.address, { container }));
  assert.equal(dev.iommu, container);
  dev.close();
  assert.equal(dev.group?.closed, true);
  assert.equal(container.closed, false);
  assert.deepEqual(container.groups(), []);
  container.close();
});

test('Device.fromFd: a device fd obtained elsewhere', () => {
  const { container, group } = openExplicit();
  // The fd comes straight from the kernel, as an fd passed over a socket would.
  const { backend } = VfioContext.from();
  const name = new TextEncoder().encode(`${edu.address}\0`);
  const fd = backend.ioctl(group.fd, b.VFIO_GROUP_GET_DEVICE_FD, name);
  const dev = keep(Device.fromFd(fd, { name: edu.address, iommu: container }));
  assert.equal(dev.group, undefined);
  assert.equal(dev.iommu, container);
  assert.equal(dev.info.pci, true);
  assert.equal(dev.region(0)?.readUint32(EDU.ID), EDU.IDENT);
  dev.close();
  throwsArg(() => Device.fromFd(-1, { name: 'x' }), 'RangeError');
  group.close();
  container.close();
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
