// Which struct describes which capability id, per info ioctl. Ids overlap
// across kinds (region 1 is SPARSE_MMAP, iommu_type1 1 is IOVA_RANGE), so the
// table is keyed by kind first. Ids come from the generated constants; the
// pairing with structs is what vfio.h's comments say.
import type { StructCodec } from './runtime/codec';
import * as V from './generated/vfio';

export type CapabilityKind = 'region' | 'device' | 'iommu_type1';

export interface CapabilityEntry {
  readonly name: string;
  /** Undefined where the struct lives in another header (vfio_zdev.h): the walker then returns bytes only. */
  readonly codec?: StructCodec<any>;
}

export interface InfoKind {
  /** The info struct the chain hangs off; caps cannot start inside it. */
  readonly info: StructCodec<any>;
  readonly caps: ReadonlyMap<number, CapabilityEntry>;
}

const entries = (list: [number, string, StructCodec<any>?][]): ReadonlyMap<number, CapabilityEntry> =>
  new Map(list.map(([id, name, codec]) => [id, Object.freeze(codec ? { name, codec } : { name })]));

export const CAPABILITY_TABLE: Readonly<Record<CapabilityKind, InfoKind>> = Object.freeze({
  region: {
    info: V.vfio_region_info,
    caps: entries([
      [V.VFIO_REGION_INFO_CAP_SPARSE_MMAP, 'VFIO_REGION_INFO_CAP_SPARSE_MMAP', V.vfio_region_info_cap_sparse_mmap],
      [V.VFIO_REGION_INFO_CAP_TYPE, 'VFIO_REGION_INFO_CAP_TYPE', V.vfio_region_info_cap_type],
      // MSIX_MAPPABLE carries no data beyond the header.
      [V.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 'VFIO_REGION_INFO_CAP_MSIX_MAPPABLE', V.vfio_info_cap_header],
      [V.VFIO_REGION_INFO_CAP_NVLINK2_SSATGT, 'VFIO_REGION_INFO_CAP_NVLINK2_SSATGT', V.vfio_region_info_cap_nvlink2_ssatgt],
      [V.VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD, 'VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD', V.vfio_region_info_cap_nvlink2_lnkspd],
    ]),
  },
  device: {
    info: V.vfio_device_info,
    caps: entries([
      [V.VFIO_DEVICE_INFO_CAP_ZPCI_BASE, 'VFIO_DEVICE_INFO_CAP_ZPCI_BASE'],
      [V.VFIO_DEVICE_INFO_CAP_ZPCI_GROUP, 'VFIO_DEVICE_INFO_CAP_ZPCI_GROUP'],
      [V.VFIO_DEVICE_INFO_CAP_ZPCI_UTIL, 'VFIO_DEVICE_INFO_CAP_ZPCI_UTIL'],
      [V.VFIO_DEVICE_INFO_CAP_ZPCI_PFIP, 'VFIO_DEVICE_INFO_CAP_ZPCI_PFIP'],
      [V.VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, 'VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP', V.vfio_device_info_cap_pci_atomic_comp],
    ]),
  },
  iommu_type1: {
    info: V.vfio_iommu_type1_info,
    caps: entries([
      [V.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, 'VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE', V.vfio_iommu_type1_info_cap_iova_range],
      [V.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 'VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION', V.vfio_iommu_type1_info_cap_migration],
      [V.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 'VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL', V.vfio_iommu_type1_info_dma_avail],
    ]),
  },
});
