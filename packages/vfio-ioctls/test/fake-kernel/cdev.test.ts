import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import * as b from 'vfio-bindings';
import { emulateEdu, EDU_DMA_BUFFER, EDU_REG, FakeKernel } from '../../src/testing';
import { EDU, GROUP, fdArg, thrown } from './helpers';
import { attach, bind, destroy, detach, ioasAlloc, ioasMap, openCdev } from './iommufd-helpers';

const EDU2 = '0000:00:04.0';

function kernelWithCdevs(options = {}) {
  const kernel = new FakeKernel({ deviceCdevs: true, ...options });
  kernel.addDevice({ address: EDU, group: GROUP });
  return kernel;
}

describe('device cdevs in sysfs and /dev/vfio/devices', () => {
  test('each vfio-pci device has vfio-dev/vfioN (indexes lowest free first) and a node; rebinding moves them', () => {
    const kernel = kernelWithCdevs();
    kernel.addDevice({ address: EDU2, group: 13 });
    kernel.addDevice({ address: '0000:00:05.0', group: 14, driver: 'e1000e' });
    const dir = (a: string) => `${kernel.sysfsRoot}/bus/pci/devices/${a}/vfio-dev`;
    expect(existsSync(`${dir(EDU)}/vfio0`)).toBe(true);
    expect(readFileSync(`${dir(EDU2)}/vfio1/dev`, 'utf8')).toBe('511:1\n');
    expect(readlinkSync(`${kernel.sysfsRoot}/class/vfio-dev/vfio1`)).toContain(EDU2);
    expect(existsSync(dir('0000:00:05.0'))).toBe(false);
    expect([kernel.cdevPath(EDU), kernel.cdevPath('0000:00:05.0')]).toEqual(['/dev/vfio/devices/vfio0', undefined]);
    kernel.bindDriver(EDU, null);
    expect(existsSync(dir(EDU))).toBe(false);
    expect(thrown(() => kernel.open('/dev/vfio/devices/vfio0', 2))).toMatchObject({ code: 'ENOENT', syscall: 'open' });
    kernel.bindDriver('0000:00:05.0', 'vfio-pci');
    expect(kernel.cdevPath('0000:00:05.0')).toBe('/dev/vfio/devices/vfio0');
    kernel.dispose();
  });

  test('a kernel without cdevs (the default) has neither the sysfs entries nor the nodes', () => {
    const kernel = new FakeKernel();
    kernel.addDevice({ address: EDU, group: GROUP });
    expect(existsSync(`${kernel.sysfsRoot}/bus/pci/devices/${EDU}/vfio-dev`)).toBe(false);
    expect(kernel.cdevPath(EDU)).toBeUndefined();
    expect(thrown(() => kernel.open('/dev/vfio/devices/vfio0', 2))).toMatchObject({ code: 'ENOENT' });
    kernel.dispose();
  });
});

describe('VFIO_DEVICE_BIND_IOMMUFD', () => {
  test('until bound the device fd refuses everything with EINVAL: ioctls, pread, mmap', () => {
    const kernel = kernelWithCdevs();
    const device = kernel.open(kernel.cdevPath(EDU)!, 2);
    const info = b.vfio_device_info.encode({ argsz: b.vfio_device_info.size, flags: 0, num_regions: 0, num_irqs: 0, cap_offset: 0, pad: 0 } as b.EncodeInput<b.vfio_device_info>);
    expect(thrown(() => kernel.ioctl(device, b.VFIO_DEVICE_GET_INFO, info))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => attach(kernel, device, 1))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.pread(device, new Uint8Array(4), 0n))).toMatchObject({ code: 'EINVAL', syscall: 'pread' });
    expect(thrown(() => kernel.mmap(device, 4096, 3, 0n))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    const iommufd = kernel.open(kernel.iommuPath, 2);
    expect(bind(kernel, device, iommufd)).toBe(1);
    kernel.ioctl(device, b.VFIO_DEVICE_GET_INFO, info);
    expect(b.vfio_device_info.decode(info).flags & b.VFIO_DEVICE_FLAGS_PCI).toBeTruthy();
    kernel.munmap(kernel.mmap(device, 4096, 3, 0n));
    kernel.close(device);
    kernel.close(iommufd);
    expect(kernel.openFds()).toEqual([]);
    kernel.dispose();
  });

  test('refusals: argsz, flags, negative fd (EINVAL), no such fd (EBADF), not an iommufd (EBADFD), a token for a device without SR-IOV', () => {
    const kernel = kernelWithCdevs();
    const device = kernel.open(kernel.cdevPath(EDU)!, 2);
    const iommufd = kernel.open(kernel.iommuPath, 2);
    const eventfd = kernel.eventfd(0, 0);
    const raw = (argsz: number, v: Partial<b.vfio_device_bind_iommufd> = {}, length = Math.max(argsz, 24)) => {
      const arg = new Uint8Array(length);
      b.vfio_device_bind_iommufd.encode({ argsz, flags: 0, iommufd, out_devid: 0, token_uuid_ptr: 0n, ...v }, arg);
      return thrown(() => kernel.ioctl(device, b.VFIO_DEVICE_BIND_IOMMUFD, arg));
    };
    expect(raw(12)).toMatchObject({ code: 'EINVAL' });
    expect(raw(32, {}, 24)).toMatchObject({ code: 'EFAULT' });
    expect(raw(24, { flags: 2 })).toMatchObject({ code: 'EINVAL' });
    expect(raw(24, { iommufd: -1 })).toMatchObject({ code: 'EINVAL' });
    expect(raw(24, { iommufd: 77 })).toMatchObject({ code: 'EBADF' });
    expect(raw(24, { iommufd: eventfd })).toMatchObject({ errno: -77 }); // EBADFD, which libuv (so the addon) names E77
    expect(raw(24, { flags: b.VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: 0x10n })).toMatchObject({ code: 'EFAULT' });
    const token = kernel.allocDma(4096);
    expect(raw(24, { flags: b.VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: kernel.addressOf(token) })).toMatchObject({ code: 'EINVAL' });
    const long = new Uint8Array(32);
    b.vfio_device_bind_iommufd.encode({ argsz: 32, flags: 0, iommufd, out_devid: 0, token_uuid_ptr: 0n }, long);
    long[30] = 1;
    expect(thrown(() => kernel.ioctl(device, b.VFIO_DEVICE_BIND_IOMMUFD, long))).toMatchObject({ code: 'E2BIG' });
    // None of that bound anything: the group can still be opened.
    kernel.close(kernel.open(`/dev/vfio/${GROUP}`, 2));
    expect(bind(kernel, device, iommufd)).toBe(1);
    expect(thrown(() => bind(kernel, device, iommufd))).toMatchObject({ code: 'EINVAL' }); // bound once only
    kernel.dispose();
  });

  test('the group file and a bound cdev exclude each other (EBUSY both ways); a second cdev fd of a bound device is EINVAL', () => {
    const kernel = kernelWithCdevs();
    kernel.addDevice({ address: EDU2, group: GROUP });
    const iommufd = kernel.open(kernel.iommuPath, 2);
    const group = kernel.open(`/dev/vfio/${GROUP}`, 2);
    const device = kernel.open(kernel.cdevPath(EDU)!, 2); // opening is fine, binding is not
    expect(thrown(() => bind(kernel, device, iommufd))).toMatchObject({ code: 'EBUSY' });
    kernel.close(group);
    bind(kernel, device, iommufd);
    expect(thrown(() => kernel.open(`/dev/vfio/${GROUP}`, 2))).toMatchObject({ code: 'EBUSY', syscall: 'open' });
    const again = kernel.open(kernel.cdevPath(EDU)!, 2);
    expect(thrown(() => bind(kernel, again, iommufd))).toMatchObject({ code: 'EINVAL' });
    // Another device of the group binds to the same iommufd; to a second iommufd it is EBUSY (the group's DMA is owned).
    const other = kernel.open(kernel.cdevPath(EDU2)!, 2);
    const second = kernel.open(kernel.iommuPath, 2);
    expect(thrown(() => bind(kernel, other, second))).toMatchObject({ code: 'EBUSY' });
    expect(bind(kernel, other, iommufd)).toBe(2);
    kernel.close(device);
    kernel.close(other);
    kernel.close(kernel.open(`/dev/vfio/${GROUP}`, 2));
    kernel.dispose();
  });

  test('a group with a device on a DMA-capable kernel driver cannot be bound (EBUSY); without interrupt remapping EPERM', () => {
    const kernel = kernelWithCdevs();
    kernel.addDevice({ address: EDU2, group: GROUP, driver: 'e1000e' });
    const iommufd = kernel.open(kernel.iommuPath, 2);
    expect(thrown(() => bind(kernel, kernel.open(kernel.cdevPath(EDU)!, 2), iommufd))).toMatchObject({ code: 'EBUSY' });
    const unsafe = kernelWithCdevs({ interruptRemapping: false });
    const fd = unsafe.open(unsafe.iommuPath, 2);
    expect(thrown(() => bind(unsafe, unsafe.open(unsafe.cdevPath(EDU)!, 2), fd))).toMatchObject({ code: 'EPERM' });
    kernel.dispose();
    unsafe.dispose();
  });

  test('on a group-opened device fd BIND is EINVAL and ATTACH/DETACH are vfio-pci\'s ENOTTY', () => {
    const kernel = new FakeKernel();
    kernel.addDevice({ address: EDU, group: GROUP });
    const container = kernel.open('/dev/vfio/vfio', 2);
    const group = kernel.open(`/dev/vfio/${GROUP}`, 2);
    kernel.ioctl(group, b.VFIO_GROUP_SET_CONTAINER, fdArg(container));
    kernel.ioctl(container, b.VFIO_SET_IOMMU, b.VFIO_TYPE1v2_IOMMU);
    const device = kernel.ioctl(group, b.VFIO_GROUP_GET_DEVICE_FD, new Uint8Array(Buffer.from(`${EDU}\0`)));
    const iommufd = kernel.open(kernel.iommuPath, 2);
    expect(thrown(() => bind(kernel, device, iommufd))).toMatchObject({ code: 'ENOTTY' });
    expect(thrown(() => attach(kernel, device, 1))).toMatchObject({ code: 'ENOTTY' });
    kernel.dispose();
  });
});

describe('ATTACH / DETACH_IOMMUFD_PT', () => {
  test('attach to an IOAS makes an auto HWPT and writes its id back; the objects it holds cannot be destroyed; detach drops it', () => {
    const { kernel, iommufd, ioas, device, devid, hwpt } = openCdev();
    expect([ioas, devid, hwpt]).toEqual([1, 2, 3]);
    expect(kernel.iommufdObjects()).toEqual([{ id: 1, type: 'ioas' }, { id: 2, type: 'device' }, { id: 3, type: 'hwpt_paging' }]);
    for (const id of [ioas, devid, hwpt]) expect(thrown(() => destroy(kernel, iommufd, id))).toMatchObject({ code: 'EBUSY' });
    expect(attach(kernel, device, ioas)).toBe(hwpt); // again: the same domain
    expect(attach(kernel, device, hwpt)).toBe(hwpt); // by HWPT id
    detach(kernel, device);
    detach(kernel, device); // not attached: fine
    expect(kernel.iommufdObjects().map((o) => o.type)).toEqual(['ioas', 'device']);
    destroy(kernel, iommufd, ioas);
    kernel.dispose();
  });

  test('a second device on the same IOAS shares the HWPT; replacing moves a device to another IOAS', () => {
    const { kernel, iommufd, ioas, hwpt } = openCdev();
    kernel.addDevice({ address: EDU2, group: 13 });
    const d2 = kernel.open(kernel.cdevPath(EDU2)!, 2);
    bind(kernel, d2, iommufd);
    expect(attach(kernel, d2, ioas)).toBe(hwpt);
    const other = ioasAlloc(kernel, iommufd);
    const hwpt2 = attach(kernel, d2, other);
    expect(hwpt2).not.toBe(hwpt);
    expect(kernel.iommufdObjects().filter((o) => o.type === 'hwpt_paging')).toHaveLength(2);
    kernel.close(d2); // detach and unbind on close; its HWPT goes with it
    expect(kernel.iommufdObjects().filter((o) => o.type === 'hwpt_paging').map((o) => o.id)).toEqual([hwpt]);
    destroy(kernel, iommufd, other);
    kernel.dispose();
  });

  test('refusals: unknown id ENOENT, a device id EINVAL, argsz EINVAL, flags EINVAL, PASID EINVAL; an IOAS mapping over the MSI window EADDRINUSE', () => {
    const { kernel, iommufd, device, devid } = openCdev();
    expect(thrown(() => attach(kernel, device, 99))).toMatchObject({ code: 'ENOENT' });
    expect(thrown(() => attach(kernel, device, devid))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => attach(kernel, device, 1, 4))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => attach(kernel, device, 1, b.VFIO_DEVICE_ATTACH_PASID))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => attach(kernel, device, 99, b.VFIO_DEVICE_ATTACH_PASID))).toMatchObject({ code: 'ENOENT' });
    const short = b.vfio_device_attach_iommufd_pt.encode({ argsz: 8, flags: 0, pt_id: 1, pasid: 0 });
    expect(thrown(() => kernel.ioctl(device, b.VFIO_DEVICE_ATTACH_IOMMUFD_PT, short))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.ioctl(device, b.VFIO_DEVICE_DETACH_IOMMUFD_PT, b.vfio_device_detach_iommufd_pt.encode({ argsz: 12, flags: 8, pasid: 0 })))).toMatchObject({ code: 'EINVAL' });
    const busy = ioasAlloc(kernel, iommufd);
    ioasMap(kernel, iommufd, busy, { va: 0x1000n, length: 0x1000n, iova: 0xfee0_0000n }); // lazily: not pinned yet
    expect(thrown(() => attach(kernel, device, busy))).toMatchObject({ code: 'EADDRINUSE' });
    kernel.dispose();
  });

  test('the edu DMA engine works through an IOAS as through a container', () => {
    const { kernel, iommufd, ioas, device } = openCdev();
    emulateEdu(kernel.device(EDU)!);
    const memory = kernel.allocDma(4096);
    new Uint8Array(memory).set([1, 2, 3, 4]);
    const iova = ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(memory), length: 4096n });
    // Bus mastering on (PCI command register), then RAM -> device buffer -> RAM at +0x100.
    const cmd = new Uint8Array(2);
    kernel.pread(device, cmd, (BigInt(b.VFIO_PCI_CONFIG_REGION_INDEX) << 40n) + 4n);
    cmd[0] |= 4;
    kernel.pwrite(device, cmd, (BigInt(b.VFIO_PCI_CONFIG_REGION_INDEX) << 40n) + 4n);
    const bar = kernel.mmap(device, 4096, 3, 0n);
    const run = (src: bigint, dst: bigint, toRam: boolean) => {
      kernel.mmioWrite64(bar, EDU_REG.DMA_SRC, src);
      kernel.mmioWrite64(bar, EDU_REG.DMA_DST, dst);
      kernel.mmioWrite64(bar, EDU_REG.DMA_COUNT, 4n);
      kernel.mmioWrite32(bar, EDU_REG.DMA_CMD, toRam ? 3 : 1);
    };
    run(iova, EDU_DMA_BUFFER, false);
    run(EDU_DMA_BUFFER, iova + 0x100n, true);
    expect([...new Uint8Array(memory, 0x100, 4)]).toEqual([1, 2, 3, 4]);
    detach(kernel, device);
    expect(() => run(iova, EDU_DMA_BUFFER, false)).toThrow(/IOMMU fault/);
    kernel.munmap(bar);
    kernel.dispose();
  });
});

describe('hot reset through a cdev', () => {
  function twoOnABus() {
    const kernel = new FakeKernel({ deviceCdevs: true });
    const deps = [EDU, EDU2, '0000:00:05.0'];
    kernel.addDevice({ address: EDU, group: GROUP, hotResetDependents: deps });
    kernel.addDevice({ address: EDU2, group: 13, hotResetDependents: deps });
    kernel.addDevice({ address: '0000:00:05.0', group: 13, driver: 'pci-stub', hotResetDependents: deps });
    const iommufd = kernel.open(kernel.iommuPath, 2);
    const d1 = kernel.open(kernel.cdevPath(EDU)!, 2);
    return { kernel, iommufd, d1, devid: bind(kernel, d1, iommufd) };
  }

  function info(kernel: FakeKernel, device: number) {
    const arg = new Uint8Array(b.vfio_pci_hot_reset_info.size + 3 * b.vfio_pci_dependent_device.size);
    b.vfio_pci_hot_reset_info.encode({ argsz: arg.length, flags: 0, count: 0 }, arg);
    kernel.ioctl(device, b.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, arg);
    return b.vfio_pci_hot_reset_info.decode(arg);
  }

  const reset = (kernel: FakeKernel, device: number, groupFds: number[] = []) => {
    const arg = new Uint8Array(b.vfio_pci_hot_reset.size + 4 * groupFds.length);
    b.vfio_pci_hot_reset.encode({ argsz: arg.length, flags: 0, count: groupFds.length, group_fds: groupFds }, arg);
    kernel.ioctl(device, b.VFIO_DEVICE_PCI_HOT_RESET, arg);
  };

  test('INFO reports device ids (FLAG_DEV_ID); OWNED only when every affected device is owned through the iommufd', () => {
    const { kernel, iommufd, d1, devid } = twoOnABus();
    let answer = info(kernel, d1);
    expect(answer.flags).toBe(b.VFIO_PCI_HOT_RESET_FLAG_DEV_ID);
    expect(answer.devices!.map((d) => d.devid)).toEqual([devid, 0xffff_ffff, 0xffff_ffff]);
    const d2 = kernel.open(kernel.cdevPath(EDU2)!, 2);
    const devid2 = bind(kernel, d2, iommufd);
    answer = info(kernel, d1);
    // 00:05.0 is not a VFIO device (pci-stub): not in the reset's device set, not owned.
    expect(answer.devices!.map((d) => d.devid)).toEqual([devid, devid2, 0xffff_ffff]);
    expect(answer.flags).toBe(b.VFIO_PCI_HOT_RESET_FLAG_DEV_ID);
    kernel.dispose();
  });

  test('HOT_RESET from a cdev takes an empty group list and the iommufd\'s ownership; a group list is EINVAL, an unowned device EINVAL', () => {
    const { kernel, iommufd, d1 } = twoOnABus();
    expect(thrown(() => reset(kernel, d1))).toMatchObject({ code: 'EINVAL' }); // 00:04.0 is owned by nobody
    const d2 = kernel.open(kernel.cdevPath(EDU2)!, 2);
    bind(kernel, d2, iommufd);
    reset(kernel, d1);
    expect([kernel.device(EDU)!.resets, kernel.device(EDU2)!.resets]).toEqual([1, 1]);
    expect(thrown(() => reset(kernel, d1, [iommufd]))).toMatchObject({ code: 'EINVAL' });
    kernel.dispose();
  });

  test('a device whose group is owned through the iommufd (but not itself bound) counts as owned (devid 0)', () => {
    const kernel = new FakeKernel({ deviceCdevs: true });
    const deps = [EDU, EDU2];
    kernel.addDevice({ address: EDU, group: GROUP, hotResetDependents: deps });
    kernel.addDevice({ address: EDU2, group: GROUP, hotResetDependents: deps });
    const iommufd = kernel.open(kernel.iommuPath, 2);
    const d1 = kernel.open(kernel.cdevPath(EDU)!, 2);
    const devid = bind(kernel, d1, iommufd);
    const answer = info(kernel, d1);
    expect(answer.devices!.map((d) => d.devid)).toEqual([devid, 0]);
    expect(answer.flags).toBe(b.VFIO_PCI_HOT_RESET_FLAG_DEV_ID | b.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED);
    reset(kernel, d1);
    expect(kernel.device(EDU2)!.resets).toBe(1);
    kernel.dispose();
  });
});

describe('close order and faults', () => {
  test('the kernel\'s order (device, IOAS, iommufd) and the reverse both leave nothing behind', () => {
    for (const order of ['device-first', 'iommufd-first'] as const) {
      const { kernel, iommufd, ioas, device } = openCdev();
      if (order === 'device-first') {
        kernel.close(device);
        destroy(kernel, iommufd, ioas);
        kernel.close(iommufd);
      } else {
        kernel.close(iommufd);
        expect(kernel.iommufdObjects()).toHaveLength(3);
        kernel.close(device);
      }
      expect([kernel.openFds(), kernel.iommufdObjects()]).toEqual([[], []]);
      kernel.close(kernel.open(`/dev/vfio/${GROUP}`, 2)); // the group is free again
      kernel.dispose();
    }
  });

  test('a fault at any step of open, bind, attach, detach fails that step alone and leaks nothing', () => {
    const steps = [
      { syscall: 'open', path: '/dev/iommu' },
      { syscall: 'ioctl', request: b.IOMMU_IOAS_ALLOC },
      { syscall: 'open', path: '/dev/vfio/devices/vfio0' },
      { syscall: 'ioctl', request: b.VFIO_DEVICE_BIND_IOMMUFD },
      { syscall: 'ioctl', request: b.VFIO_DEVICE_ATTACH_IOMMUFD_PT },
      { syscall: 'ioctl', request: b.VFIO_DEVICE_DETACH_IOMMUFD_PT },
    ];
    for (const step of steps) {
      const kernel = kernelWithCdevs();
      kernel.failNext({ ...step, errno: 'EIO' });
      const fds: number[] = [];
      try {
        const iommufd = kernel.open(kernel.iommuPath, 2);
        fds.push(iommufd);
        const ioas = ioasAlloc(kernel, iommufd);
        const device = kernel.open(kernel.cdevPath(EDU)!, 2);
        fds.unshift(device);
        bind(kernel, device, iommufd);
        attach(kernel, device, ioas);
        detach(kernel, device);
        throw new Error(`no fault at ${JSON.stringify(step)}`);
      } catch (error) {
        expect(error).toMatchObject({ code: 'EIO' });
      }
      for (const fd of fds) kernel.close(fd);
      expect([kernel.openFds(), kernel.iommufdObjects(), kernel.pendingFaults()]).toEqual([[], [], 0]);
      kernel.close(kernel.open(`/dev/vfio/${GROUP}`, 2));
      kernel.dispose();
    }
  });
});
