import { nativeBackend as native, O_RDWR } from '../../src/core/native';
import { thrown } from './helpers';

// Every argument is checked in C++: a TypeError names an argument of the
// wrong type, a RangeError one out of range (numbers must be safe integers).
function expectTypeError(call: () => unknown, name: string): void {
  const error = thrown(call);
  expect(error).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  expect(error.message).toContain(`"${name}"`);
}

function expectRangeError(call: () => unknown, name: string): void {
  const error = thrown(call);
  expect(error).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  expect(error.message).toContain(`"${name}"`);
}

// Lets the tests pass what the types forbid.
const loose = native as unknown as Record<string, (...args: unknown[]) => unknown>;
const bytes = new Uint8Array(8);

describe('argument validation', () => {
  it('fd: a number, then a non-negative int32', () => {
    for (const fn of ['close', 'eventfdRead', 'dup']) {
      expectTypeError(() => loose[fn]('3'), 'fd');
      expectTypeError(() => loose[fn](3n), 'fd');
      expectTypeError(() => loose[fn](), 'fd');
      expectRangeError(() => loose[fn](-1), 'fd');
      expectRangeError(() => loose[fn](1.5), 'fd');
      expectRangeError(() => loose[fn](2 ** 31), 'fd');
    }
    expectTypeError(() => loose.ioctl(null, 0), 'fd');
    expectTypeError(() => loose.pread({}, bytes, 0n), 'fd');
    expectTypeError(() => loose.mmap(undefined, 4096, 1, 0n), 'fd');
    expectTypeError(() => loose.poll('0', () => undefined), 'fd');
  });

  it('open: path a string without NUL, flags a number', () => {
    expectTypeError(() => loose.open(Buffer.from('/dev/null'), O_RDWR), 'path');
    const nul = thrown(() => native.open('/dev/null\0/x', O_RDWR));
    expect(nul).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(nul.message).toContain('"path"');
    expectTypeError(() => loose.open('/dev/null', '2'), 'flags');
    expectRangeError(() => native.open('/dev/null', -1), 'flags');
  });

  it('ioctl: request a 32-bit number, arg a number or a Uint8Array', () => {
    expectTypeError(() => loose.ioctl(0, '1'), 'request');
    expectRangeError(() => native.ioctl(0, -1), 'request');
    expectRangeError(() => native.ioctl(0, 2 ** 32), 'request');
    expectTypeError(() => loose.ioctl(0, 1, 'x'), 'arg');
    expectTypeError(() => loose.ioctl(0, 1, 1n), 'arg');
    expectTypeError(() => loose.ioctl(0, 1, new Uint16Array(2)), 'arg');
    expectTypeError(() => loose.ioctl(0, 1, new DataView(new ArrayBuffer(4))), 'arg');
    expectTypeError(() => loose.ioctl(0, 1, null), 'arg');
    expectRangeError(() => native.ioctl(0, 1, 2 ** 53), 'arg');
  });

  it('pread/pwrite: buffer a Uint8Array, offset a non-negative number or bigint below 2^63', () => {
    for (const fn of ['pread', 'pwrite']) {
      expectTypeError(() => loose[fn](0, new ArrayBuffer(8), 0n), 'buffer');
      expectTypeError(() => loose[fn](0, [1, 2], 0n), 'buffer');
      expectTypeError(() => loose[fn](0, bytes, '0'), 'offset');
      expectTypeError(() => loose[fn](0, bytes), 'offset');
      expectRangeError(() => loose[fn](0, bytes, -1n), 'offset');
      expectRangeError(() => loose[fn](0, bytes, 2n ** 63n), 'offset');
      expectRangeError(() => loose[fn](0, bytes, -1), 'offset');
    }
  });

  it('mmap: length a positive number, prot a number, offset number or bigint', () => {
    expectTypeError(() => loose.mmap(0, 4096n, 1, 0n), 'length');
    expectRangeError(() => native.mmap(0, 0, 1, 0n), 'length');
    expectTypeError(() => loose.mmap(0, 4096, '1', 0n), 'prot');
    expectTypeError(() => loose.mmap(0, 4096, 1, null), 'offset');
  });

  it('buffer arguments of the mapping functions must be ArrayBuffers', () => {
    for (const fn of ['munmap', 'freeDma', 'addressOf', 'mmioRead8', 'mmioRead64', 'mmioWrite32']) {
      expectTypeError(() => loose[fn](new Uint8Array(8), 0, 0), 'buffer');
      expectTypeError(() => loose[fn](new SharedArrayBuffer(8), 0, 0), 'buffer');
    }
  });

  it('MMIO offsets and values are typed', () => {
    const page = native.allocDma(1);
    try {
      expectTypeError(() => loose.mmioRead32(page, '0'), 'offset');
      expectTypeError(() => loose.mmioRead64(page, 0n), 'offset');
      expectTypeError(() => loose.mmioWrite32(page, 0, '1'), 'value');
      expectTypeError(() => loose.mmioWrite32(page, 0, 1n), 'value');
      expectTypeError(() => loose.mmioWrite64(page, 0, '1'), 'value');
      expectRangeError(() => loose.mmioWrite64(page, 0, 0.5), 'value');
      expect(native.mmioRead64(page, 0)).toBe(0n);
    } finally {
      native.freeDma(page);
    }
  });

  it('eventfd, poll and allocDma arguments', () => {
    expectTypeError(() => loose.eventfd('0', 0), 'initval');
    expectTypeError(() => loose.eventfd(0), 'flags');
    expectTypeError(() => loose.eventfdWrite(0, '1'), 'value');
    expectTypeError(() => loose.poll(0, 'callback'), 'onReadable');
    expectTypeError(() => loose.poll(0), 'onReadable');
    expectTypeError(() => loose.allocDma('4096'), 'size');
  });
});
