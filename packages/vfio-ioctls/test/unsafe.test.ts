/**
 * vfio-ioctls/unsafe: the raw calls against the fake kernel (they answer as
 * the safe API's do and leave nothing open), their argument checks, their
 * errors, and their absence from the main entry point. A last part runs
 * them on the real addon, on files any user may open.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as b from 'vfio-bindings';
import * as main from '../src';
import { Container, Device, DmaBuffer } from '../src';
import * as unsafe from '../src/unsafe';
import { EDU, expectNothingLeft, kernel, thrown, thrownVfio } from './helpers';

/** A fake kernel with edu open through the safe API, and the options that aim unsafe at the same fake. */
function openEdu() {
  const k = kernel();
  const container = Container.open(k.env);
  const device = Device.open(EDU, { ...k.env, container });
  const options = { backend: k.fake };
  const close = () => {
    device.close();
    container.close();
  };
  return { k, container, device, options, close };
}

describe('vfio-ioctls/unsafe on the fake kernel', () => {
  test('ioctl on a device fd answers what the safe API read: VFIO_DEVICE_GET_INFO', () => {
    const { k, container, device, options, close } = openEdu();
    const arg = b.vfio_device_info.encode({ argsz: b.vfio_device_info.size });
    expect(unsafe.ioctl(device.fd, b.VFIO_DEVICE_GET_INFO, arg, options)).toBe(0);
    const info = b.vfio_device_info.decode(arg);
    expect({ flags: info.flags, numRegions: info.num_regions, numIrqs: info.num_irqs })
      .toEqual({ flags: device.info.flags, numRegions: device.info.numRegions, numIrqs: device.info.numIrqs });
    // An integer argument goes by value, and the kernel's return value comes back: VFIO_CHECK_EXTENSION answers 1 or 0.
    expect(unsafe.ioctl(container.fd, b.VFIO_CHECK_EXTENSION, b.VFIO_TYPE1v2_IOMMU, options)).toBe(1);
    expect(unsafe.ioctl(container.fd, b.VFIO_CHECK_EXTENSION, 999, options)).toBe(0);
    close();
    expectNothingLeft(k.fake);
  });

  test("ioctl's refusals are VfioErrors naming the request in hex, with no VFIO hint", () => {
    const { device, options, close } = openEdu();
    const tooShort = b.vfio_device_info.encode({ argsz: 8 });
    const error = thrownVfio(() => unsafe.ioctl(device.fd, b.VFIO_DEVICE_GET_INFO, tooShort, options));
    expect(error).toMatchObject({ code: 'EINVAL', errno: -22, syscall: 'ioctl', operation: `0x${b.VFIO_DEVICE_GET_INFO.toString(16)}` });
    expect(error.message).toBe(`EINVAL: 0x${b.VFIO_DEVICE_GET_INFO.toString(16)} ioctl failed`);
    expect(thrownVfio(() => unsafe.ioctl(999, 0x1234, undefined, options))).toMatchObject({ code: 'EBADF', operation: '0x1234', hint: '' });
    close();
  });

  test('mmap of a region is its memory; munmap detaches it and gives it back', () => {
    const { k, device, options, close } = openEdu();
    const bar = device.region(b.VFIO_PCI_BAR0_REGION_INDEX)!;
    bar.writeUint32(8, 0x11223344);
    const page = k.fake.pageSize();
    const mapping = unsafe.mmap(device.fd, page, unsafe.PROT_READ | unsafe.PROT_WRITE, bar.offset, options);
    expect(mapping.byteLength).toBe(page);
    expect(k.fake.liveMmaps()).toBe(1);
    // The fake's mappings are read through its MMIO accessors (the addon's are plain memory).
    expect(k.fake.mmioRead32(mapping, 8)).toBe(0x11223344);
    k.fake.mmioWrite32(mapping, 12, 0xcafe);
    expect(bar.readUint32(12)).toBe(0xcafe);
    unsafe.munmap(mapping, options);
    expect(mapping.byteLength).toBe(0);
    expect(k.fake.liveMmaps()).toBe(0);
    // Unmapped once: a second munmap is the caller's mistake, not a double unmap.
    expect(thrown(() => unsafe.munmap(mapping, options))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    close();
    expectNothingLeft(k.fake);
  });

  test("munmap refuses memory the library owns: a memfd DmaBuffer's mapping stays", () => {
    const k = kernel([]);
    const buffer = DmaBuffer.alloc(4096, { ...k.env, memfd: true });
    expect(k.fake.liveMmaps()).toBe(1);
    const memory = buffer.bytes.buffer as ArrayBuffer;
    expect(thrown(() => unsafe.munmap(memory, { backend: k.fake }))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(k.fake.liveMmaps()).toBe(1);
    buffer.bytes[0] = 7;
    expect(buffer.bytes[0]).toBe(7);
    buffer.close();
    expectNothingLeft(k.fake);
  });

  test("mmap's refusals are VfioErrors: a container fd has no mmap (ENODEV)", () => {
    const { k, container, options, close } = openEdu();
    expect(thrownVfio(() => unsafe.mmap(container.fd, 4096, unsafe.PROT_READ, 0, options))).toMatchObject({ code: 'ENODEV', syscall: 'mmap' });
    close();
    expectNothingLeft(k.fake);
  });

  test('eventfd: write, read back, EAGAIN when empty, semaphore flag, closed with close()', () => {
    const k = kernel([]);
    const options = { backend: k.fake };
    const fd = unsafe.eventfd(2, 0, options);
    expect(k.fake.openFds()).toEqual([fd]);
    unsafe.eventfdWrite(fd, 40n, options);
    unsafe.eventfdWrite(fd, 1, options);
    expect(unsafe.eventfdRead(fd, options)).toBe(43n);
    expect(thrownVfio(() => unsafe.eventfdRead(fd, options))).toMatchObject({ code: 'EAGAIN', syscall: 'read', hint: '' });
    unsafe.close(fd, options);
    const semaphore = unsafe.eventfd(3, unsafe.EFD_SEMAPHORE, options);
    expect(unsafe.eventfdRead(semaphore, options)).toBe(1n);
    expect(unsafe.eventfdRead(semaphore, options)).toBe(1n);
    unsafe.close(semaphore, options);
    expect(thrownVfio(() => unsafe.close(semaphore, options))).toMatchObject({ code: 'EBADF', syscall: 'close' });
    expectNothingLeft(k.fake);
  });

  test('addressOf is the address the kernel has for the buffer, and refuses a closed one', () => {
    const k = kernel([]);
    const buffer = DmaBuffer.alloc(8192, k.env);
    const address = unsafe.addressOf(buffer);
    expect(typeof address).toBe('bigint');
    expect(address).toBe(k.fake.addressOf(buffer.bytes.buffer as ArrayBuffer));
    const other = DmaBuffer.alloc(4096, k.env);
    expect(unsafe.addressOf(other)).not.toBe(address);
    other.close();
    buffer.close();
    expect(thrownVfio(() => unsafe.addressOf(buffer))).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
    expectNothingLeft(k.fake);
  });

  test('bad arguments are TypeErrors or RangeErrors naming them, before any syscall', () => {
    const k = kernel([]);
    const options = { backend: k.fake };
    const loose = unsafe as unknown as Record<string, (...args: unknown[]) => unknown>;
    const cases: Array<[() => unknown, string, string]> = [
      [() => loose.ioctl('3', 1, undefined, options), 'TypeError', 'fd'],
      [() => loose.ioctl(-1, 1, undefined, options), 'RangeError', 'fd'],
      [() => loose.ioctl(3, 2 ** 32, undefined, options), 'RangeError', 'request'],
      [() => loose.ioctl(3, 1.5, undefined, options), 'TypeError', 'request'],
      [() => loose.ioctl(3, 1, 'x', options), 'TypeError', 'arg'],
      [() => loose.ioctl(3, 1, new Uint16Array(2), options), 'TypeError', 'arg'],
      [() => loose.ioctl(3, 1, 2 ** 53, options), 'RangeError', 'arg'],
      // VFIO_DEVICE_GET_INFO is _IO (no size encoded); KVM_SET_USER_MEMORY_REGION is _IOW of 32 bytes.
      [() => loose.ioctl(3, 0x4020ae46, new Uint8Array(31), options), 'RangeError', 'arg'],
      [() => loose.ioctl(3, 1, undefined, { backend: k.fake, devRoot: '/x' }), 'TypeError', 'options.devRoot'],
      [() => loose.ioctl(3, 1, undefined, { backend: {} }), 'TypeError', 'options.backend'],
      [() => loose.mmap(3, 0, 1, 0, options), 'RangeError', 'length'],
      [() => loose.mmap(3, 4096, -1, 0, options), 'RangeError', 'prot'],
      [() => loose.mmap(3, 4096, 1, 1n << 63n, options), 'RangeError', 'offset'],
      [() => loose.mmap(3, 4096, 1, '0', options), 'TypeError', 'offset'],
      [() => loose.munmap(new Uint8Array(4), options), 'TypeError', 'buffer'],
      [() => loose.eventfd(-1, 0, options), 'RangeError', 'initval'],
      [() => loose.eventfd(0, 0.5, options), 'TypeError', 'flags'],
      [() => loose.eventfdWrite(3, -1n, options), 'RangeError', 'value'],
      [() => loose.eventfdRead(null, options), 'TypeError', 'fd'],
      [() => loose.close(2 ** 31, options), 'RangeError', 'fd'],
      [() => loose.addressOf(new ArrayBuffer(4096)), 'TypeError', 'buffer'],
    ];
    const wrong = cases.flatMap(([call, name, argument]) => {
      const error = thrown(call);
      return error.name === name && String(error.message).startsWith(argument) ? [] : [`${argument}: ${String(error.name)} ${String(error.message)}`];
    });
    expect(wrong).toEqual([]);
    expect(k.fake.calls).toEqual([]);
    // The encoded size itself is enough: the check passes it on to the kernel (no such fd: EBADF).
    expect(thrownVfio(() => unsafe.ioctl(3, 0x4020ae46, new Uint8Array(32), options))).toMatchObject({ code: 'EBADF' });
    expectNothingLeft(k.fake);
  });

  test('none of its names or functions is reachable from the main entry point', () => {
    const mainValues = new Set<unknown>(Object.values(main));
    const mainNames = new Set(Object.keys(main));
    const reachable = Object.entries(unsafe).filter(([name, value]) => mainNames.has(name) || (typeof value === 'function' && mainValues.has(value)));
    expect(reachable).toEqual([]);
    expect(Object.keys(unsafe).sort()).toEqual(
      ['EFD_SEMAPHORE', 'PROT_NONE', 'PROT_READ', 'PROT_WRITE', 'addressOf', 'close', 'eventfd', 'eventfdRead', 'eventfdWrite', 'ioctl', 'mmap', 'munmap'],
    );
  });
});

describe('vfio-ioctls/unsafe on the real addon', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-unsafe-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('ioctl FIONREAD on a regular file writes the bytes left into the buffer', () => {
    const file = path.join(dir, 'data');
    fs.writeFileSync(file, Buffer.alloc(10));
    const fd = fs.openSync(file, 'r');
    try {
      const count = new Uint8Array(4);
      // FIONREAD is 0x541b on x86-64 and arm64 (asm-generic/ioctls.h).
      expect(unsafe.ioctl(fd, 0x541b, count)).toBe(0);
      expect(new DataView(count.buffer).getInt32(0, true)).toBe(10);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('mmap of a shared file is its bytes; munmap detaches the ArrayBuffer', () => {
    const file = path.join(dir, 'shared');
    fs.writeFileSync(file, Buffer.alloc(4096));
    const fd = fs.openSync(file, 'r+');
    try {
      const memory = unsafe.mmap(fd, 4096, unsafe.PROT_READ | unsafe.PROT_WRITE, 0);
      new Uint8Array(memory).set([1, 2, 3], 100);
      unsafe.munmap(memory);
      expect(memory.byteLength).toBe(0);
      expect([...fs.readFileSync(file).subarray(100, 103)]).toEqual([1, 2, 3]);
    } finally {
      fs.closeSync(fd);
    }
  });

  test('eventfd round trip, and a refused ioctl on it is ENOTTY', () => {
    const fd = unsafe.eventfd();
    try {
      unsafe.eventfdWrite(fd, 7n);
      expect(unsafe.eventfdRead(fd)).toBe(7n);
      expect(thrownVfio(() => unsafe.ioctl(fd, 0x541b, new Uint8Array(4)))).toMatchObject({ code: 'ENOTTY', operation: '0x541b' });
    } finally {
      unsafe.close(fd);
    }
  });

  test('addressOf a DmaBuffer is its page-aligned address', () => {
    const buffer = DmaBuffer.alloc(4096);
    try {
      const address = unsafe.addressOf(buffer);
      expect(address > 0n && address % 4096n === 0n).toBe(true);
    } finally {
      buffer.close();
    }
  });
});
