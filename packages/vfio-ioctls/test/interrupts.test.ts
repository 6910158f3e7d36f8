import * as b from 'vfio-bindings';
import { Device, type InterruptEvent, type Poller } from '../src';
import type { FakeIrqSpec } from '../src/testing';
import { EDU, GROUP, kernel, tick, wrap } from './helpers';

const INTX = b.VFIO_PCI_INTX_IRQ_INDEX;
const MSI = b.VFIO_PCI_MSI_IRQ_INDEX;
const MSIX = b.VFIO_PCI_MSIX_IRQ_INDEX;
const IRQS: FakeIrqSpec[] = [
  { index: INTX, count: 1 },
  { index: MSI, count: 1 },
  { index: MSIX, count: 8 },
];

function open(irqs = IRQS) {
  const k = kernel([{ address: EDU, group: GROUP, irqs }]);
  const device = Device.open(EDU, k.env);
  return { ...k, device, fakeDevice: k.devices[0]! };
}

function nextEvent(irqs: NodeJS.EventEmitter): Promise<InterruptEvent> {
  return new Promise((resolve) => irqs.once('interrupt', resolve));
}

describe('Device.irqInfo', () => {
  test('reports count and flags per index', () => {
    const { device } = open();
    expect(device.irqInfo(INTX)).toEqual({ index: INTX, count: 1, flags: expect.any(Number), eventfd: true, maskable: true, automasked: true, noresize: false });
    expect(device.irqInfo(MSIX)).toMatchObject({ index: MSIX, count: 8, eventfd: true, maskable: false, automasked: false });
    expect(device.irqInfo(b.VFIO_PCI_REQ_IRQ_INDEX).count).toBe(0);
    device.close();
  });

  test('validates the index and annotates kernel failures', () => {
    const { fake, device } = open();
    expect(() => device.irqInfo(device.info.numIrqs)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('index') }));
    expect(() => device.irqInfo(-1)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => device.irqInfo('1' as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_GET_IRQ_INFO, errno: 'EIO' });
    expect(() => device.irqInfo(0)).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_DEVICE_GET_IRQ_INFO', device: EDU }));
    device.close();
  });

  test('an index the kernel refuses (ERR on conventional PCI) is named, by number and name, with a hint', () => {
    const { fake, device } = open();
    const ERR = b.VFIO_PCI_ERR_IRQ_INDEX;
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_GET_IRQ_INFO, errno: 'EINVAL' });
    expect(() => device.irqInfo(ERR)).toThrow(expect.objectContaining({
      name: 'VfioError',
      code: 'EINVAL',
      errno: -22,
      syscall: 'ioctl',
      operation: 'VFIO_DEVICE_GET_IRQ_INFO',
      device: EDU,
      message: expect.stringContaining('IRQ index 3 (ERR)'),
      hint: expect.stringMatching(/kernel does not offer IRQ index 3 \(ERR\) for this device.*PCI Express/),
    }));
    for (const [index, name] of [[INTX, 'INTx'], [MSI, 'MSI'], [MSIX, 'MSI-X'], [b.VFIO_PCI_REQ_IRQ_INDEX, 'REQ']] as const) {
      fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_GET_IRQ_INFO, errno: 'EINVAL' });
      expect(() => device.irqInfo(index)).toThrow(expect.objectContaining({ message: expect.stringContaining(`IRQ index ${index} (${name})`), hint: expect.not.stringContaining('PCI Express') }));
    }
    // And the reused argument buffer still answers for the next index.
    expect(device.irqInfo(MSIX)).toMatchObject({ index: MSIX, count: 8 });
    device.close();
  });
});

describe('Device.enableIrq', () => {
  test('enables MSI with a library-made eventfd and delivers interrupts as events', async () => {
    const { fake, device, fakeDevice } = open();
    const fdsBefore = fake.openFds().length;
    const irqs = device.enableIrq(MSI);
    expect(irqs).toMatchObject({ index: MSI, start: 0, count: 1, enabled: true, vectors: [0] });
    expect(fake.openFds()).toHaveLength(fdsBefore + 1);
    expect(fakeDevice.irqState(MSI)).toMatchObject({ enabled: true, eventfds: [expect.any(Number)] });
    expect(device.interrupts()).toEqual([irqs]);
    const got = nextEvent(irqs);
    fakeDevice.triggerIrq(MSI, 0);
    await expect(got).resolves.toEqual({ index: MSI, vector: 0, count: 1 });
    irqs.disable();
    expect(fake.openFds()).toHaveLength(fdsBefore);
    expect(fakeDevice.irqState(MSI).enabled).toBe(false);
    expect(device.interrupts()).toEqual([]);
    device.close();
  });

  test('coalesced interrupts arrive as one event with their count', async () => {
    const { device, fakeDevice } = open();
    const irqs = device.enableIrq(MSI);
    fakeDevice.triggerIrq(MSI, 0);
    fakeDevice.triggerIrq(MSI, 0);
    fakeDevice.triggerIrq(MSI, 0);
    await expect(nextEvent(irqs)).resolves.toMatchObject({ count: 3 });
    device.close();
  });

  test('vector ranges of MSI-X: several ranges, overlap refused, partial disable', () => {
    const { fake, device, fakeDevice } = open();
    const high = device.enableIrq(MSIX, { start: 4, count: 4 });
    const low = device.enableIrq(MSIX, { start: 0, count: 2 });
    expect(low.vectors).toEqual([0, 1]);
    const before = fake.calls.length;
    expect(() => device.enableIrq(MSIX, { start: 1, count: 2 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_VFIO_IRQ_BUSY' }));
    expect(() => device.enableIrq(MSIX, { start: 8 })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('options.start') }));
    expect(() => device.enableIrq(MSIX, { start: 6, count: 4 })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('options.count') }));
    expect(() => device.enableIrq(MSIX, { count: 0 })).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => device.enableIrq(MSIX, { start: 1.5 })).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => device.enableIrq(MSIX, { resample: 1 } as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => device.enableIrq(MSIX, { strat: 2 } as never)).toThrow(expect.objectContaining({
      name: 'TypeError',
      code: 'ERR_INVALID_ARG_VALUE',
      message: expect.stringContaining('options.strat is not a known option'),
    }));
    expect(() => device.enableIrq(MSIX, { start: 2, Count: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringMatching(/options\.Count .*count/) }));
    expect(fake.calls.slice(before).filter((c) => c.request === b.VFIO_DEVICE_SET_IRQS)).toEqual([]);
    high.disable(); // not the only range: its vectors are unset one by one
    const state = fakeDevice.irqState(MSIX);
    expect(state.enabled).toBe(true);
    expect(state.eventfds.slice(0, 2)).toEqual([expect.any(Number), expect.any(Number)]);
    expect(state.eventfds.slice(4)).toEqual([null, null, null, null]);
    low.disable(); // the last range: the index is turned off
    expect(fakeDevice.irqState(MSIX).enabled).toBe(false);
    device.close();
  });

  test('an index without vectors or eventfd support is refused', () => {
    const { device } = open();
    expect(() => device.enableIrq(b.VFIO_PCI_REQ_IRQ_INDEX)).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_UNSUPPORTED' }));
    device.close();
    const other = open([{ index: INTX, count: 1, flags: b.VFIO_IRQ_INFO_MASKABLE }]);
    expect(() => other.device.enableIrq(INTX)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED', message: expect.stringContaining('eventfd') }));
    other.device.close();
  });

  test('an EINVAL outside enabling (here a trigger) does not blame INTx/MSI/MSI-X exclusivity', () => {
    const { fake, device } = open();
    using msi = device.enableIrq(MSI);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EINVAL' });
    expect(() => msi.trigger()).toThrow(expect.objectContaining({ code: 'EINVAL', operation: 'VFIO_DEVICE_SET_IRQS', hint: expect.stringContaining('irqInfo(index)') }));
    device.close();
  });

  test('MSI while MSI-X is enabled: the kernel refuses, with a hint', () => {
    const { device } = open();
    using msix = device.enableIrq(MSIX);
    expect(() => device.enableIrq(MSI)).toThrow(expect.objectContaining({ code: 'EINVAL', operation: 'VFIO_DEVICE_SET_IRQS', hint: `IRQ index ${MSIX} is enabled and INTx, MSI and MSI-X exclude each other; disable it first` }));
    void msix;
    device.close();
  });

  test('a failure at any enable step leaves no eventfd, poller or enabled index behind', () => {
    for (const fault of [
      { syscall: 'eventfd', errno: 'EMFILE' },
      { syscall: 'eventfd', errno: 'EMFILE', skip: 1 },
      { syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EINVAL' },
      { syscall: 'watchEventfds', errno: 'ENOMEM' },
    ]) {
      const { fake, device, fakeDevice } = open();
      const fds = fake.openFds();
      fake.failNext(fault);
      expect(() => device.enableIrq(MSIX, { count: 2 })).toThrow(expect.objectContaining({ name: 'VfioError', code: fault.errno }));
      expect(fake.openFds()).toEqual(fds);
      expect(fake.livePollers()).toBe(0);
      expect(fakeDevice.irqState(MSIX).enabled).toBe(false);
      expect(device.interrupts()).toEqual([]);
      device.close();
    }
  });
});

describe('Interrupts', () => {
  test('trigger() loops back through the kernel to the event', async () => {
    const { device } = open();
    const irqs = device.enableIrq(MSIX, { start: 2, count: 3 });
    const got = nextEvent(irqs);
    irqs.trigger(3);
    await expect(got).resolves.toEqual({ index: MSIX, vector: 3, count: 1 });
    const first = nextEvent(irqs);
    irqs.trigger();
    await expect(first).resolves.toMatchObject({ vector: 2 });
    expect(() => irqs.trigger(5)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('vector') }));
    expect(() => irqs.trigger(1)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    device.close();
  });

  test('async iteration with an AbortSignal', async () => {
    const { device, fakeDevice } = open();
    const irqs = device.enableIrq(MSI);
    const controller = new AbortController();
    const seen: InterruptEvent[] = [];
    const loop = (async () => {
      for await (const event of irqs.events({ signal: controller.signal })) {
        seen.push(event);
        if (seen.length === 2) controller.abort();
      }
    })();
    await tick();
    fakeDevice.triggerIrq(MSI, 0);
    await tick(5);
    fakeDevice.triggerIrq(MSI, 0);
    await expect(loop).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(seen).toEqual([{ index: MSI, vector: 0, count: 1 }, { index: MSI, vector: 0, count: 1 }]);
    expect(irqs.listenerCount('interrupt')).toBe(0);
    device.close();
  });

  test('an already aborted signal rejects at once; a bad signal is a TypeError', async () => {
    const { device } = open();
    const irqs = device.enableIrq(MSI);
    await expect(irqs.events({ signal: AbortSignal.abort() }).next()).rejects.toMatchObject({ name: 'AbortError' });
    await expect(irqs.next({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    expect(() => irqs.events({ signal: {} as never })).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => irqs.events({ singal: AbortSignal.abort() } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.singal') }));
    await expect(irqs.next({ timeout: 5 } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining('options.timeout') });
    device.close();
  });

  test('leaving a for-await loop stops listening; disable ends open iterators', async () => {
    const { device, fakeDevice } = open();
    const irqs = device.enableIrq(MSI);
    const loop = (async () => {
      for await (const event of irqs) return event;
      return undefined;
    })();
    await tick();
    fakeDevice.triggerIrq(MSI, 0);
    await expect(loop).resolves.toMatchObject({ vector: 0 });
    expect(irqs.listenerCount('interrupt')).toBe(0);
    const iterator = irqs.events();
    const pending = iterator.next();
    irqs.disable();
    await expect(pending).resolves.toEqual({ value: undefined, done: true });
    await expect(iterator.next()).resolves.toMatchObject({ done: true });
    await expect(irqs.next()).rejects.toMatchObject({ code: 'ERR_VFIO_CLOSED' });
    device.close();
  });

  test('next() resolves with the next interrupt', async () => {
    const { device, fakeDevice } = open();
    const irqs = device.enableIrq(MSI);
    const next = irqs.next();
    await tick();
    fakeDevice.triggerIrq(MSI, 0);
    await expect(next).resolves.toEqual({ index: MSI, vector: 0, count: 1 });
    device.close();
  });

  test("pollers run (and hold the loop) only while someone listens; unref() and ref()", () => {
    // The fake's pollers are recorded to see whether each holds the loop.
    const k = kernel([{ address: EDU, group: GROUP, irqs: IRQS }]);
    const pollers: Poller[] = [];
    const backend = wrap(k.fake, {
      watchEventfds(fds, onWake) {
        const poller = k.fake.watchEventfds(fds, onWake);
        pollers.push(poller);
        return poller;
      },
    });
    const device = Device.open(EDU, { ...k.env, backend });
    const irqs = device.enableIrq(MSIX, { count: 2 });
    // One poller for the range's two vectors.
    const holds = () => pollers.map((p) => (p as unknown as { holdsLoop: boolean }).holdsLoop);
    expect(holds()).toEqual([false]);
    const listener = () => {};
    irqs.on('interrupt', listener);
    expect(holds()).toEqual([true]);
    expect(irqs.unref()).toBe(irqs);
    expect(holds()).toEqual([false]);
    irqs.ref();
    expect(holds()).toEqual([true]);
    irqs.off('interrupt', listener);
    expect(holds()).toEqual([false]);
    irqs.unref();
    irqs.on('interrupt', listener);
    expect(holds()).toEqual([false]); // unref'd stays unref'd when watching starts again
    device.close();
  });

  test('a failing eventfd read is an error event', async () => {
    const { fake, device, fakeDevice } = open();
    const irqs = device.enableIrq(MSI);
    irqs.on('interrupt', () => {});
    const error = new Promise((resolve) => irqs.once('error', resolve));
    fake.failNext({ syscall: 'eventfdRead', errno: 'EIO' });
    fakeDevice.triggerIrq(MSI, 0);
    await expect(error).resolves.toMatchObject({ name: 'VfioError', code: 'EIO', device: EDU });
    device.close();
  });

  test('an error event rejects a waiting iterator', async () => {
    const { fake, device, fakeDevice } = open();
    const irqs = device.enableIrq(MSI);
    const next = irqs.next();
    fake.failNext({ syscall: 'eventfdRead', errno: 'EIO' });
    fakeDevice.triggerIrq(MSI, 0);
    await expect(next).rejects.toMatchObject({ code: 'EIO' });
    device.close();
  });

  test('MSI cannot be masked: clear error before the kernel', () => {
    const { fake, device } = open();
    const irqs = device.enableIrq(MSI);
    const before = fake.calls.length;
    expect(() => irqs.mask()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_UNSUPPORTED' }));
    expect(() => irqs.unmask(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_UNSUPPORTED' }));
    expect(fake.calls.length).toBe(before);
    device.close();
  });

  test('INTx: automasked, unmasked through the resample eventfd', async () => {
    const { fake, device, fakeDevice } = open();
    const irqs = device.enableIrq(INTX);
    const { eventfds: [triggerFd], unmaskEventfd } = fakeDevice.irqState(INTX);
    expect(unmaskEventfd).toEqual(expect.any(Number));
    expect(unmaskEventfd).not.toBe(triggerFd);
    const first = nextEvent(irqs);
    fakeDevice.triggerIrq(INTX, 0);
    await expect(first).resolves.toEqual({ index: INTX, vector: 0, count: 1 });
    expect(fakeDevice.irqState(INTX).masked).toEqual([true]);
    fakeDevice.triggerIrq(INTX, 0); // while masked: pending
    expect(fakeDevice.irqState(INTX).pending).toEqual([true]);
    const second = nextEvent(irqs);
    const before = fake.calls.length;
    irqs.unmask();
    // A write to the resample eventfd, no ioctl: the kernel unmasks and re-sends the pending interrupt.
    expect(fake.calls.slice(before)).toEqual([{ syscall: 'eventfdWrite', fd: unmaskEventfd }]);
    expect(fakeDevice.irqState(INTX)).toMatchObject({ masked: [true], pending: [false] });
    await expect(second).resolves.toEqual({ index: INTX, vector: 0, count: 1 });
    irqs.unmask();
    expect(fakeDevice.irqState(INTX).masked).toEqual([false]);
    device.close();
    expect(fake.openFds()).toEqual([]);
  });

  test('INTx without resample: mask and unmask by ioctl', async () => {
    const { device, fakeDevice } = open();
    const irqs = device.enableIrq(INTX, { resample: false });
    expect(fakeDevice.irqState(INTX).unmaskEventfd).toBeNull();
    irqs.mask(0);
    expect(fakeDevice.irqState(INTX).masked).toEqual([true]);
    fakeDevice.triggerIrq(INTX, 0);
    const got = nextEvent(irqs);
    irqs.unmask(0);
    await expect(got).resolves.toMatchObject({ index: INTX });
    expect(() => irqs.mask(1)).toThrow(expect.objectContaining({ name: 'RangeError' }));
    device.close();
  });

  test('disable() frees eventfds and pollers, emits close, and is idempotent; then calls throw', () => {
    const { fake, device, fakeDevice } = open();
    const fds = fake.openFds();
    const irqs = device.enableIrq(INTX);
    expect(fakeDevice.irqState(INTX).unmaskEventfd).not.toBeNull();
    let closed = 0;
    irqs.on('close', () => closed++);
    irqs.disable();
    irqs.close();
    expect(closed).toBe(1);
    expect(irqs.enabled).toBe(false);
    expect(fake.openFds()).toEqual(fds);
    expect(fake.livePollers()).toBe(0);
    expect(fakeDevice.irqState(INTX)).toMatchObject({ enabled: false, unmaskEventfd: null });
    expect(() => irqs.trigger()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => irqs.unmask()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    device.close();
  });

  test('a failing disable ioctl still frees the eventfds', () => {
    const { fake, device, fakeDevice } = open();
    const fds = fake.openFds();
    const irqs = device.enableIrq(MSI);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EIO' });
    expect(() => irqs.disable()).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_DEVICE_SET_IRQS' }));
    expect(fake.openFds()).toEqual(fds);
    expect(device.interrupts()).toEqual([]);
    void fakeDevice;
    device.close();
  });

  test('Symbol.dispose disables; closing the device disables what is left', () => {
    const { fake, device } = open();
    {
      using irqs = device.enableIrq(MSI);
      void irqs;
    }
    expect(device.interrupts()).toEqual([]);
    const irqs = device.enableIrq(MSIX);
    device.close();
    expect(irqs.enabled).toBe(false);
    expect(fake.openFds()).toEqual([]);
    expect(fake.livePollers()).toBe(0);
  });

  test('a failing trigger or mask ioctl is annotated', () => {
    const { fake, device } = open();
    const irqs = device.enableIrq(INTX, { resample: false });
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EIO' });
    expect(() => irqs.trigger()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'EIO', operation: 'VFIO_DEVICE_SET_IRQS', device: EDU }));
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_SET_IRQS, errno: 'EIO' });
    expect(() => irqs.mask()).toThrow(expect.objectContaining({ code: 'EIO' }));
    device.close();
  });

  test('a failing resample write is annotated and leaves the line masked', () => {
    const { fake, device, fakeDevice } = open();
    const irqs = device.enableIrq(INTX);
    fakeDevice.triggerIrq(INTX, 0);
    fake.failNext({ syscall: 'eventfdWrite', errno: 'EAGAIN' });
    expect(() => irqs.unmask()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'EAGAIN', device: EDU }));
    expect(fakeDevice.irqState(INTX).masked).toEqual([true]);
    irqs.unmask();
    expect(fakeDevice.irqState(INTX).masked).toEqual([false]);
    device.close();
  });
});
