import { VFIO_DEVICE_SET_IRQS, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_MSI_IRQ_INDEX } from 'vfio-bindings';
import { FakeKernel, type FakePoller } from '../../src/testing';
import { EDU, irqSetArg, openDevice, thrown } from './helpers';

const EFD_SEMAPHORE = 1;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('eventfds', () => {
  let kernel: FakeKernel;
  beforeEach(() => {
    kernel = new FakeKernel();
  });
  afterEach(() => kernel.dispose());

  test('read takes the whole counter; EAGAIN when zero (syscall read)', () => {
    const fd = kernel.eventfd(2, 0);
    kernel.eventfdWrite(fd, 3n);
    expect(kernel.eventfdRead(fd)).toBe(5n);
    expect(thrown(() => kernel.eventfdRead(fd))).toMatchObject({ code: 'EAGAIN', errno: -11, syscall: 'read', name: 'VfioError' });
  });

  test('semaphore mode reads 1 at a time', () => {
    const fd = kernel.eventfd(2, EFD_SEMAPHORE);
    expect([kernel.eventfdRead(fd), kernel.eventfdRead(fd)]).toEqual([1n, 1n]);
    expect(thrown(() => kernel.eventfdRead(fd))).toMatchObject({ code: 'EAGAIN' });
  });

  test('write: 2^64-1 is EINVAL, overflowing the counter is EAGAIN (syscall write)', () => {
    const fd = kernel.eventfd(0, 0);
    expect(thrown(() => kernel.eventfdWrite(fd, 0xffffffffffffffffn))).toMatchObject({ code: 'EINVAL', syscall: 'write' });
    kernel.eventfdWrite(fd, 0xfffffffffffffffen);
    expect(thrown(() => kernel.eventfdWrite(fd, 1n))).toMatchObject({ code: 'EAGAIN' });
  });

  test('bad flags or initval are EINVAL; reading a non-eventfd is EINVAL, a closed one EBADF', () => {
    expect(thrown(() => kernel.eventfd(0, 0x40))).toMatchObject({ code: 'EINVAL', syscall: 'eventfd' });
    expect(thrown(() => kernel.eventfd(-1, 0))).toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    const c = kernel.open('/dev/vfio/vfio', 2);
    expect(thrown(() => kernel.eventfdRead(c))).toMatchObject({ code: 'EINVAL' });
    const fd = kernel.eventfd(0, 0);
    kernel.close(fd);
    expect(thrown(() => kernel.eventfdRead(fd))).toMatchObject({ code: 'EBADF' });
  });
});

describe('poll on the event loop', () => {
  let kernel: FakeKernel;
  let pollers: FakePoller[];
  beforeEach(() => {
    kernel = new FakeKernel();
    pollers = [];
  });
  afterEach(() => {
    for (const p of pollers) p.close();
    kernel.dispose();
  });
  const watch = (fd: number, cb: (e: Error | null) => void) => {
    const p = kernel.poll(fd, cb) as FakePoller;
    pollers.push(p);
    return p;
  };

  test('delivers asynchronously on the loop, never inside the write', async () => {
    const fd = kernel.eventfd(0, 0);
    const seen: bigint[] = [];
    watch(fd, () => seen.push(kernel.eventfdRead(fd))).start();
    kernel.eventfdWrite(fd, 1n);
    expect(seen).toEqual([]);
    await nextTurn();
    expect(seen).toEqual([1n]);
  });

  test('is created stopped; stop() holds delivery until start()', async () => {
    const fd = kernel.eventfd(1, 0);
    let calls = 0;
    const p = watch(fd, () => {
      calls++;
      kernel.eventfdRead(fd);
    });
    await nextTurn();
    expect(calls).toBe(0);
    p.start();
    p.stop();
    await nextTurn();
    expect(calls).toBe(0);
    p.start();
    await nextTurn();
    expect(calls).toBe(1);
  });

  test('is level-triggered: calls again while the counter is not drained', async () => {
    const fd = kernel.eventfd(3, EFD_SEMAPHORE);
    let calls = 0;
    watch(fd, () => {
      calls++;
      kernel.eventfdRead(fd);
    }).start();
    for (let i = 0; i < 5; i++) await nextTurn();
    expect(calls).toBe(3);
  });

  test('an MSI raised by the device reaches the poller', async () => {
    const { kernel: k, device } = openDevice();
    const fd = k.eventfd(0, 0);
    k.ioctl(device, VFIO_DEVICE_SET_IRQS, irqSetArg({ flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [fd] }));
    const got = new Promise<bigint>((resolve) => {
      const p = k.poll(fd, () => {
        p.close();
        resolve(k.eventfdRead(fd));
      });
      p.start();
    });
    k.device(EDU)!.triggerIrq(VFIO_PCI_MSI_IRQ_INDEX, 0);
    await expect(got).resolves.toBe(1n);
    k.dispose();
  });

  test('holds the loop only while started and ref\'d', () => {
    const fd = kernel.eventfd(0, 0);
    const p = watch(fd, () => {});
    expect(p.holdsLoop).toBe(false);
    p.start();
    expect(p.holdsLoop).toBe(true);
    p.unref();
    expect(p.holdsLoop).toBe(false);
    p.ref();
    expect(p.holdsLoop).toBe(true);
    p.stop();
    expect(p.holdsLoop).toBe(false);
    p.start();
    p.close();
    expect(p.holdsLoop).toBe(false);
    expect(thrown(() => p.start())).toMatchObject({ name: 'VfioError', code: 'ERR_VFIO_CLOSED' });
  });

  test('closing the eventfd under a started poller reports EBADF once and stops', async () => {
    const fd = kernel.eventfd(0, 0);
    const errors: (Error | null)[] = [];
    watch(fd, (e) => errors.push(e)).start();
    kernel.close(fd);
    await nextTurn();
    await nextTurn();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'EBADF' });
  });

  test('poll: EBADF for no fd, EPERM for VFIO fds (no poll method); dispose closes pollers', () => {
    expect(thrown(() => kernel.poll(42, () => {}))).toMatchObject({ code: 'EBADF', syscall: 'uv_poll_init' });
    const c = kernel.open('/dev/vfio/vfio', 2);
    expect(thrown(() => kernel.poll(c, () => {}))).toMatchObject({ code: 'EPERM' });
    const p = kernel.poll(kernel.eventfd(0, 0), () => {}) as FakePoller;
    p.start();
    expect(kernel.livePollers()).toBe(1);
    kernel.dispose();
    expect(p.holdsLoop).toBe(false);
    expect(kernel.livePollers()).toBe(0);
  });
});
