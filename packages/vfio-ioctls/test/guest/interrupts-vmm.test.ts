// @guest-needs iommu suite
// @guest-backends container
/**
 * Interrupts as a VMM uses them (issue #12 part 3), on the real kernel:
 * 64 nvme MSI-X vectors through one poller, MSI-X blocks that grow (the
 * NORESIZE path on 6.1, dynamic MSI-X where the kernel has it), and the
 * caller's eventfds (irqfd and resamplefd stand-ins).
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { EventFd, type InterruptEvent } from 'vfio-ioctls';
import { device, nextInterrupt, openDevice, resources, trackResources, waitFor } from './helpers';

const MSIX = b.VFIO_PCI_MSIX_IRQ_INDEX;
const INTX = b.VFIO_PCI_INTX_IRQ_INDEX;
const { keep, assertNoLeaks } = trackResources();

/** How many of this process's fds are of this anon_inode kind ('[eventpoll]', '[eventfd]'). */
function anonFds(kind: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === `anon_inode:${kind}`) n++;
    } catch {
      // The fd readdir itself held, gone by now.
    }
  }
  return n;
}

test('64 nvme MSI-X vectors through one poller: each DATA_BOOL trigger of all 64 arrives, none lost', async () => {
  const dev = keep(openDevice(device('nvme').address));
  const epolls = anonFds('[eventpoll]');
  const eventfds = anonFds('[eventfd]');
  const irqs = keep(dev.enableIrq(MSIX, { count: 64 }));
  // One epoll fd for the range (inside one uv_poll), one eventfd per vector.
  assert.equal(anonFds('[eventpoll]'), epolls + 1);
  assert.equal(anonFds('[eventfd]'), eventfds + 64);
  const counts = new Array<number>(64).fill(0);
  let events = 0;
  irqs.on('interrupt', (event: InterruptEvent) => {
    counts[event.vector] += event.count;
    events++;
  });
  const rounds = 20;
  for (let round = 1; round <= rounds; round++) {
    irqs.trigger(irqs.vectors);
    await waitFor(`round ${round} of 64 vectors`, () => counts.every((c) => c >= round));
  }
  assert.deepEqual(counts, new Array(64).fill(rounds));
  // Counts drained in the callback: each event carries at least 1, so no more events than interrupts.
  assert.ok(events <= 64 * rounds);
  // Two rounds before the loop turns: each vector's count is 2 in one event, or 1 in two.
  irqs.trigger(irqs.vectors);
  irqs.trigger(irqs.vectors);
  await waitFor('two more rounds', () => counts.every((c) => c === rounds + 2));
  irqs.disable();
  assert.equal(anonFds('[eventpoll]'), epolls);
  assert.equal(anonFds('[eventfd]'), eventfds);
  dev.close();
});

test('MSI-X grows past an enabled range (NORESIZE: whole block re-enabled; dynamic: vectors added), eventfds kept', async (t) => {
  const dev = keep(openDevice(device('nvme').address));
  const info = dev.irqInfo(MSIX);
  t.diagnostic(`nvme MSI-X: ${info.count} vectors, NORESIZE ${info.noresize ? 'set' : 'clear (dynamic MSI-X)'}`);
  const low = keep(dev.enableIrq(MSIX, { count: 2 }));
  const kvm = keep(EventFd.create());
  const mid = keep(dev.enableIrq(MSIX, { start: 2, eventfds: [kvm] }));
  const high = keep(dev.enableIrq(MSIX, { start: 32, count: 33 }));
  assert.deepEqual([high.start, high.count], [32, 33]);
  const first = nextInterrupt(low);
  low.trigger(1);
  assert.equal((await first).vector, 1);
  const last = nextInterrupt(high);
  high.trigger(64);
  assert.equal((await last).vector, 64);
  mid.trigger(2);
  assert.equal(kvm.read(), 1n);
  // Inside the block now.
  const gap = keep(dev.enableIrq(MSIX, { start: 10, count: 4 }));
  const inGap = nextInterrupt(gap);
  gap.trigger(13);
  assert.equal((await inGap).vector, 13);
  for (const irqs of [gap, high, mid, low]) irqs.disable();
  kvm.close();
  dev.close();
});

test("the caller's eventfds: signalled by the kernel, not watched or closed by the library; INTx with the caller's resamplefd", () => {
  const nvme = keep(openDevice(device('nvme').address));
  const kvm = [0, 1, 2, 3].map(() => keep(EventFd.create()));
  const irqs = keep(nvme.enableIrq(MSIX, { start: 8, eventfds: kvm }));
  assert.equal(irqs.callerEventfds, true);
  assert.equal(irqs.fd(9), kvm[1]!.fd);
  irqs.trigger([8, 11]);
  assert.deepEqual(kvm.map((e) => e.read()), [1n, 0n, 0n, 1n]);
  assert.throws(() => irqs.on('interrupt', () => {}), { code: 'ERR_VFIO_UNSUPPORTED' });
  irqs.disable();
  kvm[0]!.write(5);
  assert.equal(kvm[0]!.read(), 5n); // still open: the library did not close it
  nvme.close();

  const edu = keep(openDevice(device('edu').address));
  const trigger = keep(EventFd.create());
  const resample = keep(EventFd.create());
  const intx = keep(edu.enableIrq(INTX, { eventfds: [trigger], resample }));
  assert.equal(intx.resampleFd, resample.fd);
  intx.trigger();
  assert.equal(trigger.read(), 1n);
  // unmask() writes the resamplefd; the kernel's virqfd consumes it at once.
  intx.unmask();
  assert.equal(resample.read(), 0n);
  intx.disable();
  edu.close();
  for (const e of [...kvm, trigger, resample]) e.close();
});

test('no fd or pinned memory left', () => {
  assert.ok(resources().fds >= 0);
  assertNoLeaks();
});
