'use strict';
// Issue 12's interrupt latency into a nested KVM guest (ops.js KVM_OPS),
// the library side: edu passed through as examples/mini-vmm does it (its
// Vm class, compiled into packages/vfio-ioctls/dist-guest by
// `pnpm --filter vfio-ioctls build:guest`). c/kvm_irq_bench.c does the same
// in C with the same payload bytes (written to a file for it).
//   kvm-irqfd:   the guest times its own interrupts (kvm-tsc-payload.js):
//                rdtsc, write edu 0x60 through the BAR slot, rdtsc at its
//                handler's entry, the deltas in guest RAM. edu's MSI goes
//                to an EventFd that is a KVM irqfd: no userspace on the
//                path; the VMM enters once and reads the deltas at the end.
//   kvm-forward: the same guest, exiting on port 0x13 after each raise;
//                edu's MSI goes to the library's own eventfd, watched on
//                the event loop; at the exit the VMM awaits the
//                'interrupt' event and injects with KVM_IRQ_LINE.
//   kvm-exit:    EXIT_PAYLOAD below: port exits alone,
//                timed in the VMM from one exit to the next (the floor).
//   kvm-irqfd-msi, kvm-forward-msi: the first two with edu's interrupt
//                routed as an MSI to the nested guest's local APIC
//                (KVM_SET_GSI_ROUTING; the forwarder injects with
//                KVM_SIGNAL_MSI), as VMMs route a passed-through MSI; the
//                payload's MSI variant. KVM injects an MSI route in the
//                irqfd's wake-up; a pin (GSI 5) goes through a kworker.
// Ticks become ns on each side the same way: the guest brackets its run
// with rdtsc, each followed by a port 0x14 exit at which the VMM reads
// CLOCK_MONOTONIC (C clock_gettime, here process.hrtime), ticks per ns =
// TSC difference / clock difference (after one warm-up exit, clock unused).
// Both sides run as child processes pinned to the same CPU (taskset): under
// TCG where the VMM's thread runs decides the latency far more than the
// language does (measured on vfio-7.3 with the earlier exit-to-exit irqfd
// row: pinned to CPU 0, C 3.81 ms and the library 3.80 ms per interrupt;
// to CPU 1, 153 us and 339 us).
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const b = require('vfio-bindings');
const { DmaBuffer, EventFd } = require('vfio-ioctls');
const unsafe = require('vfio-ioctls/unsafe');
const cprog = require('../c-programs');
const { MINI_VMM } = require('../paths');
const { measureSync } = require('../timing');
const { openOnBackend, closeOnBackend } = require('./open-device');
const { BENCH_CPU } = require('./interrupt-cpu');
const edu = require('./edu');
const tsc = require('./kvm-tsc-payload');

const RAM_SIZE = 0xa0000;
const BAR_GPA = 0xa0000;
const BAR_WINDOW = 0x10000;
const { LOAD_AT } = tsc; // where both payloads are entered
const GSI = 5;
const WAIT_PORT = 0x13;
// The kvm-exit row's guest: port exits alone, the cost of the exit each
// forwarded interrupt holds; entered at LOAD_AT, real mode, no device, no
// interrupt. (It was the tail, at 0x1072, of the interrupt loop the rows
// ran before they were timed in the guest; that loop was never entered.)
const EXIT_PAYLOAD = Uint8Array.from([
  0xba, 0x13, 0x00, // 0000 mov dx,0x13
  0xee,             // 0003 out dx,al
  0xeb, 0xfd,       // 0004 jmp 3
]);

/** The -msi modes route edu's interrupt as an MSI (GSI tsc.MSI_GSI) instead of the 8259's pin GSI. */
const isMsi = (mode) => mode.endsWith('-msi');

/** The guest a mode runs: the timing one (its MSI variant for -msi), or EXIT_PAYLOAD for the exit floor. */
function payloadOf(mode) {
  if (mode === 'exit') return EXIT_PAYLOAD;
  return isMsi(mode) ? tsc.tscMsiPayload() : tsc.tscPayload();
}

/** Where the C program reads a mode's payload from (written per run). */
function payloadFile(mode) {
  const file = path.join(os.tmpdir(), `kvm-irq-payload-${mode}.bin`);
  fs.writeFileSync(file, payloadOf(mode));
  return file;
}

const hasKvm = () => fs.existsSync('/dev/kvm');

/** The backend the rows run on: the container where asked for, else the first. */
const kvmBackend = (backends) => (backends.includes('container') ? 'container' : backends[0]);

/** Runs `argv` pinned to BENCH_CPU (interrupt-cpu.js); returns the JSON line it printed for `id`. */
function pinned(argv, id) {
  const stdout = execFileSync('taskset', ['-c', String(BENCH_CPU), ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const rec = JSON.parse(line);
    if (rec.op === id) return { batch: rec.batch, samples: rec.samples };
  }
  throw new Error(`${argv[0]} printed no samples for ${id}`);
}

/** A row's mode is its id after 'kvm-' (kvm-irqfd-msi -> irqfd-msi), as kvm_irq_bench names its modes. */
const modeOf = (op) => op.id.slice('kvm-'.length);

/** One C process per mode (each sets up its own VM; with --c-pkey, BENCH_C_PKEY in the environment, holding a protection key as Node does). */
function runKvmCRound(dev, o, backend, ops) {
  const node = backend === 'container' ? dev.groupPath : dev.cdev;
  const out = {};
  for (const op of ops) {
    out[op.id] = pinned([cprog.binaryPath('kvm_irq_bench'), modeOf(op), backend, node, dev.address, payloadFile(modeOf(op)), `${op.id}:${op.batch}:${o.samples}:${o.warmup}`], op.id);
  }
  return out;
}

/** The VM for one mode, set up as the C program does; returns the op and close(). */
function setUp(dev, backend, mode) {
  const forward = mode.startsWith('forward');
  const msi = isMsi(mode);
  const { Vm } = require(path.join(MINI_VMM, 'kvm.js'));
  const { KVM_CONSTANTS: K, irqLevel, msiRouting, msiMessage } = require(path.join(MINI_VMM, 'kvm-abi.js'));
  const opened = openOnBackend(dev, backend);
  const { device, iommu } = opened;
  const config = device.config;
  config.writeUint16(edu.PCI_COMMAND, config.readUint16(edu.PCI_COMMAND) | edu.PCI_COMMAND_MASTER);
  const vm = Vm.create();
  const ram = DmaBuffer.alloc(RAM_SIZE, { memfd: true });
  ram.bytes.set(payloadOf(mode), LOAD_AT);
  const mapping = iommu.map(ram, { offset: 0, size: RAM_SIZE, iova: 0n });
  vm.setMemory(0, 0n, BigInt(RAM_SIZE), unsafe.addressOf(ram));
  const bar = unsafe.mmap(device.fd, BAR_WINDOW, unsafe.PROT_READ | unsafe.PROT_WRITE, device.region(b.VFIO_PCI_BAR0_REGION_INDEX).offset);
  vm.setMemory(1, BigInt(BAR_GPA), BigInt(BAR_WINDOW), unsafe.addressOf(bar));
  vm.createIrqchip();
  if (msi) unsafe.ioctl(vm.fd, K.KVM_SET_GSI_ROUTING, msiRouting(tsc.MSI_GSI, tsc.MSI_ADDRESS, tsc.MSI_VECTOR));
  const gsi = msi ? tsc.MSI_GSI : GSI;
  let irqfd;
  let irqs;
  let wake = null;
  if (forward) {
    irqs = device.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX);
    irqs.on('interrupt', () => {
      const w = wake;
      wake = null;
      if (w) w();
    });
  } else {
    irqfd = EventFd.create();
    vm.addIrqfd(irqfd.fd, gsi);
    irqs = device.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX, { eventfds: [irqfd] });
  }
  const link = device.addToKvm(vm.createVfioDevice());
  const vcpu = vm.createVcpu(LOAD_AT, 0x8000);
  const raise = irqLevel(GSI, 1);
  const lower = irqLevel(GSI, 0);
  const message = msiMessage(tsc.MSI_ADDRESS, tsc.MSI_VECTOR);
  const forwardOne = async () => {
    // The MSI came while the vCPU ran; its poller runs once we yield.
    await new Promise((resolve) => (wake = resolve));
    if (msi) {
      unsafe.ioctl(vm.fd, K.KVM_SIGNAL_MSI, message);
      return;
    }
    unsafe.ioctl(vm.fd, K.KVM_IRQ_LINE, raise);
    unsafe.ioctl(vm.fd, K.KVM_IRQ_LINE, lower);
  };
  const nextOut = () => {
    const exit = vcpu.run();
    if (exit.reason !== 'io-out') throw new Error(`unexpected KVM exit ${exit.code}`);
    return exit.port;
  };
  const toWaitExit = () => {
    while (nextOut() !== WAIT_PORT);
  };
  /** irqfd / forward: the guest's run, samples as c/kvm_irq_bench.c's run_timed makes them. */
  const timed = async ({ batch, samples, warmup }) => {
    const n = batch * (warmup + samples);
    if (!batch || !samples || n > tsc.MAX_INTERRUPTS) {
      throw new Error(`batch * (warmup + samples) = ${n}: want 1..${tsc.MAX_INTERRUPTS} interrupts, samples > 0`);
    }
    const view = new DataView(ram.bytes.buffer, ram.bytes.byteOffset, ram.bytes.byteLength);
    view.setUint16(tsc.N_AT, n, true);
    view.setUint8(tsc.FORWARD_AT, forward ? 1 : 0);
    const clock = []; // clock[0]: the guest's warm-up exit, not used (kvm-tsc-payload.js)
    while (clock.length < 3) {
      const port = nextOut();
      if (port === tsc.CLOCK_PORT) clock.push(process.hrtime.bigint());
      else if (forward && port === tsc.FORWARD_PORT) await forwardOne();
      else throw new Error(`unexpected port 0x${port.toString(16)}`);
    }
    const ticks = view.getBigUint64(tsc.TSC_END_AT, true) - view.getBigUint64(tsc.TSC_START_AT, true);
    const ticksPerNs = Number(ticks) / Number(clock[2] - clock[1]);
    // On stderr, to compare the two sides' conversions.
    process.stderr.write(`kvm-irq-ops ${mode}: TSC ${ticksPerNs.toFixed(4)} ticks/ns over ${(Number(clock[2] - clock[1]) / 1e6).toFixed(2)} ms\n`);
    const out = [];
    for (let s = 0; s < samples; s++) {
      let sum = 0;
      for (let i = 0; i < batch; i++) sum += view.getUint32(tsc.DELTAS_AT + 4 * ((warmup + s) * batch + i), true);
      out.push(sum / batch / ticksPerNs);
    }
    return out;
  };
  if (mode === 'exit') toWaitExit(); // up to the first exit, as C
  const close = () => {
    link.close();
    irqs.disable();
    vm.close();
    irqfd?.close();
    unsafe.munmap(bar);
    mapping.unmap();
    ram.close();
    closeOnBackend(opened);
  };
  return { op: toWaitExit, timed, close };
}

/** The library's rows: this file as a child process per mode, as C. */
async function runKvmLibraryRound(dev, o, backend, ops) {
  const out = {};
  for (const op of ops) {
    const plan = { id: op.id, mode: modeOf(op), batch: op.batch, samples: o.samples, warmup: o.warmup };
    out[op.id] = pinned([process.execPath, __filename, JSON.stringify({ dev, backend, plan })], op.id);
  }
  return out;
}

/** This process's PKRU on stderr, as C prints its own (c/pkru_probe.c, when the bench built it). */
function printPkru(mode) {
  const probe = process.env.BENCH_PKRU_PROBE;
  if (!probe) return;
  const pkru = require(probe).pkru();
  process.stderr.write(`kvm-irq-ops ${mode}: ${pkru === null ? 'no protection keys (OSPKE off)' : `PKRU 0x${pkru.toString(16).padStart(8, '0')}`}\n`);
}

/** The child: one VM, one row's samples printed as C prints them. */
async function child({ dev, backend, plan }) {
  printPkru(plan.mode);
  const rig = setUp(dev, backend, plan.mode);
  try {
    const samples = plan.mode === 'exit' ? measureSync(rig.op, plan) : await rig.timed(plan);
    process.stdout.write(`${JSON.stringify({ op: plan.id, batch: plan.batch, samples })}\n`);
  } finally {
    rig.close();
  }
}

if (require.main === module) {
  child(JSON.parse(process.argv[2])).catch((error) => {
    process.stderr.write(`kvm-irq-ops: ${error.stack || error}\n`);
    process.exit(1);
  });
}

module.exports = { hasKvm, kvmBackend, runKvmCRound, runKvmLibraryRound };
