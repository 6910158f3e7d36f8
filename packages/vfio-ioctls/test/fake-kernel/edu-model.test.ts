import {
  VFIO_DEVICE_RESET, VFIO_DEVICE_SET_IRQS, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_PCI_MSI_IRQ_INDEX,
} from 'vfio-bindings';
import { EDU_DMA_BUFFER, EDU_ID, EDU_REG, emulateEdu, type EduModel, type FakeKernel } from '../../src/testing';
import { EDU, irqSetArg, mapDma, openDevice, thrown } from './helpers';

const CONFIG = 7n << 40n;

describe('edu device model', () => {
  let kernel: FakeKernel;
  let container: number;
  let device: number;
  let bar: ArrayBuffer;
  let edu: EduModel;

  beforeEach(() => {
    ({ kernel, container, device } = openDevice({}, { reset: true }));
    edu = emulateEdu(kernel.device(EDU)!);
    bar = kernel.mmap(device, 0x100000, 3, 0n);
  });
  afterEach(() => kernel.dispose());

  const busMaster = (on: boolean) => kernel.pwrite(device, Uint8Array.of(on ? 0x04 : 0, 0), CONFIG + 4n);

  test('identification and liveness registers', () => {
    expect(kernel.mmioRead32(bar, EDU_REG.ID)).toBe(EDU_ID);
    kernel.mmioWrite32(bar, EDU_REG.LIVENESS, 0x0f0f0f0f);
    expect(kernel.mmioRead32(bar, EDU_REG.LIVENESS)).toBe(0xf0f0f0f0);
    // Registers below 0x80 answer only 32-bit accesses.
    expect(kernel.mmioRead16(bar, EDU_REG.ID)).toBe(0xffff);
    expect(kernel.mmioRead32(bar, 0x0c)).toBe(0xffffffff);
  });

  test('factorial, with an MSI when status bit 7 asks for one', async () => {
    const efd = kernel.eventfd(0, 0);
    kernel.ioctl(device, VFIO_DEVICE_SET_IRQS, irqSetArg({ flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index: VFIO_PCI_MSI_IRQ_INDEX, count: 1, eventfds: [efd] }));
    kernel.mmioWrite32(bar, EDU_REG.STATUS, 0x80);
    const fired = new Promise<void>((resolve) => {
      const p = kernel.poll(efd, () => {
        kernel.eventfdRead(efd);
        p.close();
        resolve();
      });
      p.start();
    });
    kernel.mmioWrite32(bar, EDU_REG.FACTORIAL, 10);
    expect(kernel.mmioRead32(bar, EDU_REG.STATUS) & 1).toBe(0);
    expect(kernel.mmioRead32(bar, EDU_REG.FACTORIAL)).toBe(3628800);
    await fired;
    expect(kernel.mmioRead32(bar, EDU_REG.IRQ_STATUS)).toBe(1);
    kernel.mmioWrite32(bar, EDU_REG.IRQ_ACK, 1);
    expect(kernel.mmioRead32(bar, EDU_REG.IRQ_STATUS)).toBe(0);
  });

  test('DMA round trip through the IOMMU, RAM -> device -> RAM', () => {
    const ram = kernel.allocDma(8192);
    mapDma(kernel, container, { vaddr: kernel.addressOf(ram), iova: 0x100000n, size: 8192n });
    busMaster(true);
    new Uint8Array(ram).set([1, 2, 3, 4], 0);
    kernel.mmioWrite64(bar, EDU_REG.DMA_SRC, 0x100000n);
    kernel.mmioWrite64(bar, EDU_REG.DMA_DST, EDU_DMA_BUFFER);
    kernel.mmioWrite64(bar, EDU_REG.DMA_COUNT, 4n);
    kernel.mmioWrite32(bar, EDU_REG.DMA_CMD, 1);
    expect(kernel.mmioRead32(bar, EDU_REG.DMA_CMD) & 1).toBe(0);
    expect([...edu.buffer.subarray(0, 4)]).toEqual([1, 2, 3, 4]);
    kernel.mmioWrite64(bar, EDU_REG.DMA_SRC, EDU_DMA_BUFFER);
    kernel.mmioWrite64(bar, EDU_REG.DMA_DST, 0x101000n);
    kernel.mmioWrite32(bar, EDU_REG.DMA_CMD, 1 | 2);
    expect([...new Uint8Array(ram, 0x1000, 4)]).toEqual([1, 2, 3, 4]);
  });

  test('no bus mastering, no DMA; out-of-range transfers are fatal; IOVAs are clipped to 28 bits', () => {
    const ram = kernel.allocDma(4096);
    mapDma(kernel, container, { vaddr: kernel.addressOf(ram), iova: 0x2000n, size: 4096n });
    new Uint8Array(ram)[0] = 7;
    kernel.mmioWrite64(bar, EDU_REG.DMA_SRC, 0x2000n);
    kernel.mmioWrite64(bar, EDU_REG.DMA_DST, EDU_DMA_BUFFER);
    kernel.mmioWrite64(bar, EDU_REG.DMA_COUNT, 1n);
    kernel.mmioWrite32(bar, EDU_REG.DMA_CMD, 1);
    expect(edu.buffer[0]).toBe(0);
    busMaster(true);
    kernel.mmioWrite64(bar, EDU_REG.DMA_SRC, 0x1000_2000n); // bit 28 is dropped by the DMA mask
    kernel.mmioWrite32(bar, EDU_REG.DMA_CMD, 1);
    expect(edu.buffer[0]).toBe(7);
    kernel.mmioWrite64(bar, EDU_REG.DMA_COUNT, 4097n);
    expect(thrown(() => kernel.mmioWrite32(bar, EDU_REG.DMA_CMD, 1)).message).toMatch(/out of bounds/);
  });

  test('reset clears the registers', () => {
    kernel.mmioWrite32(bar, EDU_REG.LIVENESS, 5);
    kernel.ioctl(device, VFIO_DEVICE_RESET);
    expect(kernel.mmioRead32(bar, EDU_REG.LIVENESS)).toBe(0xffffffff);
  });
});
