'use strict';
// The nested guest that times its own interrupts (issue 12's kvm-irqfd and
// kvm-forward rows; bench-only: examples/mini-vmm keeps its own payload).
// Real mode at 0000:1000, loaded by both VMMs (c/kvm_irq_bench.c from the
// file kvm-irq-ops.js writes, the library side from these bytes), so C and
// the library run the same code and read the same results.
//
// Set up: ES = edu's BAR0 at 0xA0000 (as the mini VMM's payload does), 8259
// vector base 0x20, only IRQ5 unmasked, handler at vector 0x25, FS = 0x1000
// for the deltas. Then [N_AT] interrupts, each: rdtsc into [0x510], edu
// 0x60 written (the BAR memory slot: no exit), with [FORWARD_AT] set one OUT
// to port 0x13 (the forwarder's cue), spin until the handler's count at
// 0x500 moves. The handler's first work is rdtsc; it stores now - [0x510]
// (32 bits) at FS:DI (guest physical DELTAS_AT + 4 * i), acks edu
// (0x24 -> 0x64), counts, EOIs. The run is bracketed by rdtsc into
// [TSC_START_AT] / [TSC_END_AT], each followed by one OUT to port 0x14 at
// which the VMM reads CLOCK_MONOTONIC: the TSC's rate, ticks per ns, is
// (end - start) / (the VMM's two clock reads), the same sum on both sides.
// One more OUT to 0x14 comes before those two, a warm-up the VMM ignores:
// the first exit of a process is slow on the library's side (its exit
// path's first run), which made its start clock late, ~2% of the rate.
// After the second OUT the guest spins with interrupts off (not entered again).
// Assembled once with GNU as (.code16, Intel syntax).
const TSC_PAYLOAD = Uint8Array.from([
  // start:
  0xfa,                                             // 0000 cli
  0x31, 0xc0,                                       // 0001 xor ax,ax
  0x8e, 0xd8,                                       // 0003 mov ds,ax
  0x8e, 0xd0,                                       // 0005 mov ss,ax
  0xbc, 0x00, 0x80,                                 // 0007 mov sp,0x8000
  0xb8, 0x00, 0xa0,                                 // 000a mov ax,0xa000
  0x8e, 0xc0,                                       // 000d mov es,ax
  0xb8, 0x00, 0x10,                                 // 000f mov ax,0x1000
  0x8e, 0xe0,                                       // 0012 mov fs,ax
  0xb0, 0x11,                                       // 0014 mov al,0x11
  0xe6, 0x20,                                       // 0016 out 0x20,al
  0xb0, 0x20,                                       // 0018 mov al,0x20
  0xe6, 0x21,                                       // 001a out 0x21,al
  0xb0, 0x04,                                       // 001c mov al,0x4
  0xe6, 0x21,                                       // 001e out 0x21,al
  0xb0, 0x01,                                       // 0020 mov al,0x1
  0xe6, 0x21,                                       // 0022 out 0x21,al
  0xb0, 0xdf,                                       // 0024 mov al,0xdf
  0xe6, 0x21,                                       // 0026 out 0x21,al
  0xc7, 0x06, 0x94, 0x00, 0x92, 0x10,               // 0028 mov word ds:0x94,0x1092
  0xc7, 0x06, 0x96, 0x00, 0x00, 0x00,               // 002e mov word ds:0x96,0x0
  0xc7, 0x06, 0x00, 0x05, 0x00, 0x00,               // 0034 mov word ds:0x500,0x0
  0x31, 0xff,                                       // 003a xor di,di
  0xfb,                                             // 003c sti
  0xba, 0x14, 0x00,                                 // 003d mov dx,0x14
  0xee,                                             // 0040 out dx,al
  0x0f, 0x31,                                       // 0041 rdtsc
  0x66, 0xa3, 0x18, 0x05,                           // 0043 mov ds:0x518,eax
  0x66, 0x89, 0x16, 0x1c, 0x05,                     // 0047 mov dword ds:0x51c,edx
  0xba, 0x14, 0x00,                                 // 004c mov dx,0x14
  0xee,                                             // 004f out dx,al
  0x8b, 0x0e, 0x04, 0x05,                           // 0050 mov cx,word ds:0x504
  // one:
  0x8b, 0x1e, 0x00, 0x05,                           // 0054 mov bx,word ds:0x500
  0x0f, 0x31,                                       // 0058 rdtsc
  0x66, 0xa3, 0x10, 0x05,                           // 005a mov ds:0x510,eax
  0x66, 0x89, 0x16, 0x14, 0x05,                     // 005e mov dword ds:0x514,edx
  0x26, 0x66, 0xc7, 0x06, 0x60, 0x00, 0x01, 0x00, 0x00, 0x00, // 0063 mov dword es:0x60,0x1
  0x80, 0x3e, 0x06, 0x05, 0x00,                     // 006d cmp byte ds:0x506,0x0
  0x74, 0x04,                                       // 0072 je wait
  0xba, 0x13, 0x00,                                 // 0074 mov dx,0x13
  0xee,                                             // 0077 out dx,al
  // wait:
  0x39, 0x1e, 0x00, 0x05,                           // 0078 cmp word ds:0x500,bx
  0x74, 0xfa,                                       // 007c je wait
  0xe2, 0xd4,                                       // 007e loop one
  0x0f, 0x31,                                       // 0080 rdtsc
  0x66, 0xa3, 0x20, 0x05,                           // 0082 mov ds:0x520,eax
  0x66, 0x89, 0x16, 0x24, 0x05,                     // 0086 mov dword ds:0x524,edx
  0xba, 0x14, 0x00,                                 // 008b mov dx,0x14
  0xee,                                             // 008e out dx,al
  0xfa,                                             // 008f cli
  // done:
  0xeb, 0xfe,                                       // 0090 jmp done
  // handler: (rdtsc first, after saving the two registers it writes)
  0x66, 0x50,                                       // 0092 push eax
  0x66, 0x52,                                       // 0094 push edx
  0x0f, 0x31,                                       // 0096 rdtsc
  0x66, 0x2b, 0x06, 0x10, 0x05,                     // 0098 sub eax,dword ds:0x510
  0x64, 0x66, 0x89, 0x05,                           // 009d mov dword fs:[di],eax
  0x83, 0xc7, 0x04,                                 // 00a1 add di,0x4
  0x26, 0x66, 0xa1, 0x24, 0x00,                     // 00a4 mov eax,es:0x24
  0x26, 0x66, 0xa3, 0x64, 0x00,                     // 00a9 mov es:0x64,eax
  0xff, 0x06, 0x00, 0x05,                           // 00ae inc word ds:0x500
  0xb0, 0x20,                                       // 00b2 mov al,0x20
  0xe6, 0x20,                                       // 00b4 out 0x20,al
  0x66, 0x5a,                                       // 00b6 pop edx
  0x66, 0x58,                                       // 00b8 pop eax
  0xcf,                                             // 00ba iret
]);

// TSC_MSI_PAYLOAD: the same run with edu's interrupt routed as an MSI to
// the local APIC (kvm-irqfd-msi, kvm-forward-msi: KVM_SET_GSI_ROUTING,
// GSI MSI_GSI -> vector MSI_VECTOR), as a VMM routes a passed-through MSI.
// Only three things differ: the set-up moves the APIC to APIC_BASE (WRMSR
// 0x1B: below 1 MiB, so real mode reaches it through GS, and outside both
// memory slots, so its accesses exit to KVM's in-kernel APIC) and enables
// it (SVR 0x1FF: software enable, spurious vector 0xFF); the handler is
// vector 0x40's (IVT 0x100); its EOI is a write to the APIC's EOI register
// (GS:0xB0) instead of OUT 0x20. The 8259 is left alone (no route reaches it).
const TSC_MSI_PAYLOAD = Uint8Array.from([
  // start:
  0xfa,                                             // 0000 cli
  0x31, 0xc0,                                       // 0001 xor ax,ax
  0x8e, 0xd8,                                       // 0003 mov ds,ax
  0x8e, 0xd0,                                       // 0005 mov ss,ax
  0xbc, 0x00, 0x80,                                 // 0007 mov sp,0x8000
  0xb8, 0x00, 0xa0,                                 // 000a mov ax,0xa000
  0x8e, 0xc0,                                       // 000d mov es,ax
  0xb8, 0x00, 0x10,                                 // 000f mov ax,0x1000
  0x8e, 0xe0,                                       // 0012 mov fs,ax
  0x66, 0xb9, 0x1b, 0x00, 0x00, 0x00,               // 0014 mov ecx,0x1b
  0x66, 0xb8, 0x00, 0x09, 0x0c, 0x00,               // 001a mov eax,0xc0900 (APIC_BASE | enable | BSP)
  0x66, 0x31, 0xd2,                                 // 0020 xor edx,edx
  0x0f, 0x30,                                       // 0023 wrmsr
  0xb8, 0x00, 0xc0,                                 // 0025 mov ax,0xc000
  0x8e, 0xe8,                                       // 0028 mov gs,ax
  0x65, 0x66, 0xc7, 0x06, 0xf0, 0x00, 0xff, 0x01, 0x00, 0x00, // 002a mov dword gs:0xf0,0x1ff
  0xc7, 0x06, 0x00, 0x01, 0x9e, 0x10,               // 0034 mov word ds:0x100,0x109e
  0xc7, 0x06, 0x02, 0x01, 0x00, 0x00,               // 003a mov word ds:0x102,0x0
  0xc7, 0x06, 0x00, 0x05, 0x00, 0x00,               // 0040 mov word ds:0x500,0x0
  0x31, 0xff,                                       // 0046 xor di,di
  0xfb,                                             // 0048 sti
  0xba, 0x14, 0x00,                                 // 0049 mov dx,0x14
  0xee,                                             // 004c out dx,al
  0x0f, 0x31,                                       // 004d rdtsc
  0x66, 0xa3, 0x18, 0x05,                           // 004f mov ds:0x518,eax
  0x66, 0x89, 0x16, 0x1c, 0x05,                     // 0053 mov dword ds:0x51c,edx
  0xba, 0x14, 0x00,                                 // 0058 mov dx,0x14
  0xee,                                             // 005b out dx,al
  0x8b, 0x0e, 0x04, 0x05,                           // 005c mov cx,word ds:0x504
  // one:
  0x8b, 0x1e, 0x00, 0x05,                           // 0060 mov bx,word ds:0x500
  0x0f, 0x31,                                       // 0064 rdtsc
  0x66, 0xa3, 0x10, 0x05,                           // 0066 mov ds:0x510,eax
  0x66, 0x89, 0x16, 0x14, 0x05,                     // 006a mov dword ds:0x514,edx
  0x26, 0x66, 0xc7, 0x06, 0x60, 0x00, 0x01, 0x00, 0x00, 0x00, // 006f mov dword es:0x60,0x1
  0x80, 0x3e, 0x06, 0x05, 0x00,                     // 0079 cmp byte ds:0x506,0x0
  0x74, 0x04,                                       // 007e je wait
  0xba, 0x13, 0x00,                                 // 0080 mov dx,0x13
  0xee,                                             // 0083 out dx,al
  // wait:
  0x39, 0x1e, 0x00, 0x05,                           // 0084 cmp word ds:0x500,bx
  0x74, 0xfa,                                       // 0088 je wait
  0xe2, 0xd4,                                       // 008a loop one
  0x0f, 0x31,                                       // 008c rdtsc
  0x66, 0xa3, 0x20, 0x05,                           // 008e mov ds:0x520,eax
  0x66, 0x89, 0x16, 0x24, 0x05,                     // 0092 mov dword ds:0x524,edx
  0xba, 0x14, 0x00,                                 // 0097 mov dx,0x14
  0xee,                                             // 009a out dx,al
  0xfa,                                             // 009b cli
  // done:
  0xeb, 0xfe,                                       // 009c jmp done
  // handler:
  0x66, 0x50,                                       // 009e push eax
  0x66, 0x52,                                       // 00a0 push edx
  0x0f, 0x31,                                       // 00a2 rdtsc
  0x66, 0x2b, 0x06, 0x10, 0x05,                     // 00a4 sub eax,dword ds:0x510
  0x64, 0x66, 0x89, 0x05,                           // 00a9 mov dword fs:[di],eax
  0x83, 0xc7, 0x04,                                 // 00ad add di,0x4
  0x26, 0x66, 0xa1, 0x24, 0x00,                     // 00b0 mov eax,es:0x24
  0x26, 0x66, 0xa3, 0x64, 0x00,                     // 00b5 mov es:0x64,eax
  0xff, 0x06, 0x00, 0x05,                           // 00ba inc word ds:0x500
  0x65, 0x66, 0xc7, 0x06, 0xb0, 0x00, 0x00, 0x00, 0x00, 0x00, // 00be mov dword gs:0xb0,0x0 (EOI)
  0x66, 0x5a,                                       // 00c8 pop edx
  0x66, 0x58,                                       // 00ca pop eax
  0xcf,                                             // 00cc iret
]);
/** The MSI the -msi rows route and signal: local APIC 0, vector 0x40, fixed, edge. */
const MSI_ADDRESS = 0xfee00000;
const MSI_VECTOR = 0x40;
/** The -msi rows' GSI: above the IOAPIC's 24 pins (their routes are replaced anyway). */
const MSI_GSI = 24;

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

module.exports = { TSC_PAYLOAD, TSC_MSI_PAYLOAD, MSI_ADDRESS, MSI_VECTOR, MSI_GSI, N_AT, FORWARD_AT, TSC_START_AT, TSC_END_AT, DELTAS_AT, MAX_INTERRUPTS, FORWARD_PORT, CLOCK_PORT };
