import {
  scalarCodec, vfio_device_info, vfio_irq_info, vfio_irq_set, vfio_region_info,
  vfio_region_info_cap_sparse_mmap, vfio_region_info_cap_type,
  VFIO_DEVICE_FEATURE, VFIO_DEVICE_IOEVENTFD,
  VFIO_DEVICE_FLAGS_PCI, VFIO_DEVICE_FLAGS_RESET, VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, VFIO_DEVICE_GET_REGION_INFO, VFIO_DEVICE_PCI_HOT_RESET, VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS, VFIO_IRQ_SET_ACTION_TYPE_MASK, VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE, VFIO_IRQ_SET_DATA_TYPE_MASK, VFIO_PCI_VGA_REGION_INDEX, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP, VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_FLAG_CAPS,
} from 'vfio-bindings';
import { checkArgsz, decodeFixed, offsetOfEnd, pointerArg, writeBack } from './abi';
import { buildChain, headerOnly, placeChain, type CapEntry } from './capabilities';
import { Errno } from './errno';
import type { FakeDevice } from './fake-device';
import type { FeatureContext } from './fake-features';
import type { EventfdLookup } from './fake-irqs';
import { hotReset, hotResetInfo, type HotResetContext } from './hot-reset';
import { VFIO_PCI_OFFSET_SHIFT } from './offsets';

export interface DeviceIoctlContext extends HotResetContext, FeatureContext {
  eventfd: EventfdLookup;
}

/** The ioctls of a vfio-pci device fd. */
export function deviceIoctl(device: FakeDevice, request: number, arg: number | Uint8Array | undefined, ctx: DeviceIoctlContext): number {
  switch (request) {
    case VFIO_DEVICE_GET_INFO: return getInfo(device, pointerArg(arg));
    case VFIO_DEVICE_GET_REGION_INFO: return getRegionInfo(device, pointerArg(arg));
    case VFIO_DEVICE_GET_IRQ_INFO: return getIrqInfo(device, pointerArg(arg));
    case VFIO_DEVICE_SET_IRQS: return setIrqs(device, pointerArg(arg), ctx.eventfd);
    case VFIO_DEVICE_RESET:
      // edu and many devices have no reset method; vfio-pci then refuses.
      if (!device.spec.reset) throw new Errno('EINVAL');
      device.didReset();
      device.features.reset();
      return 0;
    case VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: return hotResetInfo(device, pointerArg(arg), ctx);
    case VFIO_DEVICE_PCI_HOT_RESET: return hotReset(device, pointerArg(arg), ctx);
    case VFIO_DEVICE_FEATURE: return device.features.ioctl(pointerArg(arg), ctx);
    case VFIO_DEVICE_IOEVENTFD: return device.features.ioeventfds.ioctl(pointerArg(arg), ctx.eventfd);
    default: throw new Errno('ENOTTY');
  }
}

function getInfo(device: FakeDevice, bytes: Uint8Array): number {
  const minsz = offsetOfEnd(vfio_device_info, 'num_irqs');
  const info = decodeFixed(vfio_device_info, bytes);
  checkArgsz(bytes, info.argsz, minsz);
  const flags = VFIO_DEVICE_FLAGS_PCI | (device.spec.reset ? VFIO_DEVICE_FLAGS_RESET : 0);
  writeBack(vfio_device_info, { argsz: info.argsz, flags, num_regions: device.numRegions, num_irqs: device.irqs.numIrqs }, bytes, minsz);
  return 0;
}

function getRegionInfo(device: FakeDevice, bytes: Uint8Array): number {
  const minsz = offsetOfEnd(vfio_region_info, 'offset');
  const info = decodeFixed(vfio_region_info, bytes);
  checkArgsz(bytes, info.argsz, minsz);
  if (info.index >= device.numRegions) throw new Errno('EINVAL');
  const offset = BigInt(info.index) << VFIO_PCI_OFFSET_SHIFT;
  const region = device.regionModel(info.index);
  if (!region || region.size === 0) {
    // Unimplemented BARs and ROM read as size 0; VGA and device-specific indexes do not exist.
    if (info.index >= VFIO_PCI_VGA_REGION_INDEX) throw new Errno('EINVAL');
    writeBack(vfio_region_info, { argsz: info.argsz, index: info.index, offset }, bytes, minsz);
    return 0;
  }
  const caps: CapEntry[] = [];
  if (region.sparseAreas) {
    caps.push({
      codec: vfio_region_info_cap_sparse_mmap,
      value: { header: { id: VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1 }, nr_areas: region.sparseAreas.length, areas: region.sparseAreas },
    });
  }
  if (region.type) {
    caps.push({ codec: vfio_region_info_cap_type, value: { header: { id: VFIO_REGION_INFO_CAP_TYPE, version: 1 }, ...region.type } });
  }
  if (region.msixMappable) caps.push(headerOnly(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1));
  const placed = placeChain(bytes, info.argsz, vfio_region_info.size, buildChain(vfio_region_info.size, caps));
  const flags = region.flags | (caps.length ? VFIO_REGION_INFO_FLAG_CAPS : 0);
  writeBack(vfio_region_info, {
    argsz: placed.argsz, flags, index: info.index, cap_offset: placed.capOffset, size: BigInt(region.size), offset,
  }, bytes, minsz);
  return 0;
}

function getIrqInfo(device: FakeDevice, bytes: Uint8Array): number {
  const minsz = offsetOfEnd(vfio_irq_info, 'count');
  const info = decodeFixed(vfio_irq_info, bytes);
  checkArgsz(bytes, info.argsz, minsz);
  const { flags, count } = device.irqs.info(info.index);
  writeBack(vfio_irq_info, { argsz: info.argsz, flags, index: info.index, count }, bytes, minsz);
  return 0;
}

/** vfio_set_irqs_validate_and_prepare(), then the per-index handlers. */
function setIrqs(device: FakeDevice, bytes: Uint8Array, lookup: EventfdLookup): number {
  const minsz = offsetOfEnd(vfio_irq_set, 'count');
  const hdr = decodeFixed(vfio_irq_set, bytes);
  checkArgsz(bytes, hdr.argsz, minsz);
  if (hdr.index >= device.irqs.numIrqs) throw new Errno('EINVAL');
  if (hdr.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) throw new Errno('EINVAL');
  const dataType = hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  const elementSize = dataType === VFIO_IRQ_SET_DATA_NONE ? 0 : dataType === VFIO_IRQ_SET_DATA_BOOL ? 1 : dataType === VFIO_IRQ_SET_DATA_EVENTFD ? 4 : -1;
  if (elementSize < 0) throw new Errno('EINVAL');
  if (!isSingleBit(hdr.flags & VFIO_IRQ_SET_ACTION_TYPE_MASK)) throw new Errno('EINVAL');
  const max = device.irqs.info(hdr.index).count;
  if (hdr.count >= 0xffff_ffff - hdr.start || hdr.start >= max || hdr.start + hdr.count > max) throw new Errno('EINVAL');
  const data: number[] = [];
  if (elementSize > 0) {
    if (hdr.argsz - minsz < hdr.count * elementSize) throw new Errno('EINVAL');
    const at = vfio_irq_set.offsetOf('data');
    if (bytes.length < at + hdr.count * elementSize) throw new Errno('EFAULT');
    const element = scalarCodec(elementSize === 1 ? 'u8' : 's32');
    for (let i = 0; i < hdr.count; i++) data.push(Number(element.decode(bytes, at + i * elementSize)));
  }
  device.irqs.set({ flags: hdr.flags, index: hdr.index, start: hdr.start, count: hdr.count, data }, lookup);
  return 0;
}

function isSingleBit(n: number): boolean {
  return n !== 0 && (n & (n - 1)) === 0;
}
