import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { nativeBackend as native, O_CLOEXEC, PROT_READ, PROT_WRITE } from '../../src/core/native';
import { fdFlags, packageRoot, thrown } from './helpers';

const page = native.pageSize();

function openFds(): string[] {
  return fs.readdirSync('/proc/self/fd');
}

describe('memfd', () => {
  it('is a close-on-exec memfd of the size asked, labelled with the name', () => {
    const fd = native.memfd('vfio-test', 3 * page);
    try {
      expect(fdFlags(fd) & O_CLOEXEC).toBe(O_CLOEXEC);
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toBe('/memfd:vfio-test (deleted)');
      expect(fs.fstatSync(fd).size).toBe(3 * page);
    } finally {
      native.close(fd);
    }
  });

  it('maps shared: two mappings and pread/pwrite see the same bytes', () => {
    const fd = native.memfd('shared', 2 * page);
    const a = native.mmap(fd, 2 * page, PROT_READ | PROT_WRITE, 0n);
    const b = native.mmap(fd, page, PROT_READ | PROT_WRITE, BigInt(page));
    try {
      new Uint8Array(a)[page + 5] = 0x5a;
      expect(new Uint8Array(b)[5]).toBe(0x5a);
      native.pwrite(fd, Uint8Array.of(1, 2), 10n);
      expect([...new Uint8Array(a, 10, 2)]).toEqual([1, 2]);
      expect(native.addressOf(a) % BigInt(page)).toBe(0n);
    } finally {
      native.munmap(a);
      native.munmap(b);
      native.close(fd);
    }
  });

  it('takes size 0 and names up to the kernel limit; a longer name is the kernel\'s EINVAL', () => {
    native.close(native.memfd('', 0));
    native.close(native.memfd('n'.repeat(249), page));
    const before = openFds();
    expect(thrown(() => native.memfd('n'.repeat(250), page))).toMatchObject({ name: 'VfioError', code: 'EINVAL', syscall: 'memfd_create' });
    expect(openFds()).toEqual(before);
  });

  it('refuses bad arguments before the syscall, and never leaves an fd behind', () => {
    const before = openFds();
    for (const size of [-1, 1.5, NaN, Infinity, 2 ** 53]) {
      expect(thrown(() => native.memfd('x', size))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    }
    for (const size of ['1', 1n, undefined, null, {}]) {
      expect(thrown(() => native.memfd('x', size as never))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    }
    for (const name of [1, undefined, null, Symbol('x')]) {
      expect(thrown(() => native.memfd(name as never, page))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    }
    expect(thrown(() => native.memfd('a\0b', page))).toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    expect(thrown(() => (native.memfd as unknown as () => number)())).toMatchObject({ name: 'TypeError' });
    expect(openFds()).toEqual(before);
  });

  it('a huge size is sparse: the kernel takes it without allocating', () => {
    const fd = native.memfd('huge', Number.MAX_SAFE_INTEGER);
    try {
      expect(fs.fstatSync(fd).size).toBe(Number.MAX_SAFE_INTEGER);
    } finally {
      native.close(fd);
    }
  });

  it('closes the memfd when ftruncate fails (EFBIG past RLIMIT_FSIZE, in a child)', () => {
    const script = `
      const root = ${JSON.stringify(packageRoot)};
      const addon = require(require.resolve('node-gyp-build', { paths: [root] }))(root);
      const fs = require('node:fs');
      const memfds = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
        try { return fs.readlinkSync('/proc/self/fd/' + fd).startsWith('/memfd:big'); } catch { return false; }
      });
      let code;
      try { addon.memfd('big', 1 << 20); } catch (error) { code = error.code + ' ' + error.syscall; }
      process.stdout.write(JSON.stringify({ code, left: memfds() }));
    `;
    const child = spawnSync('/usr/bin/prlimit', ['--fsize=65536', process.execPath, '-e', script], { encoding: 'utf8', timeout: 20000 });
    expect({ status: child.status, stderr: child.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(child.stdout)).toEqual({ code: 'EFBIG ftruncate', left: [] });
  });
});
