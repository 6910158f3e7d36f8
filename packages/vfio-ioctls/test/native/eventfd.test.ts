import { nativeBackend as native, EFD_CLOEXEC, EFD_NONBLOCK, EFD_SEMAPHORE } from '../../src/core/native';
import { fdFlags, thrown } from './helpers';

describe('eventfd', () => {
  let fd: number;
  afterEach(() => native.close(fd));

  it('is created non-blocking and close-on-exec', () => {
    fd = native.eventfd(0, 0);
    expect(fdFlags(fd) & EFD_NONBLOCK).toBe(EFD_NONBLOCK);
    expect(fdFlags(fd) & EFD_CLOEXEC).toBe(EFD_CLOEXEC);
  });

  it('reads the initial value, then EAGAIN when the counter is zero', () => {
    fd = native.eventfd(2, 0);
    expect(native.eventfdRead(fd)).toBe(2n);
    const error = thrown(() => native.eventfdRead(fd));
    expect(error).toMatchObject({ name: 'VfioError', code: 'EAGAIN', errno: -11, syscall: 'read' });
  });

  it('adds written values until read', () => {
    fd = native.eventfd(0, 0);
    native.eventfdWrite(fd, 1n);
    native.eventfdWrite(fd, 2n);
    native.eventfdWrite(fd, 40 as unknown as bigint);
    expect(native.eventfdRead(fd)).toBe(43n);
    native.eventfdWrite(fd, 0xfffffffffffffffen);
    expect(native.eventfdRead(fd)).toBe(0xfffffffffffffffen);
  });

  it('counts down by one in semaphore mode', () => {
    fd = native.eventfd(3, EFD_SEMAPHORE);
    expect([native.eventfdRead(fd), native.eventfdRead(fd), native.eventfdRead(fd)]).toEqual([1n, 1n, 1n]);
    expect(thrown(() => native.eventfdRead(fd))).toMatchObject({ code: 'EAGAIN' });
  });

  it('passes the kernel\'s refusals through: EINVAL for 2^64-1, EAGAIN on overflow', () => {
    fd = native.eventfd(0, 0);
    expect(thrown(() => native.eventfdWrite(fd, 0xffffffffffffffffn))).toMatchObject({ code: 'EINVAL', syscall: 'write' });
    native.eventfdWrite(fd, 0xfffffffffffffffen);
    expect(thrown(() => native.eventfdWrite(fd, 1n))).toMatchObject({ code: 'EAGAIN', syscall: 'write' });
  });

  it('rejects values out of range before writing', () => {
    fd = native.eventfd(0, 0);
    for (const value of [-1n, 2n ** 64n, -1 as unknown as bigint]) {
      expect(thrown(() => native.eventfdWrite(fd, value))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    }
    expect(thrown(() => native.eventfd(2 ** 32, 0))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    expect(thrown(() => native.eventfdRead(fd))).toMatchObject({ code: 'EAGAIN' });
  });
});
