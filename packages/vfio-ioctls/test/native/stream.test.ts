/** read and write: the addon's calls for fds without offsets (a migration data fd), here on a temp file's own position. */
import * as fs from 'node:fs';
import { nativeBackend as native, O_RDONLY, O_RDWR } from '../../src/core/native';
import { removeTempDirs, tempFile, thrown } from './helpers';

afterAll(removeTempDirs);

describe('read and write', () => {
  it('move through the file from its position, 0 at the end', () => {
    const file = tempFile(Uint8Array.from([1, 2, 3, 4, 5, 6, 7]));
    const fd = native.open(file, O_RDWR);
    try {
      const buffer = new Uint8Array(3);
      expect(native.read(fd, buffer)).toBe(3);
      expect([...buffer]).toEqual([1, 2, 3]);
      expect(native.read(fd, buffer)).toBe(3);
      expect([...buffer]).toEqual([4, 5, 6]);
      expect(native.read(fd, buffer)).toBe(1);
      expect(buffer[0]).toBe(7);
      expect(native.read(fd, buffer)).toBe(0);
      // Appended where reading stopped: the file's position, not an offset.
      expect(native.write(fd, Uint8Array.from([8, 9]))).toBe(2);
      expect([...fs.readFileSync(file)]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    } finally {
      native.close(fd);
    }
  });

  it('use the view\'s window of its buffer', () => {
    const file = tempFile(Uint8Array.from([10, 11, 12, 13]));
    const fd = native.open(file, O_RDWR);
    try {
      const backing = new Uint8Array(8).fill(0xee);
      expect(native.read(fd, backing.subarray(2, 4))).toBe(2);
      expect([...backing]).toEqual([0xee, 0xee, 10, 11, 0xee, 0xee, 0xee, 0xee]);
      expect(native.write(fd, Uint8Array.from([1, 2, 3, 4]).subarray(1, 3))).toBe(2);
      expect([...fs.readFileSync(file)]).toEqual([10, 11, 2, 3]);
    } finally {
      native.close(fd);
    }
  });

  it('report the kernel\'s errno and bad arguments by name', () => {
    const fd = native.open(tempFile(4), O_RDONLY);
    try {
      expect(thrown(() => native.write(fd, new Uint8Array(1)))).toMatchObject({ code: 'EBADF', syscall: 'write' });
      expect(thrown(() => native.read(fd, [0] as unknown as Uint8Array))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      expect(thrown(() => native.read(-1, new Uint8Array(1)))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    } finally {
      native.close(fd);
    }
    expect(thrown(() => native.read(fd, new Uint8Array(1)))).toMatchObject({ code: 'EBADF', syscall: 'read' });
  });
});
