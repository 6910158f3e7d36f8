/**
 * The one KVM struct the library itself sends: struct kvm_device_attr
 * (include/uapi/linux/kvm.h), for KVM_SET_DEVICE_ATTR on a KVM VFIO device.
 * vfio-bindings covers VFIO and iommufd only, so the layout is written out
 * here and checked against the C compiler in test/kvm-layout.test.ts.
 */

/** _IOW(KVMIO 0xAE, 0xe1, struct kvm_device_attr): 24 bytes. */
export const KVM_SET_DEVICE_ATTR = 0x4018aee1;
/** The KVM VFIO device's attribute group (KVM_DEV_VFIO_GROUP is its old name, same value). */
export const KVM_DEV_VFIO_FILE = 1;
export const KVM_DEV_VFIO_FILE_ADD = 1;
export const KVM_DEV_VFIO_FILE_DEL = 2;

/** sizeof(struct kvm_device_attr) and its fields' offsets. */
export const kvmDeviceAttrLayout = { size: 24, flags: 0, group: 4, attr: 8, addr: 16 } as const;

/** struct kvm_device_attr with `addr` pointing at user memory the kernel reads. */
export function kvmDeviceAttrArg(group: number, attr: bigint, addr: bigint): Uint8Array {
  const bytes = new Uint8Array(kvmDeviceAttrLayout.size);
  const view = new DataView(bytes.buffer);
  view.setUint32(kvmDeviceAttrLayout.flags, 0, true);
  view.setUint32(kvmDeviceAttrLayout.group, group, true);
  view.setBigUint64(kvmDeviceAttrLayout.attr, attr, true);
  view.setBigUint64(kvmDeviceAttrLayout.addr, addr, true);
  return bytes;
}

/** Decodes struct kvm_device_attr (the fake kernel's side). */
export function decodeKvmDeviceAttr(bytes: Uint8Array): { flags: number; group: number; attr: bigint; addr: bigint } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    flags: view.getUint32(kvmDeviceAttrLayout.flags, true),
    group: view.getUint32(kvmDeviceAttrLayout.group, true),
    attr: view.getBigUint64(kvmDeviceAttrLayout.attr, true),
    addr: view.getBigUint64(kvmDeviceAttrLayout.addr, true),
  };
}
