import {
  VFIO_DEVICE_SET_IRQS, VFIO_GROUP_GET_DEVICE_FD, VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE, VFIO_PCI_ERR_IRQ_INDEX, VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
} from 'vfio-bindings';
import type { FakeDevice, FakeKernel } from '../../src/testing';
import { EDU, irqSetArg, nameArg, openDevice, thrown } from './helpers';

const INTX = VFIO_PCI_INTX_IRQ_INDEX;
const EVENTFD_TRIGGER = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
const EVENTFD_UNMASK = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK;

// INTx unmask through an eventfd (vfio-pci's ctx->unmask virqfd): how QEMU
// and KVM's resampling irqfd acknowledge a level-triggered interrupt.
describe('INTx ACTION_UNMASK | DATA_EVENTFD', () => {
  let kernel: FakeKernel;
  let group: number;
  let device: number;
  let dev: FakeDevice;
  let trigger: number;
  let unmask: number;
  const set = (h: Parameters<typeof irqSetArg>[0]) => kernel.ioctl(device, VFIO_DEVICE_SET_IRQS, irqSetArg(h));
  const register = (fd: number) => set({ flags: EVENTFD_UNMASK, index: INTX, count: 1, eventfds: [fd] });
  const counter = (fd: number) => {
    try {
      return kernel.eventfdRead(fd);
    } catch (error) {
      expect(error).toMatchObject({ code: 'EAGAIN' });
      return 0n;
    }
  };
  const intx = () => dev.irqState(INTX);

  beforeEach(() => {
    ({ kernel, group, device } = openDevice({}, { irqs: [{ index: INTX, count: 1 }, { index: VFIO_PCI_MSI_IRQ_INDEX, count: 1 }, { index: VFIO_PCI_ERR_IRQ_INDEX, count: 1 }] }));
    dev = kernel.device(EDU)!;
    trigger = kernel.eventfd(0, 0);
    unmask = kernel.eventfd(0, 0);
  });
  afterEach(() => kernel.dispose());

  const enableIntx = () => set({ flags: EVENTFD_TRIGGER, index: INTX, count: 1, eventfds: [trigger] });

  test('each write unmasks; the kernel takes the count; a pending interrupt is delivered and masks again', () => {
    enableIntx();
    expect(register(unmask)).toBe(0);
    expect(intx().unmaskEventfd).toBe(unmask);
    expect(dev.triggerIrq(INTX)).toBe(true);
    expect(dev.triggerIrq(INTX)).toBe(false); // masked: pending
    expect(counter(trigger)).toBe(1n);
    expect(intx()).toMatchObject({ masked: [true], pending: [true] });

    kernel.eventfdWrite(unmask, 1n);
    expect(counter(unmask)).toBe(0n); // drained by the kernel, as virqfd_wakeup does
    expect(counter(trigger)).toBe(1n); // the pending interrupt, re-sent
    expect(intx()).toMatchObject({ masked: [true], pending: [false] });

    kernel.eventfdWrite(unmask, 1n);
    expect(intx().masked).toEqual([false]);
    expect(counter(trigger)).toBe(0n);
    expect(dev.triggerIrq(INTX)).toBe(true);
    expect(counter(trigger)).toBe(1n);
  });

  test('a count already in the eventfd when registered unmasks at once and is left there', () => {
    enableIntx();
    dev.triggerIrq(INTX);
    expect(intx().masked).toEqual([true]);
    kernel.eventfdWrite(unmask, 2n);
    register(unmask);
    expect(intx().masked).toEqual([false]);
    expect(counter(unmask)).toBe(2n);
  });

  test('fd -1 unregisters: writes then leave the line masked and the count in the eventfd', () => {
    enableIntx();
    register(unmask);
    expect(register(-1)).toBe(0);
    expect(intx().unmaskEventfd).toBeNull();
    dev.triggerIrq(INTX);
    kernel.eventfdWrite(unmask, 1n);
    expect(intx().masked).toEqual([true]);
    expect(counter(unmask)).toBe(1n);
    // -1 with nothing registered is accepted too (vfio_virqfd_disable of an empty slot).
    expect(register(-1)).toBe(0);
  });

  test('a second eventfd while one is registered is EBUSY; after -1 it can be replaced', () => {
    enableIntx();
    const other = kernel.eventfd(0, 0);
    register(unmask);
    expect(thrown(() => register(other))).toMatchObject({ code: 'EBUSY', syscall: 'ioctl' });
    expect(intx().unmaskEventfd).toBe(unmask);
    register(-1);
    register(other);
    expect(intx().unmaskEventfd).toBe(other);
    dev.triggerIrq(INTX);
    kernel.eventfdWrite(unmask, 1n);
    expect(intx().masked).toEqual([true]);
    kernel.eventfdWrite(other, 1n);
    expect(intx().masked).toEqual([false]);
  });

  test('a bad fd is EBADF (no fd, checked before EBUSY) or EINVAL (not an eventfd); nothing is registered', () => {
    enableIntx();
    expect(thrown(() => register(55))).toMatchObject({ code: 'EBADF' });
    expect(thrown(() => register(device))).toMatchObject({ code: 'EINVAL' });
    expect(intx().unmaskEventfd).toBeNull();
    register(unmask);
    expect(thrown(() => register(55))).toMatchObject({ code: 'EBADF' });
  });

  test('only on an enabled INTx, vector 0 alone: EINVAL otherwise', () => {
    expect(thrown(() => register(unmask))).toMatchObject({ code: 'EINVAL' }); // INTx not enabled
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [trigger] });
    expect(thrown(() => register(unmask))).toMatchObject({ code: 'EINVAL' }); // MSI is the irq type
    set({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 0 });
    enableIntx();
    expect(thrown(() => set({ flags: EVENTFD_UNMASK, index: INTX, count: 0 }))).toMatchObject({ code: 'EINVAL' });
    expect(intx().unmaskEventfd).toBeNull();
  });

  test('other indexes have no unmask (ENOTTY, as vfio-pci), nor has INTx a mask eventfd', () => {
    set({ flags: EVENTFD_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [trigger] });
    expect(thrown(() => set({ flags: EVENTFD_UNMASK, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [unmask] }))).toMatchObject({ code: 'ENOTTY' });
    expect(thrown(() => set({ flags: EVENTFD_UNMASK, index: VFIO_PCI_ERR_IRQ_INDEX, count: 1, eventfds: [unmask] }))).toMatchObject({ code: 'ENOTTY' });
    set({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 0 });
    enableIntx();
    const maskEventfd = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK;
    expect(thrown(() => set({ flags: maskEventfd, index: INTX, count: 1, eventfds: [unmask] }))).toMatchObject({ code: 'ENOTTY' });
  });

  test('disabling INTx drops the registration; enabling again starts without one', () => {
    enableIntx();
    register(unmask);
    set({ flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index: INTX, count: 0 });
    expect(intx().unmaskEventfd).toBeNull();
    kernel.eventfdWrite(unmask, 1n);
    expect(counter(unmask)).toBe(1n); // no kernel waiter took it
    enableIntx();
    expect(intx().unmaskEventfd).toBeNull();
    expect(register(unmask)).toBe(0); // not EBUSY
  });

  test('closing the device drops the registration', () => {
    enableIntx();
    register(unmask);
    kernel.close(device);
    kernel.eventfdWrite(unmask, 1n);
    expect(counter(unmask)).toBe(1n);
    device = kernel.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, nameArg(EDU));
    enableIntx();
    expect(intx().unmaskEventfd).toBeNull();
    expect(register(unmask)).toBe(0);
  });

  test('closing the eventfd drops the registration (EPOLLHUP)', () => {
    enableIntx();
    register(unmask);
    kernel.close(unmask);
    expect(intx().unmaskEventfd).toBeNull();
    expect(register(kernel.eventfd(0, 0))).toBe(0);
  });
});
