/**
 * Just enough KVM for the mini VMM, through vfio-ioctls/unsafe (raw ioctl,
 * mmap, eventfd, close): a VM with memory slots, the in-kernel irqchip,
 * irqfds, a KVM VFIO device, and one vCPU entered in real mode. Struct bytes
 * come from kvm-abi.ts (checked against the C compiler). Every fd opened
 * here is closed by close(), in the kernel's order.
 */
import { closeSync, constants, openSync } from 'node:fs';
import * as unsafe from 'vfio-ioctls/unsafe';
import {
  createDevice, createdDeviceFd, entryRegisters, irqfd, KVM_CONSTANTS as K, KVM_IRQFD_FLAG_DEASSIGN, KVM_LAYOUT, memoryRegion, setCodeSegment,
} from './kvm-abi';

/** A VM: its fd, the /dev/kvm fd it came from, and what was created in it. */
export class Vm implements Disposable {
  readonly #kvmFd: number;
  readonly fd: number;
  readonly #irqfds: { eventfd: number; gsi: number }[] = [];
  readonly #deviceFds: number[] = [];
  #vcpu: Vcpu | undefined;

  private constructor(kvmFd: number, vmFd: number) {
    this.#kvmFd = kvmFd;
    this.fd = vmFd;
  }

  /** Opens /dev/kvm, checks the API version (12 since Linux 2.6.22) and creates a VM. */
  static create(): Vm {
    const kvmFd = openSync('/dev/kvm', constants.O_RDWR);
    try {
      const version = unsafe.ioctl(kvmFd, K.KVM_GET_API_VERSION, 0);
      if (version !== K.KVM_API_VERSION) throw new Error(`/dev/kvm speaks API version ${version}, not ${K.KVM_API_VERSION}`);
      return new Vm(kvmFd, unsafe.ioctl(kvmFd, K.KVM_CREATE_VM, 0));
    } catch (error) {
      closeSync(kvmFd);
      throw error;
    }
  }

  /** Guest physical [gpa, gpa + size) is the process memory at `address` (slot `slot`). */
  setMemory(slot: number, gpa: bigint, size: bigint, address: bigint): void {
    unsafe.ioctl(this.fd, K.KVM_SET_USER_MEMORY_REGION, memoryRegion(slot, gpa, size, address));
  }

  /** Size 0 deletes a slot: done before the memory behind it goes away. */
  deleteMemory(slot: number, gpa: bigint): void {
    unsafe.ioctl(this.fd, K.KVM_SET_USER_MEMORY_REGION, memoryRegion(slot, gpa, 0n, 0n));
  }

  /** The in-kernel 8259s, IOAPIC and LAPICs: interrupts then never need userspace. */
  createIrqchip(): void {
    unsafe.ioctl(this.fd, K.KVM_CREATE_IRQCHIP, 0);
  }

  /** Each write to `eventfd` (by anyone: VFIO's interrupt handler) raises GSI `gsi` in the kernel. */
  addIrqfd(eventfd: number, gsi: number): void {
    unsafe.ioctl(this.fd, K.KVM_IRQFD, irqfd(eventfd, gsi));
    this.#irqfds.push({ eventfd, gsi });
  }

  /** KVM_CREATE_DEVICE(KVM_DEV_TYPE_VFIO): the fd Device.addToKvm takes. */
  createVfioDevice(): number {
    const arg = createDevice(K.KVM_DEV_TYPE_VFIO);
    unsafe.ioctl(this.fd, K.KVM_CREATE_DEVICE, arg);
    const fd = createdDeviceFd(arg);
    this.#deviceFds.push(fd);
    return fd;
  }

  /** vCPU 0, in real mode with CS = 0, entering at `rip` with the stack at `rsp`. */
  createVcpu(rip: number, rsp: number): Vcpu {
    if (this.#vcpu) throw new Error('the mini VMM runs one vCPU');
    const mmapSize = unsafe.ioctl(this.#kvmFd, K.KVM_GET_VCPU_MMAP_SIZE, 0);
    this.#vcpu = new Vcpu(unsafe.ioctl(this.fd, K.KVM_CREATE_VCPU, 0), mmapSize, rip, rsp);
    return this.#vcpu;
  }

  /** Removes the irqfds, closes the vCPU, the KVM devices (after their users: close the VFIO links first), the VM and /dev/kvm. */
  close(): void {
    for (const { eventfd, gsi } of this.#irqfds.splice(0)) unsafe.ioctl(this.fd, K.KVM_IRQFD, irqfd(eventfd, gsi, KVM_IRQFD_FLAG_DEASSIGN));
    this.#vcpu?.close();
    this.#vcpu = undefined;
    for (const fd of this.#deviceFds.splice(0)) unsafe.close(fd);
    unsafe.close(this.fd);
    closeSync(this.#kvmFd);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** What KVM_RUN stopped for. */
export type Exit =
  | { reason: 'io-out'; port: number; size: number; value: number }
  | { reason: 'other'; code: number };

/** One vCPU and its shared kvm_run page. */
export class Vcpu {
  readonly fd: number;
  readonly #run: ArrayBuffer;
  readonly #view: DataView;

  constructor(fd: number, mmapSize: number, rip: number, rsp: number) {
    this.fd = fd;
    try {
      // Reset leaves CS at 0xf000 with base 0xffff0000: point it at segment 0.
      const sregs = new Uint8Array(KVM_LAYOUT['sizeof kvm_sregs']);
      unsafe.ioctl(fd, K.KVM_GET_SREGS, sregs);
      setCodeSegment(sregs, 0);
      unsafe.ioctl(fd, K.KVM_SET_SREGS, sregs);
      unsafe.ioctl(fd, K.KVM_SET_REGS, entryRegisters(rip, rsp));
      this.#run = unsafe.mmap(fd, mmapSize, unsafe.PROT_READ | unsafe.PROT_WRITE, 0);
    } catch (error) {
      unsafe.close(fd);
      throw error;
    }
    this.#view = new DataView(this.#run);
  }

  /** Runs the guest until it exits to userspace (HLT and interrupts stay in the kernel with the irqchip). */
  run(): Exit {
    for (;;) {
      try {
        unsafe.ioctl(this.fd, K.KVM_RUN, 0);
        break;
      } catch (error) {
        // A signal to this thread: simply enter again.
        if ((error as { code?: string }).code !== 'EINTR') throw error;
      }
    }
    const view = this.#view;
    const code = view.getUint32(KVM_LAYOUT['kvm_run.exit_reason'], true);
    if (code !== K.KVM_EXIT_IO) return { reason: 'other', code };
    const direction = view.getUint8(KVM_LAYOUT['kvm_run.io.direction']);
    const size = view.getUint8(KVM_LAYOUT['kvm_run.io.size']);
    const port = view.getUint16(KVM_LAYOUT['kvm_run.io.port'], true);
    const count = view.getUint32(KVM_LAYOUT['kvm_run.io.count'], true);
    const at = Number(view.getBigUint64(KVM_LAYOUT['kvm_run.io.data_offset'], true));
    if (direction !== K.KVM_EXIT_IO_OUT || count !== 1) return { reason: 'other', code };
    const value = size === 4 ? view.getUint32(at, true) : size === 2 ? view.getUint16(at, true) : view.getUint8(at);
    return { reason: 'io-out', port, size, value };
  }

  close(): void {
    unsafe.munmap(this.#run);
    unsafe.close(this.fd);
  }
}

/** A name for a KVM exit reason, for messages. */
export function exitName(code: number): string {
  const names: Record<number, string> = {
    [K.KVM_EXIT_HLT]: 'HLT', [K.KVM_EXIT_MMIO]: 'MMIO', [K.KVM_EXIT_SHUTDOWN]: 'SHUTDOWN (triple fault)',
    [K.KVM_EXIT_FAIL_ENTRY]: 'FAIL_ENTRY', [K.KVM_EXIT_INTERNAL_ERROR]: 'INTERNAL_ERROR', [K.KVM_EXIT_IO]: 'IO (not a single OUT)',
  };
  return names[code] ?? `exit reason ${code}`;
}
