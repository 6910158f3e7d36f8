// Run after `pnpm --filter vfio-bindings build`:  node examples/basic.js
// A tour: constants, a struct codec, and a capability chain built by hand the
// way VFIO_DEVICE_GET_REGION_INFO returns one.
'use strict';
const b = require('vfio-bindings'); // the package resolves itself by name through its exports map

console.log(`generated from Linux ${b.HEADER_VERSION} (${b.HEADER_PACKAGE})`);
console.log('VFIO_API_VERSION =', b.VFIO_API_VERSION, ' VFIO_TYPE1v2_IOMMU =', b.VFIO_TYPE1v2_IOMMU);
console.log('VFIO_GET_API_VERSION =', b.VFIO_GET_API_VERSION, ' VFIO_IOMMU_MAP_DMA =', b.VFIO_IOMMU_MAP_DMA, ' IOMMU_IOAS_MAP =', b.IOMMU_IOAS_MAP);

// A region info with two capabilities after it.
const ri = b.vfio_region_info;
const sparse = b.vfio_region_info_cap_sparse_mmap;
const first = ri.size; // caps start after the fixed struct
const areas = [{ offset: 0n, size: 0x1000n }, { offset: 0x3000n, size: 0x1000n }];
const second = first + sparse.encodedSize({ areas });
const argsz = second + b.vfio_region_info_cap_type.size;

const buf = new Uint8Array(argsz);
ri.encode({ argsz, flags: b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_MMAP | b.VFIO_REGION_INFO_FLAG_CAPS, index: b.VFIO_PCI_BAR0_REGION_INDEX, cap_offset: first, size: 0x4000n, offset: 0n }, buf);
sparse.encode({ header: { id: b.VFIO_REGION_INFO_CAP_SPARSE_MMAP, version: 1, next: second }, nr_areas: areas.length, areas }, buf, first);
b.vfio_region_info_cap_type.encode({ header: { id: b.VFIO_REGION_INFO_CAP_TYPE, version: 1, next: 0 }, type: 1, subtype: 1 }, buf, second);

const info = ri.decode(buf);
console.log('vfio_region_info:', info);
for (const cap of b.walkCapabilities(buf, 'region', info.cap_offset, info.argsz)) {
  console.log(`  cap ${cap.name ?? cap.id} at ${cap.offset}:`, JSON.stringify(cap.value, (k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v)));
}

// Errors name the struct and field.
try {
  ri.encode({ index: -1 });
} catch (e) {
  console.log(`${e.name} ${e.code}: ${e.message}`);
}
