'use strict';
// The nested guest that times its own interrupts (issue 12's kvm-irqfd and
// kvm-forward rows and their -msi twins; bench-only: examples/mini-vmm
// keeps its own payload, whose 8259 set-up, PIC_SETUP, this one uses). Real mode at 0000:1000, loaded by both VMMs
// (c/kvm_irq_bench.c from the file kvm-irq-ops.js writes, the library side
// from these bytes), so C and the library run the same code and read the
// same results.
//
// Set up: ES = edu's BAR0 at 0xA0000 (as the mini VMM's payload does), FS =
// 0x1000 for the deltas, the interrupt controller, the handler's vector.
// Then [N_AT] interrupts, each: rdtsc into [0x510], edu 0x60 written (the
// BAR memory slot: no exit), with [FORWARD_AT] set one OUT to port 0x13
// (the forwarder's cue), spin until the handler's count at 0x500 moves.
// The handler's first work is rdtsc; it stores now - [0x510] (32 bits) at
// FS:DI (guest physical DELTAS_AT + 4 * i), acks edu (0x24 -> 0x64),
// counts, EOIs. The run is bracketed by rdtsc into [TSC_START_AT] /
// [TSC_END_AT], each followed by one OUT to port 0x14 at which the VMM reads
// CLOCK_MONOTONIC: the TSC's rate, ticks per ns, is (end - start) / (the
// VMM's two clock reads), the same sum on both sides. One more OUT to 0x14
// comes before those two, a warm-up the VMM ignores: the first exit of a
// process is slow on the library's side (its exit path's first run), which
// made its start clock late, ~2% of the rate. After the second OUT the
// guest spins with interrupts off (not entered again).
//
// Two controllers, one payload each, built from the same pieces below:
// - tscPayload() (kvm-irqfd, kvm-forward): the 8259, programmed by the mini
//   VMM's PIC_SETUP (vector base 0x20, only IRQ5 unmasked), the handler at
//   vector 0x25, EOI by OUT 0x20.
// - tscMsiPayload() (kvm-irqfd-msi, kvm-forward-msi; the VMM routes GSI
//   MSI_GSI as an MSI to vector MSI_VECTOR, as VMMs route a passed-through
//   MSI): the local APIC, moved to 0xC0000 (WRMSR 0x1B: below 1 MiB, so
//   real mode reaches it through GS, and outside both memory slots, so its
//   accesses exit to KVM's in-kernel APIC) and enabled (SVR 0x1FF: software
//   enable, spurious vector 0xFF); the handler at vector 0x40; EOI by a
//   write to the APIC's EOI register (GS:0xB0). The 8259 is left alone.
// Each piece was assembled once with GNU as (.code16, Intel syntax); the
// offsets are within the piece. Only relative jumps are inside a piece,
// so the pieces run wherever they land; the one absolute address, the
// handler's in the vector table, is computed by payloadFor().
const path = require('node:path');
const { MINI_VMM } = require('../paths');

const LOAD_AT = 0x1000;

/** Segments and stack; interrupts off. */
const ENTRY = [
  0xfa,                                             // 0000 cli
  0x31, 0xc0,                                       // 0001 xor ax,ax
  0x8e, 0xd8,                                       // 0003 mov ds,ax
  0x8e, 0xd0,                                       // 0005 mov ss,ax
  0xbc, 0x00, 0x80,                                 // 0007 mov sp,0x8000
  0xb8, 0x00, 0xa0,                                 // 000a mov ax,0xa000
  0x8e, 0xc0,                                       // 000d mov es,ax
  0xb8, 0x00, 0x10,                                 // 000f mov ax,0x1000
  0x8e, 0xe0,                                       // 0012 mov fs,ax
];

/** The local APIC moved to 0xC0000 (enabled, BSP), GS on it, then software-enabled. */
const APIC_SETUP = [
  0x66, 0xb9, 0x1b, 0x00, 0x00, 0x00,               // 0000 mov ecx,0x1b
  0x66, 0xb8, 0x00, 0x09, 0x0c, 0x00,               // 0006 mov eax,0xc0900
  0x66, 0x31, 0xd2,                                 // 000c xor edx,edx
  0x0f, 0x30,                                       // 000f wrmsr
  0xb8, 0x00, 0xc0,                                 // 0011 mov ax,0xc000
  0x8e, 0xe8,                                       // 0014 mov gs,ax
  0x65, 0x66, 0xc7, 0x06, 0xf0, 0x00, 0xff, 0x01, 0x00, 0x00, // 0016 mov dword gs:0xf0,0x1ff
];

/** The vector table entry of `vector`: `handler`'s offset, segment 0 (mov word ds:[vector*4], handler; mov word ds:[vector*4+2], 0). */
function vectorEntry(vector, handler) {
  const at = vector * 4;
  return [0xc7, 0x06, at & 0xff, at >> 8, handler & 0xff, handler >> 8, 0xc7, 0x06, (at + 2) & 0xff, (at + 2) >> 8, 0x00, 0x00];
}

/** The run: the clock exits, N_AT interrupts timed, the end clock exit, then spin. */
const RUN = [
  0xc7, 0x06, 0x00, 0x05, 0x00, 0x00,               // 0000 mov word ds:0x500,0x0
  0x31, 0xff,                                       // 0006 xor di,di
  0xfb,                                             // 0008 sti
  0xba, 0x14, 0x00,                                 // 0009 mov dx,0x14
  0xee,                                             // 000c out dx,al
  0x0f, 0x31,                                       // 000d rdtsc
  0x66, 0xa3, 0x18, 0x05,                           // 000f mov ds:0x518,eax
  0x66, 0x89, 0x16, 0x1c, 0x05,                     // 0013 mov dword ds:0x51c,edx
  0xba, 0x14, 0x00,                                 // 0018 mov dx,0x14
  0xee,                                             // 001b out dx,al
  0x8b, 0x0e, 0x04, 0x05,                           // 001c mov cx,word ds:0x504
  // one:
  0x8b, 0x1e, 0x00, 0x05,                           // 0020 mov bx,word ds:0x500
  0x0f, 0x31,                                       // 0024 rdtsc
  0x66, 0xa3, 0x10, 0x05,                           // 0026 mov ds:0x510,eax
  0x66, 0x89, 0x16, 0x14, 0x05,                     // 002a mov dword ds:0x514,edx
  0x26, 0x66, 0xc7, 0x06, 0x60, 0x00, 0x01, 0x00, 0x00, 0x00, // 002f mov dword es:0x60,0x1
  0x80, 0x3e, 0x06, 0x05, 0x00,                     // 0039 cmp byte ds:0x506,0x0
  0x74, 0x04,                                       // 003e je wait
  0xba, 0x13, 0x00,                                 // 0040 mov dx,0x13
  0xee,                                             // 0043 out dx,al
  // wait:
  0x39, 0x1e, 0x00, 0x05,                           // 0044 cmp word ds:0x500,bx
  0x74, 0xfa,                                       // 0048 je wait
  0xe2, 0xd4,                                       // 004a loop one
  0x0f, 0x31,                                       // 004c rdtsc
  0x66, 0xa3, 0x20, 0x05,                           // 004e mov ds:0x520,eax
  0x66, 0x89, 0x16, 0x24, 0x05,                     // 0052 mov dword ds:0x524,edx
  0xba, 0x14, 0x00,                                 // 0057 mov dx,0x14
  0xee,                                             // 005a out dx,al
  0xfa,                                             // 005b cli
  // done:
  0xeb, 0xfe,                                       // 005c jmp done
];

/** The handler up to its EOI (rdtsc first, after saving the two registers it writes). */
const HANDLER = [
  0x66, 0x50,                                       // 0000 push eax
  0x66, 0x52,                                       // 0002 push edx
  0x0f, 0x31,                                       // 0004 rdtsc
  0x66, 0x2b, 0x06, 0x10, 0x05,                     // 0006 sub eax,dword ds:0x510
  0x64, 0x66, 0x89, 0x05,                           // 000b mov dword fs:[di],eax
  0x83, 0xc7, 0x04,                                 // 000f add di,0x4
  0x26, 0x66, 0xa1, 0x24, 0x00,                     // 0012 mov eax,es:0x24
  0x26, 0x66, 0xa3, 0x64, 0x00,                     // 0017 mov es:0x64,eax
  0xff, 0x06, 0x00, 0x05,                           // 001c inc word ds:0x500
];

const PIC_EOI = [
  0xb0, 0x20,                                       // 0000 mov al,0x20
  0xe6, 0x20,                                       // 0002 out 0x20,al
];

const APIC_EOI = [
  0x65, 0x66, 0xc7, 0x06, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00, // 0000 mov dword gs:0xb0,0x0
];

const HANDLER_RETURN = [
  0x66, 0x5a,                                       // 0000 pop edx
  0x66, 0x58,                                       // 0002 pop eax
  0xcf,                                             // 0004 iret
];

/** The payload for one controller: its set-up, the handler at `vector`, its EOI. */
function payloadFor(setup, vector, eoi) {
  const head = [...ENTRY, ...setup];
  const handlerAt = LOAD_AT + head.length + vectorEntry(0, 0).length + RUN.length;
  return Uint8Array.from([...head, ...vectorEntry(vector, handlerAt), ...RUN, ...HANDLER, ...eoi, ...HANDLER_RETURN]);
}

/** The MSI the -msi rows route and signal: local APIC 0, vector 0x40, fixed, edge. */
const MSI_ADDRESS = 0xfee00000;
const MSI_VECTOR = 0x40;
/** The -msi rows' GSI: above the IOAPIC's 24 pins (their routes are replaced anyway). */
const MSI_GSI = 24;

/** The 8259 payload; its set-up bytes come from the compiled mini VMM, as the VM class does (read when first asked). */
const tscPayload = () => payloadFor(require(path.join(MINI_VMM, 'payload.js')).PIC_SETUP, 0x25, PIC_EOI);
/** The local-APIC payload. */
const tscMsiPayload = () => payloadFor(APIC_SETUP, MSI_VECTOR, APIC_EOI);

/** Guest physical layout the VMM writes and reads (little-endian). */
const N_AT = 0x504; // u16: interrupts in the run
const FORWARD_AT = 0x506; // u8: 1 = OUT to FORWARD_PORT after each raise
const TSC_START_AT = 0x518; // u64
const TSC_END_AT = 0x520; // u64
const DELTAS_AT = 0x10000; // u32 per interrupt, raise -> handler, TSC ticks
/** DI wraps at 64 KiB: 16384 deltas at most. */
const MAX_INTERRUPTS = 0x4000;
const FORWARD_PORT = 0x13;
const CLOCK_PORT = 0x14;

module.exports = { LOAD_AT, tscPayload, tscMsiPayload, MSI_ADDRESS, MSI_VECTOR, MSI_GSI, N_AT, FORWARD_AT, TSC_START_AT, TSC_END_AT, DELTAS_AT, MAX_INTERRUPTS, FORWARD_PORT, CLOCK_PORT };
