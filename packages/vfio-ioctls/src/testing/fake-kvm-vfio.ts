/**
 * A KVM VFIO device fd (KVM_CREATE_DEVICE with KVM_DEV_TYPE_VFIO) as
 * virt/kvm/vfio.c implements it: KVM_SET_DEVICE_ATTR in group
 * KVM_DEV_VFIO_FILE adds or deletes a VFIO file (a group fd or a device
 * fd) given by pointer to its int32 fd. The device takes a reference to
 * each file it holds (get_file), so a file closed by its fd lives on until
 * deleted or until this fd closes.
 */
import { decodeKvmDeviceAttr, KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, KVM_DEV_VFIO_FILE_DEL, KVM_SET_DEVICE_ATTR, kvmDeviceAttrLayout } from '../abi/kvm-device-attr';
import { Errno } from './errno';
import type { OpenFile } from './fd-table';

/** What the device needs of the fake machine. */
export interface KvmVfioContext {
  /** The open file at `fd` (EBADF when none). */
  file(fd: number): OpenFile;
  /** copy_from_user of `length` bytes at `address` (EFAULT when not process memory). */
  userBytes(address: bigint, length: number): Uint8Array;
  /** get_file / fput: a reference that keeps the file alive after its fd closes. */
  hold(file: OpenFile): void;
  release(file: OpenFile): void;
}

export class FakeKvmVfioDevice {
  private readonly files: OpenFile[] = [];

  constructor(private readonly context: KvmVfioContext) {}

  /** The paths of the files added, in order. */
  paths(): string[] {
    return this.files.map((file) => file.path);
  }

  /** kvm_device_ioctl: only KVM_SET_DEVICE_ATTR has a meaning here (no get/has attr for VFIO files). */
  ioctl(request: number, arg: number | Uint8Array | undefined): number {
    if (request !== KVM_SET_DEVICE_ATTR) throw new Errno('ENOTTY');
    if (!(arg instanceof Uint8Array) || arg.byteLength < kvmDeviceAttrLayout.size) throw new Errno('EFAULT');
    const attr = decodeKvmDeviceAttr(arg);
    if (attr.group !== KVM_DEV_VFIO_FILE) throw new Errno('ENXIO');
    if (attr.attr !== BigInt(KVM_DEV_VFIO_FILE_ADD) && attr.attr !== BigInt(KVM_DEV_VFIO_FILE_DEL)) throw new Errno('ENXIO');
    const pointed = this.context.userBytes(attr.addr, 4);
    const fd = new DataView(pointed.buffer, pointed.byteOffset, 4).getInt32(0, true);
    if (fd < 0) throw new Errno('EBADF');
    const file = this.context.file(fd);
    if (attr.attr === BigInt(KVM_DEV_VFIO_FILE_ADD)) this.add(file);
    else this.delete(file);
    return 0;
  }

  /** This fd closed (kvm_vfio_release): every file is let go. */
  closed(): void {
    for (const file of this.files.splice(0)) this.context.release(file);
  }

  private add(file: OpenFile): void {
    // kvm_vfio_file_is_valid: a group file or a device file.
    if (file.kind !== 'group' && file.kind !== 'device') throw new Errno('EINVAL');
    if (this.files.includes(file)) throw new Errno('EEXIST');
    this.context.hold(file);
    this.files.push(file);
  }

  private delete(file: OpenFile): void {
    const at = this.files.indexOf(file);
    if (at < 0) throw new Errno('ENOENT');
    this.files.splice(at, 1);
    this.context.release(file);
  }
}
