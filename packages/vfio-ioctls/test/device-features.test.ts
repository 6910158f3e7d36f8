/**
 * The device features beyond migration, against the fake kernel:
 * VFIO_DEVICE_IOEVENTFD, low power entry/exit with a wake-up eventfd, and
 * the device's own DMA logging decoded into dirty ranges. Each is closed
 * with the device, and a refusal leaves nothing behind.
 */
import * as b from 'vfio-bindings';
import { Device, DmaBuffer, VfioError } from '../src';
import type { FakeDeviceSpec } from '../src/testing';
import { EDU, GROUP, expectNothingLeft, ioctls, kernel, tick, thrownVfio as thrown } from './helpers';


const RWM = b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_WRITE | b.VFIO_REGION_INFO_FLAG_MMAP;
const WITH_BARS: FakeDeviceSpec = {
  address: EDU, group: GROUP,
  regions: [{ index: 0, size: 0x1000, flags: RWM }, { index: 2, size: 0x100 }, { index: 7, size: 256 }],
};

describe('ioeventfd', () => {
  test('each signal makes the kernel write the value to the BAR; close removes it', () => {
    const { fake, env } = kernel([WITH_BARS]);
    const device = Device.open(EDU, env);
    const model = fake.device(EDU)!;
    const ioeventfd = device.ioeventfd({ region: 0, offset: 0x10, width: 4, value: 0x12345678 });
    expect(model.features.ioeventfds.list()).toEqual([{ region: 0, offset: 0x10, width: 4, data: 0x12345678n, fd: ioeventfd.fd, writes: 0 }]);
    expect(device.ioeventfds()).toEqual([ioeventfd]);
    ioeventfd.signal();
    expect(new DataView(model.region(0).buffer).getUint32(0x10, true)).toBe(0x12345678);
    model.region(0).fill(0);
    // A signal by someone else (KVM, another process) works the same: it is the eventfd that counts.
    fake.eventfdWrite(ioeventfd.fd, 1n);
    expect(new DataView(model.region(0).buffer).getUint32(0x10, true)).toBe(0x12345678);
    expect(model.features.ioeventfds.list()[0].writes).toBe(2);
    const fd = ioeventfd.fd;
    ioeventfd.close();
    expect(model.features.ioeventfds.list()).toEqual([]);
    expect(fake.openFds()).not.toContain(fd);
    expect(device.ioeventfds()).toEqual([]);
    device.close();
    expectNothingLeft(fake);
  });

  test('every width, and the device\'s close removes what is left', () => {
    const { fake, env } = kernel([WITH_BARS]);
    const device = Device.open(EDU, env);
    const model = fake.device(EDU)!;
    const widths = [1, 2, 4, 8] as const;
    const all = widths.map((width) => device.ioeventfd({ region: 2, offset: 8 * width, width, value: 2n ** BigInt(8 * width) - 1n }));
    for (const ioeventfd of all) ioeventfd.signal();
    const bytes = model.region(2);
    expect([bytes[8], bytes[16], bytes[17], bytes[32], bytes[35], bytes[64], bytes[71], bytes[72]]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
    device.close();
    expect(all.every((ioeventfd) => ioeventfd.closed)).toBe(true);
    expect(model.features.ioeventfds.list()).toEqual([]);
    expectNothingLeft(fake);
  });

  test('bad options are refused before any syscall', () => {
    const { fake, env } = kernel([WITH_BARS]);
    using device = Device.open(EDU, env);
    device.regions; // probe the regions first, so that only the checks remain
    const before = fake.calls.length;
    const bad: [object, string][] = [
      [{ region: 7, offset: 0, width: 4, value: 0 }, 'ERR_OUT_OF_RANGE'],
      [{ region: 1, offset: 0, width: 4, value: 0 }, 'ERR_INVALID_ARG_VALUE'],
      [{ region: 0, offset: 2, width: 4, value: 0 }, 'ERR_VFIO_MISALIGNED'],
      [{ region: 0, offset: 0x1000, width: 4, value: 0 }, 'ERR_OUT_OF_RANGE'],
      [{ region: 0, offset: 0, width: 3, value: 0 }, 'ERR_INVALID_ARG_VALUE'],
      [{ region: 0, offset: 0, width: 1, value: 0x100 }, 'ERR_OUT_OF_RANGE'],
      [{ region: 0, offset: 0, width: 4, value: 0, extra: 1 }, 'ERR_INVALID_ARG_VALUE'],
    ];
    for (const [options, code] of bad) {
      expect(() => device.ioeventfd(options as never)).toThrow(expect.objectContaining({ code }));
    }
    expect(fake.calls.length).toBe(before);
  });

  test('the kernel\'s refusal (the same write twice: EEXIST) is named, and its eventfd closed', () => {
    const { fake, env } = kernel([WITH_BARS]);
    using device = Device.open(EDU, env);
    using first = device.ioeventfd({ region: 0, offset: 0, width: 4, value: 1 });
    const fds = fake.openFds();
    const error = thrown(() => device.ioeventfd({ region: 0, offset: 0, width: 4, value: 1 }));
    expect(error).toMatchObject({ code: 'EEXIST', operation: 'VFIO_DEVICE_IOEVENTFD', device: EDU });
    expect(error.message).toMatch(/refused a 4-byte write at 0x0 of region 0/);
    expect(error.hint).toMatch(/already registered/);
    expect(fake.openFds()).toEqual(fds);
    void first;
  });
});

describe('low power', () => {
  test('entry, a second entry (EINVAL), exit, and exit again', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const model = fake.device(EDU)!.features.lowPower!;
    device.enterLowPower();
    expect(model.entered).toBe(true);
    expect(thrown(() => device.enterLowPower())).toMatchObject({ code: 'EINVAL', operation: 'VFIO_DEVICE_FEATURE' });
    device.exitLowPower();
    expect(model.entered).toBe(false);
    device.exitLowPower();
  });

  test('refused while a region is mapped: the kernel would revoke the mapping under the program', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const mapping = device.region(0)!.map();
    const before = ioctls(fake).length;
    for (const enter of [() => device.enterLowPower(), () => device.enterLowPowerWithWakeup()]) {
      const error = thrown(enter);
      expect(error.code).toBe('ERR_VFIO_BUFFER_MAPPED');
      expect(error.hint).toMatch(/SIGBUS/);
    }
    expect(ioctls(fake).length).toBe(before);
    mapping.unmap();
    device.enterLowPower();
    expect(fake.device(EDU)!.features.lowPower!.entered).toBe(true);
  });

  test('mapping a region exits low power first (a mapping made in low power faults with SIGBUS on access)', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const model = fake.device(EDU)!.features.lowPower!;
    device.enterLowPowerWithWakeup();
    expect(model.entered).toBe(true);
    const from = fake.calls.length;
    const mapping = device.region(0)!.map();
    const order = fake.calls.slice(from).map((c) => c.syscall);
    expect(order.indexOf('ioctl')).toBeGreaterThanOrEqual(0);
    expect(order.indexOf('ioctl')).toBeLessThan(order.indexOf('mmap'));
    expect(model.entered).toBe(false);
    expect(model.hasWakeup).toBe(false);
    mapping.unmap();
    // Not in low power: mapping asks nothing more of the kernel.
    const again = fake.calls.length;
    device.region(0)!.map().unmap();
    expect(fake.calls.slice(again).map((c) => c.syscall)).not.toContain('ioctl');
  });

  test('with a wake-up eventfd: the kernel signals it when the device wakes, and exit closes it', async () => {
    const { fake, env } = kernel();
    const device = Device.open(EDU, env);
    const model = fake.device(EDU)!.features.lowPower!;
    const wakeup = device.enterLowPowerWithWakeup();
    expect(model.entered && model.hasWakeup).toBe(true);
    expect(wakeup.signalled()).toBe(false);
    const woken = wakeup.wait();
    await tick();
    expect(fake.livePollers()).toBe(1);
    expect(model.wake()).toBe(true);
    await woken;
    expect(fake.livePollers()).toBe(0);
    expect(model.entered).toBe(false);
    // Entering again after a wake-up replaces the spent eventfd.
    const second = device.enterLowPowerWithWakeup();
    expect(wakeup.closed).toBe(true);
    device.exitLowPower();
    expect(second.closed).toBe(true);
    device.close();
    expectNothingLeft(fake);
  });

  test('a wait can be aborted, and the device\'s close closes the eventfd under a waiter', async () => {
    const { fake, env } = kernel();
    const device = Device.open(EDU, env);
    const wakeup = device.enterLowPowerWithWakeup();
    const controller = new AbortController();
    const aborted = wakeup.wait({ signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(fake.livePollers()).toBe(0);
    const pending = wakeup.wait();
    device.close();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_VFIO_CLOSED' });
    expect(wakeup.closed).toBe(true);
    expect(fake.livePollers()).toBe(0);
    expectNothingLeft(fake);
  });

  test('a device without low power: ENOTTY, and the wake-up eventfd is closed again', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, lowPower: false }]);
    using device = Device.open(EDU, env);
    const fds = fake.openFds();
    const error = thrown(() => device.enterLowPowerWithWakeup());
    expect(error.code).toBe('ENOTTY');
    expect(error.hint).toMatch(/LOW_POWER_ENTRY_WITH_WAKEUP: vfio-pci offers it on Linux >= 6.0/);
    expect(fake.openFds()).toEqual(fds);
  });
});

describe('DMA logging', () => {
  const LOGGING: FakeDeviceSpec = { address: EDU, group: GROUP, dmaLogging: true };

  test('the device\'s DMA writes come back as dirty ranges, once', () => {
    const { fake, env } = kernel([LOGGING]);
    const device = Device.open(EDU, env);
    const model = fake.device(EDU)!;
    const buffer = DmaBuffer.alloc(0x8000, env);
    const mapping = device.iommu!.map(buffer, { iova: 0x10_0000 });
    const log = device.startDmaLogging({ ranges: [{ iova: 0x10_0000, size: 0x8000 }, { iova: 0x40_0000, size: 0x4000 }] });
    expect(log.pageSize).toBe(4096n);
    expect(model.features.dmaLog!.started).toBe(true);
    model.dmaWrite(0x10_1000n, new Uint8Array(0x1800)); // pages 1 and 2
    model.dmaWrite(0x10_7ff0n, new Uint8Array(8)); // page 7
    model.features.dmaLog!.dirty(0x40_0000n, 0x1000n);
    expect(log.report()).toEqual([
      { iova: 0x10_1000n, size: 0x2000n },
      { iova: 0x10_7000n, size: 0x1000n },
      { iova: 0x40_0000n, size: 0x1000n },
    ]);
    expect(log.report()).toEqual([]);
    // A coarser report page covers the pages it touches.
    model.dmaWrite(0x10_3000n, new Uint8Array(4));
    expect(log.report({ iova: 0x10_0000, size: 0x8000 }, { pageSize: 0x4000 })).toEqual([{ iova: 0x10_0000n, size: 0x4000n }]);
    log.stop();
    expect(model.features.dmaLog!.started).toBe(false);
    expect(thrown(() => log.report()).code).toBe('ERR_VFIO_CLOSED');
    mapping.unmap();
    buffer.close();
    device.close();
    expectNothingLeft(fake);
  });

  test('one log at a time; the device\'s close stops it', () => {
    const { fake, env } = kernel([LOGGING]);
    const device = Device.open(EDU, env);
    const log = device.startDmaLogging({ ranges: [{ iova: 0, size: 0x1000 }] });
    expect(thrown(() => device.startDmaLogging({ ranges: [{ iova: 0x2000, size: 0x1000 }] })).code).toBe('ERR_VFIO_UNSUPPORTED');
    const features = () => fake.calls.filter((c) => c.request === b.VFIO_DEVICE_FEATURE).length;
    const before = features();
    device.close();
    expect(features()).toBe(before + 1);
    expect(log.active).toBe(false);
    expectNothingLeft(fake);
  });

  test('bad ranges are refused before any syscall', () => {
    const { fake, env } = kernel([LOGGING]);
    using device = Device.open(EDU, env);
    const before = fake.calls.length;
    const bad: [object, string][] = [
      [{ ranges: [] }, 'ERR_OUT_OF_RANGE'],
      [{ ranges: [{ iova: 0x800, size: 0x1000 }] }, 'ERR_VFIO_MISALIGNED'],
      [{ ranges: [{ iova: 0, size: 0x2000 }, { iova: 0x1000, size: 0x1000 }] }, 'ERR_VFIO_DMA_OVERLAP'],
      [{ ranges: [{ iova: 0, size: 0 }] }, 'ERR_OUT_OF_RANGE'],
      [{ ranges: [{ iova: 0, size: 0x1000 }], pageSize: 3000 }, 'ERR_OUT_OF_RANGE'],
      [{ ranges: Array.from({ length: 257 }, (_, i) => ({ iova: i * 0x1000, size: 0x1000 })) }, 'ERR_OUT_OF_RANGE'],
      [{ ranges: 'all' }, 'ERR_INVALID_ARG_TYPE'],
    ];
    for (const [options, code] of bad) expect(() => device.startDmaLogging(options as never)).toThrow(expect.objectContaining({ code }));
    expect(fake.calls.length).toBe(before);
  });

  test('a device without DMA logging: ENOTTY naming the feature; the ranges\' memory is freed', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const error = thrown(() => device.startDmaLogging({ ranges: [{ iova: 0, size: 0x1000 }] }));
    expect(error.code).toBe('ENOTTY');
    expect(error.message).toMatch(/SET DMA_LOGGING_START refused/);
    expect(fake.liveDmaBuffers()).toBe(0);
  });
});
