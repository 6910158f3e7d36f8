'use strict';
// Issue 12's MSI-X storm (ops.js NVME_OPS): 64 MSI-X vectors of the test
// bed's nvme, fired together by one VFIO_DEVICE_SET_IRQS (DATA_BOOL), until
// every vector has been counted once. C (c/irq_storm.c) waits in epoll and
// reads each eventfd; the library delivers through its one poller per range
// ('interrupt' events, counts drained natively). Both check that each storm
// counts every vector exactly once: none lost, none extra.
const fs = require('node:fs');
const b = require('vfio-bindings');
const { Device } = require('vfio-ioctls');
const cprog = require('../c-programs');
const { measureAsync } = require('../timing');
const { cOpOf } = require('./ops');

const VECTORS = 64;

/** The nvme device tools/vm bound to vfio-pci, or null when the test bed has none. */
function nvmeDevice() {
  const testbed = JSON.parse(fs.readFileSync(process.env.VFIO_TESTBED, 'utf8'));
  return testbed.devices.nvme ?? null;
}

/** One C process running the storm rows once. */
function runStormCRound(nvme, o, ops) {
  const specs = ops.map((op) => `${cOpOf(op)}:${op.batch}:${o.samples}:${o.warmup}`);
  const byC = cprog.run('irq_storm', [nvme.groupPath, nvme.address, ...specs]);
  return Object.fromEntries(ops.map((op) => [op.id, byC[cOpOf(op)]]));
}

/** The library's side: the device opened (container backend) once per round, closed at its end. */
async function runStormLibraryRound(nvme, o, ops) {
  const device = Device.open(nvme.address, { iommu: 'container' });
  try {
    const irqs = device.enableIrq(b.VFIO_PCI_MSIX_IRQ_INDEX, { count: VECTORS });
    const vectors = irqs.vectors;
    const seen = new Array(VECTORS).fill(0);
    let counted = 0;
    let done = null;
    irqs.on('interrupt', ({ vector, count }) => {
      if (seen[vector] === 0) counted++;
      seen[vector] += count;
      if (counted === VECTORS && done) done();
    });
    const storm = async () => {
      seen.fill(0);
      counted = 0;
      const all = new Promise((resolve, reject) => {
        done = resolve;
        setTimeout(() => reject(new Error(`storm: ${counted} of ${VECTORS} vectors arrived within 5 s`)), 5000).unref();
      });
      irqs.trigger(vectors);
      await all;
      done = null;
      const wrong = seen.findIndex((n) => n !== 1);
      if (wrong >= 0) throw new Error(`storm: vector ${wrong} counted ${seen[wrong]} times, not once`);
    };
    const out = {};
    for (const op of ops) {
      out[op.id] = { batch: op.batch, samples: await measureAsync(storm, { batch: op.batch, samples: o.samples, warmup: o.warmup }) };
    }
    irqs.close();
    return out;
  } finally {
    device.close();
  }
}

module.exports = { nvmeDevice, runStormCRound, runStormLibraryRound, VECTORS };
