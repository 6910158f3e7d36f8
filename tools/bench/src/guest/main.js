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
const { GUEST_OPS, cOpOf } = require('./ops');
const { runLibraryRound } = require('./lib-ops');
const { derive } = require('./derive');
const { runSoaks } = require('./soak');
const { profiled } = require('./profiler');

function args(argv) {
  const o = { rounds: 5, samples: 10, warmup: 2, soakCycles: 10000, soak: true, ops: true };
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
    else if (a === '--malloc-stats') process.env.BENCH_MALLOC_STATS = argv[++i];
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

/** One C process per round running every op once (pread-4 serves two rows). */
function runCRound(dev, o) {
  const specs = new Map();
  for (const op of GUEST_OPS) specs.set(cOpOf(op), `${cOpOf(op)}:${op.batch}:${o.samples * (op.samplesFactor ?? 1)}:${o.warmup}`);
  const byC = cprog.run('vfio_bench', [dev.groupPath, dev.address, ...specs.values()]);
  return Object.fromEntries(GUEST_OPS.map((op) => [op.id, byC[cOpOf(op)]]));
}

async function main() {
  const o = args(process.argv.slice(2));
  const dev = eduDevice();
  log(`edu at ${dev.address}, group ${dev.groupPath}; ${o.rounds} rounds`);
  const pooled = await alternate(
    o.ops ? o.rounds : 0,
    (r) => {
      log(`round ${r + 1}: C`);
      return runCRound(dev, o);
    },
    (r) => {
      log(`round ${r + 1}: library`);
      return o.profileDir ? profiled(o.profileDir, `library-round-${r + 1}`, () => runLibraryRound(dev, o)) : runLibraryRound(dev, o);
    },
  );
  const measurements = GUEST_OPS.filter((op) => pooled[op.id]).map((op) =>
    compare({ id: op.id, item: op.item, label: op.label, where: 'guest', target: op.target, c: pooled[op.id].baseline, js: pooled[op.id].library }),
  );
  const soak = o.soak ? await runSoaks(dev, o.soakCycles, log) : null;
  const machine = { ...describeHere(), kernel: dev.kernel };
  const out = { machine, measurements, derived: derive(measurements), soak };
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

