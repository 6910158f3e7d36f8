/**
 * The nested guest's program: 16-bit real-mode x86, loaded at guest
 * physical 0x1000 and entered with CS:IP = 0000:1000. Hand-checked bytes
 * (assembled once with GNU as, `.code16`, Intel syntax; each line gives the
 * offset and the instruction), so the example needs no assembler.
 *
 * It talks to edu through BAR0 mapped at guest physical 0xA0000 (a KVM
 * memory slot over the VFIO mapping, so no MMIO exits), and answers the
 * VMM over port I/O: 32-bit `out` to ANSWER_PORT in the order of
 * {@link ANSWERS}, the interrupt handler's report to IRQ_PORT, and a byte to
 * DONE_PORT at the end.
 */

/** Where the program is loaded and entered (guest physical). */
export const PAYLOAD_ADDRESS = 0x1000;
/** The ports the program writes its answers to. */
export const ANSWER_PORT = 0x10;
export const IRQ_PORT = 0x11;
export const DONE_PORT = 0x12;
/** Guest physical addresses the program uses. */
export const EDU_BAR_GPA = 0xa0000;
export const DMA_SOURCE_GPA = 0x9000;
export const DMA_RETURN_GPA = 0xa000;
export const DMA_BYTES = 256;
/** The values the program writes: to liveness, to the factorial register, to raise the interrupt. */
export const LIVENESS_WRITTEN = 0x12345678;
export const FACTORIAL_OF = 10;
export const IRQ_RAISED = 0x2a;
/** The answers on ANSWER_PORT, in order. */
export const ANSWERS = ['identification', 'liveness', 'factorial', 'interrupts handled', 'DMA round trip (first dword)'] as const;

/**
 * Programs the 8259 (ICW1 edge + ICW4, ICW2 vector base 0x20, ICW3 slave on
 * IRQ2, ICW4 8086 mode), then masks every line but IRQ5 (OCW1 0xDF).
 * Position-independent; the bench's nested-guest payloads use it too
 * (tools/bench/src/guest/kvm-tsc-payload.js).
 */
// prettier-ignore
export const PIC_SETUP: readonly number[] = [
  0xb0, 0x11,                                      // 0000 mov al,0x11
  0xe6, 0x20,                                      // 0002 out 0x20,al
  0xb0, 0x20,                                      // 0004 mov al,0x20
  0xe6, 0x21,                                      // 0006 out 0x21,al
  0xb0, 0x04,                                      // 0008 mov al,0x4
  0xe6, 0x21,                                      // 000a out 0x21,al
  0xb0, 0x01,                                      // 000c mov al,0x1
  0xe6, 0x21,                                      // 000e out 0x21,al
  0xb0, 0xdf,                                      // 0010 mov al,0xdf
  0xe6, 0x21,                                      // 0012 out 0x21,al
];

// prettier-ignore
export const PAYLOAD = Uint8Array.from([
  // Real mode, CS = 0, loaded at 0x1000. Interrupts off; DS = SS = 0, stack below 0x8000;
  // ES = 0xA000 reaches edu's BAR0, a KVM memory slot at guest physical 0xA0000.
  0xfa,                                            // 0000 cli
  0x31, 0xc0,                                      // 0001 xor ax,ax
  0x8e, 0xd8,                                      // 0003 mov ds,ax
  0x8e, 0xd0,                                      // 0005 mov ss,ax
  0xbc, 0x00, 0x80,                                // 0007 mov sp,0x8000
  0xb8, 0x00, 0xa0,                                // 000a mov ax,0xa000
  0x8e, 0xc0,                                      // 000d mov es,ax
  // DX = the answer port: each `out dx, eax` is one KVM_EXIT_IO the VMM checks.
  0xba, 0x10, 0x00,                                // 000f mov dx,0x10
  // Answer 1: the identification register (0x00). edu takes 32-bit accesses only below 0x80.
  0x26, 0x66, 0xa1, 0x00, 0x00,                    // 0012 mov eax,es:0x0
  0x66, 0xef,                                      // 0017 out dx,eax
  // Answer 2: liveness (0x04) reads back the inverse of what was written.
  0x26, 0x66, 0xc7, 0x06, 0x04, 0x00, 0x78, 0x56, 0x34, 0x12, // 0019 mov DWORD PTR es:0x4,0x12345678
  0x26, 0x66, 0xa1, 0x04, 0x00,                    // 0023 mov eax,es:0x4
  0x66, 0xef,                                      // 0028 out dx,eax
  // Answer 3: 10! through the factorial register (0x08); poll status (0x20) bit 0 until clear.
  0x26, 0x66, 0xc7, 0x06, 0x08, 0x00, 0x0a, 0x00, 0x00, 0x00, // 002a mov DWORD PTR es:0x8,0xa
  0x26, 0x66, 0xa1, 0x20, 0x00,                    // 0034 mov eax,es:0x20
  0xa8, 0x01,                                      // 0039 test al,0x1
  0x75, 0xf7,                                      // 003b jne 34 <wait_fact>
  0x26, 0x66, 0xa1, 0x08, 0x00,                    // 003d mov eax,es:0x8
  0x66, 0xef,                                      // 0042 out dx,eax
  // Program the 8259 (PIC_SETUP below, 0044-0057), then mask every line but IRQ5: GSI 5 is where
  // the VMM's irqfd injects.
  ...PIC_SETUP,
  // Vector 0x25 (IRQ5) -> `handler` (IVT entry at 0x94: offset, segment); clear the counter at 0x500.
  0xc7, 0x06, 0x94, 0x00, 0xf4, 0x10,              // 0058 mov WORD PTR ds:0x94,0x10f4
  0xc7, 0x06, 0x96, 0x00, 0x00, 0x00,              // 005e mov WORD PTR ds:0x96,0x0
  0xc7, 0x06, 0x00, 0x05, 0x00, 0x00,              // 0064 mov WORD PTR ds:0x500,0x0
  // Raise edu's interrupt (0x60, status 0x2a). edu sends an MSI, VFIO signals the eventfd, KVM's
  // irqfd injects IRQ5: no userspace hop. Wait with interrupts on until the handler has run: a spin,
  // not `sti; hlt`, since with `sti; hlt` runs under nested TCG hung after the handler had run once
  // (seemingly the interrupt came before the hlt, which then waited for one already taken).
  0x26, 0x66, 0xc7, 0x06, 0x60, 0x00, 0x2a, 0x00, 0x00, 0x00, // 006a mov DWORD PTR es:0x60,0x2a
  0xfb,                                            // 0074 sti
  0x83, 0x3e, 0x00, 0x05, 0x00,                    // 0075 cmp WORD PTR ds:0x500,0x0
  0x74, 0xf9,                                      // 007a je 75 <wait_irq>
  0xfa,                                            // 007c cli
  // Answer 4 is how many times the handler ran.
  0x66, 0x0f, 0xb7, 0x06, 0x00, 0x05,              // 007d movzx eax,WORD PTR ds:0x500
  0x66, 0xef,                                      // 0083 out dx,eax
  // Answer 5: DMA 256 bytes from guest RAM 0x9000 (IOVA = guest physical) into edu's buffer (0x40000),
  // poll the command register (0x98) bit 0 until done...
  0x26, 0x66, 0xc7, 0x06, 0x80, 0x00, 0x00, 0x90, 0x00, 0x00, // 0085 mov DWORD PTR es:0x80,0x9000
  0x26, 0x66, 0xc7, 0x06, 0x88, 0x00, 0x00, 0x00, 0x04, 0x00, // 008f mov DWORD PTR es:0x88,0x40000
  0x26, 0x66, 0xc7, 0x06, 0x90, 0x00, 0x00, 0x01, 0x00, 0x00, // 0099 mov DWORD PTR es:0x90,0x100
  0x26, 0x66, 0xc7, 0x06, 0x98, 0x00, 0x01, 0x00, 0x00, 0x00, // 00a3 mov DWORD PTR es:0x98,0x1
  0x26, 0x66, 0xa1, 0x98, 0x00,                    // 00ad mov eax,es:0x98
  0xa8, 0x01,                                      // 00b2 test al,0x1
  0x75, 0xf7,                                      // 00b4 jne ad <wait_to_dev>
  // ...then back out to guest RAM 0xA000 (command 3: start, device to RAM), and report its first dword.
  0x26, 0x66, 0xc7, 0x06, 0x80, 0x00, 0x00, 0x00, 0x04, 0x00, // 00b6 mov DWORD PTR es:0x80,0x40000
  0x26, 0x66, 0xc7, 0x06, 0x88, 0x00, 0x00, 0xa0, 0x00, 0x00, // 00c0 mov DWORD PTR es:0x88,0xa000
  0x26, 0x66, 0xc7, 0x06, 0x90, 0x00, 0x00, 0x01, 0x00, 0x00, // 00ca mov DWORD PTR es:0x90,0x100
  0x26, 0x66, 0xc7, 0x06, 0x98, 0x00, 0x03, 0x00, 0x00, 0x00, // 00d4 mov DWORD PTR es:0x98,0x3
  0x26, 0x66, 0xa1, 0x98, 0x00,                    // 00de mov eax,es:0x98
  0xa8, 0x01,                                      // 00e3 test al,0x1
  0x75, 0xf7,                                      // 00e5 jne de <wait_to_ram>
  0x66, 0xa1, 0x00, 0xa0,                          // 00e7 mov eax,ds:0xa000
  0x66, 0xef,                                      // 00eb out dx,eax
  // Done: a byte to port 0x12 tells the VMM to stop (a final hlt would stay in the kernel with the in-kernel irqchip).
  0xba, 0x12, 0x00,                                // 00ed mov dx,0x12
  0xee,                                            // 00f0 out dx,al
  0xf4,                                            // 00f1 hlt
  0xeb, 0xfd,                                      // 00f2 jmp f1 <stop>
  // IRQ5 handler: report edu's interrupt status (0x24) on port 0x11, acknowledge it (0x64),
  // count the run, end of interrupt to the 8259, return.
  0x66, 0x50,                                      // 00f4 push eax
  0x52,                                            // 00f6 push dx
  0x26, 0x66, 0xa1, 0x24, 0x00,                    // 00f7 mov eax,es:0x24
  0xba, 0x11, 0x00,                                // 00fc mov dx,0x11
  0x66, 0xef,                                      // 00ff out dx,eax
  0x26, 0x66, 0xa3, 0x64, 0x00,                    // 0101 mov es:0x64,eax
  0xff, 0x06, 0x00, 0x05,                          // 0106 inc WORD PTR ds:0x500
  0xb0, 0x20,                                      // 010a mov al,0x20
  0xe6, 0x20,                                      // 010c out 0x20,al
  0x5a,                                            // 010e pop dx
  0x66, 0x58,                                      // 010f pop eax
  0xcf,                                            // 0111 iret
]);
