import {
  vfio_device_feature, vfio_device_info, vfio_irq_info, vfio_pci_hot_reset, vfio_pci_hot_reset_info, vfio_region_info, walkCapabilities,
  VFIO_DEVICE_FEATURE, VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_RESET, VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE, VFIO_PCI_BAR0_REGION_INDEX, VFIO_PCI_BAR1_REGION_INDEX, VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_VGA_REGION_INDEX, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_TYPE,
  VFIO_REGION_INFO_FLAG_CAPS, VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
  VFIO_REGION_TYPE_PCI_VENDOR_TYPE, scalarCodec,
} from 'vfio-bindings';
import type { FakeKernel } from '../../src/testing';
import { EDU, GROUP, openDevice, thrown } from './helpers';

function regionInfo(kernel: FakeKernel, fd: number, index: number, argsz = 256) {
  const arg = new Uint8Array(Math.max(argsz, vfio_region_info.size));
  vfio_region_info.encode({ argsz, index }, arg);
  kernel.ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, arg);
  return { info: vfio_region_info.decode(arg), arg };
}

const RW = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;

describe('device information ioctls', () => {
  test('GET_INFO: vfio-pci flags, 9 regions and 5 IRQ indexes; RESET only when the device can reset', () => {
    const { kernel, device } = openDevice();
    const arg = vfio_device_info.encode({ argsz: vfio_device_info.size });
    kernel.ioctl(device, VFIO_DEVICE_GET_INFO, arg);
    expect(vfio_device_info.decode(arg)).toMatchObject({ flags: VFIO_DEVICE_FLAGS_PCI, num_regions: VFIO_PCI_NUM_REGIONS, num_irqs: VFIO_PCI_NUM_IRQS });
    expect(thrown(() => kernel.ioctl(device, VFIO_DEVICE_GET_INFO, vfio_device_info.encode({ argsz: 8 })))).toMatchObject({ code: 'EINVAL' });
    kernel.dispose();
    const nvme = openDevice({}, { reset: true, regions: [{ index: 10, size: 4096, type: { type: 1, subtype: 1 } }] });
    const arg2 = vfio_device_info.encode({ argsz: vfio_device_info.size });
    nvme.kernel.ioctl(nvme.device, VFIO_DEVICE_GET_INFO, arg2);
    expect(vfio_device_info.decode(arg2)).toMatchObject({ flags: VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, num_regions: 11 });
    nvme.kernel.dispose();
  });

  test('GET_REGION_INFO: BAR0 and config as on edu, offsets index << 40', () => {
    const { kernel, device } = openDevice();
    expect(regionInfo(kernel, device, VFIO_PCI_BAR0_REGION_INDEX).info).toMatchObject({
      flags: RW | VFIO_REGION_INFO_FLAG_MMAP, size: 0x100000n, offset: 0n, cap_offset: 0,
    });
    expect(regionInfo(kernel, device, VFIO_PCI_CONFIG_REGION_INDEX).info).toMatchObject({ flags: RW, size: 256n, offset: 7n << 40n });
    kernel.dispose();
  });

  test('GET_REGION_INFO: an unimplemented BAR is size 0 with no flags; VGA and indexes past the end are EINVAL', () => {
    const { kernel, device } = openDevice();
    expect(regionInfo(kernel, device, VFIO_PCI_BAR1_REGION_INDEX).info).toMatchObject({ flags: 0, size: 0n, offset: 1n << 40n });
    expect(thrown(() => regionInfo(kernel, device, VFIO_PCI_VGA_REGION_INDEX))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => regionInfo(kernel, device, VFIO_PCI_NUM_REGIONS))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => regionInfo(kernel, device, 0, 16))).toMatchObject({ code: 'EINVAL' });
    kernel.dispose();
  });

  test('GET_REGION_INFO: sparse mmap, type and MSI-X mappable capabilities in one chain', () => {
    const areas = [{ offset: 0, size: 0x1000 }, { offset: 0x3000, size: 0x1000 }];
    const { kernel, device } = openDevice({}, {
      regions: [
        { index: 0, size: 0x4000, flags: RW | VFIO_REGION_INFO_FLAG_MMAP, sparseAreas: areas, msixMappable: true },
        { index: 9, size: 0x1000, type: { type: (VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x8086) >>> 0, subtype: 1 } },
      ],
    });
    const { info, arg } = regionInfo(kernel, device, 0);
    expect(info.flags).toBe(RW | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS);
    expect(info.cap_offset).toBe(vfio_region_info.size);
    const caps = walkCapabilities(arg, 'region', info.cap_offset, info.argsz);
    expect(caps.map((c) => c.id)).toEqual([VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE]);
    expect((caps[0].value as any).areas).toEqual(areas.map((a) => ({ offset: BigInt(a.offset), size: BigInt(a.size) })));
    const typed = regionInfo(kernel, device, 9);
    const typeCap = walkCapabilities(typed.arg, 'region', typed.info.cap_offset, typed.info.argsz)[0];
    expect(typeCap).toMatchObject({ id: VFIO_REGION_INFO_CAP_TYPE, value: { type: 0x80008086, subtype: 1 } });
    kernel.dispose();
  });

  test('GET_REGION_INFO with an argsz too small for the chain: CAPS set, cap_offset 0, argsz raised, no error', () => {
    const { kernel, device } = openDevice({}, { regions: [{ index: 0, size: 0x4000, sparseAreas: [{ offset: 0, size: 0x1000 }] }] });
    const { info, arg } = regionInfo(kernel, device, 0, vfio_region_info.size);
    expect(info.flags & VFIO_REGION_INFO_FLAG_CAPS).toBeTruthy();
    expect(info.cap_offset).toBe(0);
    expect(info.argsz).toBe(vfio_region_info.size + 32);
    expect(arg.length).toBe(vfio_region_info.size);
    kernel.dispose();
  });

  test('GET_IRQ_INFO: vfio-pci flags per index, count 0 for missing indexes, EINVAL past the last index', () => {
    const { kernel, device } = openDevice();
    const info = (index: number) => {
      const arg = vfio_irq_info.encode({ argsz: vfio_irq_info.size, index });
      kernel.ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, arg);
      return vfio_irq_info.decode(arg);
    };
    expect(info(VFIO_PCI_INTX_IRQ_INDEX)).toMatchObject({ count: 1, flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED });
    expect(info(VFIO_PCI_MSI_IRQ_INDEX)).toMatchObject({ count: 1, flags: VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE });
    expect(info(VFIO_PCI_MSIX_IRQ_INDEX)).toMatchObject({ count: 0 });
    expect(thrown(() => info(VFIO_PCI_NUM_IRQS))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info.encode({ argsz: 8 })))).toMatchObject({ code: 'EINVAL' });
    kernel.dispose();
  });

  test('RESET: EINVAL without reset support (edu); counted and hooked when supported', () => {
    const edu = openDevice();
    expect(thrown(() => edu.kernel.ioctl(edu.device, VFIO_DEVICE_RESET))).toMatchObject({ code: 'EINVAL' });
    expect(edu.kernel.device(EDU)!.resets).toBe(0);
    edu.kernel.dispose();
    const nvme = openDevice({}, { reset: true });
    const dev = nvme.kernel.device(EDU)!;
    const seen: number[] = [];
    dev.onReset(() => seen.push(dev.resets));
    expect(nvme.kernel.ioctl(nvme.device, VFIO_DEVICE_RESET)).toBe(0);
    expect(dev.resets).toBe(1);
    expect(seen).toEqual([1]);
    nvme.kernel.dispose();
  });

  test('GET_PCI_HOT_RESET_INFO: ENODEV on the root bus; ENOSPC with the count when short; the list otherwise', () => {
    const root = openDevice();
    expect(thrown(() => root.kernel.ioctl(root.device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, vfio_pci_hot_reset_info.encode({ argsz: 12 }))))
      .toMatchObject({ code: 'ENODEV' });
    root.kernel.dispose();
    const { kernel, device } = openDevice({}, { address: '0000:01:00.0', hotResetDependents: ['0000:01:00.0'] });
    const short = vfio_pci_hot_reset_info.encode({ argsz: vfio_pci_hot_reset_info.size });
    expect(thrown(() => kernel.ioctl(device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, short))).toMatchObject({ code: 'ENOSPC' });
    expect(scalarCodec('u32').decode(short, vfio_pci_hot_reset_info.offsetOf('count'))).toBe(1);
    const arg = new Uint8Array(64);
    vfio_pci_hot_reset_info.encode({ argsz: 64 }, arg);
    kernel.ioctl(device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, arg);
    expect(vfio_pci_hot_reset_info.decode(arg).devices).toEqual([
      expect.objectContaining({ group_id: GROUP, segment: 0, bus: 1, devfn: 0 }),
    ]);
    kernel.dispose();
  });

  test('PCI_HOT_RESET: needs the group fds of every affected device (EINVAL otherwise), then resets them', () => {
    const { kernel, group, device, container } = openDevice({}, { address: '0000:01:00.0', hotResetDependents: ['0000:01:00.0'] });
    const bad = vfio_pci_hot_reset.encode({ argsz: 16, count: 1, group_fds: [container] });
    expect(thrown(() => kernel.ioctl(device, VFIO_DEVICE_PCI_HOT_RESET, bad))).toMatchObject({ code: 'EINVAL' });
    const arg = vfio_pci_hot_reset.encode({ argsz: 16, count: 1, group_fds: [group] });
    expect(kernel.ioctl(device, VFIO_DEVICE_PCI_HOT_RESET, arg)).toBe(0);
    expect(kernel.device('0000:01:00.0')!.resets).toBe(1);
    kernel.dispose();
  });

  test('DEVICE_FEATURE: migration probe is ENOTTY (plain vfio-pci); bad flags and argsz are EINVAL', () => {
    const { kernel, device } = openDevice();
    const probe = vfio_device_feature.encode({ argsz: 8, flags: VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION });
    expect(thrown(() => kernel.ioctl(device, VFIO_DEVICE_FEATURE, probe))).toMatchObject({ code: 'ENOTTY' });
    const both = vfio_device_feature.encode({ argsz: 8, flags: VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | 1 });
    expect(thrown(() => kernel.ioctl(device, VFIO_DEVICE_FEATURE, both))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.ioctl(device, VFIO_DEVICE_FEATURE, vfio_device_feature.encode({ argsz: 4 })))).toMatchObject({ code: 'EINVAL' });
    kernel.dispose();
  });

  test('an unknown device ioctl is ENOTTY', () => {
    const { kernel, device } = openDevice();
    expect(thrown(() => kernel.ioctl(device, 0x3b99, new Uint8Array(8)))).toMatchObject({ code: 'ENOTTY' });
    kernel.dispose();
  });
});
