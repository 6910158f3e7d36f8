'use strict';
// Issue 6's leak and soak check: N cycles of open container, group,
// device, map a buffer, enable an IRQ, take an interrupt, close everything;
// then the same with every handle dropped without close(), leaving the
// cleanup to the library's finalizers after a GC. The fd count and locked
// memory must come back exactly; RSS within a tolerance, because V8's heap
// never returns to the byte.
const b = require('vfio-bindings');
const { Container, Group, DmaBuffer } = require('vfio-ioctls');
const { snapshot } = require('./proc-status');
const edu = require('./edu');

const RSS_TOLERANCE_KIB = 2048;
const WARMUP_CYCLES = 5;

/** One cycle; returns the handles (the dropped variant never closes them). */
async function cycle(dev) {
  const container = Container.open();
  const group = Group.open(dev.iommuGroup);
  group.attach(container);
  const device = group.openDevice(dev.address);
  const buffer = DmaBuffer.alloc(4096);
  const mapping = container.map(buffer);
  const config = device.config;
  config.writeUint16(edu.PCI_COMMAND, config.readUint16(edu.PCI_COMMAND) | edu.PCI_COMMAND_MASTER);
  const mmio = device.region(b.VFIO_PCI_BAR0_REGION_INDEX).map();
  const irqs = device.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX);
  const got = new Promise((resolve) => irqs.once('interrupt', resolve));
  mmio.write32(edu.EDU_IRQ_RAISE, 1);
  await got;
  mmio.write32(edu.EDU_IRQ_ACK, 1);
  return { container, group, device, buffer, mapping, mmio, irqs };
}

/** Closes in the kernel's order: what the device uses, device, group, container. */
function closeAll(h) {
  h.irqs.close();
  h.mmio.unmap();
  h.mapping.unmap();
  h.buffer.close();
  h.device.close();
  h.group.close();
  h.container.close();
}

/** A few GCs with turns of the event loop between, so finalizers run. */
async function collect() {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function soak(label, dev, cycles, dropped, log) {
  const one = dropped ? async () => { await cycle(dev); await collect(); } : async () => closeAll(await cycle(dev));
  for (let i = 0; i < WARMUP_CYCLES; i++) await one();
  await collect();
  const start = snapshot();
  const t0 = process.hrtime.bigint();
  let done = 0;
  let failure = null;
  try {
    for (; done < cycles; done++) {
      await one();
      if (done === 99 || (done + 1) % 1000 === 0) {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6 / (done + 1);
        log(`soak ${label}: ${done + 1}/${cycles}, ${ms.toFixed(1)} ms/cycle, ${JSON.stringify(snapshot())}`);
      }
    }
  } catch (error) {
    // A dropped handle the finalizers did not release shows up here (the
    // group node is still open: EBUSY): a result, not a crash of the bench.
    failure = `${error.code ?? ''} ${error.message}`.trim();
    log(`soak ${label}: stopped after ${done} cycles: ${failure}`);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await collect();
  const end = snapshot();
  const clean = !failure && end.fds === start.fds && end.lockedKiB === start.lockedKiB && end.pinnedKiB === start.pinnedKiB && end.rssKiB - start.rssKiB <= RSS_TOLERANCE_KIB;
  return { label, cycles: done, requested: cycles, seconds, start, end, clean, failure, rssToleranceKiB: RSS_TOLERANCE_KIB };
}

async function runSoaks(dev, cycles, log) {
  const runs = [];
  runs.push(await soak('closed explicitly', dev, cycles, false, log));
  runs.push(await soak('dropped, finalizers after GC', dev, cycles, true, log));
  return { runs };
}

module.exports = { runSoaks };
