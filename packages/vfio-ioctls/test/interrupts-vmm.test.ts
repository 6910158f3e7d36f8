// Interrupts as a VMM uses them: the caller's eventfds (EventFd), growing
// MSI-X blocks, and delivery through one draining poller per range.
import * as b from 'vfio-bindings';
import { Device, EventFd, type Backend, type InterruptEvent } from '../src';
import type { FakeIrqSpec } from '../src/testing';
import { EDU, GROUP, kernel, thrown, tick, wrap } from './helpers';

const INTX = b.VFIO_PCI_INTX_IRQ_INDEX;
const MSIX = b.VFIO_PCI_MSIX_IRQ_INDEX;
const FIXED: FakeIrqSpec[] = [
  { index: INTX, count: 1 },
  { index: MSIX, count: 64 },
];
const DYNAMIC: FakeIrqSpec[] = [{ index: MSIX, count: 64, flags: b.VFIO_IRQ_INFO_EVENTFD }];

function open(irqs = FIXED, backend?: (fake: Backend) => Backend) {
  const k = kernel([{ address: EDU, group: GROUP, irqs }]);
  const env = backend ? { ...k.env, backend: backend(k.fake) } : k.env;
  const device = Device.open(EDU, env);
  return { ...k, env, device, fakeDevice: k.devices[0]! };
}

/** Waits (loop turn by loop turn, up to 2 s) until `done()`; fails with `what` otherwise. */
async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function setIrqsCalls(fake: { calls: { syscall: string; request?: number }[] }, from = 0): number {
  return fake.calls.slice(from).filter((c) => c.request === b.VFIO_DEVICE_SET_IRQS).length;
}

describe('EventFd', () => {
  test('write, read, read when empty, close once, then fd throws', () => {
    const { fake, env } = open();
    const before = fake.openFds();
    const e = EventFd.create({ ...env, initval: 2 });
    expect(fake.openFds()).toEqual([...before, e.fd].sort((x, y) => x - y));
    e.write(3);
    e.write(4n);
    expect(e.read()).toBe(9n);
    expect(e.read()).toBe(0n);
    const semaphore = EventFd.create({ ...env, initval: 2, semaphore: true });
    expect([semaphore.read(), semaphore.read(), semaphore.read()]).toEqual([1n, 1n, 0n]);
    semaphore.close();
    expect(() => e.write(0)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    e.close();
    e.close();
    expect(e.closed).toBe(true);
    expect(() => e.fd).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => e.write()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(fake.openFds()).toEqual(before);
    expect(() => EventFd.create({ ...env, initval: -1 })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('options.initval') }));
    expect(() => EventFd.create({ ...env, semaphore: 1 } as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => new (EventFd as unknown as new () => unknown)()).toThrow(expect.objectContaining({ code: 'ERR_ILLEGAL_CONSTRUCTOR' }));
  });
});

describe('enableIrq with the caller\'s eventfds', () => {
  test('the kernel signals them; the library neither watches nor closes them', async () => {
    const { fake, env, device, fakeDevice } = open();
    const eventfds = [EventFd.create(env), EventFd.create(env)];
    const irqs = device.enableIrq(MSIX, { start: 4, eventfds });
    expect(irqs.count).toBe(2);
    expect(irqs.callerEventfds).toBe(true);
    expect(fakeDevice.irqState(MSIX).eventfds.slice(4, 6)).toEqual(eventfds.map((e) => e.fd));
    expect(irqs.fd(5)).toBe(eventfds[1]!.fd);
    expect(() => irqs.trigger([4, 6])).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => irqs.trigger('4' as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    irqs.trigger([4]);
    expect(eventfds[0]!.read()).toBe(1n);
    expect(fake.livePollers()).toBe(0);
    irqs.trigger(5);
    fakeDevice.triggerIrq(MSIX, 5);
    expect([eventfds[0]!.read(), eventfds[1]!.read()]).toEqual([0n, 2n]);
    expect(() => irqs.on('interrupt', () => {})).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED', message: expect.stringContaining("caller's eventfds") }));
    expect(() => irqs.events()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED' }));
    await expect(irqs.next()).rejects.toMatchObject({ code: 'ERR_VFIO_UNSUPPORTED' });
    const fds = eventfds.map((e) => e.fd);
    irqs.disable();
    expect(fakeDevice.irqState(MSIX).enabled).toBe(false);
    expect(fake.openFds()).toEqual(expect.arrayContaining(fds));
    eventfds[0]!.write();
    expect(eventfds[0]!.read()).toBe(1n);
    for (const e of eventfds) e.close();
    device.close();
  });

  test('INTx with the caller\'s resample eventfd: unmask() writes it and the kernel unmasks', () => {
    const { fake, env, device, fakeDevice } = open();
    const trigger = EventFd.create(env);
    const resample = EventFd.create(env);
    const irqs = device.enableIrq(INTX, { eventfds: [trigger], resample });
    expect(fakeDevice.irqState(INTX).unmaskEventfd).toBe(resample.fd);
    expect(irqs.resampleFd).toBe(resample.fd);
    fakeDevice.triggerIrq(INTX, 0);
    expect(fakeDevice.irqState(INTX).masked).toEqual([true]);
    fakeDevice.triggerIrq(INTX, 0); // pending while masked
    irqs.unmask();
    // The kernel's virqfd drained the resample write, unmasked, and re-sent the pending interrupt.
    expect(resample.read()).toBe(0n);
    expect(trigger.read()).toBe(2n);
    device.close();
    expect(fake.openFds()).toEqual([trigger.fd, resample.fd].sort((x, y) => x - y));
    trigger.close();
    resample.close();
  });

  test('the library\'s own eventfds are readable by callers through fd()', () => {
    const { env, device, fakeDevice } = open();
    const irqs = device.enableIrq(MSIX, { count: 2 });
    expect(irqs.callerEventfds).toBe(false);
    fakeDevice.triggerIrq(MSIX, 1);
    const { eventfdRead } = env.backend!;
    expect(eventfdRead.call(env.backend, irqs.fd(1))).toBe(1n);
    expect(irqs.resampleFd).toBeUndefined();
    irqs.disable();
    expect(() => irqs.fd(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    device.close();
  });

  test('closed, foreign, wrong-count or wrong-type eventfds are refused before the kernel, leaving nothing', () => {
    const { fake, env, device, fakeDevice } = open();
    const other = kernel();
    const foreign = EventFd.create(other.env);
    const good = EventFd.create(env);
    const closed = EventFd.create(env);
    closed.close();
    const fds = fake.openFds();
    const calls = fake.calls.length;
    expect(thrown(() => device.enableIrq(MSIX, { eventfds: [good, closed] }))).toMatchObject({ name: 'VfioError', code: 'ERR_VFIO_CLOSED', message: expect.stringContaining('options.eventfds[1]') });
    expect(thrown(() => device.enableIrq(MSIX, { eventfds: [foreign] }))).toMatchObject({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.eventfds[0]') });
    expect(thrown(() => device.enableIrq(MSIX, { count: 3, eventfds: [good, good] }))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('options.eventfds') });
    expect(thrown(() => device.enableIrq(MSIX, { eventfds: [] }))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('options.eventfds') });
    expect(thrown(() => device.enableIrq(MSIX, { eventfds: [good.fd] as never }))).toMatchObject({ name: 'TypeError', message: expect.stringContaining('options.eventfds[0] must be an EventFd') });
    expect(thrown(() => device.enableIrq(MSIX, { eventfds: good as never }))).toMatchObject({ name: 'TypeError' });
    expect(thrown(() => device.enableIrq(MSIX, { count: 1, resample: good }))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('options.resample') });
    expect(thrown(() => device.enableIrq(INTX, { resample: closed }))).toMatchObject({ code: 'ERR_VFIO_CLOSED' });
    expect(fake.calls.slice(calls).filter((c) => c.request === b.VFIO_DEVICE_SET_IRQS || c.syscall === 'eventfd')).toEqual([]);
    // A kernel refusal leaves the caller's eventfds open and nothing of the library's.
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EINVAL' });
    expect(thrown(() => device.enableIrq(MSIX, { eventfds: [good] }))).toMatchObject({ code: 'EINVAL' });
    expect(fake.openFds()).toEqual(fds);
    expect(fakeDevice.irqState(MSIX).enabled).toBe(false);
    expect(device.interrupts()).toEqual([]);
    good.close();
    foreign.close();
    device.close();
  });
});

describe('delivery through one draining poller per range', () => {
  test('the count of several interrupts before the loop turns arrives in one event', async () => {
    const { device, fakeDevice } = open();
    const irqs = device.enableIrq(MSIX, { start: 3, count: 1 });
    const events: InterruptEvent[] = [];
    irqs.on('interrupt', (event) => events.push(event));
    for (let i = 0; i < 3; i++) fakeDevice.triggerIrq(MSIX, 3);
    await until('the event', () => events.length > 0);
    await tick();
    expect(events).toEqual([{ index: MSIX, vector: 3, count: 3 }]);
    await tick();
    expect(events).toHaveLength(1); // drained: nothing left to report
    device.close();
  });

  test('64 vectors: one poller, one wake-up for all that fired, none lost', async () => {
    const wakes: number[] = [];
    let pollers = 0;
    const { fake, device, fakeDevice } = open(FIXED, (fake) =>
      wrap(fake as never, {
        watchEventfds(fds, onWake) {
          pollers++;
          return (fake as Backend).watchEventfds(fds, (error, positions = [], counts) => {
            wakes.push(positions.length);
            onWake(error, positions, counts);
          });
        },
      }),
    );
    const fdsBefore = fake.openFds().length;
    const irqs = device.enableIrq(MSIX);
    expect(irqs.count).toBe(64);
    expect(pollers).toBe(1);
    expect(fake.openFds().length).toBe(fdsBefore + 64);
    const seen = new Map<number, number>();
    irqs.on('interrupt', ({ vector, count }) => seen.set(vector, (seen.get(vector) ?? 0) + count));
    for (let round = 0; round < 2; round++) for (let v = 0; v < 64; v++) fakeDevice.triggerIrq(MSIX, v);
    irqs.trigger(irqs.vectors); // one DATA_BOOL call for all 64
    await until('64 vectors', () => seen.size === 64);
    await tick();
    expect(wakes).toEqual([64]);
    expect([...seen.keys()].sort((x, y) => x - y)).toEqual(irqs.vectors);
    expect([...seen.values()].every((count) => count === 3)).toBe(true);
    device.close();
  });

  test('disable() while interrupts are pending: no event, no error, no fd or poller left', async () => {
    const { fake, device, fakeDevice } = open();
    const fds = fake.openFds();
    const irqs = device.enableIrq(MSIX, { count: 4 });
    const heard: unknown[] = [];
    irqs.on('interrupt', (event) => heard.push(event));
    irqs.on('error', (error) => heard.push(error));
    fakeDevice.triggerIrq(MSIX, 0);
    fakeDevice.triggerIrq(MSIX, 3);
    irqs.disable();
    await tick(5);
    expect(heard).toEqual([]);
    expect(fake.openFds()).toEqual(fds);
    expect(fake.livePollers()).toBe(0);
    device.close();
  });

  test('a failing poller set-up leaves no eventfd or enabled vector', () => {
    const { fake, device, fakeDevice } = open();
    const fds = fake.openFds();
    fake.failNext({ syscall: 'watchEventfds', errno: 'EMFILE' });
    expect(thrown(() => device.enableIrq(MSIX, { count: 8 }))).toMatchObject({ code: 'EMFILE', syscall: 'epoll_ctl' });
    expect(fake.openFds()).toEqual(fds);
    expect(fakeDevice.irqState(MSIX).enabled).toBe(false);
    device.close();
  });
});

describe('MSI-X blocks that grow', () => {
  test('NORESIZE: the block is disabled and enabled again at the new size, keeping the enabled eventfds', async () => {
    const { fake, env, device, fakeDevice } = open();
    expect(device.irqInfo(MSIX).noresize).toBe(true);
    const low = device.enableIrq(MSIX, { count: 2 });
    const lowFds = [low.fd(0), low.fd(1)];
    const kvm = [EventFd.create(env)];
    const mid = device.enableIrq(MSIX, { start: 2, eventfds: kvm });
    const calls = fake.calls.length;
    const high = device.enableIrq(MSIX, { start: 6, count: 2 });
    expect(setIrqsCalls(fake, calls)).toBe(2); // disable, then the whole block
    expect(fakeDevice.irqState(MSIX).eventfds.slice(0, 8)).toEqual([...lowFds, kvm[0]!.fd, null, null, null, high.fd(6), high.fd(7)]);
    const got = new Promise<InterruptEvent>((resolve) => low.once('interrupt', resolve));
    fakeDevice.triggerIrq(MSIX, 1);
    await expect(got).resolves.toEqual({ index: MSIX, vector: 1, count: 1 });
    fakeDevice.triggerIrq(MSIX, 2);
    expect(kvm[0]!.read()).toBe(1n);
    // Within the block now: no re-enable.
    const inside = fake.calls.length;
    const gap = device.enableIrq(MSIX, { start: 3, count: 3 });
    expect(setIrqsCalls(fake, inside)).toBe(1);
    for (const irqs of [low, mid, high, gap]) irqs.disable();
    expect(fakeDevice.irqState(MSIX).enabled).toBe(false);
    kvm[0]!.close();
    device.close();
  });

  test('dynamic MSI-X (NORESIZE clear): the new vectors are just added', () => {
    const { fake, device, fakeDevice } = open(DYNAMIC);
    expect(device.irqInfo(MSIX).noresize).toBe(false);
    const low = device.enableIrq(MSIX, { count: 1 });
    const calls = fake.calls.length;
    const high = device.enableIrq(MSIX, { start: 40, count: 24 });
    expect(setIrqsCalls(fake, calls)).toBe(1);
    expect(fakeDevice.irqState(MSIX).eventfds[0]).toBe(low.fd(0));
    expect(fakeDevice.irqState(MSIX).eventfds[63]).toBe(high.fd(63));
    device.close();
  });

  test('a growth whose restore fails too disables the old ranges (fds closed, Interrupts closed) and says so', () => {
    const { fake, device, fakeDevice } = open();
    const fds = fake.openFds();
    const low = device.enableIrq(MSIX, { count: 2 });
    // SET_IRQS calls of the growth: disable the index, enable the larger block (fails), enable the old block (fails).
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EINVAL', skip: 1 });
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EIO', skip: 2 });
    const error = thrown(() => device.enableIrq(MSIX, { start: 2, count: 8 }));
    expect(error).toMatchObject({ code: 'EINVAL', hint: expect.stringContaining('enabling the old block again failed too, so its vectors (0-1) are disabled') });
    expect(fake.pendingFaults()).toBe(0);
    expect(fakeDevice.irqState(MSIX).enabled).toBe(false);
    expect(low.enabled).toBe(false);
    expect(device.interrupts()).toEqual([]);
    expect(fake.openFds()).toEqual(fds);
    device.close();
  });

  test('a refused growth restores the old block and says why; a closed caller eventfd stops it before the kernel', () => {
    const { fake, env, device, fakeDevice } = open();
    const low = device.enableIrq(MSIX, { count: 2 });
    const before = fakeDevice.irqState(MSIX).eventfds.slice(0, 2);
    const fds = fake.openFds();
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EINVAL', skip: 1 });
    const error = thrown(() => device.enableIrq(MSIX, { start: 2, count: 8 }));
    expect(error).toMatchObject({ code: 'EINVAL', operation: 'VFIO_DEVICE_SET_IRQS', hint: expect.stringContaining('was disabled and enabled again with vectors 2-9') });
    expect((error as { hint: string }).hint).not.toContain('exclude');
    expect(fakeDevice.irqState(MSIX).enabled).toBe(true);
    expect(fakeDevice.irqState(MSIX).eventfds.slice(0, 2)).toEqual(before);
    expect(fake.openFds()).toEqual(fds);
    expect(device.interrupts()).toEqual([low]);

    const kvm = EventFd.create(env);
    const mid = device.enableIrq(MSIX, { start: 2, eventfds: [kvm] });
    kvm.close();
    const calls = fake.calls.length;
    expect(thrown(() => device.enableIrq(MSIX, { start: 3, count: 1 }))).toMatchObject({ code: 'ERR_VFIO_CLOSED', message: expect.stringContaining('vector 2') });
    expect(setIrqsCalls(fake, calls)).toBe(0);
    mid.disable();
    device.close();
  });
});
