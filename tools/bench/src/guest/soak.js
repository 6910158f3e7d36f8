'use strict';
// Issue 6's leak and soak check, on either IOMMU backend (the same code;
// `backend` picks how the device is opened: ./open-device.js). The
// container runs: N cycles of open container, group, device, map a
// buffer, enable an IRQ, take an interrupt, close everything; then the same
// with every handle dropped without close(), leaving the cleanup to the
// library's finalizers after a GC. The iommufd run: N cycles of open
// iommufd, IOAS, device (cdev bound and attached), map, unmap, then close
// (even cycles) or drop (odd cycles). The fd count, VFIO mappings and
// locked and pinned memory must come back exactly; RSS within a tolerance,
// because V8's heap and glibc's arenas never return to the byte. The V8
// heap and malloc figures beside it say where RSS went.
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const b = require('vfio-bindings');
const { DmaBuffer } = require('vfio-ioctls');
const { snapshot, newFds, fdCount, vfioMapCount } = require('./proc-status');
const { openOnBackend, closeOnBackend } = require('./open-device');
const edu = require('./edu');

const RSS_TOLERANCE_KIB = 2048;

/**
 * One cycle on `backend`; returns the handles (a dropped cycle never
 * closes them). shape 'full': the buffer stays mapped, BAR0 is mapped and
 * an MSI taken; 'lean': map and unmap, nothing else (the DMA path alone,
 * and a cycle short enough for 10,000 of them under TCG).
 */
async function cycle(dev, backend, shape, vfio) {
  const opened = openOnBackend(dev, backend, vfio);
  const buffer = DmaBuffer.alloc(4096, vfio);
  const mapping = opened.iommu.map(buffer);
  if (shape === 'lean') {
    mapping.unmap();
    return { opened, buffer };
  }
  const { device } = opened;
  const config = device.config;
  config.writeUint16(edu.PCI_COMMAND, config.readUint16(edu.PCI_COMMAND) | edu.PCI_COMMAND_MASTER);
  const mmio = device.region(b.VFIO_PCI_BAR0_REGION_INDEX).map();
  const irqs = device.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX);
  const got = new Promise((resolve) => irqs.once('interrupt', resolve));
  mmio.write32(edu.EDU_IRQ_RAISE, 1);
  await got;
  mmio.write32(edu.EDU_IRQ_ACK, 1);
  return { opened, buffer, mapping, mmio, irqs };
}

/** Closes in the kernel's order: what the device uses, device, its IOMMU context. */
function closeAll(h) {
  h.irqs?.close();
  h.mmio?.unmap();
  h.mapping?.unmap();
  h.buffer.close();
  closeOnBackend(h.opened);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * GCs until a dropped cycle's handles are released. A collection queues
 * the FinalizationRegistry callbacks and the addon's buffer finalizers
 * (munmap), which run as later tasks, and now and then a second collection
 * is needed: so after each GC this looks for ~12 ms (a full GC costs ~35 ms
 * under TCG; GC after GC with no wait took 3-4 GCs a cycle, this ~1.5).
 * Given `target` (a snapshot), until the fd count and the VFIO mappings are
 * back there: the fds alone come back before a dropped BAR mapping is
 * unmapped, and that mapping still holds the group (EBUSY on the next
 * open). Without a target, until the fd count stops falling.
 * Returns whether the mappings outlived the fds at some point.
 */
async function collect(target) {
  let last = Infinity;
  let mapsOutlivedFds = false;
  for (let round = 0; round < 20; round++) {
    global.gc();
    for (let wait = 0; wait < 4; wait++) {
      await sleep(wait === 0 ? 0 : 4);
      const fds = fdCount();
      if (target === undefined) continue;
      const maps = vfioMapCount();
      if (fds <= target.fds && maps > target.vfioMaps) mapsOutlivedFds = true;
      if (fds <= target.fds && maps <= target.vfioMaps) return mapsOutlivedFds;
    }
    if (target === undefined) {
      const fds = fdCount();
      if (fds >= last) return false;
      last = fds;
    }
  }
  return mapsOutlivedFds;
}

/** Least-squares slope of `key` per cycle over the checkpoints of the second half, in bytes. */
function slopeBytes(checkpoints, key, cycles) {
  const pts = checkpoints.filter((c) => c.cycle > cycles / 2 && c[key] !== null);
  if (pts.length < 3) return null;
  const mx = pts.reduce((a, c) => a + c.cycle, 0) / pts.length;
  const my = pts.reduce((a, c) => a + c[key], 0) / pts.length;
  let num = 0;
  let den = 0;
  for (const c of pts) {
    num += (c.cycle - mx) * (c[key] - my);
    den += (c.cycle - mx) ** 2;
  }
  return Math.round((num / den) * 1024 * 10) / 10;
}

/**
 * run: one entry of RUNS. mode 'close' closes every handle; 'drop' drops
 * them all; 'drop-but-irq' closes only the Interrupts and drops the rest,
 * which tells a leak held by the interrupt poller apart from one
 * elsewhere; 'half' closes even cycles and drops odd ones.
 */
async function soak({ label, backend, mode, shape, warmup }, dev, cycles, log) {
  // No variable may hold a dropped cycle's handles across the wait: a
  // suspended async function keeps its locals alive.
  const collectDropped = async () => {
    if (await collect(baseline)) mapsOutlivedFds++;
  };
  let n = 0;
  const one = {
    close: async () => closeAll(await cycle(dev, backend, shape)),
    drop: async () => {
      await cycle(dev, backend, shape);
      await collectDropped();
    },
    'drop-but-irq': async () => {
      (await cycle(dev, backend, shape)).irqs.close();
      await collectDropped();
    },
    half: async () => {
      if (n++ % 2 === 0) return closeAll(await cycle(dev, backend, shape));
      await cycle(dev, backend, shape);
      await collectDropped();
    },
  }[mode];
  // The fds and mappings between cycles, for the dropped modes to wait on.
  let baseline;
  const checkpoints = [];
  const every = Math.max(10, Math.floor(cycles / 100));
  // Cycles where the fds were back but a BAR mapping was not yet unmapped:
  // each would have met EBUSY had the wait looked at the fds alone.
  let mapsOutlivedFds = 0;
  let done = 0;
  let failure = null;
  let start = null;
  let t0 = 0n;
  try {
    // Node opens its stdio handles (the console, /dev/null) on first use:
    // open them now, or the first progress line looks like a leak.
    void process.stdin, void process.stdout, void process.stderr;
    await collect();
    baseline = snapshot();
    for (let i = 0; i < warmup; i++) await one();
    mapsOutlivedFds = 0;
    await collect();
    start = snapshot({ detail: true });
    baseline = start;
    t0 = process.hrtime.bigint();
    for (; done < cycles; done++) {
      await one();
      // Memory every 1% of the run: growth that levels off (allocator,
      // JIT) is told apart from a steady per-cycle leak by its slope.
      if ((done + 1) % every === 0) {
        // After a full GC, so that the closed mode's garbage between
        // scavenges does not read as growth.
        global.gc();
        const { rssKiB, heapUsedKiB, externalKiB, mallocKiB } = snapshot();
        checkpoints.push({ cycle: done + 1, rssKiB, heapUsedKiB, externalKiB, mallocKiB });
      }
      if (done === 99 || (done + 1) % 1000 === 0) {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6 / (done + 1);
        log(`soak ${backend}, ${label}: ${done + 1}/${cycles}, ${ms.toFixed(1)} ms/cycle, ${JSON.stringify(snapshot())}`);
      }
    }
  } catch (error) {
    // A dropped handle the finalizers did not release shows up here (the
    // group node is still open: EBUSY): a result, not a crash of the bench.
    const at = snapshot();
    failure = `${error.code ?? ''} ${error.message} (then: ${at.fds} fds, ${at.vfioMaps} VFIO mappings)`.trim();
    log(`soak ${backend}, ${label}: stopped after ${done} cycles: ${failure}`);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await collect();
  const end = snapshot({ detail: true });
  const leakedFds = newFds(start, end);
  delete start.fdTargets;
  delete end.fdTargets;
  const clean = !failure && end.fds === start.fds && end.lockedKiB === start.lockedKiB && end.pinnedKiB === start.pinnedKiB && end.vfioMaps === start.vfioMaps && end.rssKiB - start.rssKiB <= RSS_TOLERANCE_KIB;
  // Per-cycle trend over the second half, in bytes: a leak of even one
  // small object per cycle shows here as a steady positive slope.
  const slopes = Object.fromEntries(['rssKiB', 'heapUsedKiB', 'mallocKiB'].map((k) => [k.replace('KiB', ''), slopeBytes(checkpoints, k, done)]));
  return { label, backend, mode, shape, cycles: done, requested: cycles, warmupCycles: warmup, warmupOwnCycles: true, seconds, start, end, leakedFds, clean, failure, rssToleranceKiB: RSS_TOLERANCE_KIB, slopes, checkpoints, mapsOutlivedFds };
}

// Cycles of the run itself before the start snapshot: they load and
// compile its code and let V8 grow its young generation to the size this
// load keeps (some MiB of RSS over the first ~1,000-1,500 full cycles, then
// flat). A leak per cycle still shows in the measured ones; the warm-up's
// cycles only move where the count starts. (A run that warmed the dropped
// modes up with closed cycles saw them add 2.5 MiB of RSS in their own
// first 1,000 cycles, then stay flat.) The lean iommufd cycle allocates
// far less per cycle and collects every other one: 500 suffice there.
const RUNS = [
  { backend: 'container', mode: 'close', shape: 'full', warmup: 1500, label: 'closed explicitly' },
  { backend: 'container', mode: 'drop', shape: 'full', warmup: 1500, label: 'dropped without close(), finalizers after GC' },
  // Tells a leak held by the interrupt poller apart from one elsewhere.
  { backend: 'container', mode: 'drop-but-irq', shape: 'full', warmup: 1500, label: 'dropped, but Interrupts closed' },
  { backend: 'iommufd', mode: 'half', shape: 'lean', warmup: 500, label: 'open, map, unmap; half closed, half dropped (finalizers after GC)' },
];

/**
 * Each run in its own Node process: what one run leaks (an fd, a group
 * node or a bound cdev left open) must not fail or flatter the next.
 * backends: which of RUNS to run.
 */
async function runSoaks(dev, cycles, backends, log) {
  const runs = [];
  for (const run of RUNS.filter((r) => backends.includes(r.backend))) {
    log(`soak: ${run.backend}, ${run.label}, ${cycles} cycles`);
    const child = spawnSync(process.execPath, ['--expose-gc', __filename, JSON.stringify(run), String(cycles)], {
      encoding: 'utf8',
      timeout: Math.max(120, cycles) * 1000, // a hung child must not hang the boot
      stdio: ['ignore', 'pipe', 'inherit'],
      env: process.env,
    });
    const last = child.stdout.trim().split('\n').pop();
    if (child.status !== 0 || !last) throw new Error(`soak ${run.backend} ${run.mode}: child exited with ${child.status}`);
    runs.push(JSON.parse(last));
  }
  return { runs };
}

if (require.main === module) {
  const [run, cycles] = process.argv.slice(2);
  const dev = JSON.parse(fs.readFileSync(process.env.VFIO_TESTBED, 'utf8')).devices.edu;
  soak(JSON.parse(run), dev, Number(cycles), (m) => process.stderr.write(`bench(guest): ${m}\n`)).then(
    // Exit explicitly: a leaked, started interrupt poller keeps the event
    // loop alive, as it should for a live device, and would hang the bench.
    (r) => {
      console.log(JSON.stringify(r));
      process.exit(0);
    },
    (e) => {
      process.stderr.write(`${e.stack || e}\n`);
      process.exit(1);
    },
  );
}

// cycle and closeAll: for a dry run against the fake kernel on the host.
module.exports = { runSoaks, cycle, closeAll };
