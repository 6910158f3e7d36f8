/**
 * Device.addToKvm against the fake kernel's KVM VFIO device: the group fd
 * (legacy) or the device's own fd (iommufd cdev) is added with
 * KVM_DEV_VFIO_FILE_ADD, deleted by the link's close or the device's close
 * before the file's fd closes, shared by devices of one group, and bad fds
 * are refused naming kvmVfioFd with nothing left behind. The link works
 * through its own dup of the caller's fd, so the caller may close theirs
 * first, and a reused fd number is told apart by the kernel's EEXIST.
 */
import { KVM_SET_DEVICE_ATTR } from '../src/abi/kvm-device-attr';
import { Device, Group, KvmVfioFile } from '../src';
import { EDU, EDU2, GROUP, expectNothingLeft, ioctls, kernel, thrown, thrownVfio } from './helpers';

const attrCalls = (fake: Parameters<typeof ioctls>[0], from = 0) => ioctls(fake, from).filter((r) => r === KVM_SET_DEVICE_ATTR);

describe('legacy container: the group fd', () => {
  test('add puts the group in the KVM VFIO device; the link\'s close deletes it', () => {
    const { fake, env } = kernel();
    const device = Device.open(EDU, env);
    const kvm = fake.createKvmVfioDevice();
    const link = device.addToKvm(kvm.fd);
    expect(link).toBeInstanceOf(KvmVfioFile);
    expect(link.kind).toBe('group');
    expect(link.kvmVfioFd).toBe(kvm.fd);
    expect(kvm.files()).toEqual([`${fake.devRoot}/${GROUP}`]);
    link.close();
    expect(link.closed).toBe(true);
    expect(kvm.files()).toEqual([]);
    const calls = fake.calls.length;
    link.close(); // idempotent: no second delete
    expect(fake.calls.length).toBe(calls);
    device.close();
    fake.close(kvm.fd);
    expectNothingLeft(fake);
  });

  test('the device\'s close deletes the entry before the group fd closes, so the group is free again', () => {
    const { fake, env } = kernel();
    const device = Device.open(EDU, env);
    const kvm = fake.createKvmVfioDevice();
    const link = device.addToKvm(kvm.fd);
    device.close();
    expect(link.closed).toBe(true);
    expect(kvm.files()).toEqual([]);
    // Had the kernel kept its reference, the group would still be open and the reopen EBUSY.
    const again = Device.open(EDU, env);
    again.close();
    fake.close(kvm.fd);
    expectNothingLeft(fake);
  });

  test('a group file the KVM VFIO device still holds outlives its fd, as in the kernel', () => {
    const { fake, env } = kernel();
    const kvm = fake.createKvmVfioDevice();
    const group = Group.open(GROUP, env);
    const groupFd = group.fd;
    // Added behind the library's back: closing the group then leaves the kernel's reference.
    const scratch = fake.allocDma(4096);
    new DataView(scratch).setInt32(0, groupFd, true);
    const attr = new Uint8Array(24);
    const view = new DataView(attr.buffer);
    view.setUint32(4, 1, true);
    view.setBigUint64(8, 1n, true);
    view.setBigUint64(16, fake.addressOf(scratch), true);
    fake.ioctl(kvm.fd, KVM_SET_DEVICE_ATTR, attr);
    group.close();
    expect(() => Group.open(GROUP, env)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    fake.close(kvm.fd); // kvm_vfio_release lets go of it
    Group.open(GROUP, env).close();
    fake.freeDma(scratch);
    expectNothingLeft(fake);
  });

  test('devices of one group share its entry: one add, and the delete with the last link', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP }, { address: EDU2, group: GROUP }]);
    const first = Device.open(EDU, env);
    const second = Device.open(EDU2, env);
    const kvm = fake.createKvmVfioDevice();
    const from = fake.calls.length;
    const a = first.addToKvm(kvm.fd);
    const fds = fake.openFds().length;
    const b = second.addToKvm(kvm.fd);
    // The second add asks the kernel (EEXIST: the group is in this device) and shares the entry and its fd.
    expect(attrCalls(fake, from)).toHaveLength(2);
    expect(fake.openFds().length).toBe(fds);
    expect(kvm.files()).toEqual([`${fake.devRoot}/${GROUP}`]);
    first.close();
    expect(a.closed).toBe(true);
    expect(kvm.files()).toEqual([`${fake.devRoot}/${GROUP}`]);
    b.close();
    expect(kvm.files()).toEqual([]);
    expect(attrCalls(fake, from)).toHaveLength(3);
    // Added again after the delete: a fresh entry.
    const c = second.addToKvm(kvm.fd);
    expect(kvm.files()).toHaveLength(1);
    second.close();
    expect(c.closed).toBe(true);
    expect(kvm.files()).toEqual([]);
    fake.close(kvm.fd);
    expectNothingLeft(fake);
  });
});

describe('iommufd: the device cdev fd', () => {
  test('the device\'s own fd is added and deleted on close', () => {
    const k = kernel(undefined, { deviceCdevs: true });
    const { fake } = k;
    const env = { ...k.env, iommufdPath: fake.iommuPath };
    const device = Device.open(EDU, { ...env, iommu: 'iommufd' });
    const kvm = fake.createKvmVfioDevice();
    const link = device.addToKvm(kvm.fd);
    expect(link.kind).toBe('device');
    expect(kvm.files()).toEqual([fake.cdevPath(EDU)]);
    device.close();
    expect(link.closed).toBe(true);
    expect(kvm.files()).toEqual([]);
    fake.close(kvm.fd);
    expectNothingLeft(fake);
  });
});

describe('bad input', () => {
  test('a kvmVfioFd that is no fd number is refused before any syscall, naming it', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const calls = fake.calls.length;
    expect(thrown(() => device.addToKvm(-1))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('kvmVfioFd') });
    expect(thrown(() => device.addToKvm(1.5))).toMatchObject({ name: 'TypeError', message: expect.stringContaining('kvmVfioFd') });
    expect(thrown(() => device.addToKvm('3' as unknown as number))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('kvmVfioFd') });
    expect(fake.calls.length).toBe(calls);
  });

  test('kernel refusals name kvmVfioFd and the request, with a hint, and leave nothing behind', () => {
    const { fake, env } = kernel();
    const device = Device.open(EDU, env);
    const notOpen = thrownVfio(() => device.addToKvm(999));
    expect(notOpen).toMatchObject({ code: 'EBADF', syscall: 'ioctl', operation: 'KVM_SET_DEVICE_ATTR(KVM_DEV_VFIO_FILE_ADD)', device: EDU });
    expect(notOpen.message).toContain('kvmVfioFd 999');
    expect(notOpen.hint).toContain('not an open fd');
    // An eventfd is no KVM device: ENOTTY, as kvm_device_ioctl never sees it.
    const eventfd = fake.eventfd(0, 0);
    const notKvm = thrownVfio(() => device.addToKvm(eventfd));
    expect(notKvm).toMatchObject({ code: 'ENOTTY' });
    expect(notKvm.hint).toContain('KVM_CREATE_DEVICE');
    fake.close(eventfd);
    // A fault on the add: no entry, so a retry adds for real.
    const kvm = fake.createKvmVfioDevice();
    fake.failNext({ syscall: 'ioctl', request: KVM_SET_DEVICE_ATTR, errno: 'ENOMEM' });
    expect(thrownVfio(() => device.addToKvm(kvm.fd)).code).toBe('ENOMEM');
    expect(kvm.files()).toEqual([]);
    expect(fake.liveDmaBuffers()).toBe(0);
    const link = device.addToKvm(kvm.fd);
    expect(kvm.files()).toHaveLength(1);
    link.close();
    device.close();
    fake.close(kvm.fd);
    expectNothingLeft(fake);
  });

  test('a KVM VFIO fd closed first: the link\'s own fd keeps the device, whose close deletes the file and closes that fd; a closed device refuses', () => {
    const { fake, env } = kernel();
    const device = Device.open(EDU, env);
    const kvm = fake.createKvmVfioDevice();
    device.addToKvm(kvm.fd);
    fake.close(kvm.fd);
    // The KVM VFIO device lives on through the link's dup, the group still in it.
    expect(kvm.files()).toEqual([`${fake.devRoot}/${GROUP}`]);
    device.close();
    expect(kvm.files()).toEqual([]);
    expect(device.closed).toBe(true);
    expectNothingLeft(fake);
    expect(thrown(() => device.addToKvm(3))).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
  });

  test('a reused fd number: a second device of the group added through it lands in the new KVM VFIO device, not the old entry', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP }, { address: EDU2, group: GROUP }]);
    const first = Device.open(EDU, env);
    const second = Device.open(EDU2, env);
    const oldKvm = fake.createKvmVfioDevice();
    const a = first.addToKvm(oldKvm.fd);
    fake.close(oldKvm.fd);
    const newKvm = fake.createKvmVfioDevice();
    expect(newKvm.fd).toBe(oldKvm.fd); // the lowest free number, as in Linux
    const b = second.addToKvm(newKvm.fd);
    expect(oldKvm.files()).toEqual([`${fake.devRoot}/${GROUP}`]);
    expect(newKvm.files()).toEqual([`${fake.devRoot}/${GROUP}`]);
    a.close();
    expect(oldKvm.files()).toEqual([]);
    expect(newKvm.files()).toEqual([`${fake.devRoot}/${GROUP}`]);
    b.close();
    expect(newKvm.files()).toEqual([]);
    first.close();
    second.close();
    fake.close(newKvm.fd);
    expectNothingLeft(fake);
  });

  test('a failed dup undoes the add and leaves nothing', () => {
    const { fake, env } = kernel();
    const device = Device.open(EDU, env);
    const kvm = fake.createKvmVfioDevice();
    fake.failNext({ syscall: 'dup', errno: 'EMFILE' });
    expect(thrownVfio(() => device.addToKvm(kvm.fd))).toMatchObject({ code: 'EMFILE', syscall: 'fcntl' });
    expect(kvm.files()).toEqual([]);
    device.close();
    fake.close(kvm.fd);
    expectNothingLeft(fake);
  });

  test('KvmVfioFile cannot be constructed from outside', () => {
    expect(() => new (KvmVfioFile as unknown as new () => unknown)()).toThrow(TypeError);
  });
});
