import { VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE } from 'vfio-bindings';
import type { FakeDevice, FakeKernel } from '../../src/testing';
import { EDU, openDevice, thrown } from './helpers';

const BAR0 = 0n;
const BAR2 = 2n << 40n;
const ROM = 6n << 40n;
const CONFIG = 7n << 40n;
const RW = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
const PROT_RW = 3;

describe('region access: pread/pwrite, mmap, MMIO accessors', () => {
  let kernel: FakeKernel;
  let device: number;
  let dev: FakeDevice;

  beforeEach(() => {
    ({ kernel, device } = openDevice({}, {
      regions: [
        { index: 0, size: 0x100000, flags: RW | VFIO_REGION_INFO_FLAG_MMAP },
        { index: 2, size: 32 }, // an I/O BAR: read/write, no mmap
        { index: 4, size: 0x4000, flags: RW | VFIO_REGION_INFO_FLAG_MMAP, sparseAreas: [{ offset: 0, size: 0x1000 }, { offset: 0x3000, size: 0x1000 }] },
        { index: 6, size: 0x1000, flags: VFIO_REGION_INFO_FLAG_READ }, // ROM
        { index: 7, size: 256 },
      ],
    }));
    dev = kernel.device(EDU)!;
  });
  afterEach(() => kernel.dispose());

  test('config space carries the IDs of the spec', () => {
    const cfg = new Uint8Array(16);
    expect(kernel.pread(device, cfg, CONFIG)).toBe(16);
    const view = new DataView(cfg.buffer);
    expect(view.getUint16(0, true)).toBe(0x1234);
    expect(view.getUint16(2, true)).toBe(0x11e8);
    expect(view.getUint32(8, true) >>> 8).toBe(0x00ff00);
  });

  test('pwrite then pread round-trip at the region offset, and land in region()', () => {
    expect(kernel.pwrite(device, Uint8Array.of(4, 0), CONFIG + 4n)).toBe(2);
    expect(dev.region(7)[4]).toBe(4);
    dev.region(2)[3] = 0x77;
    const out = new Uint8Array(4);
    kernel.pread(device, out, BAR2);
    expect(out).toEqual(Uint8Array.of(0, 0, 0, 0x77));
  });

  test('reads past the end are clipped; starting at the end is EINVAL; writing a read-only region is EINVAL', () => {
    expect(kernel.pread(device, new Uint8Array(64), CONFIG + 240n)).toBe(16);
    expect(thrown(() => kernel.pread(device, new Uint8Array(1), CONFIG + 256n))).toMatchObject({ code: 'EINVAL', syscall: 'pread' });
    expect(thrown(() => kernel.pwrite(device, new Uint8Array(1), ROM))).toMatchObject({ code: 'EINVAL', syscall: 'pwrite' });
    expect(thrown(() => kernel.pread(device, new Uint8Array(1), 1n << 40n))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.pread(device, new Uint8Array(1), 12n << 40n))).toMatchObject({ code: 'EINVAL' });
  });

  test('pread on other kinds of fd: EINVAL on a container, ESPIPE on an eventfd, EBADF on none', () => {
    expect(thrown(() => kernel.pread(3, new Uint8Array(1), 0n))).toMatchObject({ code: 'EINVAL' });
    const efd = kernel.eventfd(0, 0);
    expect(thrown(() => kernel.pread(efd, new Uint8Array(8), 0n))).toMatchObject({ code: 'ESPIPE' });
    expect(thrown(() => kernel.pread(99, new Uint8Array(1), 0n))).toMatchObject({ code: 'EBADF' });
  });

  test('mmap of the whole BAR shares bytes with pread/pwrite and region(); munmap detaches it', () => {
    const bar = kernel.mmap(device, 0x100000, PROT_RW, BAR0);
    expect(bar.byteLength).toBe(0x100000);
    new Uint8Array(bar)[0x10] = 0xab;
    const out = new Uint8Array(1);
    kernel.pread(device, out, BAR0 + 0x10n);
    expect(out[0]).toBe(0xab);
    kernel.pwrite(device, Uint8Array.of(0xcd), BAR0 + 0x11n);
    expect(new Uint8Array(bar)[0x11]).toBe(0xcd);
    expect(dev.region(0)[0x10]).toBe(0xab);
    kernel.munmap(bar);
    expect(bar.byteLength).toBe(0);
    expect(() => new Uint8Array(bar)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    // The bytes survive the unmap.
    expect(dev.region(0)[0x11]).toBe(0xcd);
    expect(thrown(() => kernel.munmap(bar))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  });

  test('a partial mapping owns its bytes while mapped and gives them back at munmap', () => {
    const part = kernel.mmap(device, 0x1000, PROT_RW, BAR0 + 0x2000n);
    new Uint8Array(part)[4] = 0x5a;
    const out = new Uint8Array(1);
    kernel.pread(device, out, BAR0 + 0x2004n);
    expect(out[0]).toBe(0x5a);
    kernel.pwrite(device, Uint8Array.of(0x6b), BAR0 + 0x2005n);
    expect(new Uint8Array(part)[5]).toBe(0x6b);
    kernel.munmap(part);
    expect([...dev.region(0).subarray(0x2004, 0x2006)]).toEqual([0x5a, 0x6b]);
  });

  test('mmap: misaligned offset, past the end, non-mmap region, outside sparse areas, non-device fd', () => {
    expect(thrown(() => kernel.mmap(device, 0x1000, PROT_RW, BAR0 + 0x800n))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    expect(thrown(() => kernel.mmap(device, 0x101000, PROT_RW, BAR0))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.mmap(device, 0x1000, PROT_RW, BAR2))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.mmap(device, 0x1000, PROT_RW, CONFIG))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.mmap(device, 0x1000, PROT_RW, (4n << 40n) + 0x1000n))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => kernel.mmap(device, 0, PROT_RW, BAR0))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(thrown(() => kernel.mmap(3, 0x1000, PROT_RW, 0n))).toMatchObject({ code: 'ENODEV' });
    const area = kernel.mmap(device, 0x1000, PROT_RW, (4n << 40n) + 0x3000n);
    expect(area.byteLength).toBe(0x1000);
    expect(kernel.liveMmaps()).toBe(1);
  });

  test('MMIO accessors reach the region bytes in little-endian at every width', () => {
    const bar = kernel.mmap(device, 0x1000, PROT_RW, BAR0);
    kernel.mmioWrite32(bar, 0x20, 0x11223344);
    expect([...dev.region(0).subarray(0x20, 0x24)]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(kernel.mmioRead8(bar, 0x21)).toBe(0x33);
    expect(kernel.mmioRead16(bar, 0x22)).toBe(0x1122);
    kernel.mmioWrite64(bar, 0x28, 0x0102030405060708n);
    expect(kernel.mmioRead64(bar, 0x28)).toBe(0x0102030405060708n);
    kernel.mmioWrite8(bar, 0x30, 0xff);
    kernel.mmioWrite16(bar, 0x32, 0xbeef);
    expect(kernel.mmioRead32(bar, 0x30)).toBe(0xbeef00ff);
  });

  test('MMIO accessors check offset bounds and alignment (RangeError naming offset) and the value range', () => {
    const bar = kernel.mmap(device, 0x1000, PROT_RW, BAR0);
    for (const call of [() => kernel.mmioRead32(bar, 0x1000), () => kernel.mmioRead32(bar, -4), () => kernel.mmioRead32(bar, 2), () => kernel.mmioRead64(bar, 0xffc)]) {
      const error = thrown(call);
      expect(error).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(error.message).toMatch(/"offset"/);
    }
    expect(thrown(() => kernel.mmioWrite8(bar, 0, 256))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(thrown(() => kernel.mmioWrite64(bar, 0, -1n))).toMatchObject({ name: 'RangeError' });
    expect(thrown(() => kernel.mmioRead8(bar, 1.5))).toMatchObject({ name: 'RangeError' });
    expect(thrown(() => kernel.mmioRead8(bar, '1' as unknown as number))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });

  test('MMIO accessors throw on an unmapped (detached) buffer and on memory that is not mapped', () => {
    const bar = kernel.mmap(device, 0x1000, PROT_RW, BAR0);
    kernel.munmap(bar);
    expect(thrown(() => kernel.mmioRead32(bar, 0))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(thrown(() => kernel.mmioWrite32(bar, 0, 1))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(thrown(() => kernel.mmioRead32(new ArrayBuffer(8), 0))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  });

  test('MMIO accessors honour the mapping protection and work on DMA memory', () => {
    const ro = kernel.mmap(device, 0x1000, 1, BAR0 + 0x1000n);
    expect(kernel.mmioRead32(ro, 0)).toBe(0);
    expect(thrown(() => kernel.mmioWrite32(ro, 0, 1))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    const dma = kernel.allocDma(4096);
    kernel.mmioWrite16(dma, 2, 0xabcd);
    expect(new Uint8Array(dma, 2, 2)).toEqual(Uint8Array.of(0xcd, 0xab));
    expect(kernel.mmioRead16(dma, 2)).toBe(0xabcd);
  });

  test('register hooks emulate edu: identification and liveness, through MMIO and pread alike', () => {
    let liveness = 0;
    dev.onMmioRead(0, (offset, width) => {
      if (offset === 0x00 && width === 4) return 0x010000ed;
      if (offset === 0x04 && width === 4) return ~liveness >>> 0;
      return undefined;
    });
    dev.onMmioWrite(0, (offset, value) => {
      if (offset !== 0x04) return false;
      liveness = Number(value);
      return true;
    });
    const bar = kernel.mmap(device, 0x100000, PROT_RW, BAR0);
    expect(kernel.mmioRead32(bar, 0)).toBe(0x010000ed);
    kernel.mmioWrite32(bar, 4, 0x12345678);
    expect(kernel.mmioRead32(bar, 4)).toBe(~0x12345678 >>> 0);
    // A consumed write leaves the backing bytes alone; other writes land.
    expect(dev.region(0)[4]).toBe(0);
    kernel.mmioWrite32(bar, 8, 5);
    expect(dev.region(0)[8]).toBe(5);
    const id = new Uint8Array(4);
    kernel.pread(device, id, BAR0);
    expect(new DataView(id.buffer).getUint32(0, true)).toBe(0x010000ed);
    dev.onMmioRead(0, null);
    expect(kernel.mmioRead32(bar, 0)).toBe(0);
  });

  test('pread splits into aligned 4/2/1-byte register accesses, as vfio-pci does', () => {
    const widths: [number, number][] = [];
    dev.onMmioRead(0, (offset, width) => {
      widths.push([offset, width]);
      return undefined;
    });
    kernel.pread(device, new Uint8Array(7), BAR0 + 1n);
    expect(widths).toEqual([[1, 1], [2, 2], [4, 4]]);
  });

  test('hooks on a missing region throw a RangeError', () => {
    const error = thrown(() => dev.onMmioRead(5, () => 0));
    expect(error).toMatchObject({ name: 'RangeError' });
    expect(error.message).toMatch(/no region 5/);
  });
});
