import type { FakeKernelOptions } from './types';

/** FakeKernelOptions with every default filled in. */
export type ResolvedOptions = Required<FakeKernelOptions>;

/** The platform seen on the project's QEMU q35 + intel-iommu test bed (reference/testbed.md). */
export function resolveOptions(options: FakeKernelOptions = {}): ResolvedOptions {
  const resolved: ResolvedOptions = {
    pageSize: 4096,
    iommuPageSizes: 0x40201000n,
    iovaRanges: [
      { start: 0x0n, end: 0xfedf_ffffn },
      { start: 0xfef0_0000n, end: 0x7f_ffff_ffffn },
    ],
    dmaAvail: 65535,
    interruptRemapping: true,
    type1Only: false,
    memlockLimit: 1n << 64n,
    devRoot: '/dev/vfio',
    directMmio: false,
    noiommu: false,
    deviceCdevs: false,
    iommuHwInfo: 'intel-vtd',
    iommuDirtyTracking: false,
    updateVaddr: true,
    hugePages: [{ size: 2 * 1024 * 1024, count: 0 }, { size: 1024 * 1024 * 1024, count: 0 }],
    ...dropUndefined(options),
  };
  if (!Number.isSafeInteger(resolved.pageSize) || resolved.pageSize <= 0 || (resolved.pageSize & (resolved.pageSize - 1)) !== 0) {
    throw new RangeError(`pageSize must be a power of two, got ${resolved.pageSize}`);
  }
  if (typeof resolved.iommuPageSizes !== 'bigint' || resolved.iommuPageSizes <= 0n) {
    throw new RangeError('iommuPageSizes must be a positive bigint bitmap');
  }
  resolved.iovaRanges = resolved.iovaRanges.map((r) => ({ start: BigInt(r.start), end: BigInt(r.end) }));
  resolved.devRoot = resolved.devRoot.replace(/\/+$/, '');
  return resolved;
}

function dropUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
