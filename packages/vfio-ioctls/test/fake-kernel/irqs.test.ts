import {
  VFIO_DEVICE_SET_IRQS, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX, VFIO_PCI_NUM_IRQS, VFIO_PCI_REQ_IRQ_INDEX,
} from 'vfio-bindings';
import type { FakeDevice, FakeKernel } from '../../src/testing';
import { EDU, irqSetArg, openDevice, thrown } from './helpers';

const EVENTFD_TRIGGER = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
const DISABLE = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;

describe('VFIO_DEVICE_SET_IRQS and interrupt delivery', () => {
  let kernel: FakeKernel;
  let device: number;
  let dev: FakeDevice;
  const set = (h: Parameters<typeof irqSetArg>[0]) => kernel.ioctl(device, VFIO_DEVICE_SET_IRQS, irqSetArg(h));
  const counter = (fd: number) => {
    try {
      return kernel.eventfdRead(fd);
    } catch {
      return 0n;
    }
  };

  beforeEach(() => {
    ({ kernel, device } = openDevice({}, {
      irqs: [
        { index: VFIO_PCI_INTX_IRQ_INDEX, count: 1 }, { index: VFIO_PCI_MSI_IRQ_INDEX, count: 1 },
        { index: VFIO_PCI_MSIX_IRQ_INDEX, count: 8 }, { index: VFIO_PCI_ERR_IRQ_INDEX, count: 1 },
      ],
    }));
    dev = kernel.device(EDU)!;
  });
  afterEach(() => kernel.dispose());

  test('header checks: argsz, index, flags, one data type, one action, range, data size', () => {
    const efd = kernel.eventfd(0, 0);
    const cases: Parameters<typeof irqSetArg>[0][] = [
      { flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [efd], argsz: 16 },
      { flags: EVENTFD_TRIGGER, index: VFIO_PCI_NUM_IRQS, count: 1, eventfds: [efd] },
      { flags: EVENTFD_TRIGGER | (1 << 6), index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [efd] },
      { flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, index: 1, count: 1, eventfds: [efd] },
      { flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_TRIGGER, index: 1, count: 1, eventfds: [efd] },
      { flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, start: 6, count: 3, eventfds: [efd, efd, efd] },
      { flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, start: 8, count: 0 },
      { flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, count: 2, eventfds: [efd, efd], argsz: 24 },
    ];
    for (const c of cases) expect(thrown(() => set(c))).toMatchObject({ code: 'EINVAL', syscall: 'ioctl' });
    expect(dev.irqState(VFIO_PCI_MSIX_IRQ_INDEX).enabled).toBe(false);
  });

  test('MSI: an eventfd trigger enables the index; the device raising the vector signals it', () => {
    const efd = kernel.eventfd(0, 0);
    expect(set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [efd] })).toBe(0);
    expect(dev.irqState(VFIO_PCI_MSI_IRQ_INDEX)).toMatchObject({ enabled: true, eventfds: [efd] });
    expect(dev.triggerIrq(VFIO_PCI_MSI_IRQ_INDEX, 0)).toBe(true);
    dev.triggerIrq(VFIO_PCI_MSI_IRQ_INDEX, 0);
    expect(counter(efd)).toBe(2n);
    // count 0 + DATA_NONE + TRIGGER disables the index.
    expect(set({ flags: DISABLE, index: VFIO_PCI_MSI_IRQ_INDEX, count: 0 })).toBe(0);
    expect(dev.irqState(VFIO_PCI_MSI_IRQ_INDEX).enabled).toBe(false);
    expect(dev.triggerIrq(VFIO_PCI_MSI_IRQ_INDEX, 0)).toBe(false);
    expect(counter(efd)).toBe(0n);
  });

  test('disabling an index that is not enabled is EINVAL', () => {
    expect(thrown(() => set({ flags: DISABLE, index: VFIO_PCI_MSI_IRQ_INDEX, count: 0 }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => set({ flags: DISABLE, index: VFIO_PCI_INTX_IRQ_INDEX, count: 0 }))).toMatchObject({ code: 'EINVAL' });
  });

  test('one interrupt type at a time: MSI while MSI-X is enabled is EINVAL', () => {
    const efd = kernel.eventfd(0, 0);
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, count: 2, eventfds: [efd, -1] });
    expect(thrown(() => set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [efd] }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_INTX_IRQ_INDEX, count: 1, eventfds: [efd] }))).toMatchObject({ code: 'EINVAL' });
  });

  test('MSI-X: vectors are fixed when enabled (NORESIZE); -1 unsets one vector; others keep theirs', () => {
    const [a, b] = [kernel.eventfd(0, 0), kernel.eventfd(0, 0)];
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, count: 2, eventfds: [a, b] });
    expect(dev.irqState(VFIO_PCI_MSIX_IRQ_INDEX).eventfds.slice(0, 2)).toEqual([a, b]);
    expect(thrown(() => set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, start: 2, count: 1, eventfds: [a] }))).toMatchObject({ code: 'EINVAL' });
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, start: 0, count: 1, eventfds: [-1] });
    expect(dev.irqState(VFIO_PCI_MSIX_IRQ_INDEX).eventfds).toEqual([null, b]);
    expect(dev.triggerIrq(VFIO_PCI_MSIX_IRQ_INDEX, 0)).toBe(false);
    expect(dev.triggerIrq(VFIO_PCI_MSIX_IRQ_INDEX, 1)).toBe(true);
    expect(counter(b)).toBe(1n);
  });

  test('a bad eventfd is EBADF (no fd) or EINVAL (not an eventfd) and leaves the index off', () => {
    expect(thrown(() => set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [55] }))).toMatchObject({ code: 'EBADF' });
    expect(thrown(() => set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [device] }))).toMatchObject({ code: 'EINVAL' });
    expect(dev.irqState(VFIO_PCI_MSI_IRQ_INDEX).enabled).toBe(false);
  });

  test('MSI and MSI-X have no mask or unmask (ENOTTY)', () => {
    const efd = kernel.eventfd(0, 0);
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [efd] });
    expect(thrown(() => set({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1 }))).toMatchObject({ code: 'ENOTTY' });
  });

  test('INTx is automasked: one signal per interrupt until unmasked; one raised while masked is pending', () => {
    const efd = kernel.eventfd(0, 0);
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_INTX_IRQ_INDEX, count: 1, eventfds: [efd] });
    expect(dev.triggerIrq(VFIO_PCI_INTX_IRQ_INDEX)).toBe(true);
    expect(dev.irqState(VFIO_PCI_INTX_IRQ_INDEX).masked).toEqual([true]);
    expect(dev.triggerIrq(VFIO_PCI_INTX_IRQ_INDEX)).toBe(false);
    expect(dev.irqState(VFIO_PCI_INTX_IRQ_INDEX).pending).toEqual([true]);
    expect(counter(efd)).toBe(1n);
    // Unmasking delivers the pending interrupt (and masks again).
    set({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, index: VFIO_PCI_INTX_IRQ_INDEX, count: 1 });
    expect(counter(efd)).toBe(1n);
    expect(dev.irqState(VFIO_PCI_INTX_IRQ_INDEX)).toMatchObject({ masked: [true], pending: [false] });
    // DATA_BOOL false is a no-op; true unmasks.
    set({ flags: VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_UNMASK, index: VFIO_PCI_INTX_IRQ_INDEX, count: 1, bools: [0] });
    expect(dev.irqState(VFIO_PCI_INTX_IRQ_INDEX).masked).toEqual([true]);
    set({ flags: VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_UNMASK, index: VFIO_PCI_INTX_IRQ_INDEX, count: 1, bools: [1] });
    expect(dev.irqState(VFIO_PCI_INTX_IRQ_INDEX).masked).toEqual([false]);
    // Masking by the user holds interrupts back too.
    set({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, index: VFIO_PCI_INTX_IRQ_INDEX, count: 1 });
    expect(dev.triggerIrq(VFIO_PCI_INTX_IRQ_INDEX)).toBe(false);
  });

  test('INTx mask before INTx is enabled is EINVAL', () => {
    expect(thrown(() => set({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK, index: VFIO_PCI_INTX_IRQ_INDEX, count: 1 }))).toMatchObject({ code: 'EINVAL' });
  });

  test('loopback: DATA_NONE or DATA_BOOL with TRIGGER signals the eventfds that are set', () => {
    const [a, b] = [kernel.eventfd(0, 0), kernel.eventfd(0, 0)];
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, count: 2, eventfds: [a, b] });
    set({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, count: 2 });
    set({ flags: VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSIX_IRQ_INDEX, count: 2, bools: [0, 1] });
    expect([counter(a), counter(b)]).toEqual([1n, 2n]);
  });

  test('ERR has a single trigger; REQ absent here is EINVAL', () => {
    const efd = kernel.eventfd(0, 0);
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_ERR_IRQ_INDEX, count: 1, eventfds: [efd] });
    expect(dev.irqState(VFIO_PCI_ERR_IRQ_INDEX)).toMatchObject({ enabled: true, eventfds: [efd] });
    expect(dev.triggerIrq(VFIO_PCI_ERR_IRQ_INDEX)).toBe(true);
    expect(counter(efd)).toBe(1n);
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_ERR_IRQ_INDEX, count: 1, eventfds: [-1] });
    expect(dev.irqState(VFIO_PCI_ERR_IRQ_INDEX).enabled).toBe(false);
    expect(thrown(() => set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_REQ_IRQ_INDEX, count: 1, eventfds: [efd] }))).toMatchObject({ code: 'EINVAL' });
  });

  test('closing the last device fd turns interrupts off, as vfio-pci does', () => {
    const efd = kernel.eventfd(0, 0);
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [efd] });
    kernel.close(device);
    expect(dev.irqState(VFIO_PCI_MSI_IRQ_INDEX).enabled).toBe(false);
    expect(dev.triggerIrq(VFIO_PCI_MSI_IRQ_INDEX)).toBe(false);
  });

  test('the eventfd keeps receiving after its fd is closed (the kernel holds the eventfd)', () => {
    const efd = kernel.eventfd(0, 0);
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [efd] });
    kernel.close(efd);
    expect(dev.triggerIrq(VFIO_PCI_MSI_IRQ_INDEX)).toBe(true);
  });
});
