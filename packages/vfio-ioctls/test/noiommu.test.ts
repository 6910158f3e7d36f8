import { DmaBuffer, NoIommu, physicalAddress, physicalSegments, VfioError } from '../src';
import { expectNothingLeft, kernel, thrown } from './helpers';

const PAGE = 4096;


describe('NoIommu', () => {
  test('map() refuses with the no-IOMMU error naming the physical-address API', () => {
    const { env } = kernel();
    const iommu = new NoIommu('/dev/vfio/noiommu-0');
    const buffer = DmaBuffer.alloc(PAGE, env);
    const error = thrown(() => iommu.map(buffer));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'ERR_VFIO_IOMMU_UNAVAILABLE', errno: 0, path: '/dev/vfio/noiommu-0' });
    expect(error.message).toMatch(/no IOMMU in no-IOMMU mode/);
    expect(error.hint).toMatch(/physicalSegments\(buffer\)/);
    expect(buffer.mapped).toBe(false);
    buffer.close();
  });

  test('answers the other IommuContext calls truthfully: nothing mapped, no IOVA space, no IOMMU pages', () => {
    const iommu = new NoIommu();
    expect(iommu.kind).toBe('noiommu');
    expect(iommu.path).toBeUndefined();
    expect(iommu.mappings()).toEqual([]);
    expect(iommu.iovaRanges()).toEqual([]);
    expect(iommu.pageSizes()).toBe(0n);
    expect(() => iommu.unmapAll()).not.toThrow();
    expect(thrown(() => iommu.map(undefined as unknown as DmaBuffer)).message).not.toContain('(/dev');
  });
});

describe('physical addresses of a DmaBuffer', () => {
  test('segments cover the buffer in order, merge contiguous frames, and lock it first', () => {
    const { fake, env } = kernel();
    const buffer = DmaBuffer.alloc(10 * PAGE, env);
    const segments = physicalSegments(buffer);
    // The fake hands out frames in runs of 4: 10 pages are 4 + 4 + 2.
    expect(segments.map((s) => [s.offset, s.size])).toEqual([[0, 4 * PAGE], [4 * PAGE, 4 * PAGE], [8 * PAGE, 2 * PAGE]]);
    for (const s of segments) {
      expect(s.physical).toBeGreaterThan(0n);
      expect(s.physical % BigInt(PAGE)).toBe(0n);
    }
    expect(segments[1].physical).not.toBe(segments[0].physical + BigInt(4 * PAGE));
    expect(fake.physicalMemory.lockedBytes).toBe(BigInt(10 * PAGE));
    const syscalls = fake.calls.map((c) => c.syscall);
    expect(syscalls.indexOf('mlock')).toBeGreaterThan(-1);
    expect(syscalls.indexOf('mlock')).toBeLessThan(syscalls.indexOf('pread'));
    expect(fake.calls.find((c) => c.syscall === 'open')).toMatchObject({ path: '/proc/self/pagemap' });
    buffer.close();
    expectNothingLeft(fake);
  });

  test('the addresses stay put while the buffer lives (locked once, read again each call)', () => {
    const { fake, env } = kernel();
    const buffer = DmaBuffer.alloc(3 * PAGE, env);
    const first = physicalSegments(buffer);
    expect(physicalSegments(buffer)).toEqual(first);
    expect(fake.calls.filter((c) => c.syscall === 'mlock')).toHaveLength(1);
    expect(fake.calls.filter((c) => c.syscall === 'pread')).toHaveLength(2);
    buffer.close();
  });

  test('physicalAddress is the page frame plus the offset within the page', () => {
    const { env } = kernel();
    const buffer = DmaBuffer.alloc(6 * PAGE, env);
    const segments = physicalSegments(buffer);
    for (const offset of [0, 1, PAGE - 1, PAGE, 4 * PAGE + 123, 6 * PAGE - 1]) {
      const segment = segments.find((s) => offset >= s.offset && offset < s.offset + s.size)!;
      expect(physicalAddress(buffer, offset)).toBe(segment.physical + BigInt(offset - segment.offset));
    }
    expect(physicalAddress(buffer)).toBe(segments[0].physical);
    buffer.close();
  });

  test('a device model reaches the buffer through its physical address while it is locked', () => {
    const { fake, env } = kernel();
    const buffer = DmaBuffer.alloc(2 * PAGE, env);
    buffer.bytes.set([1, 2, 3], PAGE + 10);
    const at = physicalAddress(buffer, PAGE + 10);
    expect([...fake.physicalMemory.view(at, 3)]).toEqual([1, 2, 3]);
    fake.physicalMemory.view(at, 3).fill(9);
    expect([...buffer.bytes.subarray(PAGE + 10, PAGE + 13)]).toEqual([9, 9, 9]);
    expect(() => fake.physicalMemory.view(at, PAGE)).toThrow(/crosses a page/);
    buffer.close();
    expect(() => fake.physicalMemory.view(at, 3)).toThrow(/not locked or pinned DMA memory/);
  });

  test('closing the buffer drops the lock with the memory', () => {
    const { fake, env } = kernel();
    const buffer = DmaBuffer.alloc(2 * PAGE, env);
    physicalSegments(buffer);
    expect(fake.physicalMemory.lockedBytes).toBe(BigInt(2 * PAGE));
    buffer.close();
    expect(fake.physicalMemory.lockedBytes).toBe(0n);
    expect(thrown(() => physicalSegments(buffer))).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
    expect(thrown(() => physicalAddress(buffer, 0))).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
  });

  test('without CAP_SYS_ADMIN the frames read as 0: a clear error saying root is needed, and the pagemap fd closed', () => {
    const { fake, env } = kernel();
    fake.physicalMemory.capSysAdmin = false;
    const buffer = DmaBuffer.alloc(PAGE, env);
    for (const call of [() => physicalSegments(buffer), () => physicalAddress(buffer, 5)]) {
      const error = thrown(call);
      expect(error).toBeInstanceOf(VfioError);
      expect(error).toMatchObject({ code: 'ERR_VFIO_NO_PHYSICAL_ADDRESS', errno: 0, path: '/proc/self/pagemap' });
      expect(error.hint).toMatch(/CAP_SYS_ADMIN: run as root/);
    }
    buffer.close();
    expectNothingLeft(fake);
  });

  test('a lock past RLIMIT_MEMLOCK is ENOMEM from mlock, before pagemap is opened', () => {
    const { fake, env } = kernel(undefined, { memlockLimit: BigInt(2 * PAGE) });
    const small = DmaBuffer.alloc(2 * PAGE, env);
    const big = DmaBuffer.alloc(PAGE, env);
    physicalSegments(small);
    const opens = fake.calls.filter((c) => c.syscall === 'open').length;
    const error = thrown(() => physicalSegments(big));
    expect(error).toMatchObject({ code: 'ENOMEM', syscall: 'mlock' });
    expect(error.hint).toMatch(/RLIMIT_MEMLOCK/);
    expect(fake.calls.filter((c) => c.syscall === 'open')).toHaveLength(opens);
    small.close();
    expect(physicalSegments(big)).toHaveLength(1); // the lock was not recorded as taken
    big.close();
    expectNothingLeft(fake);
  });

  test('a failed pagemap read is reported and its fd still closed', () => {
    const { fake, env } = kernel();
    const buffer = DmaBuffer.alloc(PAGE, env);
    fake.failNext({ syscall: 'pread', errno: 'EIO' });
    expect(thrown(() => physicalSegments(buffer))).toMatchObject({ code: 'EIO', syscall: 'pread', path: '/proc/self/pagemap' });
    fake.failNext({ syscall: 'open', path: '/proc/self/pagemap', errno: 'EACCES' });
    expect(thrown(() => physicalAddress(buffer))).toMatchObject({ code: 'EACCES', syscall: 'open' });
    buffer.close();
    expectNothingLeft(fake);
  });

  test('arguments are checked before any syscall', () => {
    const { fake, env } = kernel();
    const buffer = DmaBuffer.alloc(2 * PAGE, env);
    const before = fake.calls.length;
    for (const bad of [undefined, {}, new ArrayBuffer(PAGE)]) {
      expect(thrown(() => physicalSegments(bad as unknown as DmaBuffer))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      expect(thrown(() => physicalAddress(bad as unknown as DmaBuffer, 0))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    }
    for (const offset of [-1, 2 * PAGE, 1.5]) {
      const error = thrown(() => physicalAddress(buffer, offset));
      expect(error.code).toMatch(/ERR_OUT_OF_RANGE|ERR_INVALID_ARG_TYPE/);
      expect(error.message).toContain('offset');
    }
    expect(thrown(() => physicalAddress(buffer, '0' as unknown as number))).toMatchObject({ name: 'TypeError' });
    expect(fake.calls.length).toBe(before);
    buffer.close();
  });
});
