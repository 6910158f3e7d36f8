'use strict';
// Knowledge the header states only in comments, kept by hand and checked by
// the generator: every flexible array member in the headers must appear here,
// so a new one forces a decision instead of decoding with a guessed count.

// "struct.member" -> the member of the same struct that holds the element
// count, or null where nothing in the struct counts the elements (the caller
// passes the count; vfio_irq_set's data depends on its DATA_* flag).
const flexCounts = {
  'vfio_irq_set.data': null,
  'vfio_pci_hot_reset_info.devices': 'count',
  'vfio_pci_hot_reset.group_fds': 'count',
  'vfio_region_info_cap_sparse_mmap.areas': 'nr_areas',
  'vfio_device_feature.data': null,
  // Newer than 6.12; the header also says __counted_by(nr_ranges), and the
  // generator checks the two agree.
  'vfio_device_feature_dma_buf.dma_ranges': 'nr_ranges',
  'vfio_iommu_type1_info_cap_iova_range.iova_ranges': 'nr_iovas',
  'vfio_iommu_type1_dma_unmap.data': null,
  'vfio_iommu_type1_dirty_bitmap.data': null,
};

// iommufd (and the DMA logging feature) pass arrays out of line: a __u64 member
// holds the user address of `count` elements. Same shape of table.
const pointerArrays = {
  'iommu_ioas_iova_ranges.allowed_iovas': { countField: 'num_iovas', element: 'iommu_iova_range' },
  'iommu_ioas_allow_iovas.allowed_iovas': { countField: 'num_iovas', element: 'iommu_iova_range' },
  // The element really depends on data_type: VT-d's is listed; after 6.12 an
  // IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 request carries
  // iommu_viommu_arm_smmuv3_invalidate entries instead (entry_len tells).
  'iommu_hwpt_invalidate.data_uptr': { countField: 'entry_num', element: 'iommu_hwpt_vtd_s1_invalidate' },
  'vfio_device_feature_dma_logging_control.ranges': { countField: 'num_ranges', element: 'vfio_device_feature_dma_logging_range' },
};

module.exports = { flexCounts, pointerArrays };
