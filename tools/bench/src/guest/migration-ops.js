'use strict';
// Issue 13's migration rows (ops.js MTTY_OPS): an mtty-2 mdev (the mtty
// sample of the vfio-7.3 guest kernel) created through sysfs for the run,
// saved in STOP_COPY by c/mig_bench.c and by the library through its public
// API (Device.open of the mdev's sysfs path, device.migration), alternating.
const fs = require('node:fs');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const { Device } = require('vfio-ioctls');
const cprog = require('../c-programs');
const { measureSync, measureAsync } = require('../timing');
const { cOpOf } = require('./ops');

const MTTY_TYPE = '/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2';

/** Whether this kernel has the mtty sample (vfio-7.3 and compat-7.3 build it in; Debian's kernels do not). */
const hasMtty = () => fs.existsSync(MTTY_TYPE);

/**
 * Creates a dual-port mtty mdev; returns its UUID, sysfs path, group node,
 * MIG_DATA_SIZE (what each save must read) and remove().
 */
function createMtty() {
  if (!fs.existsSync(MTTY_TYPE)) throw new Error(`${MTTY_TYPE} is missing: the migration rows need the mtty sample (tools/vm kernel vfio-7.3)`);
  const uuid = randomUUID();
  fs.writeFileSync(`${MTTY_TYPE}/create`, uuid);
  const devPath = `/sys/bus/mdev/devices/${uuid}`;
  const remove = () => fs.writeFileSync(`${devPath}/remove`, '1');
  try {
    const groupPath = `/dev/vfio/${path.basename(fs.readlinkSync(`${devPath}/iommu_group`))}`;
    const device = Device.open(devPath, { iommu: 'container' });
    let dataSize;
    try {
      dataSize = Number(device.migration.dataSize());
    } finally {
      device.close();
    }
    return { uuid, path: devPath, groupPath, dataSize, remove };
  } catch (error) {
    remove();
    throw error;
  }
}

/** One C process running every migration row once. */
function runMigrationCRound(mtty, o, ops) {
  const specs = new Map();
  for (const op of ops) specs.set(cOpOf(op), `${cOpOf(op)}:${op.batch}:${o.samples}:${o.warmup}`);
  const byC = cprog.run('mig_bench', [mtty.groupPath, mtty.uuid, ...specs.values()]);
  return Object.fromEntries(ops.map((op) => [op.id, byC[cOpOf(op)]]));
}

/** The library's rows: the device opened once per round, closed at its end. */
async function runMigrationLibraryRound(mtty, o, ops) {
  // The container, as c/mig_bench.c (an mdev has its own cdev too, and 'auto' would take iommufd).
  const device = Device.open(mtty.path, { iommu: 'container' });
  try {
    const migration = device.migration;
    const chunk = new Uint8Array(64 * 1024); // the stream's default chunk, as C's
    // Time the right thing or nothing: every save reads MIG_DATA_SIZE's bytes.
    const check = (bytes) => {
      if (bytes !== mtty.dataSize) throw new Error(`the save read ${bytes} bytes, MIG_DATA_SIZE said ${mtty.dataSize}`);
    };
    const fns = {
      'mig-save-cycle': async () => {
        const session = migration.setState('STOP_COPY');
        let bytes = 0;
        for await (const data of session) bytes += data.length;
        check(bytes);
        migration.setState('RUNNING');
      },
      'mig-save-cycle-read': () => {
        const session = migration.setState('STOP_COPY');
        let bytes = 0;
        for (let n; (n = session.read(chunk)) > 0;) bytes += n;
        check(bytes);
        migration.setState('RUNNING');
      },
      'mig-save-arcs': () => {
        migration.setState('STOP_COPY');
        migration.setState('RUNNING'); // leaving STOP_COPY closes the unread session
      },
    };
    const out = {};
    for (const op of ops) {
      const plan = { batch: op.batch, samples: o.samples, warmup: o.warmup };
      out[op.id] = { batch: op.batch, samples: op.async ? await measureAsync(fns[op.id], plan) : measureSync(fns[op.id], plan) };
    }
    return out;
  } finally {
    device.close();
  }
}

module.exports = { hasMtty, createMtty, runMigrationCRound, runMigrationLibraryRound };
