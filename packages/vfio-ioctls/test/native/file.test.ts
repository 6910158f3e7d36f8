import * as fs from 'node:fs';
import { nativeBackend as native, O_CLOEXEC, O_RDONLY, O_RDWR } from '../../src/core/native';
import { fdFlags, isOpen, removeTempDirs, tempFile, thrown } from './helpers';

// From <asm-generic/ioctls.h> and <linux/fs.h>.
const FIONCLEX = 0x5450;
const FIOCLEX = 0x5451;
const FIONREAD = 0x541b;
const FIGETBSZ = 0x2;

afterAll(removeTempDirs);

describe('open and close', () => {
  it('opens with O_CLOEXEC always added and closes the fd', () => {
    const fd = native.open(tempFile(8), O_RDWR);
    expect(isOpen(fd)).toBe(true);
    expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
    expect(fdFlags(fd) & 3).toBe(O_RDWR);
    native.close(fd);
    expect(isOpen(fd)).toBe(false);
  });

  it('honours the access mode', () => {
    const fd = native.open(tempFile(8), O_RDONLY);
    try {
      expect(fdFlags(fd) & 3).toBe(O_RDONLY);
      expect(thrown(() => native.pwrite(fd, new Uint8Array(1), 0n))).toMatchObject({ code: 'EBADF', syscall: 'pwrite' });
    } finally {
      native.close(fd);
    }
  });
});

describe('ioctl', () => {
  let fd: number;
  beforeEach(() => {
    fd = native.open(tempFile(Buffer.alloc(100, 7)), O_RDWR);
  });
  afterEach(() => native.close(fd));

  it('without an argument (FIONCLEX, FIOCLEX) returns 0 and acts', () => {
    expect(native.ioctl(fd, FIONCLEX)).toBe(0);
    expect(fdFlags(fd) & O_CLOEXEC).toBe(0);
    expect(native.ioctl(fd, FIOCLEX)).toBe(0);
    expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
  });

  it('with a byte buffer the kernel writes in place (FIONREAD, FIGETBSZ)', () => {
    const count = new Uint8Array(4);
    expect(native.ioctl(fd, FIONREAD, count)).toBe(0);
    expect(Buffer.from(count).readInt32LE(0)).toBe(100);
    // A view with a byteOffset: the kernel gets the view's own bytes.
    const backing = new Uint8Array(12).fill(0xee);
    const view = new Uint8Array(backing.buffer, 4, 4);
    native.ioctl(fd, FIGETBSZ, view);
    const blockSize = Buffer.from(view).readInt32LE(0);
    expect(blockSize).toBe(fs.statSync(`/proc/self/fd/${fd}`).blksize);
    expect([...backing.subarray(0, 4), ...backing.subarray(8)]).toEqual(new Array(8).fill(0xee));
  });

  it('with an integer passed by value (FIONREAD given an address)', () => {
    const page = native.allocDma(1);
    try {
      // The integer is handed to the kernel as is: here, as the pointer it writes to.
      expect(native.ioctl(fd, FIONREAD, Number(native.addressOf(page)))).toBe(0);
      expect(native.mmioRead32(page, 0)).toBe(100);
      expect(thrown(() => native.ioctl(fd, FIONREAD, 0))).toMatchObject({ code: 'EFAULT', syscall: 'ioctl' });
    } finally {
      native.freeDma(page);
    }
  });
});

describe('pread and pwrite', () => {
  it('write and read at offsets, as bigint or number', () => {
    const file = tempFile(64);
    const fd = native.open(file, O_RDWR);
    try {
      expect(native.pwrite(fd, Uint8Array.from([1, 2, 3, 4]), 10n)).toBe(4);
      expect(native.pwrite(fd, Uint8Array.from([9, 8]), 62n)).toBe(2);
      const onDisk = fs.readFileSync(file);
      expect([...onDisk.subarray(10, 14)]).toEqual([1, 2, 3, 4]);
      expect([...onDisk.subarray(62)]).toEqual([9, 8]);

      const buffer = new Uint8Array(6);
      expect(native.pread(fd, buffer, 9n)).toBe(6);
      expect([...buffer]).toEqual([0, 1, 2, 3, 4, 0]);
      expect(native.pread(fd, buffer, 60 as unknown as bigint)).toBe(4);
      expect([...buffer.subarray(0, 4)]).toEqual([0, 0, 9, 8]);
      expect(native.pread(fd, buffer, 64n)).toBe(0);
    } finally {
      native.close(fd);
    }
  });

  it('use the view\'s window of its buffer, and extend the file past its end', () => {
    const file = tempFile(0);
    const fd = native.open(file, O_RDWR);
    try {
      const backing = Uint8Array.from([0, 0, 5, 6, 7, 0]);
      expect(native.pwrite(fd, backing.subarray(2, 5), 4096n)).toBe(3);
      expect(fs.statSync(file).size).toBe(4099);
      const into = new Uint8Array(8);
      expect(native.pread(fd, into.subarray(4), 4095n)).toBe(4);
      expect([...into]).toEqual([0, 0, 0, 0, 0, 5, 6, 7]);
    } finally {
      native.close(fd);
    }
  });
});
