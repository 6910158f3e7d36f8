/**
 * Guest memory on the host's real kernel (no VFIO needed: memfds and
 * hugetlbfs are plain mm): the memfd is sealed against shrinking, a second
 * buffer from its fd and a worker thread that maps the same fd see the same
 * pages, and huge pages fail with the hint while the host has none free.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DmaBuffer, VfioError } from '../src';
import { nativeBackend as native } from '../src/core/native';
import { addressOf } from '../src/unsafe';
import { thrown } from './helpers';

const packageRoot = path.resolve(__dirname, '..');
const HUGE = 2 * 1024 * 1024;
const POOL = '/sys/kernel/mm/hugepages/hugepages-2048kB';

function openFds(): string[] {
  return fs.readdirSync('/proc/self/fd');
}

/**
 * Runs `source` in a worker thread with `data`; resolves with what it posts
 * back once the worker has exited, since its event loop's own fds (epoll,
 * eventfds) close only then and the next test's fd count would see them go.
 */
function inWorker(source: string, data: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: data });
    let posted: unknown;
    worker.once('message', (message) => { posted = message; });
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve(posted) : reject(new Error(`worker exited with ${code}`))));
  });
}

describe('guest memory on the real kernel', () => {
  test('the memfd cannot shrink (F_SEAL_SHRINK) but its pages are shared with a second buffer from its fd', () => {
    const before = openFds().length;
    const first = DmaBuffer.alloc(4 * 4096, { memfd: true });
    const fd = first.dupMemfd();
    expect(thrown(() => fs.ftruncateSync(fd, 4096))).toMatchObject({ code: 'EPERM' });
    const second = DmaBuffer.fromMemfd(fd);
    fs.closeSync(fd);
    expect(addressOf(second)).not.toBe(addressOf(first));
    first.bytes[3 * 4096 + 1] = 0xab;
    expect(second.bytes[3 * 4096 + 1]).toBe(0xab);
    second.bytes[7] = 0xcd;
    expect(first.bytes[7]).toBe(0xcd);
    first.close();
    second.close();
    expect(openFds().length).toBe(before);
  });

  test('a worker thread maps the same fd and its writes land in this thread\'s buffer, and leaves no fd', async () => {
    const before = openFds().length;
    const buffer = DmaBuffer.alloc(2 * 4096, { memfd: true });
    const fd = buffer.dupMemfd();
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const addon = require('node-gyp-build')(workerData.root);
      const file = addon.memfdDup(workerData.fd);
      const memory = addon.mmap(file.fd, file.size, 3, 0n);
      new Uint8Array(memory)[4096 + 9] = 0x77;
      addon.munmap(memory);
      addon.close(file.fd);
      parentPort.postMessage(file.size);`;
    expect(await inWorker(source, { root: packageRoot, fd })).toBe(2 * 4096);
    fs.closeSync(fd);
    expect(buffer.bytes[4096 + 9]).toBe(0x77);
    buffer.close();
    expect(openFds().length).toBe(before);
  });

  test('fromMemfd of an fd that is not a memfd is a TypeError naming fd, and leaves no fd', () => {
    const before = openFds().length;
    const fd = fs.openSync('/dev/null', 'r');
    expect(thrown(() => DmaBuffer.fromMemfd(fd))).toMatchObject({ name: 'TypeError', message: expect.stringContaining('fd must be the fd of a memfd') });
    fs.closeSync(fd);
    expect(openFds().length).toBe(before);
  });

  test('the addon checks hugePageSize and memfdDup\'s fd before any syscall, and names fcntl for a file that is not a memfd', () => {
    const before = openFds().length;
    expect(thrown(() => native.memfd('x', 4096, 3))).toMatchObject({ name: 'RangeError' });
    expect(thrown(() => native.memfd('x', 4096, -1))).toMatchObject({ name: 'RangeError' });
    expect(thrown(() => native.memfdDup(-1))).toMatchObject({ name: 'RangeError' });
    const fd = fs.openSync('/dev/null', 'r');
    expect(thrown(() => native.memfdDup(fd))).toMatchObject({ name: 'VfioError', code: 'EINVAL', syscall: 'fcntl' });
    fs.closeSync(fd);
    const memfd = native.memfd('x', 8192);
    const file = native.memfdDup(memfd);
    expect(file).toMatchObject({ size: 8192, pageSize: 4096 });
    expect(file.seals & 2).toBe(2); // F_SEAL_SHRINK
    native.close(file.fd);
    native.close(memfd);
    expect(openFds().length).toBe(before);
  });

  test('2 MiB huge pages: with none free, ENOMEM from mmap with the hint; with some free, memory of that page size', () => {
    const before = openFds().length;
    const free = Number(fs.readFileSync(`${POOL}/free_hugepages`, 'utf8'));
    if (free === 0) {
      const error = thrown(() => DmaBuffer.alloc(HUGE, { hugePageSize: HUGE }));
      expect(error).toBeInstanceOf(VfioError);
      expect(error).toMatchObject({ code: 'ENOMEM', syscall: 'mmap' });
      expect(String(error.hint)).toContain(`${POOL}/nr_hugepages`);
    } else {
      const buffer = DmaBuffer.alloc(HUGE, { hugePageSize: HUGE });
      expect(buffer.pageSize).toBe(HUGE);
      expect(addressOf(buffer) % BigInt(HUGE)).toBe(0n);
      buffer.close();
    }
    expect(openFds().length).toBe(before);
  });
});
