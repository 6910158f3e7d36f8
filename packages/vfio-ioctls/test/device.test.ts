import * as b from 'vfio-bindings';
import { Container, Device, Group } from '../src';
import { EDU, EDU2, GROUP, expectNothingLeft, kernel } from './helpers';

describe('Device.open', () => {
  test('by PCI address: opens group and container, and closes them with the device', () => {
    const { fake, env } = kernel();
    const device = Device.open(EDU, env);
    expect(device.name).toBe(EDU);
    expect(device.group?.id).toBe(GROUP);
    expect(device.iommu).toBeInstanceOf(Container);
    expect(fake.openFds()).toHaveLength(3);
    device.close();
    expect(device.group?.closed).toBe(true);
    expectNothingLeft(fake);
  });

  test('by sysfs path, and by short address', () => {
    const { fake, env } = kernel();
    const byPath = Device.open(`${fake.sysfsRoot}/bus/pci/devices/${EDU}/`, env);
    expect(byPath.name).toBe(EDU);
    byPath.close();
    const byShort = Device.open('00:03.0', env);
    expect(byShort.name).toBe(EDU);
    byShort.close();
    expectNothingLeft(fake);
  });

  test('two devices of a group share the group and container; the group detaches with the last', () => {
    const { fake, env } = kernel([
      { address: EDU, group: GROUP },
      { address: EDU2, group: GROUP },
    ]);
    const d1 = Device.open(EDU, env);
    const d2 = Device.open(EDU2, env);
    expect(d2.group).toBe(d1.group);
    expect(d2.iommu).toBe(d1.iommu);
    d1.close();
    expect(d2.group!.closed).toBe(false);
    expect(d2.group!.status().containerSet).toBe(true);
    const unsetsBefore = fake.calls.filter((c) => c.request === b.VFIO_GROUP_UNSET_CONTAINER).length;
    expect(unsetsBefore).toBe(0);
    d2.close();
    expect(fake.calls.filter((c) => c.request === b.VFIO_GROUP_UNSET_CONTAINER)).toHaveLength(1);
    expectNothingLeft(fake);
  });

  test('devices of two groups share one container', () => {
    const { fake, env } = kernel([
      { address: EDU, group: 5 },
      { address: EDU2, group: 6 },
    ]);
    const d1 = Device.open(EDU, env);
    const d2 = Device.open(EDU2, env);
    expect(d1.group).not.toBe(d2.group);
    expect(d1.iommu).toBe(d2.iommu);
    d2.close();
    expect((d1.iommu as Container).closed).toBe(false);
    d1.close();
    expect((d1.iommu as Container | undefined)).toBeUndefined(); // detached with its group
    expectNothingLeft(fake);
  });

  test('with a caller container: uses it and leaves it open', () => {
    const { fake, env } = kernel();
    const container = Container.open(env);
    const device = Device.open(EDU, { ...env, container });
    expect(device.iommu).toBe(container);
    device.close();
    expect(container.closed).toBe(false);
    expect(container.groups()).toEqual([]);
    container.close();
    expectNothingLeft(fake);
  });

  test('a second device with a different container than its group is refused', () => {
    const { env } = kernel([
      { address: EDU, group: GROUP },
      { address: EDU2, group: GROUP },
    ]);
    using d1 = Device.open(EDU, env);
    using other = Container.open(env);
    expect(() => Device.open(EDU2, { ...env, container: other })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_GROUP_ATTACHED' }));
    void d1;
  });

  test('a non-viable group fails, listing the culprit, and leaves nothing open', () => {
    const { fake, env } = kernel([
      { address: EDU, group: GROUP },
      { address: EDU2, group: GROUP, driver: 'snd_hda_intel' },
    ]);
    expect(() => Device.open(EDU, env)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_GROUP_NOT_VIABLE', message: expect.stringContaining(`${EDU2} (snd_hda_intel)`) }));
    expectNothingLeft(fake);
  });

  test('bad targets are rejected before any syscall', () => {
    const { fake, env } = kernel();
    expect(() => Device.open('not-an-address', env)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('target') }));
    expect(() => Device.open(3 as never, env)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => Device.open(EDU, { ...env, container: {} as never })).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('options.container') }));
    expect(() => Device.open('0000:00:1f.7', env)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(fake.calls).toEqual([]);
  });

  test('a device already open elsewhere is EBUSY and the shared handles are released', () => {
    const { fake, env } = kernel();
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_GROUP_GET_DEVICE_FD, errno: 'EBUSY' });
    expect(() => Device.open(EDU, env)).toThrow(expect.objectContaining({ code: 'EBUSY', device: EDU }));
    expectNothingLeft(fake);
    const device = Device.open(EDU, env); // and a later open works
    device.close();
    expectNothingLeft(fake);
  });
});

describe('Device.fromFd', () => {
  test('adopts a device fd and closes it', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    const fd = fake.ioctl(group.fd, b.VFIO_GROUP_GET_DEVICE_FD, new TextEncoder().encode(`${EDU}\0`));
    const device = Device.fromFd(fd, { ...env, name: EDU, iommu: container });
    expect(device.info.pci).toBe(true);
    expect(device.iommu).toBe(container);
    expect(device.group).toBeUndefined();
    device.close();
    expect(fake.openFds()).not.toContain(fd);
  });

  test('validates its arguments and closes the fd when the info query fails', () => {
    const { fake, env } = kernel();
    expect(() => Device.fromFd(-1, { ...env, name: 'x' })).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => Device.fromFd(3, { ...env } as never)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('options.name') }));
    expect(() => Device.fromFd(3, { ...env, name: 'x', iomu: {} } as never)).toThrow(expect.objectContaining({
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: expect.stringMatching(/options\.iomu is not a known option .*name, iommu/),
    }));
    const fd = fake.eventfd(0, 0); // not a device: DEVICE_GET_INFO fails
    expect(() => Device.fromFd(fd, { ...env, name: 'odd' })).toThrow(expect.objectContaining({ name: 'VfioError', operation: 'VFIO_DEVICE_GET_INFO', device: 'odd' }));
    expect(fake.openFds()).not.toContain(fd);
  });
});

describe('Device info', () => {
  test('flags, regions and IRQ counts', () => {
    const { env } = kernel([{ address: EDU, group: GROUP, reset: true }]);
    using device = Device.open(EDU, env);
    expect(device.info).toMatchObject({ pci: true, reset: true, numRegions: b.VFIO_PCI_NUM_REGIONS, numIrqs: b.VFIO_PCI_NUM_IRQS });
    expect(device.info.flags & b.VFIO_DEVICE_FLAGS_PCI).toBeTruthy();
    expect(device.info.capabilities).toEqual([]);
  });
});

describe('Device.reset', () => {
  test('resets a reset-capable device', () => {
    const { env, devices } = kernel([{ address: EDU, group: GROUP, reset: true }]);
    using device = Device.open(EDU, env);
    device.reset();
    expect(devices[0]!.resets).toBe(1);
  });

  test('says clearly, before the kernel, that a device has no reset', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const before = fake.calls.length;
    expect(() => device.reset()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_UNSUPPORTED', message: expect.stringContaining('no reset'), device: EDU }));
    expect(fake.calls.length).toBe(before);
  });

  test('a kernel failure is annotated', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, reset: true }]);
    using device = Device.open(EDU, env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_RESET, errno: 'EINVAL' });
    expect(() => device.reset()).toThrow(expect.objectContaining({ code: 'EINVAL', operation: 'VFIO_DEVICE_RESET', hint: expect.stringContaining('no reset') }));
  });
});

describe('Device hot reset', () => {
  test('hotResetInfo lists the dependent devices', () => {
    const { env } = kernel([{ address: EDU, group: GROUP, hotResetDependents: [EDU, EDU2] }, { address: EDU2, group: 6 }]);
    using device = Device.open(EDU, env);
    const info = device.hotResetInfo();
    expect(info.devices).toEqual([
      { groupId: GROUP, segment: 0, bus: 0, devfn: 0x18, address: EDU },
      { groupId: 6, segment: 0, bus: 0, devfn: 0x20, address: EDU2 },
    ]);
  });

  test('hotResetInfo is ENODEV on the root bus, with a hint', () => {
    const { env } = kernel();
    using device = Device.open(EDU, env);
    expect(() => device.hotResetInfo()).toThrow(expect.objectContaining({ code: 'ENODEV', operation: 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', hint: expect.stringContaining('bus-reset') }));
  });

  test('hotReset with the own group by default, or the groups given', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, hotResetDependents: [EDU] }]);
    using device = Device.open(EDU, env);
    const from = fake.calls.length;
    device.hotReset();
    device.hotReset([device.group!]);
    expect(fake.calls.slice(from).filter((c) => c.request === b.VFIO_DEVICE_PCI_HOT_RESET)).toHaveLength(2);
  });

  test('hotReset validates the groups', () => {
    const { env } = kernel([{ address: EDU, group: GROUP, hotResetDependents: [EDU] }]);
    using device = Device.open(EDU, env);
    expect(() => device.hotReset([{} as never])).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('groups[0]') }));
    expect(() => device.hotReset('x' as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
  });

  test('hotReset refused for a missing group names the groups the reset needs and the ones given', () => {
    const { fake, env } = kernel([
      { address: EDU, group: GROUP, hotResetDependents: [EDU, EDU2, '0000:00:05.0'] },
      { address: EDU2, group: 6 },
      { address: '0000:00:05.0', group: 7 },
    ]);
    using device = Device.open(EDU, env);
    const calls = fake.calls.length;
    let error: any;
    try {
      device.hotReset();
    } catch (caught) {
      error = caught;
    }
    expect(error).toMatchObject({
      name: 'VfioError',
      code: 'EINVAL',
      errno: -22,
      syscall: 'ioctl',
      operation: 'VFIO_DEVICE_PCI_HOT_RESET',
      device: EDU,
      message: expect.stringContaining(`the reset affects groups ${GROUP}, 6, 7; given groups ${GROUP}`),
      hint: expect.stringContaining('open groups 6, 7 too'),
    });
    // The groups were looked up after the refusal, not before: the reset itself was tried once.
    expect(fake.calls.slice(calls).filter((c) => c.request === b.VFIO_DEVICE_PCI_HOT_RESET)).toHaveLength(1);
  });

  test('an EINVAL hot reset with every group given says so; without the list, the kernel error stands', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, hotResetDependents: [EDU] }]);
    using device = Device.open(EDU, env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_PCI_HOT_RESET, errno: 'EINVAL' });
    expect(() => device.hotReset()).toThrow(expect.objectContaining({
      code: 'EINVAL',
      message: expect.stringContaining(`affects groups ${GROUP}; given groups ${GROUP}`),
      hint: expect.stringContaining('another reason'),
    }));
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_PCI_HOT_RESET, errno: 'EINVAL' });
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, errno: 'EIO' });
    expect(() => device.hotReset()).toThrow(expect.objectContaining({ code: 'EINVAL', operation: 'VFIO_DEVICE_PCI_HOT_RESET', message: expect.not.stringContaining('groups') }));
  });

  test('hotReset failure is annotated', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, hotResetDependents: [EDU] }]);
    using device = Device.open(EDU, env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_PCI_HOT_RESET, errno: 'EPERM' });
    expect(() => device.hotReset()).toThrow(expect.objectContaining({ code: 'EPERM', operation: 'VFIO_DEVICE_PCI_HOT_RESET' }));
  });
});

describe('Device.close', () => {
  test('calls on a closed device throw ERR_VFIO_CLOSED without a syscall', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, reset: true }]);
    const device = Device.open(EDU, env);
    device.close();
    device.close();
    const before = fake.calls.length;
    for (const call of [() => device.fd, () => device.reset(), () => device.regions, () => device.region(0), () => device.irqInfo(0), () => device.enableIrq(0), () => device.hotResetInfo()]) {
      expect(call).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED', message: expect.stringContaining(EDU) }));
    }
    expect(fake.calls.length).toBe(before);
  });
});
