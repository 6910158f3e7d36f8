import { readdirSync, readlinkSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Poller } from '../../src/core/backend';
import { VfioError } from '../../src/core/errors';
import { nativeBackend as native } from '../../src/core/native';
import { packageRoot, removeTempDirs, settle, tempFile, thrown, until } from './helpers';
import { runChild } from './child';

afterAll(removeTempDirs);

/** An eventfd whose poller drains the counter into `counts`, as an Irq would. */
function watched(): { fd: number; poller: Poller; counts: bigint[]; errors: Array<Error | null> } {
  const fd = native.eventfd(0, 0);
  const counts: bigint[] = [];
  const errors: Array<Error | null> = [];
  const poller = native.poll(fd, (error) => {
    errors.push(error);
    counts.push(native.eventfdRead(fd));
  });
  return { fd, poller, counts, errors };
}

describe('poller on the main thread', () => {
  it('delivers each signal once, on the event loop', async () => {
    const { fd, poller, counts, errors } = watched();
    try {
      poller.start();
      native.eventfdWrite(fd, 3n);
      expect(counts).toEqual([]); // never synchronously
      await until(() => counts.length === 1);
      native.eventfdWrite(fd, 4n);
      native.eventfdWrite(fd, 1n);
      await until(() => counts.length === 2);
      await settle();
      expect(counts).toEqual([3n, 5n]);
      expect(errors).toEqual([null, null]);
    } finally {
      poller.close();
      native.close(fd);
    }
  });

  it('is created stopped, stops, and starts again', async () => {
    const { fd, poller, counts } = watched();
    try {
      native.eventfdWrite(fd, 1n);
      await settle();
      expect(counts).toEqual([]);
      poller.start();
      poller.start(); // idempotent
      await until(() => counts.length === 1);
      poller.stop();
      native.eventfdWrite(fd, 2n);
      await settle();
      expect(counts).toEqual([1n]);
      poller.stop(); // idempotent
      poller.start();
      await until(() => counts.length === 2);
      expect(counts).toEqual([1n, 2n]);
    } finally {
      poller.close();
      native.close(fd);
    }
  });

  it('close is idempotent and final: no more callbacks, start throws ERR_VFIO_CLOSED', async () => {
    const { fd, poller, counts } = watched();
    poller.start();
    poller.close();
    poller.close();
    poller.stop();
    poller.ref();
    poller.unref();
    native.eventfdWrite(fd, 1n);
    await settle();
    expect(counts).toEqual([]);
    const error = thrown(() => poller.start());
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'ERR_VFIO_CLOSED', errno: 0 });
    native.close(fd);
  });

  it('may be closed from its own callback', async () => {
    const fd = native.eventfd(0, 0);
    let calls = 0;
    const poller: Poller = native.poll(fd, () => {
      calls++;
      poller.close();
    });
    poller.start();
    native.eventfdWrite(fd, 1n); // never drained: a live poller would call again and again
    await until(() => calls === 1);
    await settle();
    expect(calls).toBe(1);
    native.close(fd);
  });

  it('refuses fds epoll cannot watch (a regular file: EPERM) and bad fds (EBADF)', () => {
    const fd = native.open(tempFile(8), 2);
    try {
      expect(thrown(() => native.poll(fd, () => undefined))).toMatchObject({ code: 'EPERM', syscall: 'uv_poll_init' });
    } finally {
      native.close(fd);
    }
    expect(thrown(() => native.poll(2 ** 30, () => undefined))).toMatchObject({ code: 'EBADF', syscall: 'uv_poll_init' });
  });
});

/** The process's epoll fds (each watchEventfds holds one until closed). */
function epollFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[eventpoll]') n++;
    } catch {
      // The fd readdir itself held.
    }
  }
  return n;
}

describe('watchEventfds: many eventfds, one epoll fd, drained in the native callback', () => {
  it('reads every ready eventfd and calls back once per wake-up with positions and counts', async () => {
    const fds = Array.from({ length: 64 }, () => native.eventfd(0, 0));
    const wakes: Array<{ error: Error | null; positions: number[]; counts: number[] }> = [];
    const poller = native.watchEventfds(fds, (error, positions = [], counts = []) => wakes.push({ error, positions: [...positions], counts: [...counts] }));
    try {
      poller.start();
      fds.forEach((fd, i) => native.eventfdWrite(fd, BigInt(i + 1)));
      native.eventfdWrite(fds[7]!, 100n);
      expect(wakes).toEqual([]); // never synchronously
      await until(() => wakes.length === 1);
      await settle();
      expect(wakes).toHaveLength(1);
      const { error, positions, counts } = wakes[0]!;
      expect(error).toBeNull();
      const byPosition = new Map(positions.map((p, i) => [p, counts[i]]));
      expect([...byPosition.keys()].sort((a, b) => a - b)).toEqual(fds.map((_, i) => i));
      fds.forEach((_, i) => expect(byPosition.get(i)).toBe(i + 1 + (i === 7 ? 100 : 0)));
      // Drained: the counters are zero now.
      for (const fd of fds) expect(thrown(() => native.eventfdRead(fd))).toMatchObject({ code: 'EAGAIN' });
      native.eventfdWrite(fds[63]!, 1n);
      await until(() => wakes.length === 2);
      expect(wakes[1]).toEqual({ error: null, positions: [63], counts: [1] });
    } finally {
      poller.close();
      for (const fd of fds) native.close(fd);
    }
  });

  it('closed while interrupts are pending: no callback, and its epoll fd is gone at once', async () => {
    const before = epollFds();
    const fds = [native.eventfd(0, 0), native.eventfd(0, 0)];
    let calls = 0;
    const poller = native.watchEventfds(fds, () => calls++);
    expect(epollFds()).toBe(before + 1);
    poller.start();
    native.eventfdWrite(fds[1]!, 1n);
    poller.close();
    poller.close(); // idempotent
    expect(epollFds()).toBe(before);
    await settle();
    expect(calls).toBe(0);
    expect(native.eventfdRead(fds[1]!)).toBe(1n); // the eventfds are the caller's, untouched
    expect(thrown(() => poller.start())).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
    for (const fd of fds) native.close(fd);
  });

  it('one eventfd is watched directly (no epoll fd) and drained the same way', async () => {
    const before = epollFds();
    const fd = native.eventfd(0, 0);
    const wakes: unknown[][] = [];
    const poller = native.watchEventfds([fd], (error, positions, counts) => wakes.push([error, positions, counts]));
    try {
      expect(epollFds()).toBe(before);
      poller.start();
      native.eventfdWrite(fd, 3n);
      await until(() => wakes.length === 1);
      native.eventfdWrite(fd, 2n);
      await until(() => wakes.length === 2);
      await settle();
      expect(wakes).toEqual([[null, [0], [3]], [null, [0], [2]]]);
      expect(thrown(() => native.eventfdRead(fd))).toMatchObject({ code: 'EAGAIN' });
    } finally {
      poller.close();
      native.close(fd);
    }
  });

  it('refuses bad fds (EBADF), files epoll cannot watch (EPERM), an fd twice (EEXIST) and non-arrays, leaving no epoll fd', () => {
    const before = epollFds();
    const fd = native.eventfd(0, 0);
    const file = native.open(tempFile(8), 2);
    try {
      expect(thrown(() => native.watchEventfds([fd, 2 ** 30], () => undefined))).toMatchObject({ code: 'EBADF', syscall: 'epoll_ctl' });
      expect(thrown(() => native.watchEventfds([fd, file], () => undefined))).toMatchObject({ code: 'EPERM', syscall: 'epoll_ctl' });
      expect(thrown(() => native.watchEventfds([fd, fd], () => undefined))).toMatchObject({ code: 'EEXIST', syscall: 'epoll_ctl' });
      expect(thrown(() => native.watchEventfds([-1], () => undefined))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('fds[0]') });
      expect(thrown(() => native.watchEventfds(['3'] as never, () => undefined))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => native.watchEventfds(fd as never, () => undefined))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => native.watchEventfds([fd], 1 as never))).toMatchObject({ name: 'TypeError', message: expect.stringContaining('onWake') });
      expect(epollFds()).toBe(before);
    } finally {
      native.close(file);
      native.close(fd);
    }
  });
});

describe('poller in a worker thread', () => {
  const workerSource = `
    const { parentPort, workerData } = require('node:worker_threads');
    const addon = require(require.resolve('node-gyp-build', { paths: [workerData.root] }))(workerData.root);
    class WorkerError extends Error {
      constructor(code, message, context) { super(message); this.code = code; Object.assign(this, context); }
    }
    addon.setErrorClass(WorkerError);
    const fd = addon.eventfd(0, 0);
    const poller = addon.poll(fd, (error) => {
      parentPort.postMessage({ count: String(addon.eventfdRead(fd)), error });
    });
    poller.start();
    let ownError;
    try { addon.close(2 ** 30); } catch (e) { ownError = e instanceof WorkerError && e.code; }
    parentPort.postMessage({ fd, ownError });
    parentPort.on('message', () => { poller.close(); addon.close(fd); parentPort.close(); });
    if (workerData.mode === 'signal-self') addon.eventfdWrite(fd, 7n);
    // Only the started poller could keep this worker alive now.
    if (workerData.mode === 'unref') { poller.unref(); parentPort.unref(); }
  `;

  function start(mode: string): { worker: Worker; messages: Array<Record<string, unknown>>; exit: Promise<number> } {
    const worker = new Worker(workerSource, { eval: true, workerData: { root: packageRoot, mode } });
    const messages: Array<Record<string, unknown>> = [];
    worker.on('message', (message) => messages.push(message));
    const exit = new Promise<number>((resolve, reject) => {
      // A worker held open by a poller that should not hold it fails here, not at jest's timeout.
      const timer = setTimeout(() => {
        void worker.terminate();
        reject(new Error('worker did not exit within 10 s'));
      }, 10000);
      worker.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
      worker.on('error', reject);
    });
    return { worker, messages, exit };
  }

  it('delivers counts on the worker\'s own loop, signalled from either thread', async () => {
    const { worker, messages, exit } = start('signal-self');
    await until(() => messages.length >= 2);
    expect(messages[0]).toMatchObject({ ownError: 'EBADF' });
    expect(messages[1]).toEqual({ count: '7', error: null });
    // The eventfd is process-wide: the main thread signals, the worker's loop hears it.
    native.eventfdWrite(messages[0].fd as number, 5n);
    await until(() => messages.length >= 3);
    expect(messages[2]).toEqual({ count: '5', error: null });
    worker.postMessage('done');
    expect(await exit).toBe(0);
  });

  it('keeps its own error class per thread: the main thread still throws VfioError', async () => {
    const { worker, messages, exit } = start('idle');
    await until(() => messages.length >= 1);
    expect(messages[0]).toMatchObject({ ownError: 'EBADF' });
    expect(thrown(() => native.close(2 ** 30))).toBeInstanceOf(VfioError);
    worker.postMessage('done');
    expect(await exit).toBe(0);
  });

  it('closes a started poller when the worker is terminated', async () => {
    const { worker, messages, exit } = start('idle');
    await until(() => messages.length >= 1);
    await worker.terminate();
    expect(await exit).toBe(1);
    // The process survives the teardown (no abort on open handles) and the fd stays usable.
    native.eventfdWrite(messages[0].fd as number, 1n);
  });

  it('lets the worker exit by itself when unref\'d while started', async () => {
    const { messages, exit } = start('unref');
    expect(await exit).toBe(0);
    expect(messages[0]).toMatchObject({ ownError: 'EBADF' });
  });
});

describe('poller ref and unref (in a child process)', () => {
  // A started, ref'd poller keeps the process alive: the unref'd timer below
  // then fires and ends it. An unref'd one does not: the process exits first.
  function lifetime(setup: string): { status: number | null; stdout: string; stderr: string } {
    return runChild(`
      const fd = addon.eventfd(0, 0);
      const poller = addon.poll(fd, () => {});
      poller.start();
      ${setup}
      setTimeout(() => { console.log('alive'); poller.close(); }, 300).unref();
    `);
  }

  it('a started poller keeps the loop alive by default', () => {
    expect(lifetime('')).toMatchObject({ status: 0, stdout: 'alive\n', stderr: '' });
  });

  it('an unref\'d one does not', () => {
    expect(lifetime('poller.unref();')).toMatchObject({ status: 0, stdout: '', stderr: '' });
  });

  it('ref undoes unref', () => {
    expect(lifetime('poller.unref(); poller.ref();')).toMatchObject({ status: 0, stdout: 'alive\n', stderr: '' });
  });

  it('a stopped poller never holds the loop', () => {
    expect(lifetime('poller.stop();')).toMatchObject({ status: 0, stdout: '', stderr: '' });
  });

  it('an exception thrown by the callback is an uncaught exception', () => {
    const result = runChild(`
      const fd = addon.eventfd(1, 0);
      const poller = addon.poll(fd, () => { throw new Error('from the callback'); });
      process.on('uncaughtException', (error) => { console.log('uncaught:', error.message); poller.close(); });
      poller.start();
    `);
    expect(result).toMatchObject({ status: 0, stdout: 'uncaught: from the callback\n', stderr: '' });
  });

  it('closes on exit with pollers still started', () => {
    const result = runChild(`
      for (let i = 0; i < 3; i++) addon.poll(addon.eventfd(1, 0), () => {}).start();
      setTimeout(() => process.exit(0), 50);
    `);
    expect(result).toMatchObject({ status: 0, stderr: '' });
  });
});

