// @guest-needs iommu suite
/**
 * Two edu devices in one IOMMU group (behind a PCIe-to-PCI bridge): opened
 * and closed in both orders, through Device.open and through the explicit
 * Group, and the group usable again afterwards.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Container, Device, Group } from 'vfio-ioctls';
import { device, EDU, throwsVfio, trackResources } from './helpers';

const one = device('shared-edu-1');
const two = device('shared-edu-2');
const { keep, assertNoLeaks } = trackResources();

/** A device answers on BAR0 through pread. */
function alive(dev: Device): boolean {
  return dev.region(0)?.readUint32(EDU.ID) === EDU.IDENT;
}

test('the test bed: both devices in one group, nothing blocking it', () => {
  assert.equal(one.iommuGroup, two.iommuGroup);
  const group = keep(Group.open(one.iommuGroup));
  assert.equal(group.viable, true);
  assert.deepEqual(group.blockingDevices(), []);
  group.close();
});

for (const order of [[0, 1], [1, 0]] as const) {
  test(`Device.open: both share the group; closing ${order[0] === 0 ? 'first then second' : 'second then first'}`, () => {
    const devs = [keep(Device.open(one.address, { iommu: 'container' })), keep(Device.open(two.address, { iommu: 'container' }))];
    const group = devs[0]!.group!;
    assert.equal(devs[1]!.group, group);
    assert.equal(devs[1]!.iommu, devs[0]!.iommu);
    assert.equal(group.devices().length, 2);
    assert.ok(devs.every(alive));

    const [first, second] = [devs[order[0]]!, devs[order[1]]!];
    first.close();
    // The group stays open and attached for the device still open.
    assert.equal(group.closed, false);
    assert.equal(group.status().containerSet, true);
    assert.deepEqual(group.devices(), [second]);
    assert.ok(alive(second));
    second.close();
    assert.equal(group.closed, true);
    assert.equal((first.iommu as Container | undefined)?.closed ?? true, true);
  });
}

test('the group is reusable after its devices closed: Device.open again', () => {
  const dev = keep(Device.open(two.address, { iommu: 'container' }));
  assert.ok(alive(dev));
  assert.equal(dev.group?.devices().length, 1);
  dev.close();
});

test('explicit Group: both devices, closed in both orders, detached and attached again', () => {
  const container = keep(Container.open());
  const group = keep(Group.open(one.iommuGroup));
  group.attach(container);
  for (const [a, b] of [[one, two], [two, one]]) {
    const first = group.openDevice(a!.address);
    const second = group.openDevice(b!.address);
    assert.deepEqual(group.devices(), [first, second]);
    first.close();
    assert.ok(alive(second));
    second.close();
    assert.deepEqual(group.devices(), []);
    assert.equal(group.container, container);
  }

  // Detaching closes the devices still open; a fresh container takes the group.
  const left = group.openDevice(one.address);
  group.detach();
  assert.equal(left.closed, true);
  assert.deepEqual(container.groups(), []);
  const fresh = keep(Container.open());
  group.attach(fresh);
  const again = group.openDevice(two.address);
  assert.ok(alive(again));
  group.close();
  assert.equal(again.closed, true);
  fresh.close();
  container.close();
  throwsVfio(() => group.openDevice(one.address), { code: 'ERR_VFIO_CLOSED' });
});

test('hot reset info names both devices of the group', () => {
  const dev = keep(Device.open(one.address, { iommu: 'container' }));
  const info = dev.hotResetInfo();
  assert.deepEqual(info.devices.map((d) => d.address).sort(), [one.address, two.address].sort());
  assert.ok(info.devices.every((d) => d.groupId === one.iommuGroup));
  dev.close();
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
