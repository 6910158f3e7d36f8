// @guest-needs iommu kvm suite
// @guest-backends container iommufd
/**
 * Device.addToKvm on the real kernel, in the orders a VMM may close things:
 * the link holds its own dup of the KVM VFIO device fd, so the VMM may
 * close its VM (and that fd) before the device; and a fd number that comes
 * back for a new KVM VFIO device is told apart from the old one (the
 * kernel's EEXIST), so a device of the same group added through it lands
 * in the new device, not in the old entry.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DmaBuffer, type Device } from 'vfio-ioctls';
import * as unsafe from 'vfio-ioctls/unsafe';
import { Vm } from '../../examples/mini-vmm/kvm';
import { device, openDevice, resources, throwsVfio } from './helpers';

// include/uapi/linux/kvm.h (the library's copy is checked against gcc in test/kvm-layout.test.ts).
const KVM_SET_DEVICE_ATTR = 0x4018aee1;
const KVM_DEV_VFIO_FILE = 1;
const KVM_DEV_VFIO_FILE_ADD = 1n;

/** KVM_DEV_VFIO_FILE_ADD of the device's VFIO file (group or cdev fd) by raw ioctl, outside the library. */
function addRaw(kvmVfioFd: number, dev: Device): void {
  const pointer = DmaBuffer.alloc(4096);
  try {
    new DataView(pointer.bytes.buffer, pointer.bytes.byteOffset, 4).setInt32(0, dev.group ? dev.group.fd : dev.fd, true);
    const attr = new Uint8Array(24);
    const view = new DataView(attr.buffer);
    view.setUint32(4, KVM_DEV_VFIO_FILE, true);
    view.setBigUint64(8, KVM_DEV_VFIO_FILE_ADD, true);
    view.setBigUint64(16, unsafe.addressOf(pointer), true);
    unsafe.ioctl(kvmVfioFd, KVM_SET_DEVICE_ATTR, attr);
  } finally {
    pointer.close();
  }
}

test('the VM and its KVM VFIO fd closed before the device: the link keeps its own fd, the device closes cleanly and opens again', () => {
  const edu = device('edu');
  const before = resources().fds;
  const dev = openDevice(edu.address);
  const vm = Vm.create();
  const link = dev.addToKvm(vm.createVfioDevice());
  vm.close(); // every fd the VMM had for KVM
  assert.equal(link.closed, false);
  dev.close(); // FILE_DEL through the link's dup, then its close
  assert.equal(link.closed, true);
  openDevice(edu.address).close();
  assert.equal(resources().fds, before);
});

test('a fd number reused for a new KVM VFIO device: the second device of the group is added to the new one', () => {
  const before = resources().fds;
  const one = openDevice(device('shared-edu-1').address);
  const two = openDevice(device('shared-edu-2').address);
  const first = Vm.create();
  const a = one.addToKvm(first.createVfioDevice());
  first.close();
  const second = Vm.create();
  const fd = second.createVfioDevice();
  assert.equal(fd, a.kvmVfioFd, 'the new KVM VFIO device got the freed number (lowest free fd)');
  const b = two.addToKvm(fd);
  // Already there: the new KVM VFIO device holds the file (the group's on the container, the device's own on iommufd).
  throwsVfio(() => addRaw(fd, two), { code: 'EEXIST' });
  b.close();
  a.close();
  two.close();
  one.close();
  second.close();
  assert.equal(resources().fds, before);
});
