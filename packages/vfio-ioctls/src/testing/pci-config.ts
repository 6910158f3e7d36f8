/**
 * The standard type-0 PCI configuration header (PCI Local Bus spec 3.0,
 * section 6.1), filled in so that drivers reading IDs from config space see
 * the same IDs as sysfs. These offsets come from the PCI spec, not vfio.h.
 */
const VENDOR_ID = 0x00;
const DEVICE_ID = 0x02;
const REVISION_ID = 0x08;
const CLASS_CODE = 0x09; // 3 bytes: prog-if, subclass, base class
const SUBSYSTEM_VENDOR_ID = 0x2c;
const SUBSYSTEM_ID = 0x2e;
const INTERRUPT_PIN = 0x3d;

export interface ConfigIds {
  vendor: number;
  device: number;
  class: number;
  subsystemVendor?: number;
  subsystemDevice?: number;
}

export function writeConfigHeader(config: Uint8Array, ids: ConfigIds, hasIntx: boolean): void {
  const view = new DataView(config.buffer, config.byteOffset, config.byteLength);
  view.setUint16(VENDOR_ID, ids.vendor, true);
  view.setUint16(DEVICE_ID, ids.device, true);
  view.setUint8(REVISION_ID, 0x10);
  view.setUint8(CLASS_CODE, ids.class & 0xff);
  view.setUint16(CLASS_CODE + 1, (ids.class >> 8) & 0xffff, true);
  view.setUint16(SUBSYSTEM_VENDOR_ID, ids.subsystemVendor ?? 0x1af4, true);
  view.setUint16(SUBSYSTEM_ID, ids.subsystemDevice ?? 0x1100, true);
  // INTx pin A when the device has INTx, none otherwise (like pci-testdev).
  view.setUint8(INTERRUPT_PIN, hasIntx ? 1 : 0);
}
