import { nativeBackend as native, O_RDWR, PROT_READ, PROT_WRITE } from '../../src/core/native';
import { removeTempDirs, tempFile, thrown } from './helpers';

const page = native.pageSize();
let fd: number;

beforeEach(() => {
  fd = native.open(tempFile(2 * page), O_RDWR);
});
afterEach(() => native.close(fd));
afterAll(removeTempDirs);

function mapBoth(): ArrayBuffer {
  return native.mmap(fd, 2 * page, PROT_READ | PROT_WRITE, 0n);
}

describe('mmap', () => {
  it('maps the file shared: pwrite shows through the mapping and stores reach the file', () => {
    const buffer = mapBoth();
    expect(buffer.byteLength).toBe(2 * page);
    native.pwrite(fd, Uint8Array.from([0xaa, 0xbb]), 100n);
    expect([...new Uint8Array(buffer, 100, 2)]).toEqual([0xaa, 0xbb]);
    new Uint8Array(buffer)[200] = 0x5a;
    const back = new Uint8Array(1);
    native.pread(fd, back, 200n);
    expect(back[0]).toBe(0x5a);
    native.munmap(buffer);
  });

  it('maps at a file offset', () => {
    native.pwrite(fd, Uint8Array.from([1, 2, 3]), BigInt(page + 8));
    const buffer = native.mmap(fd, page, PROT_READ, BigInt(page));
    expect(buffer.byteLength).toBe(page);
    expect([...new Uint8Array(buffer, 8, 3)]).toEqual([1, 2, 3]);
    native.munmap(buffer);
  });

  it('fails with EINVAL for an offset that is not page-aligned', () => {
    expect(thrown(() => native.mmap(fd, page, PROT_READ, 1n))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
  });
});

describe('MMIO accessors', () => {
  let buffer: ArrayBuffer;
  beforeEach(() => {
    buffer = mapBoth();
  });
  afterEach(() => {
    if (buffer.byteLength > 0) native.munmap(buffer);
  });

  it('read what pwrite wrote, at every width, little-endian', () => {
    native.pwrite(fd, Uint8Array.from([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x88]), 64n);
    expect(native.mmioRead8(buffer, 64)).toBe(0x01);
    expect(native.mmioRead8(buffer, 71)).toBe(0x88);
    expect(native.mmioRead16(buffer, 64)).toBe(0x0201);
    expect(native.mmioRead16(buffer, 70)).toBe(0x8807);
    expect(native.mmioRead32(buffer, 64)).toBe(0x04030201);
    expect(native.mmioRead32(buffer, 68)).toBe(0x88070605);
    expect(native.mmioRead64(buffer, 64)).toBe(0x8807060504030201n);
  });

  it('write what pread then reads, at every width', () => {
    native.mmioWrite8(buffer, 0, 0xfe);
    native.mmioWrite16(buffer, 2, 0xbeef);
    native.mmioWrite32(buffer, 4, 0xdeadbeef);
    native.mmioWrite64(buffer, 8, 0xfedcba9876543210n);
    native.mmioWrite64(buffer, 2 * page - 8, 0xffffffffffffffffn);
    const bytes = new Uint8Array(16);
    native.pread(fd, bytes, 0n);
    expect(Buffer.from(bytes).toString('hex')).toBe('fe00efbeefbeadde1032547698badcfe');
    native.pread(fd, bytes.subarray(0, 8), BigInt(2 * page - 8));
    expect(Buffer.from(bytes.subarray(0, 8)).toString('hex')).toBe('ffffffffffffffff');
  });

  it('accept the largest value of each width and a number for 64 bits', () => {
    native.mmioWrite8(buffer, 0, 0xff);
    native.mmioWrite16(buffer, 0, 0xffff);
    native.mmioWrite32(buffer, 0, 0xffffffff);
    expect(native.mmioRead32(buffer, 0)).toBe(0xffffffff);
    native.mmioWrite64(buffer, 0, 42 as unknown as bigint);
    expect(native.mmioRead64(buffer, 0)).toBe(42n);
  });

  it('reject offsets out of bounds with a RangeError naming offset', () => {
    const end = 2 * page;
    const cases: Array<() => unknown> = [
      () => native.mmioRead8(buffer, end),
      () => native.mmioRead16(buffer, end - 1),
      () => native.mmioRead32(buffer, end - 2),
      () => native.mmioRead64(buffer, end - 4),
      () => native.mmioWrite32(buffer, end, 0),
      () => native.mmioRead8(buffer, -1),
      () => native.mmioRead32(buffer, 2 ** 53),
      () => native.mmioRead32(buffer, 1.5),
      () => native.mmioRead32(buffer, NaN),
    ];
    for (const call of cases) {
      const error = thrown(call);
      expect(error).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(error.message).toContain('"offset"');
    }
    expect(native.mmioRead8(buffer, end - 1)).toBe(0);
    expect(native.mmioRead64(buffer, end - 8)).toBe(0n);
  });

  it('reject misaligned offsets with a RangeError naming offset', () => {
    const cases: Array<() => unknown> = [
      () => native.mmioRead16(buffer, 1),
      () => native.mmioRead32(buffer, 2),
      () => native.mmioRead64(buffer, 4),
      () => native.mmioWrite16(buffer, 3, 0),
      () => native.mmioWrite32(buffer, 6, 0),
      () => native.mmioWrite64(buffer, 12, 0n),
    ];
    for (const call of cases) {
      const error = thrown(call);
      expect(error).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(error.message).toMatch(/"offset" must be a multiple of [248]/);
    }
  });

  it('reject values that do not fit the width with a RangeError naming value', () => {
    const cases: Array<() => unknown> = [
      () => native.mmioWrite8(buffer, 0, 0x100),
      () => native.mmioWrite16(buffer, 0, 0x10000),
      () => native.mmioWrite32(buffer, 0, 2 ** 32),
      () => native.mmioWrite32(buffer, 0, -1),
      () => native.mmioWrite64(buffer, 0, -1n),
      () => native.mmioWrite64(buffer, 0, 2n ** 64n),
    ];
    for (const call of cases) {
      const error = thrown(call);
      expect(error).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      expect(error.message).toContain('"value"');
    }
    expect(native.mmioRead64(buffer, 0)).toBe(0n);
  });

  it('refuse a store to a mapping without PROT_WRITE (which would be SIGSEGV)', () => {
    const readOnly = native.mmap(fd, page, PROT_READ, 0n);
    try {
      expect(native.mmioRead32(readOnly, 0)).toBe(0);
      const error = thrown(() => native.mmioWrite32(readOnly, 0, 1));
      expect(error).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
      expect(error.message).toContain('PROT_WRITE');
    } finally {
      native.munmap(readOnly);
    }
  });

  it('refuse buffers that are not live mappings', () => {
    for (const call of [() => native.mmioRead32(new ArrayBuffer(8), 0), () => native.munmap(new ArrayBuffer(4096))]) {
      const error = thrown(call);
      expect(error).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
      expect(error.message).toContain('"buffer"');
    }
  });
});

describe('munmap', () => {
  it('detaches the buffer first: views and accessors then throw', () => {
    const buffer = mapBoth();
    const view = new Uint8Array(buffer);
    native.mmioWrite8(buffer, 0, 1);
    native.munmap(buffer);
    expect(buffer.byteLength).toBe(0);
    expect(view.length).toBe(0);
    expect(view[0]).toBeUndefined();
    expect(thrown(() => new Uint8Array(buffer)).name).toBe('TypeError');
    for (const call of [() => native.mmioRead8(buffer, 0), () => native.mmioWrite32(buffer, 0, 0), () => native.addressOf(buffer)]) {
      expect(thrown(call)).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    }
  });

  it('throws the second time instead of unmapping twice', () => {
    const buffer = mapBoth();
    native.munmap(buffer);
    const error = thrown(() => native.munmap(buffer));
    expect(error).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(error.message).toContain('mmap()');
  });

  it('only takes buffers from mmap, not DMA memory', () => {
    const dma = native.allocDma(page);
    try {
      expect(thrown(() => native.munmap(dma))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
      expect(dma.byteLength).toBe(page);
    } finally {
      native.freeDma(dma);
    }
  });
});
