import { FakeKernel } from '../../src/testing';
import { thrown } from './helpers';

const PAGE = 4096;
const PRESENT = 1n << 63n;
const FRAME = (1n << 55n) - 1n;

describe('fake mlock, physical frames and /proc/self/pagemap', () => {
  let kernel: FakeKernel;
  beforeEach(() => {
    kernel = new FakeKernel();
  });
  afterEach(() => kernel.dispose());

  /** The pagemap entries of `pages` pages from `vaddr` on. */
  function pagemap(vaddr: bigint, pages: number): bigint[] {
    const fd = kernel.open('/proc/self/pagemap', 0);
    try {
      const bytes = new Uint8Array(pages * 8);
      expect(kernel.pread(fd, bytes, (vaddr / BigInt(PAGE)) * 8n)).toBe(bytes.length);
      const view = new DataView(bytes.buffer);
      return Array.from({ length: pages }, (_, i) => view.getBigUint64(i * 8, true));
    } finally {
      kernel.close(fd);
    }
  }

  test('mlock and munlock take only live allocDma memory, like the addon', () => {
    const buffer = kernel.allocDma(PAGE);
    for (const bad of [new ArrayBuffer(PAGE), buffer.slice(0)]) {
      for (const call of [() => kernel.mlock(bad), () => kernel.munlock(bad)]) {
        expect(thrown(call)).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
      }
    }
    for (const call of [() => kernel.mlock(42 as unknown as ArrayBuffer), () => kernel.munlock(null as unknown as ArrayBuffer)]) {
      expect(thrown(call)).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    }
    kernel.freeDma(buffer);
    expect(thrown(() => kernel.mlock(buffer))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(kernel.calls.filter((c) => c.syscall === 'mlock' || c.syscall === 'munlock')).toEqual([]);
  });

  test('locks count once per page, munlock and freeDma release them, RLIMIT_MEMLOCK gives ENOMEM', () => {
    const limited = new FakeKernel({ memlockLimit: BigInt(3 * PAGE) });
    try {
      const a = limited.allocDma(2 * PAGE);
      const b = limited.allocDma(2 * PAGE);
      limited.mlock(a);
      limited.mlock(a);
      expect(limited.physicalMemory.lockedBytes).toBe(BigInt(2 * PAGE));
      expect(thrown(() => limited.mlock(b))).toMatchObject({ code: 'ENOMEM', errno: -12, syscall: 'mlock' });
      limited.munlock(a);
      expect(limited.physicalMemory.lockedBytes).toBe(0n);
      limited.mlock(b);
      expect(limited.physicalMemory.isLocked(limited.addressOf(b))).toBe(true);
      limited.freeDma(b);
      expect(limited.physicalMemory.lockedBytes).toBe(0n);
      limited.freeDma(a);
    } finally {
      limited.dispose();
    }
  });

  test('pagemap: present with a frame per page; locked frames stay, unlocked ones move', () => {
    const buffer = kernel.allocDma(2 * PAGE);
    const vaddr = kernel.addressOf(buffer);
    const unlocked = pagemap(vaddr, 2);
    for (const entry of unlocked) expect(entry & PRESENT).toBe(PRESENT);
    expect(pagemap(vaddr, 2)).not.toEqual(unlocked);
    kernel.mlock(buffer);
    const locked = pagemap(vaddr, 2);
    expect(pagemap(vaddr, 2)).toEqual(locked);
    expect(locked[0] & FRAME).toBeGreaterThan(0n);
    expect(locked[1] & FRAME).not.toBe(locked[0] & FRAME);
    expect(kernel.openFds()).toEqual([]);
    kernel.freeDma(buffer);
  });

  test('pagemap without CAP_SYS_ADMIN: present, frame 0; holes and freed memory read as 0', () => {
    const buffer = kernel.allocDma(PAGE);
    const vaddr = kernel.addressOf(buffer);
    kernel.mlock(buffer);
    kernel.physicalMemory.capSysAdmin = false;
    expect(pagemap(vaddr, 1)).toEqual([PRESENT]);
    kernel.physicalMemory.capSysAdmin = true;
    // The page after the buffer is the guard page between areas.
    expect(pagemap(vaddr + BigInt(PAGE), 1)).toEqual([0n]);
    kernel.freeDma(buffer);
    expect(pagemap(vaddr, 1)).toEqual([0n]);
  });

  test('pagemap reads must be whole 8-byte entries (EINVAL), and the fd is an ordinary open file', () => {
    const fd = kernel.open('/proc/self/pagemap', 0);
    expect(kernel.openFds()).toEqual([fd]);
    expect(thrown(() => kernel.pread(fd, new Uint8Array(8), 4n))).toMatchObject({ code: 'EINVAL', syscall: 'pread' });
    expect(thrown(() => kernel.pread(fd, new Uint8Array(12), 0n))).toMatchObject({ code: 'EINVAL', syscall: 'pread' });
    expect(thrown(() => kernel.ioctl(fd, 0))).toMatchObject({ code: 'ENOTTY' });
    kernel.close(fd);
    expect(kernel.openFds()).toEqual([]);
  });
});
