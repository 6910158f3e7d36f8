import fc from 'fast-check';
import * as b from 'vfio-bindings';
import { Device } from '../src';
import { EDU, GROUP, kernel, wrap } from './helpers';

const RW = b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_WRITE;
const RWM = RW | b.VFIO_REGION_INFO_FLAG_MMAP;

/** An e1000e-like layout: MMIO BAR0, sparse BAR1, I/O BAR2, MSI-X BAR3, ROM, config. */
const REGIONS = [
  { index: 0, size: 0x20000, flags: RWM },
  { index: 1, size: 0x10000, flags: RWM, sparseAreas: [{ offset: 0, size: 0x2000 }, { offset: 0x4000, size: 0x4000 }] },
  { index: 2, size: 32, flags: RW },
  { index: 3, size: 0x4000, flags: RWM, msixMappable: true },
  { index: 6, size: 0x40000, flags: b.VFIO_REGION_INFO_FLAG_READ },
  { index: 7, size: 4096, flags: RW },
  { index: 9, size: 0x1000, flags: RW, type: { type: 0x8086_0000 + 1, subtype: 2 } },
];

function open(regions = REGIONS) {
  const k = kernel([{ address: EDU, group: GROUP, regions }]);
  const device = Device.open(EDU, k.env);
  return { ...k, device, fakeDevice: k.devices[0]! };
}

describe('Device.regions', () => {
  test('are keyed by their true index; absent ones (size 0, VGA) are missing, not shifted', () => {
    const { device } = open();
    expect([...device.regions.keys()]).toEqual([0, 1, 2, 3, 6, 7, 9]);
    expect(device.info.numRegions).toBe(10);
    expect(device.region(2)).toMatchObject({ index: 2, size: 32n, readable: true, writable: true, mappable: false });
    expect(device.region(6)).toMatchObject({ readable: true, writable: false });
    expect(device.region(8)).toBeUndefined();
    expect(device.region(4)).toBeUndefined();
    expect(device.region(0)!.offset).not.toBe(device.region(1)!.offset);
    device.close();
  });

  test('a region whose info fails with EINVAL is absent; other indexes keep theirs', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, regions: REGIONS }]);
    using device = Device.open(EDU, env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_GET_REGION_INFO, errno: 'EINVAL', skip: 1 });
    expect([...device.regions.keys()]).toEqual([0, 2, 3, 6, 7, 9]);
    expect(device.region(2)!.size).toBe(32n);
  });

  test('any other region info failure is thrown', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_GET_REGION_INFO, errno: 'EFAULT' });
    expect(() => device.regions).toThrow(expect.objectContaining({ code: 'EFAULT', operation: 'VFIO_DEVICE_GET_REGION_INFO', device: EDU }));
  });

  test('decodes sparse mmap, MSI-X mappable and type capabilities', () => {
    const { device } = open();
    expect(device.region(1)!.caps).toMatchObject({ sparseMmap: [{ offset: 0n, size: 0x2000n }, { offset: 0x4000n, size: 0x4000n }], msixMappable: false });
    expect(device.region(3)!.caps).toMatchObject({ msixMappable: true });
    expect(device.region(3)!.caps.sparseMmap).toBeUndefined();
    expect(device.region(0)!.caps).toEqual({ msixMappable: false, all: [] });
    const typed = device.region(9)!.caps;
    expect(typed.type).toEqual({ type: 0x8086_0001, subtype: 2 });
    expect(typed.all).toEqual([expect.objectContaining({ id: b.VFIO_REGION_INFO_CAP_TYPE, name: 'VFIO_REGION_INFO_CAP_TYPE' })]);
    device.close();
  });

  test('config is region 7 of a PCI device', () => {
    const { device } = open();
    expect(device.config).toBe(device.region(b.VFIO_PCI_CONFIG_REGION_INDEX));
    expect(device.config!.readUint16(0)).toBe(0x1234); // vendor id
    device.close();
  });

  test('region() validates its index', () => {
    const { device } = open();
    expect(() => device.region(-1)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => device.region('0' as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    device.close();
  });
});

describe('Region read/write', () => {
  test('round-trips bytes through pread/pwrite', () => {
    const { device, fakeDevice } = open();
    const bar = device.region(0)!;
    bar.write(0x100, Uint8Array.of(1, 2, 3, 4));
    expect([...fakeDevice.region(0).subarray(0x100, 0x104)]).toEqual([1, 2, 3, 4]);
    expect([...bar.read(0x100n, 4)]).toEqual([1, 2, 3, 4]);
    expect(bar.read(0x1fffc, 4)).toHaveLength(4);
    expect(bar.read(0, 0)).toHaveLength(0);
    device.close();
  });

  test('typed accessors are little-endian and width-exact', () => {
    const { device, fakeDevice } = open();
    const bar = device.region(0)!;
    bar.writeUint32(8, 0x11223344);
    expect([...fakeDevice.region(0).subarray(8, 12)]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(bar.readUint32(8)).toBe(0x11223344);
    expect(bar.readUint16(8)).toBe(0x3344);
    expect(bar.readUint8(11)).toBe(0x11);
    bar.writeUint16(16, 0xbeef);
    bar.writeUint8(18, 0x7f);
    expect(bar.readUint32(16)).toBe(0x007fbeef);
    bar.writeBigUint64(24, 0x0102030405060708n);
    expect(bar.readBigUint64(24)).toBe(0x0102030405060708n);
    bar.writeBigUint64(32, 5);
    expect(bar.readBigUint64(32n)).toBe(5n);
    device.close();
  });

  test('out of bounds is a RangeError before the kernel', () => {
    const { fake, device } = open();
    const bar = device.region(2)!;
    const before = fake.calls.length;
    expect(() => bar.read(30, 4)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('past the end') }));
    expect(() => bar.write(32, Uint8Array.of(1))).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => bar.readUint32(32)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => bar.read(-1, 1)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('offset') }));
    expect(() => bar.read(0, -1)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('length') }));
    expect(() => bar.read(0.5, 1)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => bar.write(0, [1] as never)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('bytes') }));
    expect(fake.calls.length).toBe(before);
    device.close();
  });

  test('property: a span is read iff it lies inside the region, and a refused one never reaches the kernel', () => {
    const { fake, device, fakeDevice } = open();
    const io = device.region(2)!; // 32 bytes
    fakeDevice.region(2).set(Array.from({ length: 32 }, (_, i) => i));
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), (offset, length) => {
        const before = fake.calls.length;
        if (offset + length <= 32) {
          expect([...io.read(offset, length)]).toEqual(Array.from({ length }, (_, i) => offset + i));
        } else {
          expect(() => io.read(offset, length)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
          expect(() => io.write(offset, new Uint8Array(length))).toThrow(expect.objectContaining({ name: 'RangeError' }));
          expect(fake.calls.length).toBe(before);
        }
      }),
    );
    device.close();
  });

  test('misaligned typed access and out-of-range values are rejected', () => {
    const { fake, device } = open();
    const bar = device.region(0)!;
    const before = fake.calls.length;
    expect(() => bar.readUint32(2)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => bar.writeUint16(1, 0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => bar.readBigUint64(4)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => bar.writeUint8(0, 256)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('value') }));
    expect(() => bar.writeUint32(0, -1)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => bar.writeBigUint64(0, -1n)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(fake.calls.length).toBe(before);
    device.close();
  });

  test('permissions are checked: the ROM is read-only', () => {
    const { device } = open();
    const rom = device.region(6)!;
    expect(rom.read(0, 2)).toHaveLength(2);
    expect(() => rom.write(0, Uint8Array.of(0))).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_UNSUPPORTED', message: expect.stringContaining('write') }));
    expect(() => rom.writeUint32(0, 1)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED' }));
    device.close();
  });

  test('a write-only region refuses reads', () => {
    const { device } = open([{ index: 0, size: 0x1000, flags: b.VFIO_REGION_INFO_FLAG_WRITE }]);
    expect(() => device.region(0)!.read(0, 1)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED', message: expect.stringContaining('read') }));
    expect(() => device.region(0)!.readUint8(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED' }));
    device.close();
  });

  test('kernel failures are annotated; a short transfer is an error', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const bar = device.region(0)!;
    fake.failNext({ syscall: 'pread', errno: 'EIO' });
    expect(() => bar.read(0, 4)).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'pread', device: EDU }));
    fake.failNext({ syscall: 'pwrite', errno: 'EIO' });
    expect(() => bar.writeUint32(0, 1)).toThrow(expect.objectContaining({ code: 'EIO', syscall: 'pwrite' }));

    const k2 = kernel();
    using d2 = Device.open(EDU, { ...k2.env, backend: wrap(k2.fake, { pread: () => 2, pwrite: () => 1 }) });
    expect(() => d2.region(0)!.read(0, 4)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_SHORT_IO', syscall: 'pread' }));
    expect(() => d2.region(0)!.write(0, Uint8Array.of(1, 2))).toThrow(expect.objectContaining({ code: 'ERR_VFIO_SHORT_IO', syscall: 'pwrite' }));
  });

  test('a region of a closed device throws ERR_VFIO_CLOSED', () => {
    const { device } = open();
    const bar = device.region(0)!;
    device.close();
    expect(() => bar.read(0, 4)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => bar.map()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
  });
});

describe('Region.map', () => {
  test('maps a whole region as one window with volatile accessors', () => {
    const { fake, device } = open();
    const bar = device.region(0)!;
    const mapping = bar.map();
    expect(mapping.windows.map((w) => [w.offset, w.size])).toEqual([[0, 0x20000]]);
    expect(fake.liveMmaps()).toBe(1);
    mapping.write32(0x40, 0xdeadbeef);
    expect(mapping.read32(0x40)).toBe(0xdeadbeef);
    mapping.write8(0x44, 0xaa);
    mapping.write16(0x46, 0xbbcc);
    expect(mapping.read8(0x44)).toBe(0xaa);
    expect(mapping.read16(0x46)).toBe(0xbbcc);
    mapping.write64(0x48, 0x1122334455667788n);
    expect(mapping.read64(0x48)).toBe(0x1122334455667788n);
    expect(bar.mappings()).toEqual([mapping]);
    mapping.unmap();
    expect(fake.liveMmaps()).toBe(0);
    expect(bar.readUint32(0x40)).toBe(0xdeadbeef); // the bytes live on in the region
    expect(bar.mappings()).toEqual([]);
    device.close();
  });

  test('honours sparse mmap areas: one window per area, gaps unreachable', () => {
    const { fake, device } = open();
    const mapping = device.region(1)!.map();
    expect(mapping.windows.map((w) => [w.offset, w.size])).toEqual([[0, 0x2000], [0x4000, 0x4000]]);
    expect(fake.liveMmaps()).toBe(2);
    mapping.write32(0x4010, 7); // region offset, not window offset
    expect(mapping.windows[1]!.read32(0x4010)).toBe(7);
    expect(mapping.window(0x4010)).toBe(mapping.windows[1]);
    expect(() => mapping.read32(0x3000)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('not in a mapped window') }));
    expect(() => mapping.read32(0x1ffe)).toThrow(expect.objectContaining({ name: 'RangeError' })); // straddles the end of window 0
    expect(() => mapping.windows[0]!.read32(0x4010)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('outside the window') }));
    expect(() => mapping.windows[1]!.write16(0x4011, 1)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => mapping.write8(0, 0x100)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('value') }));
    expect(() => mapping.read8(-1)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    mapping.unmap();
    expect(fake.liveMmaps()).toBe(0);
    device.close();
  });

  test('after unmap every accessor throws ERR_VFIO_CLOSED; unmap is idempotent', () => {
    const { device } = open();
    const mapping = device.region(0)!.map();
    const window = mapping.windows[0]!;
    mapping.unmap();
    mapping.unmap();
    expect(mapping.mapped).toBe(false);
    expect(window.mapped).toBe(false);
    expect(() => mapping.read32(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => window.write32(0, 1)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    device.close();
  });

  test('Symbol.dispose unmaps', () => {
    const { fake, device } = open();
    {
      using mapping = device.region(0)!.map();
      expect(fake.liveMmaps()).toBe(1);
      void mapping;
    }
    expect(fake.liveMmaps()).toBe(0);
    device.close();
  });

  test('a read-only mapping refuses writes before touching it (on memory that would be SIGSEGV)', () => {
    const { fake, device } = open([{ index: 0, size: 0x1000, flags: b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_MMAP }]);
    const mapping = device.region(0)!.map();
    const write = jest.spyOn(fake, 'mmioWrite32');
    expect(mapping.read32(0)).toBe(0);
    expect(() => mapping.write32(0, 1)).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_UNSUPPORTED', message: expect.stringContaining('region 0 of') }));
    expect(() => mapping.write64(8, 1n)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED' }));
    expect(write).not.toHaveBeenCalled();
    mapping.unmap();
    device.close();
  });

  test('a region without the MMAP flag cannot be mapped', () => {
    const { fake, device } = open();
    void device.regions;
    const before = fake.calls.length;
    expect(() => device.region(2)!.map()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_UNSUPPORTED' }));
    expect(() => device.config!.map()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED' }));
    expect(fake.calls.length).toBe(before);
    device.close();
  });

  test('a failing mmap of the second area unmaps the first', () => {
    const { fake, device } = open();
    fake.failNext({ syscall: 'mmap', errno: 'ENOMEM', skip: 1 });
    expect(() => device.region(1)!.map()).toThrow(expect.objectContaining({ code: 'ENOMEM', syscall: 'mmap', device: EDU }));
    expect(fake.liveMmaps()).toBe(0);
    expect(device.region(1)!.mappings()).toEqual([]);
    device.close();
  });

  test('closing the device unmaps its live mappings first', () => {
    const { fake, device } = open();
    const mapping = device.region(0)!.map();
    device.region(1)!.map();
    device.close();
    expect(mapping.mapped).toBe(false);
    expect(fake.liveMmaps()).toBe(0);
  });

  test('a failed munmap keeps the mapping, and unmap() (or the device close) retries it', () => {
    const { fake, device } = open();
    const mapping = device.region(1)!.map();
    fake.failNext({ syscall: 'munmap', errno: 'EINVAL', skip: 1 });
    expect(() => mapping.unmap()).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'munmap' }));
    expect(mapping.mapped).toBe(true);
    expect(mapping.windows.map((w) => w.mapped)).toEqual([false, true]);
    expect(() => mapping.read32(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(mapping.read32(0x4000)).toBe(0);
    expect(fake.liveMmaps()).toBe(1);
    device.close();
    expect(mapping.mapped).toBe(false);
    expect(fake.liveMmaps()).toBe(0);
  });
});

describe('Region.map on a direct backend (typed arrays on the mapping, as on the real kernel)', () => {
  function openDirect(regions = REGIONS) {
    const k = kernel([{ address: EDU, group: GROUP, regions }], { directMmio: true });
    return { ...k, device: Device.open(EDU, k.env) };
  }
  const ACCESSORS = ['mmioRead8', 'mmioRead16', 'mmioRead32', 'mmioRead64', 'mmioWrite8', 'mmioWrite16', 'mmioWrite32', 'mmioWrite64'] as const;

  test('every width reads and writes the mapped bytes, little-endian, without the backend accessors', () => {
    const { fake, device } = openDirect();
    const spies = ACCESSORS.map((name) => jest.spyOn(fake, name));
    const bar = device.region(0)!;
    const mapping = bar.map();
    mapping.write32(0x40, 0xdeadbeef);
    mapping.write8(0x44, 0xaa);
    mapping.write16(0x46, 0xbbcc);
    mapping.write64(0x48, 0x1122334455667788n);
    mapping.write64(0x50, 2 ** 53 - 1);
    expect([mapping.read32(0x40), mapping.read8(0x44), mapping.read16(0x46), mapping.read64(0x48)]).toEqual([0xdeadbeef, 0xaa, 0xbbcc, 0x1122334455667788n]);
    expect(mapping.read8(0x40)).toBe(0xef);
    expect(mapping.read16(0x42)).toBe(0xdead);
    expect(mapping.read64(0x50)).toBe(2n ** 53n - 1n);
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    mapping.unmap();
    // The fake's mapping of a whole region is its store: the bytes stay there.
    expect(bar.readUint32(0x40)).toBe(0xdeadbeef);
    expect(bar.readBigUint64(0x48)).toBe(0x1122334455667788n);
    device.close();
  });

  test('sparse windows: offsets are region-relative, gaps and edges refused as on the accessor path', () => {
    const { device } = openDirect();
    const mapping = device.region(1)!.map();
    mapping.write32(0x4010, 7);
    expect(mapping.windows[1]!.read32(0x4010)).toBe(7);
    expect(() => mapping.read32(0x3000)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('not in a mapped window') }));
    expect(() => mapping.windows[0]!.read32(0x1ffe)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('outside the window') }));
    expect(() => mapping.windows[1]!.write16(0x4011, 1)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => mapping.windows[1]!.read64(0x4004)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => mapping.write32(0x4010, 2 ** 32)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('value') }));
    expect(() => mapping.write64(0x4010, -1n)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => mapping.windows[1]!.read32(16400.5)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
    expect(mapping.read32(0x4010)).toBe(7); // no refused write landed
    mapping.unmap();
    device.close();
  });

  test('after unmap the views are detached and every access throws ERR_VFIO_CLOSED', () => {
    const { device } = openDirect();
    const mapping = device.region(0)!.map();
    const window = mapping.windows[0]!;
    mapping.unmap();
    expect(() => window.read32(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => window.write64(0, 1n)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    device.close();
  });

  test('a read-only mapping refuses writes', () => {
    const { device } = openDirect([{ index: 0, size: 0x1000, flags: b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_MMAP }]);
    const mapping = device.region(0)!.map();
    expect(() => mapping.write8(0, 1)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED' }));
    expect(mapping.read8(0)).toBe(0);
    mapping.unmap();
    device.close();
  });
});
