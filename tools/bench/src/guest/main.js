'use strict';
// Runs in the guest (tools/vm chroots into the host root, so these paths
// work unchanged): alternates the C floor and the library over every row
// of ops.js, derives the extra figures, runs the soaks, and writes
// one JSON file into the results folder shared back to the host.
const fs = require('node:fs');
const cprog = require('../c-programs');
const { alternate } = require('../alternate');
const { compare } = require('../compare');
const { describeHere } = require('../machine');
const { GUEST_OPS, MTTY_OPS, NVME_OPS, KVM_OPS, BACKENDS, opsFor, cOpOf, onlyRows } = require('./ops');
const { hasKvm, kvmBackend, runKvmCRound, runKvmLibraryRound } = require('./kvm-irq-ops');
const { nvmeDevice, runStormCRound, runStormLibraryRound } = require('./storm-ops');
const { runLibraryRound } = require('./lib-ops');
const { hasMtty, createMtty, runMigrationCRound, runMigrationLibraryRound } = require('./migration-ops');
const { derive } = require('./derive');
const { runSoaks } = require('./soak');
const { profiled } = require('./profiler');
const { onBenchCpu, routeInterruptsToBenchCpu } = require('./interrupt-cpu');

function args(argv) {
  const o = { rounds: 5, samples: 10, warmup: 2, soakCycles: 10000, soak: true, ops: true, backends: BACKENDS, soakBackends: BACKENDS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') o.out = argv[++i];
    else if (a === '--no-soak') o.soak = false;
    else if (a === '--soak-only') o.ops = false;
    else if (a === '--profile-dir') o.profileDir = argv[++i];
    else if (a === '--rounds') o.rounds = Number(argv[++i]);
    else if (a === '--samples') o.samples = Number(argv[++i]);
    else if (a === '--warmup') o.warmup = Number(argv[++i]);
    else if (a === '--soak-cycles') o.soakCycles = Number(argv[++i]);
    else if (a === '--backends') o.backends = argv[++i].split(',');
    else if (a === '--soak-backends') o.soakBackends = argv[++i].split(',');
    else if (a === '--only') o.only = argv[++i].split(',');
    else if (a === '--malloc-stats') process.env.BENCH_MALLOC_STATS = argv[++i];
    else if (a === '--pkru-probe') process.env.BENCH_PKRU_PROBE = argv[++i];
    else if (a === '--c-pkey') process.env.BENCH_C_PKEY = '1'; // every C program inherits it (c/pkru.h)
    else throw new Error(`guest: unknown argument ${a}`);
  }
  if (!o.out) throw new Error('guest: --out is required');
  return o;
}

const log = (m) => process.stderr.write(`bench(guest): ${m}\n`);

/** The edu device tools/vm bound to vfio-pci, from its testbed.json. */
function eduDevice() {
  const testbed = JSON.parse(fs.readFileSync(process.env.VFIO_TESTBED, 'utf8'));
  const edu = testbed.devices.edu;
  if (!edu) throw new Error('guest: no edu device in the test bed');
  return { ...edu, kernel: testbed.kernel };
}

/**
 * The backends this boot has: iommufd needs /dev/iommu and the device's
 * cdev (testbed.json names it on kernels with VFIO_DEVICE_CDEV).
 */
function availableBackends(dev, wanted) {
  return wanted.filter((backend) => {
    if (backend !== 'iommufd' || (dev.cdev && fs.existsSync('/dev/iommu'))) return true;
    log(`no iommufd on this kernel (cdev ${dev.cdev}, /dev/iommu ${fs.existsSync('/dev/iommu') ? 'present' : 'absent'}): its rows are skipped`);
    return false;
  });
}

/** One C process per round and backend running every op once (pread-4 serves two rows). */
function runCRound(dev, o, backend, ops) {
  const specs = new Map();
  for (const op of ops) specs.set(cOpOf(op), `${cOpOf(op)}:${op.batch}:${o.samples * (op.samplesFactor ?? 1)}:${o.warmup}`);
  const node = backend === 'container' ? dev.groupPath : dev.cdev;
  const byC = cprog.run('vfio_bench', [backend, node, dev.address, ...specs.values()]);
  return Object.fromEntries(ops.map((op) => [op.id, byC[cOpOf(op)]]));
}

/**
 * Runs `side(backend, ops)` for each backend with rows selected (--only);
 * one record of all rows.
 */
async function eachBackend(backends, only, side) {
  const out = {};
  for (const backend of backends) {
    const ops = onlyRows(opsFor(backend), only);
    if (ops.length) Object.assign(out, await side(backend, ops));
  }
  return out;
}

async function main() {
  const o = args(process.argv.slice(2));
  const dev = eduDevice();
  const backends = availableBackends(dev, o.backends);
  const soakBackends = availableBackends(dev, o.soakBackends);
  log(`edu at ${dev.address}, group ${dev.groupPath}, cdev ${dev.cdev}; ${o.rounds} rounds on ${backends.join(' and ')}`);
  log(routeInterruptsToBenchCpu());
  // The migration rows' mtty device, made for this run and removed after it.
  let mttyOps = o.ops ? onlyRows(MTTY_OPS, o.only) : [];
  if (mttyOps.length && !hasMtty()) {
    log('no mtty sample on this kernel (/sys/class/mdev_bus/mtty): the migration rows are skipped');
    mttyOps = [];
  }
  const mtty = mttyOps.length ? createMtty() : null;
  // The storm rows' nvme (64 of its 65 MSI-X vectors), container backend.
  let stormOps = o.ops ? onlyRows(NVME_OPS, o.only) : [];
  const nvme = stormOps.length ? nvmeDevice() : null;
  if (stormOps.length && !nvme) {
    log('no nvme in this test bed: the MSI-X storm rows are skipped');
    stormOps = [];
  }
  // The nested-guest interrupt rows: one backend, a VM per mode.
  let kvmOps = o.ops ? onlyRows(KVM_OPS, o.only) : [];
  if (kvmOps.length && (!hasKvm() || !backends.length)) {
    log('no /dev/kvm in this guest (or no backend): the nested-guest interrupt rows are skipped');
    kvmOps = [];
  }
  const kvmOn = kvmOps.length ? kvmBackend(backends) : null;
  if (mtty) log(`mtty-2 ${mtty.uuid}, group ${mtty.groupPath}, MIG_DATA_SIZE ${mtty.dataSize} bytes`);
  // Each round: C then library on every backend, then on the mtty device.
  // The device is closed between any two of them (a cdev bound to an
  // iommufd and the group path exclude each other).
  let pooled;
  try {
    pooled = await alternate(
      o.ops ? o.rounds : 0,
      async (r) => ({
        ...(await eachBackend(backends, o.only, (backend, ops) => {
          log(`round ${r + 1}: C, ${backend}`);
          return onBenchCpu(() => runCRound(dev, o, backend, ops));
        })),
        ...(mtty ? (log(`round ${r + 1}: C, mtty`), runMigrationCRound(mtty, o, mttyOps)) : {}),
        ...(stormOps.length ? (log(`round ${r + 1}: C, nvme storm`), await onBenchCpu(() => runStormCRound(nvme, o, stormOps))) : {}),
        ...(kvmOn ? (log(`round ${r + 1}: C, nested KVM guest, ${kvmOn}`), runKvmCRound(dev, o, kvmOn, kvmOps)) : {}),
      }),
      async (r) => ({
        ...(await eachBackend(backends, o.only, (backend, ops) => {
          log(`round ${r + 1}: library, ${backend}`);
          const run = () => runLibraryRound(dev, o, backend, ops);
          return onBenchCpu(() => (o.profileDir ? profiled(o.profileDir, `library-round-${r + 1}-${backend}`, run) : run()));
        })),
        ...(mtty ? (log(`round ${r + 1}: library, mtty`), await runMigrationLibraryRound(mtty, o, mttyOps)) : {}),
        ...(stormOps.length
          ? (log(`round ${r + 1}: library, nvme storm`),
            await onBenchCpu(() => (o.profileDir ? profiled(o.profileDir, `library-round-${r + 1}-storm`, () => runStormLibraryRound(nvme, o, stormOps)) : runStormLibraryRound(nvme, o, stormOps))))
          : {}),
        ...(kvmOn ? (log(`round ${r + 1}: library, nested KVM guest, ${kvmOn}`), await runKvmLibraryRound(dev, o, kvmOn, kvmOps)) : {}),
      }),
    );
  } finally {
    mtty?.remove();
  }
  // Each iommufd row right below its container row; the migration rows last.
  const order = (op) => GUEST_OPS.findIndex((g) => g.id === op.id.replace(/@.*$/, ''));
  const rows = [...backends.flatMap(opsFor).sort((x, y) => order(x) - order(y)), ...MTTY_OPS, ...NVME_OPS, ...KVM_OPS];
  const measurements = rows.filter((op) => pooled[op.id]).map((op) =>
    compare({ id: op.id, item: op.item, label: op.label, where: 'guest', target: op.target, c: pooled[op.id].baseline, js: pooled[op.id].library }),
  );
  const soak = o.soak ? await runSoaks(dev, o.soakCycles, soakBackends, log) : null;
  const machine = { ...describeHere(), kernel: dev.kernel };
  const out = { machine, measurements, derived: derive(measurements, { migrationBytes: mtty?.dataSize }), soak };
  fs.writeFileSync(o.out, JSON.stringify(out) + '\n');
  log(`wrote ${o.out}`);
}

// An await that nothing can settle (an interrupt that never arrives, a
// poller that does not hold the loop) lets Node exit with status 0 and no
// results: make that a failure with a reason.
let finished = false;
process.on('exit', (code) => {
  if (finished || code !== 0) return;
  process.stderr.write('bench(guest): the event loop ran dry before the end (an awaited interrupt never came?)\n');
  process.exitCode = 3;
});

main().then(() => (finished = true)).catch((e) => {
  process.stderr.write(`bench(guest): ${e.stack || e}\n`);
  process.exit(1);
});

