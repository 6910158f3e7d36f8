/**
 * The few pieces of <linux/kvm.h> (x86-64) the mini VMM uses (and the
 * bench's nested-guest rows, which add the MSI route): ioctl request
 * numbers, constants and struct layouts, written out by hand and checked
 * against the C compiler by test/kvm-layout.test.ts (which compiles a
 * program printing sizeof/offsetof/values for every key of KVM_LAYOUT and
 * KVM_CONSTANTS). No imports: the host test loads this file alone.
 */

/** sizeof and offsetof, keyed as the layout test prints them. */
export const KVM_LAYOUT = {
  'sizeof kvm_userspace_memory_region': 32,
  'kvm_userspace_memory_region.slot': 0,
  'kvm_userspace_memory_region.flags': 4,
  'kvm_userspace_memory_region.guest_phys_addr': 8,
  'kvm_userspace_memory_region.memory_size': 16,
  'kvm_userspace_memory_region.userspace_addr': 24,
  'kvm_run.exit_reason': 8,
  'kvm_run.io.direction': 32,
  'kvm_run.io.size': 33,
  'kvm_run.io.port': 34,
  'kvm_run.io.count': 36,
  'kvm_run.io.data_offset': 40,
  'sizeof kvm_regs': 144,
  'kvm_regs.rsp': 48,
  'kvm_regs.rip': 128,
  'kvm_regs.rflags': 136,
  'sizeof kvm_sregs': 312,
  'kvm_sregs.cs': 0,
  'sizeof kvm_segment': 24,
  'kvm_segment.base': 0,
  'kvm_segment.selector': 12,
  'sizeof kvm_irqfd': 32,
  'kvm_irqfd.fd': 0,
  'kvm_irqfd.gsi': 4,
  'kvm_irqfd.flags': 8,
  'kvm_irqfd.resamplefd': 12,
  'sizeof kvm_irq_level': 8,
  'kvm_irq_level.irq': 0,
  'kvm_irq_level.level': 4,
  'sizeof kvm_create_device': 12,
  'kvm_create_device.type': 0,
  'kvm_create_device.fd': 4,
  'kvm_create_device.flags': 8,
  'sizeof kvm_irq_routing': 8,
  'kvm_irq_routing.nr': 0,
  'kvm_irq_routing.flags': 4,
  'kvm_irq_routing.entries': 8,
  'sizeof kvm_irq_routing_entry': 48,
  'kvm_irq_routing_entry.gsi': 0,
  'kvm_irq_routing_entry.type': 4,
  'kvm_irq_routing_entry.flags': 8,
  'kvm_irq_routing_entry.u.msi.address_lo': 16,
  'kvm_irq_routing_entry.u.msi.address_hi': 20,
  'kvm_irq_routing_entry.u.msi.data': 24,
  'sizeof kvm_msi': 32,
  'kvm_msi.address_lo': 0,
  'kvm_msi.address_hi': 4,
  'kvm_msi.data': 8,
  'kvm_msi.flags': 12,
} as const;

/** Request numbers (unsigned) and constants, keyed by their C names. */
export const KVM_CONSTANTS = {
  KVM_API_VERSION: 12,
  KVM_GET_API_VERSION: 0xae00,
  KVM_CREATE_VM: 0xae01,
  KVM_GET_VCPU_MMAP_SIZE: 0xae04,
  KVM_CREATE_VCPU: 0xae41,
  KVM_SET_USER_MEMORY_REGION: 0x4020ae46,
  KVM_CREATE_IRQCHIP: 0xae60,
  KVM_IRQ_LINE: 0x4008ae61,
  KVM_IRQFD: 0x4020ae76,
  KVM_SET_GSI_ROUTING: 0x4008ae6a,
  KVM_SIGNAL_MSI: 0x4020aea5,
  KVM_IRQ_ROUTING_MSI: 2,
  KVM_CREATE_DEVICE: 0xc00caee0,
  KVM_RUN: 0xae80,
  KVM_GET_REGS: 0x8090ae81,
  KVM_SET_REGS: 0x4090ae82,
  KVM_GET_SREGS: 0x8138ae83,
  KVM_SET_SREGS: 0x4138ae84,
  KVM_DEV_TYPE_VFIO: 4,
  KVM_EXIT_IO: 2,
  KVM_EXIT_HLT: 5,
  KVM_EXIT_MMIO: 6,
  KVM_EXIT_SHUTDOWN: 8,
  KVM_EXIT_FAIL_ENTRY: 9,
  KVM_EXIT_INTERNAL_ERROR: 17,
  KVM_EXIT_IO_OUT: 1,
} as const;

const L = KVM_LAYOUT;

function struct(size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  return { bytes, view: new DataView(bytes.buffer) };
}

/** struct kvm_userspace_memory_region for KVM_SET_USER_MEMORY_REGION. */
export function memoryRegion(slot: number, guestPhysAddr: bigint, size: bigint, userspaceAddr: bigint): Uint8Array {
  const { bytes, view } = struct(L['sizeof kvm_userspace_memory_region']);
  view.setUint32(L['kvm_userspace_memory_region.slot'], slot, true);
  view.setUint32(L['kvm_userspace_memory_region.flags'], 0, true);
  view.setBigUint64(L['kvm_userspace_memory_region.guest_phys_addr'], guestPhysAddr, true);
  view.setBigUint64(L['kvm_userspace_memory_region.memory_size'], size, true);
  view.setBigUint64(L['kvm_userspace_memory_region.userspace_addr'], userspaceAddr, true);
  return bytes;
}

/** struct kvm_irqfd: signalling `eventfd` injects GSI `gsi` (flags 0: assign, no resample). */
export function irqfd(eventfd: number, gsi: number, flags = 0): Uint8Array {
  const { bytes, view } = struct(L['sizeof kvm_irqfd']);
  view.setUint32(L['kvm_irqfd.fd'], eventfd, true);
  view.setUint32(L['kvm_irqfd.gsi'], gsi, true);
  view.setUint32(L['kvm_irqfd.flags'], flags, true);
  return bytes;
}

/** KVM_IRQFD_FLAG_DEASSIGN: the same fd and GSI with this flag remove the irqfd. */
export const KVM_IRQFD_FLAG_DEASSIGN = 1;

/** struct kvm_irq_level for KVM_IRQ_LINE (the userspace way to raise or lower a GSI). */
export function irqLevel(gsi: number, level: 0 | 1): Uint8Array {
  const { bytes, view } = struct(L['sizeof kvm_irq_level']);
  view.setUint32(L['kvm_irq_level.irq'], gsi, true);
  view.setUint32(L['kvm_irq_level.level'], level, true);
  return bytes;
}

/**
 * struct kvm_irq_routing with one MSI entry, for KVM_SET_GSI_ROUTING: GSI
 * `gsi` becomes the message (`address`, `data`). The table replaces every
 * route the in-kernel irqchip had, its 8259 and IOAPIC pins included.
 */
export function msiRouting(gsi: number, address: number, data: number): Uint8Array {
  const entry = L['kvm_irq_routing.entries'];
  const { bytes, view } = struct(entry + L['sizeof kvm_irq_routing_entry']);
  view.setUint32(L['kvm_irq_routing.nr'], 1, true);
  view.setUint32(entry + L['kvm_irq_routing_entry.gsi'], gsi, true);
  view.setUint32(entry + L['kvm_irq_routing_entry.type'], KVM_CONSTANTS.KVM_IRQ_ROUTING_MSI, true);
  view.setUint32(entry + L['kvm_irq_routing_entry.u.msi.address_lo'], address, true);
  view.setUint32(entry + L['kvm_irq_routing_entry.u.msi.data'], data, true);
  return bytes;
}

/** struct kvm_msi for KVM_SIGNAL_MSI: the message injected once, from userspace. */
export function msiMessage(address: number, data: number): Uint8Array {
  const { bytes, view } = struct(L['sizeof kvm_msi']);
  view.setUint32(L['kvm_msi.address_lo'], address, true);
  view.setUint32(L['kvm_msi.data'], data, true);
  return bytes;
}

/** struct kvm_create_device for KVM_CREATE_DEVICE; the kernel writes the new fd into it. */
export function createDevice(type: number): Uint8Array {
  const { bytes, view } = struct(L['sizeof kvm_create_device']);
  view.setUint32(L['kvm_create_device.type'], type, true);
  return bytes;
}

/** The fd KVM_CREATE_DEVICE wrote back. */
export function createdDeviceFd(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(L['kvm_create_device.fd'], true);
}

/** kvm_sregs with CS (base and selector) set, for real mode at segment 0. */
export function setCodeSegment(sregs: Uint8Array, selector: number): void {
  const view = new DataView(sregs.buffer, sregs.byteOffset, sregs.byteLength);
  const cs = L['kvm_sregs.cs'];
  view.setBigUint64(cs + L['kvm_segment.base'], BigInt(selector) << 4n, true);
  view.setUint16(cs + L['kvm_segment.selector'], selector, true);
}

/** kvm_regs for entering at `rip` with `rsp` and the reserved flags bit (0x2) only. */
export function entryRegisters(rip: number, rsp: number): Uint8Array {
  const { bytes, view } = struct(L['sizeof kvm_regs']);
  view.setBigUint64(L['kvm_regs.rip'], BigInt(rip), true);
  view.setBigUint64(L['kvm_regs.rsp'], BigInt(rsp), true);
  view.setBigUint64(L['kvm_regs.rflags'], 2n, true);
  return bytes;
}

/** The part of struct kvm_run an I/O exit fills. */
export interface IoExit {
  direction: number;
  size: number;
  port: number;
  count: number;
  dataOffset: number;
}

export function exitReason(run: DataView): number {
  return run.getUint32(L['kvm_run.exit_reason'], true);
}

export function ioExit(run: DataView): IoExit {
  return {
    direction: run.getUint8(L['kvm_run.io.direction']),
    size: run.getUint8(L['kvm_run.io.size']),
    port: run.getUint16(L['kvm_run.io.port'], true),
    count: run.getUint32(L['kvm_run.io.count'], true),
    dataOffset: Number(run.getBigUint64(L['kvm_run.io.data_offset'], true)),
  };
}
