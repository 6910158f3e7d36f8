'use strict';
// Under TCG, which CPU an MSI lands on decides the interrupt rows more than
// either side's code: one boot's edu MSI came on the bench's own CPU (C's
// read found the count there: 2.5-3.3 us), another's on the other vCPU (C
// slept and woke: 11 us; the library's spinning floor 15 us in one boot,
// 0.7-4 ms in another, its vCPU holding the host CPU the other needed).
// So a guest run routes every MSI enabled from its start to the last CPU
// (the kernel gives a new interrupt /proc/irq/default_smp_affinity), and
// the device rows run with the main thread pinned there, as are the C
// programs it starts then. The nested-guest rows pin their children to the
// same CPU (taskset) and leave the parent free: pinned there too, it made
// their C side noisier (medians 150 us against 87-104 us, two runs each).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');

/** The CPU the device interrupts, the device rows and the nested-guest children use. */
const BENCH_CPU = os.cpus().length - 1;

/** Routes every interrupt enabled from now on to BENCH_CPU; returns a line saying so. */
function routeInterruptsToBenchCpu() {
  fs.writeFileSync('/proc/irq/default_smp_affinity', (2 ** BENCH_CPU).toString(16));
  return `new interrupts go to CPU ${BENCH_CPU} of ${os.cpus().length}`;
}

/** This process's main thread only (no -a: V8's helper threads keep every CPU). */
function setMainThreadCpus(list) {
  execFileSync('taskset', ['-p', '-c', list, String(process.pid)], { stdio: 'ignore' });
}

/** Runs `fn` (sync or async) with the main thread, and the children it starts, on BENCH_CPU. */
async function onBenchCpu(fn) {
  setMainThreadCpus(String(BENCH_CPU));
  try {
    return await fn();
  } finally {
    setMainThreadCpus(`0-${os.cpus().length - 1}`);
  }
}

module.exports = { BENCH_CPU, routeInterruptsToBenchCpu, onBenchCpu };
