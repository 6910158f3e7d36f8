import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { VFIO_PCI_BAR0_REGION_INDEX } from 'vfio-bindings';
import { EDU, GROUP, openDevice } from './helpers';

setFlagsFromString('--expose-gc');
const gc: () => void = runInNewContext('gc');

/**
 * Collects garbage and lets finalizers run (they run on later turns of the
 * event loop): six rounds, or with `until`, as many as it takes (up to 10 s:
 * after heavy test files in the same worker, six rounds were not always enough).
 */
async function collect(until?: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let i = 0; until ? !until() && Date.now() < deadline : i < 6; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, until ? 10 : 0));
  }
}

// As the addon's finalizer munmaps a mapping the program dropped (native/mapping.cc), the fake releases it.
describe('a region mapping the program drops is released after GC, as the addon does', () => {
  test('the mapping stops counting, and its hold on the device file goes with it', async () => {
    const { kernel, container, group, device } = openDevice();
    (() => {
      kernel.mmap(device, 4096, 3, 0n); // a partial window
      kernel.mmap(device, 1 << 20, 3, 0n); // the whole BAR
    })();
    expect(kernel.liveMmaps()).toBe(2);
    kernel.close(device);
    kernel.close(group);
    // The mappings hold the device file, which holds the group: not open again yet.
    expect(() => kernel.open(`/dev/vfio/${GROUP}`, 2)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    await collect(() => kernel.liveMmaps() === 0 && !kernel.device(EDU)!.isOpen);
    expect(kernel.liveMmaps()).toBe(0);
    expect(kernel.device(EDU)!.isOpen).toBe(false);
    const again = kernel.open(`/dev/vfio/${GROUP}`, 2);
    kernel.close(again);
    kernel.close(container);
    expect(kernel.openFds()).toEqual([]);
    kernel.dispose();
  });

  test('the region keeps every write made through the fake after its mapping is collected', async () => {
    const { kernel, device } = openDevice();
    const dev = kernel.device(EDU)!;
    (() => {
      const whole = kernel.mmap(device, 1 << 20, 3, 0n);
      kernel.mmioWrite32(whole, 0x10, 0xfeedf00d);
      const window = kernel.mmap(device, 4096, 3, 0x2000n);
      kernel.mmioWrite32(window, 4, 0x12345678);
    })();
    await collect(() => kernel.liveMmaps() === 0);
    expect(kernel.liveMmaps()).toBe(0);
    const view = new DataView(dev.region(VFIO_PCI_BAR0_REGION_INDEX).slice().buffer);
    expect(view.getUint32(0x10, true)).toBe(0xfeedf00d);
    expect(view.getUint32(0x2004, true)).toBe(0x12345678);
    // A fresh mapping is the region's memory again, with those bytes.
    const bar = kernel.mmap(device, 1 << 20, 3, 0n);
    expect(kernel.mmioRead32(bar, 0x2004)).toBe(0x12345678);
    kernel.munmap(bar);
    kernel.dispose();
  });

  test('an explicitly unmapped mapping is not released a second time when collected', async () => {
    const { kernel, device } = openDevice();
    (() => kernel.munmap(kernel.mmap(device, 4096, 3, 0n)))();
    const kept = kernel.mmap(device, 4096, 3, 0n);
    await collect();
    expect(kernel.liveMmaps()).toBe(1);
    kernel.close(device); // the live mapping still holds the device file
    expect(kernel.device(EDU)!.isOpen).toBe(true);
    kernel.munmap(kept);
    expect(kernel.device(EDU)!.isOpen).toBe(false);
    kernel.dispose();
  });
});
