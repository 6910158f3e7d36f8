import * as b from 'vfio-bindings';
import { Container, DmaBuffer, Group } from '../src';
import { EDU, EDU2, GROUP, expectNothingLeft, kernel } from './helpers';

describe('Group.open', () => {
  test('by number, PCI address or sysfs device path', () => {
    const { fake, env } = kernel();
    for (const target of [GROUP, EDU, '00:03.0', `${fake.sysfsRoot}/bus/pci/devices/${EDU}`, String(GROUP)]) {
      const group = Group.open(target, env);
      expect(group.id).toBe(GROUP);
      expect(group.path).toBe(`${fake.devRoot}/${GROUP}`);
      group.close();
    }
    expectNothingLeft(fake);
  });

  test('bad targets are rejected before any syscall', () => {
    const { fake, env } = kernel();
    expect(() => Group.open(-1, env)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('group') }));
    expect(() => Group.open(1.5, env)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => Group.open('nonsense', env)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => Group.open({} as never, env)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(fake.calls).toEqual([]);
  });

  test('an unknown group is ENOENT with the path', () => {
    const { fake, env } = kernel();
    expect(() => Group.open(99, env)).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ENOENT', path: `${fake.devRoot}/99` }));
  });

  test('an unknown PCI address fails in sysfs', () => {
    const { env } = kernel();
    expect(() => Group.open('0000:00:1f.0', env)).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ENOENT' }));
  });

  test('opening a group twice is EBUSY', () => {
    const { fake, env } = kernel();
    using group = Group.open(GROUP, env);
    fake.failNext({ syscall: 'open', errno: 'EBUSY' });
    expect(() => Group.open(GROUP, env)).toThrow(expect.objectContaining({ code: 'EBUSY', hint: expect.any(String) }));
    void group;
  });
});

describe('Group status', () => {
  test('viable and not attached at first; containerSet after attach', () => {
    const { env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    expect(group.status()).toMatchObject({ viable: true, containerSet: false });
    expect(group.viable).toBe(true);
    group.attach(container);
    expect(group.status()).toMatchObject({ viable: true, containerSet: true, flags: b.VFIO_GROUP_FLAGS_VIABLE | b.VFIO_GROUP_FLAGS_CONTAINER_SET });
  });

  test('not viable when a device of the group has another driver; attach names it', () => {
    const { fake, env } = kernel([
      { address: EDU, group: GROUP },
      { address: EDU2, group: GROUP, driver: 'e1000e' },
    ]);
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    expect(group.viable).toBe(false);
    expect(group.blockingDevices().map((d) => [d.address, d.driver])).toEqual([[EDU2, 'e1000e']]);
    const before = fake.calls.filter((c) => c.request === b.VFIO_GROUP_SET_CONTAINER).length;
    expect(() => group.attach(container)).toThrow(
      expect.objectContaining({
        name: 'VfioError',
        code: 'ERR_VFIO_GROUP_NOT_VIABLE',
        message: expect.stringContaining(`${EDU2} (e1000e)`),
        hint: expect.stringContaining('vfio-pci'),
        path: group.path,
      }),
    );
    expect(fake.calls.filter((c) => c.request === b.VFIO_GROUP_SET_CONTAINER).length).toBe(before);
  });

  test('status failure is annotated', () => {
    const { fake, env } = kernel();
    using group = Group.open(GROUP, env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_GROUP_GET_STATUS, errno: 'EIO' });
    expect(() => group.status()).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_GROUP_GET_STATUS', path: group.path }));
  });

  test('assertViable() passes for a viable group and names the culprits otherwise', () => {
    const { fake, env } = kernel([
      { address: EDU, group: GROUP },
      { address: EDU2, group: GROUP, driver: null },
    ]);
    using group = Group.open(GROUP, env);
    expect(() => group.assertViable()).not.toThrow();
    expect(group.blockingDevices()).toEqual([]); // an unbound device does not block
    fake.bindDriver(EDU2, 'xhci_hcd');
    expect(() => group.assertViable()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_GROUP_NOT_VIABLE', message: expect.stringContaining(`${EDU2} (xhci_hcd)`) }));
  });

  test('blockingDevices() leaves out the drivers the kernel lets share a group (pcieport, pci-stub, vfio-pci variants)', () => {
    const { fake, env } = kernel([
      { address: EDU, group: GROUP },
      { address: EDU2, group: GROUP, driver: 'pcieport' },
    ]);
    using group = Group.open(GROUP, env);
    expect(group.blockingDevices()).toEqual([]);
    for (const harmless of ['pci-stub', 'mlx5_vfio_pci']) {
      fake.bindDriver(EDU2, harmless);
      expect(group.blockingDevices()).toEqual([]);
    }
    fake.bindDriver(EDU2, 'vfio-pci-ish');
    expect(group.blockingDevices().map((d) => [d.address, d.driver])).toEqual([[EDU2, 'vfio-pci-ish']]);
  });
});

describe('Group.attach / detach', () => {
  test('attach sets the container; attaching again is a no-op; detach unsets', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    group.attach(container);
    expect(fake.calls.filter((c) => c.request === b.VFIO_GROUP_SET_CONTAINER)).toHaveLength(1);
    expect(group.container).toBe(container);
    expect(container.groups()).toEqual([group]);
    group.detach();
    expect(group.container).toBeUndefined();
    expect(container.groups()).toEqual([]);
    expect(container.iommuType).toBeUndefined(); // the last group took the IOMMU with it
    expect(group.status().containerSet).toBe(false);
    group.detach(); // not attached: nothing to do
  });

  test('two groups share one container; the IOMMU is set once', () => {
    const { fake, env } = kernel([
      { address: EDU, group: 5 },
      { address: EDU2, group: 6 },
    ]);
    using container = Container.open(env);
    using g5 = Group.open(5, env);
    using g6 = Group.open(6, env);
    g5.attach(container);
    g6.attach(container);
    expect(fake.calls.filter((c) => c.request === b.VFIO_SET_IOMMU)).toHaveLength(1);
    expect(container.groups()).toHaveLength(2);
    g5.detach();
    expect(container.iommuType).toBe(b.VFIO_TYPE1v2_IOMMU);
  });

  test('attach refuses a second container and non-containers', () => {
    const { env } = kernel();
    using c1 = Container.open(env);
    using c2 = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(c1);
    expect(() => group.attach(c2)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_GROUP_ATTACHED' }));
    expect(() => group.attach({} as never)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('container') }));
  });

  test('attach refuses a container of another backend', () => {
    const a = kernel();
    const other = kernel();
    using container = Container.open(other.env);
    using group = Group.open(GROUP, a.env);
    expect(() => group.attach(container)).toThrow(expect.objectContaining({ name: 'TypeError' }));
  });

  test('SET_CONTAINER failure leaves the group detached', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_GROUP_SET_CONTAINER, errno: 'EBUSY' });
    expect(() => group.attach(container)).toThrow(expect.objectContaining({ code: 'EBUSY', operation: 'VFIO_GROUP_SET_CONTAINER', hint: expect.stringContaining('another container') }));
    expect(group.container).toBeUndefined();
    expect(container.groups()).toEqual([]);
  });

  test('detach closes the devices first', () => {
    const { env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    const device = group.openDevice(EDU);
    group.detach();
    expect(device.closed).toBe(true);
    expect(group.devices()).toEqual([]);
  });

  test('the last group out unmaps everything before UNSET_CONTAINER (iommufd compat keeps mappings past it); an earlier one does not', () => {
    const { fake, env } = kernel([
      { address: EDU, group: 5 },
      { address: EDU2, group: 6 },
    ]);
    using container = Container.open(env);
    using g5 = Group.open(5, env);
    using g6 = Group.open(6, env);
    g5.attach(container);
    g6.attach(container);
    using buffer = DmaBuffer.alloc(4096, env);
    const mapping = container.map(buffer, { iova: 0x40_0000n });
    const requests = (from: number) => fake.calls.slice(from).filter((c) => c.syscall === 'ioctl').map((c) => c.request! >>> 0);
    let from = fake.calls.length;
    g5.detach();
    expect(requests(from)).toEqual([b.VFIO_GROUP_UNSET_CONTAINER >>> 0]);
    expect(mapping.mapped).toBe(true);
    from = fake.calls.length;
    g6.detach();
    // (CHECK_EXTENSION(VFIO_UNMAP_ALL) may come first: the unmap asks once per container.)
    expect(requests(from).filter((r) => r !== b.VFIO_CHECK_EXTENSION >>> 0)).toEqual([b.VFIO_IOMMU_UNMAP_DMA >>> 0, b.VFIO_GROUP_UNSET_CONTAINER >>> 0]);
    expect(mapping.mapped).toBe(false);
    expect(fake.dmaMappings()).toEqual([]);
  });

  test('a failed unmap before the last UNSET_CONTAINER is reported and the group stays attached with its mapping', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    using buffer = DmaBuffer.alloc(4096, env);
    const mapping = container.map(buffer, { iova: 0x40_0000n });
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_IOMMU_UNMAP_DMA, errno: 'EIO' });
    expect(() => group.detach()).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_IOMMU_UNMAP_DMA' }));
    expect(group.container).toBe(container);
    expect(mapping.mapped).toBe(true);
    mapping.unmap();
  });

  test('opening a device asks the IOVA ranges again (compat adds the MSI window then, not at attach)', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    const infos = () => fake.calls.filter((c) => c.request === b.VFIO_IOMMU_GET_INFO).length;
    container.iovaRanges();
    const before = infos();
    container.iovaRanges();
    expect(infos()).toBe(before);
    using device = group.openDevice(EDU);
    container.iovaRanges();
    expect(infos()).toBeGreaterThan(before); // GET_INFO asks twice per refresh (argsz, then the capability chain)
    expect(device.closed).toBe(false);
  });

  test('UNSET_CONTAINER failure is reported and the group stays attached', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_GROUP_UNSET_CONTAINER, errno: 'EIO' });
    expect(() => group.detach()).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_GROUP_UNSET_CONTAINER' }));
    expect(group.container).toBe(container);
  });
});

describe('Group.openDevice', () => {
  test('opens several devices of one group', () => {
    const { fake, env } = kernel([
      { address: EDU, group: GROUP },
      { address: EDU2, group: GROUP },
    ]);
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    const d1 = group.openDevice(EDU);
    const d2 = group.openDevice('00:04.0');
    expect(d2.name).toBe(EDU2);
    expect(group.devices()).toEqual([d1, d2]);
    expect(d1.group).toBe(group);
    expect(d1.iommu).toBe(container);
    d1.close();
    expect(group.devices()).toEqual([d2]);
    expect(group.container).toBe(container); // still attached: d2 is open
    group.close();
    expect(d2.closed).toBe(true);
    container.close();
    expectNothingLeft(fake);
  });

  test('needs the group attached (checked before the kernel)', () => {
    const { fake, env } = kernel();
    using group = Group.open(GROUP, env);
    const before = fake.calls.length;
    expect(() => group.openDevice(EDU)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_NOT_ATTACHED', device: EDU }));
    expect(fake.calls.length).toBe(before);
  });

  test('unknown device is ENODEV; already open is refused; EBUSY has a hint; bad name is a TypeError', () => {
    const { fake, env } = kernel([
      { address: EDU, group: GROUP },
      { address: EDU2, group: GROUP },
    ]);
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    expect(() => group.openDevice('0000:00:09.0')).toThrow(expect.objectContaining({ code: 'ENODEV', operation: 'VFIO_GROUP_GET_DEVICE_FD', device: '0000:00:09.0' }));
    using device = group.openDevice(EDU);
    const before = fake.calls.length;
    expect(() => group.openDevice(EDU)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_DEVICE_OPEN', device: EDU, hint: expect.stringContaining('already open') }));
    expect(fake.calls.length).toBe(before);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_GROUP_GET_DEVICE_FD, errno: 'EBUSY' });
    expect(() => group.openDevice(EDU2)).toThrow(expect.objectContaining({ code: 'EBUSY', hint: expect.stringContaining('already open') }));
    expect(() => group.openDevice('' as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    void device;
  });

  test('a failing device info query closes the new device fd', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    const fds = fake.openFds();
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_GET_INFO, errno: 'EIO' });
    expect(() => group.openDevice(EDU)).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_DEVICE_GET_INFO', device: EDU }));
    expect(fake.openFds()).toEqual(fds);
    expect(group.devices()).toEqual([]);
  });
});

describe('Group.close', () => {
  test('closes devices, detaches, closes the node; calls afterwards throw', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    const group = Group.open(GROUP, env);
    group.attach(container);
    const device = group.openDevice(EDU);
    group.close();
    group.close();
    expect(device.closed).toBe(true);
    expect(container.groups()).toEqual([]);
    expect(fake.openFds()).toEqual([container.fd]);
    for (const call of [() => group.status(), () => group.openDevice(EDU), () => group.attach(container), () => group.detach(), () => group.fd]) {
      expect(call).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    }
  });
});
