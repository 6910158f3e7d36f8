/**
 * A mini VMM in TypeScript: it passes QEMU's `edu` device through to a
 * nested KVM guest, the way a real VMM passes a device to its VM.
 *
 *   - guest RAM is a memfd-backed DmaBuffer, KVM memory slot 0 and
 *     DMA-mapped through VFIO at IOVA = guest physical address, so the
 *     device's DMA addresses are the guest's own;
 *   - edu's BAR0 is memory slot 1 over the VFIO mapping of the BAR, so the
 *     guest's loads and stores reach the device with no exit to us;
 *   - edu's MSI is signalled by VFIO to an EventFd of ours that is a KVM
 *     irqfd on GSI 5: the interrupt reaches the guest's 8259 with no
 *     userspace hop;
 *   - the device (its group, or its cdev fd on iommufd) is added to the
 *     KVM VFIO device.
 *
 * The guest (payload.ts, real mode) identifies edu, computes a factorial,
 * takes edu's interrupt in a handler and has edu DMA a buffer out of its
 * RAM and back; it answers over port I/O and this VMM checks each answer.
 *
 * Run it in the test bed with `pnpm demo:vmm`; on a machine with /dev/kvm
 * and edu bound to vfio-pci: `node dist-guest/examples/mini-vmm/mini-vmm.js
 * [PCI address] [--iommu auto|container|iommufd] [--json]` as root.
 * KVM ioctls go through `vfio-ioctls/unsafe`: outside the library's safety
 * promise, as any VMM's are.
 */
import * as b from 'vfio-bindings';
import { Device, DmaBuffer, EventFd, listIommuGroups, type DmaMapping, type IommuChoice, type Interrupts } from 'vfio-ioctls';
import * as unsafe from 'vfio-ioctls/unsafe';
import { exitName, Vm } from './kvm';
import {
  ANSWER_PORT, ANSWERS, DMA_BYTES, DMA_RETURN_GPA, DMA_SOURCE_GPA, DONE_PORT, EDU_BAR_GPA, FACTORIAL_OF, IRQ_PORT, IRQ_RAISED,
  LIVENESS_WRITTEN, PAYLOAD, PAYLOAD_ADDRESS,
} from './payload';

/** Guest RAM: 0 up to the BAR's slot at 0xA0000 (memory slots must not overlap). */
const RAM_SIZE = EDU_BAR_GPA;
/** The part of BAR0 the guest sees: edu's registers are in its first 256 bytes. */
const BAR_WINDOW = 0x10000;
const STACK_TOP = 0x8000;
/** The 8259 line the payload unmasks (vector 0x25). */
const GSI = 5;
const EDU_ID = 0x010000ed;
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MASTER = 0x4;
/** The most KVM_RUN exits the payload needs, with room: more means it is looping. */
const MAX_EXITS = 100;

/** One answer from the guest, and what it should have been. */
export interface Answer {
  name: string;
  got: number;
  want: number;
  ok: boolean;
}

export interface VmmReport {
  device: string;
  iommu: string;
  kvmVfioFile: 'group' | 'device';
  answers: Answer[];
  /** The guest's DMA buffer came back byte for byte (checked in guest RAM by the VMM). */
  dmaMatches: boolean;
  /** The eventfd was drained by KVM's irqfd, never read here. */
  irqfdConsumed: boolean;
  ok: boolean;
}

function findEdu(): string {
  for (const group of listIommuGroups()) {
    for (const pci of group.devices) if (pci.vendor === 0x1234 && pci.device === 0x11e8 && pci.driver === 'vfio-pci') return pci.address;
  }
  throw new Error('no edu device bound to vfio-pci (is this the test bed guest?)');
}

const hex = (value: number) => `0x${value.toString(16).padStart(8, '0')}`;

/** Sets everything up, runs the payload, checks its answers, and tears down in the kernel's order. */
export function runMiniVmm(address: string, iommu: IommuChoice, log: (line: string) => void): VmmReport {
  using device = Device.open(address, { iommu });
  const backend = device.group ? `container (group ${device.group.id})` : `iommufd (cdev)`;
  log(`mini-vmm: edu ${address} opened through ${backend}`);

  const vm = Vm.create();
  const ram = DmaBuffer.alloc(RAM_SIZE, { memfd: true });
  const bar = unsafe.mmap(device.fd, BAR_WINDOW, unsafe.PROT_READ | unsafe.PROT_WRITE, device.region(b.VFIO_PCI_BAR0_REGION_INDEX)!.offset);
  const irqfd = EventFd.create();
  let msi: Interrupts | undefined;
  let dma: DmaMapping | undefined;
  try {
    // 1. Guest RAM: one buffer, seen by the guest at 0 and by the device at the same addresses.
    dma = device.iommu!.map(ram, { offset: 0, size: RAM_SIZE, iova: 0n });
    vm.setMemory(0, 0n, BigInt(RAM_SIZE), unsafe.addressOf(ram));
    log(`  RAM: ${RAM_SIZE / 1024} KiB (a memfd) at guest physical 0, DMA-mapped at IOVA 0x${dma.iova.toString(16)} (IOVA = guest physical)`);

    // 2. The device's registers, straight into the guest.
    vm.setMemory(1, BigInt(EDU_BAR_GPA), BigInt(BAR_WINDOW), unsafe.addressOf(bar));
    log(`  BAR0: ${BAR_WINDOW / 1024} KiB at guest physical 0x${EDU_BAR_GPA.toString(16)}, a memory slot over the VFIO mapping (no MMIO exits)`);

    // 3. edu's MSI -> eventfd -> irqfd -> the guest's 8259, all in the kernel.
    vm.createIrqchip();
    vm.addIrqfd(irqfd.fd, GSI);
    msi = device.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX, { eventfds: [irqfd] });
    log(`  interrupt: edu MSI -> EventFd ${irqfd.fd} -> KVM irqfd on GSI ${GSI} (in-kernel 8259, no userspace hop)`);

    // 4. Tell KVM about the VFIO file; the link (or the device's close) removes it.
    const kvmVfioFd = vm.createVfioDevice();
    using link = device.addToKvm(kvmVfioFd);
    log(`  KVM VFIO device: the ${link.kind} fd added (KVM_DEV_VFIO_FILE_ADD)`);

    // Bus mastering lets edu DMA; the guest has no PCI config access of its own here.
    const config = device.config!;
    config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);

    // 5. The payload, and a pattern in guest RAM for the DMA to carry.
    const memory = ram.bytes;
    memory.set(PAYLOAD, PAYLOAD_ADDRESS);
    for (let i = 0; i < DMA_BYTES; i++) memory[DMA_SOURCE_GPA + i] = (i * 7 + 3) & 0xff;
    const vcpu = vm.createVcpu(PAYLOAD_ADDRESS, STACK_TOP);
    log(`  running the nested guest: ${PAYLOAD.length} bytes of real-mode code at 0x${PAYLOAD_ADDRESS.toString(16)}`);

    const answers: number[] = [];
    const irqReports: number[] = [];
    for (let exits = 0; ; exits++) {
      if (exits === MAX_EXITS) throw new Error(`the guest exited ${MAX_EXITS} times without finishing`);
      const exit = vcpu.run();
      if (exit.reason !== 'io-out') throw new Error(`unexpected KVM exit: ${exitName(exit.code)} after ${answers.length} answers`);
      if (exit.port === DONE_PORT) break;
      if (exit.port === ANSWER_PORT) {
        answers.push(exit.value);
        log(`    answer ${answers.length} (${ANSWERS[answers.length - 1] ?? 'extra'}): ${hex(exit.value)}`);
      }
      else if (exit.port === IRQ_PORT) {
        irqReports.push(exit.value);
        log(`    interrupt handler ran in the guest: edu interrupt status ${hex(exit.value)}`);
      } else throw new Error(`the guest wrote to unexpected port 0x${exit.port.toString(16)}`);
    }

    const source = memory.subarray(DMA_SOURCE_GPA, DMA_SOURCE_GPA + DMA_BYTES);
    const returned = memory.subarray(DMA_RETURN_GPA, DMA_RETURN_GPA + DMA_BYTES);
    const dmaMatches = Buffer.compare(source, returned) === 0;
    const firstDword = new DataView(source.buffer, source.byteOffset, 4).getUint32(0, true);
    const wants = [EDU_ID, ~LIVENESS_WRITTEN >>> 0, factorial(FACTORIAL_OF), 1, firstDword];
    const checked: Answer[] = ANSWERS.map((name, i) => ({ name, got: answers[i] ?? -1, want: wants[i], ok: answers[i] === wants[i] }));
    checked.push({ name: 'interrupt status seen by the handler', got: irqReports[0] ?? -1, want: IRQ_RAISED, ok: irqReports.length === 1 && irqReports[0] === IRQ_RAISED });
    if (answers.length !== ANSWERS.length) checked.push({ name: 'answers given', got: answers.length, want: ANSWERS.length, ok: false });
    for (const a of checked) log(`  ${a.ok ? 'ok  ' : 'FAIL'} ${a.name}: ${hex(a.got)}${a.ok ? '' : ` (want ${hex(a.want)})`}`);
    log(`  ${dmaMatches ? 'ok  ' : 'FAIL'} DMA: ${DMA_BYTES} bytes guest RAM 0x${DMA_SOURCE_GPA.toString(16)} -> edu -> guest RAM 0x${DMA_RETURN_GPA.toString(16)} ${dmaMatches ? 'identical' : 'DIFFER'}`);

    // KVM's irqfd drains the eventfd on each signal: finding it empty shows nobody else had to.
    const irqfdConsumed = irqfd.read() === 0n;
    log(`  ${irqfdConsumed ? 'ok  ' : 'FAIL'} the eventfd was drained by KVM, never read by the VMM`);
    const kind = link.kind;
    const ok = checked.every((a) => a.ok) && dmaMatches && irqfdConsumed;
    return { device: address, iommu: device.group ? 'container' : 'iommufd', kvmVfioFile: kind, answers: checked, dmaMatches, irqfdConsumed, ok };
  } finally {
    // The kernel's order: the KVM VFIO entry went with `link`; then the interrupt route,
    // the VM (its slots stop using the BAR and RAM), the BAR mapping, the RAM, the device.
    msi?.disable();
    vm.close();
    irqfd.close();
    unsafe.munmap(bar);
    dma?.unmap();
    ram.close();
    log('  closed: KVM VFIO entry deleted, MSI off, VM gone, BAR unmapped, RAM unmapped from the IOMMU and freed');
  }
}

function factorial(n: number): number {
  return n <= 1 ? 1 : n * factorial(n - 1);
}

function main(): void {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const at = args.indexOf('--iommu');
  const iommu = (at >= 0 ? args[at + 1] : 'auto') as IommuChoice;
  const address = args.find((arg, i) => !arg.startsWith('--') && args[i - 1] !== '--iommu') ?? findEdu();
  // With --json the progress goes to stderr, so a caller sees how far a hung run got.
  const report = runMiniVmm(address, iommu, json ? (line) => process.stderr.write(`${line}\n`) : console.log);
  if (json) console.log(JSON.stringify(report));
  else console.log(report.ok ? 'mini-vmm: every answer right' : 'mini-vmm: WRONG ANSWERS');
  if (!report.ok) process.exitCode = 1;
}

if (require.main === module) {
  try {
    main();
  } catch (error) {
    console.error(error);
    process.exitCode = 1;
  }
}
