import * as fs from 'node:fs';
import { VfioError } from '../../src/core/errors';
import { nativeBackend as native, O_RDONLY, O_RDWR } from '../../src/core/native';
import { removeTempDirs, tempFile, thrown } from './helpers';

// _IO(';', 100): VFIO_GET_API_VERSION. /dev/null is not a VFIO fd.
const VFIO_GET_API_VERSION = 0x3b64;

afterAll(removeTempDirs);

describe('errno errors from the addon', () => {
  it('are VfioErrors with Node\'s shape: ENOTTY from a VFIO ioctl on /dev/null', () => {
    const fd = native.open('/dev/null', O_RDWR);
    try {
      const error = thrown(() => native.ioctl(fd, VFIO_GET_API_VERSION));
      expect(error).toBeInstanceOf(VfioError);
      expect(error.name).toBe('VfioError');
      expect(error).toMatchObject({ code: 'ENOTTY', errno: -25, syscall: 'ioctl' });
      expect(error.message).toBe('ENOTTY: inappropriate ioctl for device, ioctl');
    } finally {
      native.close(fd);
    }
  });

  it('EBADF on a closed fd, for each syscall that takes one', () => {
    const fd = native.open(tempFile(16), O_RDWR);
    native.close(fd);
    const buffer = new Uint8Array(4);
    const calls: Array<[string, () => unknown]> = [
      ['close', () => native.close(fd)],
      ['ioctl', () => native.ioctl(fd, VFIO_GET_API_VERSION)],
      ['pread', () => native.pread(fd, buffer, 0n)],
      ['pwrite', () => native.pwrite(fd, buffer, 0n)],
      ['mmap', () => native.mmap(fd, 4096, 1, 0n)],
      ['read', () => native.eventfdRead(fd)],
      ['write', () => native.eventfdWrite(fd, 1n)],
    ];
    for (const [syscall, call] of calls) {
      const error = thrown(call);
      expect(error).toBeInstanceOf(VfioError);
      expect(error).toMatchObject({ code: 'EBADF', errno: -9, syscall });
    }
  });

  it('ENOENT from open names the syscall and carries the generic hint', () => {
    const error = thrown(() => native.open('/nonexistent/vfio/42', O_RDONLY));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open' });
    expect(error.message).toMatch(/^ENOENT: no such file or directory, open/);
    expect(typeof error.hint).toBe('string');
  });

  it('EACCES from mmap with PROT_WRITE of a read-only fd', () => {
    const fd = native.open(tempFile(4096), O_RDONLY);
    try {
      expect(thrown(() => native.mmap(fd, 4096, 1 | 2, 0n))).toMatchObject({ code: 'EACCES', syscall: 'mmap' });
    } finally {
      native.close(fd);
    }
  });

  it('match what Node itself throws for the same failure', () => {
    let nodeError: NodeJS.ErrnoException | undefined;
    try {
      fs.closeSync(2 ** 30);
    } catch (error) {
      nodeError = error as NodeJS.ErrnoException;
    }
    const ours = thrown(() => native.close(2 ** 30));
    expect(ours).toMatchObject({ code: nodeError?.code, errno: nodeError?.errno, syscall: nodeError?.syscall });
  });
});
