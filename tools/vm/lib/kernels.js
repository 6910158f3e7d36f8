'use strict';
const { VmError } = require('./errors');

// The kernel matrix: each guest kernel by name, where it comes from, and the
// capabilities the guest suite may rely on when it runs. A capability is a
// promise both ways: the guest's self-check fails when a kernel lacks one it
// promises, and when it has one it does not promise (a wrong table would
// otherwise silently keep tests off a kernel that could run them).
//
// Capabilities:
//   iommu     devices behind the emulated Intel IOMMU, legacy container with TYPE1v2
//   compat    /dev/vfio/vfio is iommufd's emulation of the legacy container
//             (IOMMUFD_VFIO_CONTAINER), not VFIO's own: with iommu, the
//             container API runs on an iommufd IOAS
//   iommufd   /dev/iommu
//   cdev      VFIO device cdevs (/dev/vfio/devices/vfioN)
//   noiommu   booted in no-IOMMU mode: groups are /dev/vfio/noiommu-N
//   mtty      the mtty sample mdev driver (/sys/class/mdev_bus/mtty)
//   kvm       /dev/kvm (nested SVM under TCG's -cpu max)

const KERNELS = {
  'debian-6.1': {
    description: "Debian 12's kernel (bookworm)",
    source: { debian: 'bookworm-6.1' },
    caps: ['iommu', 'kvm'],
    boots: ['iommu', 'nointremap'],
  },
  'debian-7.3': {
    description: "Debian 13 backports' kernel (trixie-backports)",
    source: { debian: 'trixie-backports-7.3' },
    caps: ['iommu', 'kvm'],
    boots: ['iommu', 'nointremap'],
  },
  'vfio-7.3': {
    description: "built from Debian's linux-source-7.3: iommufd, device cdevs, no-IOMMU, mtty and KVM built in",
    source: { custom: 'vfio-7.3' },
    caps: ['iommu', 'iommufd', 'cdev', 'mtty', 'kvm'],
    boots: ['iommu', 'noiommu', 'nointremap'],
  },
  // After vfio-7.3: it is built in vfio-7.3's build folder (custom-kernel.js).
  'compat-7.3': {
    description: "vfio-7.3 with iommufd's emulation of the legacy container (IOMMUFD_VFIO_CONTAINER) instead of VFIO's own container and type1",
    source: { custom: 'compat-7.3' },
    caps: ['iommu', 'compat', 'iommufd', 'cdev', 'mtty', 'kvm'],
    boots: ['iommu'],
  },
};

// How the machine is booted. A boot variant changes the IOMMU QEMU emulates
// and the kernel command line, and so what a kernel can offer.
const BOOTS = {
  iommu: {
    description: 'emulated Intel IOMMU with interrupt remapping',
    qemu: ['-device', 'intel-iommu,intremap=on'],
    append: ['intel_iommu=on'],
    adjust: (caps) => caps,
  },
  noiommu: {
    description: 'no IOMMU; vfio.enable_unsafe_noiommu_mode=1',
    qemu: [],
    append: ['vfio.enable_unsafe_noiommu_mode=1'],
    // No IOMMU to map into; /dev/iommu and the cdevs stay (iommufd knows
    // no-IOMMU devices), so a test needing both says iommu and iommufd.
    adjust: (caps) => [...caps.filter((c) => c !== 'iommu'), 'noiommu'],
  },
  nointremap: {
    description: 'emulated Intel IOMMU without interrupt remapping (VFIO_SET_IOMMU is EPERM)',
    qemu: ['-device', 'intel-iommu,intremap=off'],
    append: ['intel_iommu=on'],
    adjust: (caps) => caps.filter((c) => c !== 'iommu'),
  },
};

const DEFAULT_KERNEL = 'debian-6.1';

// What `pnpm test:guest` runs: every kernel with the suite's devices, plus
// each boot and device profile a test needs.
//
// backends (default: both) says which IOMMU backends of the library an entry
// is there to test. compat-7.3 is in the matrix for its /dev/vfio/vfio (its
// iommufd is vfio-7.3's, tested there), so it tests the container only: the
// guest runner boots it once with Device.open on the container and runs the
// files whose `@guest-backends` line names the container (and the
// capability self-check), not the ones written for VFIO's own container
// or for iommufd's API (packages/vfio-ioctls/test/guest/README.md).
const BACKENDS = ['container', 'iommufd'];
const MATRIX = [
  { kernel: 'debian-6.1', boot: 'iommu', profile: 'suite' },
  { kernel: 'debian-7.3', boot: 'iommu', profile: 'suite' },
  { kernel: 'vfio-7.3', boot: 'iommu', profile: 'suite' },
  { kernel: 'vfio-7.3', boot: 'noiommu', profile: 'suite' },
  { kernel: 'vfio-7.3', boot: 'iommu', profile: 'sriov' },
  // Without interrupt remapping: what the doctor finds and the files that need no IOMMU mapping.
  { kernel: 'vfio-7.3', boot: 'nointremap', profile: 'suite' },
  // BARs of 4 GiB and 16 GiB (ivshmem-plain), for the files that need them.
  { kernel: 'vfio-7.3', boot: 'iommu', profile: 'bigbar' },
  { kernel: 'compat-7.3', boot: 'iommu', profile: 'suite', backends: ['container'] },
];

function getKernel(name = DEFAULT_KERNEL) {
  const k = KERNELS[name];
  if (!k) throw new VmError(`unknown kernel "${name}" (known: ${Object.keys(KERNELS).join(', ')})`);
  return { name, ...k };
}

function getBoot(kernelName, bootName = 'iommu') {
  const kernel = getKernel(kernelName);
  const boot = BOOTS[bootName];
  if (!boot) throw new VmError(`unknown boot variant "${bootName}" (known: ${Object.keys(BOOTS).join(', ')})`);
  if (!kernel.boots.includes(bootName)) {
    throw new VmError(`kernel ${kernelName} has no "${bootName}" boot (it has: ${kernel.boots.join(', ')})`);
  }
  return { name: bootName, ...boot, caps: boot.adjust(kernel.caps).sort() };
}

/**
 * The name a matrix entry is reported under: the kernel, plus the boot and
 * the profile when they are not the defaults ("vfio-7.3/noiommu", "vfio-7.3+sriov").
 */
const entryName = ({ kernel, boot = 'iommu', profile = 'suite' }) =>
  `${kernel}${boot === 'iommu' ? '' : `/${boot}`}${profile === 'suite' ? '' : `+${profile}`}`;

module.exports = { KERNELS, BOOTS, BACKENDS, MATRIX, DEFAULT_KERNEL, getKernel, getBoot, entryName };
