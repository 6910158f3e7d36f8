/**
 * Everything that waits for a FinalizationRegistry callback (the safety net
 * of dropped handles, buffers and mappings, in the library and in the fake
 * kernel) lives in this one file, which test/sequencer.js runs first.
 *
 * Why: on Node 20 (V8 11.3) a FinalizationRegistry that is collected while a
 * cleanup is pending for it leaves V8's "cleanup task posted" flag set, and
 * no FinalizationRegistry callback of the process runs again (the package
 * README, "The safety net", has a reproduction). Jest evaluates the
 * library's modules again for each test file and drops them after it, so
 * registries die all through a run: after some orders of files (seen in CI:
 * iommufd.test, fault-injection-iommufd.test, then these tests) every
 * finalizer stopped. Run first, in one file whose registries all live to its
 * end, the callbacks run; the first test checks that, so a stalled process
 * is reported as such instead of as a leak.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer } from '../src';
import { FakeKernel } from '../src/testing';
import { EDU as FAKE_EDU, GROUP as FAKE_GROUP, openDevice } from './fake-kernel/helpers';
import { EDU, expectNothingLeft, kernel, tick } from './helpers';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/**
 * Collects garbage until `done()` holds or 10 s pass (finalizers run as
 * separate tasks, after the collection that found their targets dead).
 */
async function collectUntil(done: () => boolean): Promise<boolean> {
  for (const deadline = Date.now() + 10_000; !done() && Date.now() < deadline;) {
    gc();
    await tick(10);
  }
  return done();
}

/**
 * For tests that something is NOT collected: collects until a fresh object's
 * finalizer has run, then a few rounds more (V8 runs one registry's callbacks
 * per task), so any finalizer that was going to run has run.
 */
async function settle(): Promise<void> {
  let ran = false;
  const registry = new FinalizationRegistry(() => {
    ran = true;
  });
  (() => registry.register({}, 0))();
  if (!(await collectUntil(() => ran))) throw new Error('FinalizationRegistry callbacks do not run in this process');
  for (let i = 0; i < 5; i++) {
    gc();
    await tick(5);
  }
}

test('FinalizationRegistry callbacks run in this process (this file runs first: see the note above)', async () => {
  let ran = false;
  const registry = new FinalizationRegistry(() => {
    ran = true;
  });
  (() => registry.register({}, 0))();
  expect(await collectUntil(() => ran)).toBe(true);
});

describe('the library\'s safety net', () => {
  test('the finalizer closes the fd of a container the program dropped', async () => {
    const { fake, env } = kernel();
    (() => {
      Container.open(env);
    })();
    expect(fake.openFds()).toHaveLength(1);
    expect(await collectUntil(() => fake.openFds().length === 0)).toBe(true);
  });

  test('the finalizer frees a dropped DMA buffer', async () => {
    const { fake, env } = kernel();
    (() => {
      DmaBuffer.alloc(4096, env);
    })();
    expect(await collectUntil(() => fake.liveDmaBuffers() === 0)).toBe(true);
  });

  test('a dropped Device.open device: the safety net closes device, group and container fds, pollers and eventfds', async () => {
    const { fake, env } = kernel();
    (() => {
      const device = Device.open(EDU, env);
      device.enableIrq(1);
    })();
    expect(fake.livePollers()).toBe(1);
    expect(await collectUntil(() => fake.livePollers() === 0 && fake.openFds().length === 0)).toBe(true);
  });

  test('interrupts someone listens to stay alive even when nothing else references them', async () => {
    const { fake, env, devices } = kernel();
    const events: number[] = [];
    (() => {
      Device.open(EDU, env).enableIrq(1).on('interrupt', (event) => events.push(event.vector));
    })();
    await settle();
    expect(fake.livePollers()).toBe(1);
    devices[0]!.triggerIrq(1, 0);
    await tick(5);
    expect(events).toEqual([0]);
  });

  test('an awaited next() on otherwise unreferenced interrupts still resolves', async () => {
    const { env, devices } = kernel();
    const next = (() => Device.open(EDU, env).enableIrq(1).next())();
    await settle();
    devices[0]!.triggerIrq(1, 0);
    await expect(next).resolves.toEqual({ index: 1, vector: 0, count: 1 });
  });

  test('an explicitly closed handle is not closed again by the finalizer', async () => {
    const { fake, env } = kernel();
    (() => {
      Container.open(env).close();
    })();
    const reused = Container.open(env); // takes the same fd number
    await settle();
    expect(fake.openFds()).toEqual([reused.fd]);
    reused.close();
  });

  test('the safety net unmaps a dropped memfd-backed buffer and closes its fd', async () => {
    const { fake, env } = kernel();
    (() => {
      DmaBuffer.alloc(4096, { ...env, memfd: true }).bytes[0] = 1;
    })();
    await collectUntil(() => fake.openFds().length === 0 && fake.liveMmaps() === 0);
    expectNothingLeft(fake);
  });});

const PAGE = 4096;
const RW = 3;

describe('memfd mappings in the fake kernel', () => {
  test('a dropped mapping is released after collection, as the addon\'s finalizer munmaps it', async () => {
    const kernel = new FakeKernel();
    const fd = kernel.memfd('m', 2 * PAGE);
    (() => {
      new Uint8Array(kernel.mmap(fd, PAGE, RW, BigInt(PAGE)))[0] = 1;
    })();
    await collectUntil(() => kernel.liveMmaps() === 0);
    expect(kernel.liveMmaps()).toBe(0);
    kernel.close(fd);
    kernel.dispose();
  });
});

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
    expect(() => kernel.open(`/dev/vfio/${FAKE_GROUP}`, 2)).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    await collectUntil(() => kernel.liveMmaps() === 0 && !kernel.device(FAKE_EDU)!.isOpen);
    expect(kernel.liveMmaps()).toBe(0);
    expect(kernel.device(FAKE_EDU)!.isOpen).toBe(false);
    const again = kernel.open(`/dev/vfio/${FAKE_GROUP}`, 2);
    kernel.close(again);
    kernel.close(container);
    expect(kernel.openFds()).toEqual([]);
    kernel.dispose();
  });

  test('the region keeps every write made through the fake after its mapping is collected', async () => {
    const { kernel, device } = openDevice();
    const dev = kernel.device(FAKE_EDU)!;
    (() => {
      const whole = kernel.mmap(device, 1 << 20, 3, 0n);
      kernel.mmioWrite32(whole, 0x10, 0xfeedf00d);
      const window = kernel.mmap(device, 4096, 3, 0x2000n);
      kernel.mmioWrite32(window, 4, 0x12345678);
    })();
    await collectUntil(() => kernel.liveMmaps() === 0);
    expect(kernel.liveMmaps()).toBe(0);
    const view = new DataView(dev.region(b.VFIO_PCI_BAR0_REGION_INDEX).slice().buffer);
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
    await settle();
    expect(kernel.liveMmaps()).toBe(1);
    kernel.close(device); // the live mapping still holds the device file
    expect(kernel.device(FAKE_EDU)!.isOpen).toBe(true);
    kernel.munmap(kept);
    expect(kernel.device(FAKE_EDU)!.isOpen).toBe(false);
    kernel.dispose();
  });
});
