'use strict';
const { VmError } = require('./errors');

// Device profiles. Each device has a role (the name tests look it up by in
// testbed.json), a QEMU model, the QEMU arguments that create it, and its
// slot path: device.function at each level from the root bus. Every address
// is fixed here so that the guest can find each role again; bus numbers
// behind bridges are the firmware's choice, hence paths rather than BDFs.
//
// The machine runs with -nodefaults: q35's default e1000e at 00:02.0 would
// otherwise be a device nobody asked for (and a NIC the suite would bind by
// accident); the suite adds its own e1000e at a known address instead.
// Root bus slots 0x10 and up are left to the harness's 9p shares.

const edu = (role, bus, addr) => ({ role, model: 'edu', qemu: ['-device', `edu,bus=${bus},addr=${addr}`] });
// A NIC on the root bus at slot `slot` (hex); its netdev is user networking
// with restrict=on, so the guest reaches nothing.
const nic = (model, slot) => ({
  role: model,
  model,
  slotPath: `${slot.toString(16).padStart(2, '0')}.0`,
  qemu: ['-netdev', `user,id=net_${model},restrict=on`, '-device', `${model},netdev=net_${model},bus=pcie.0,addr=0x${slot.toString(16)}`],
});

// An ivshmem-plain device on the root bus at slot `slot` (hex) whose BAR2
// is a RAM backend of `size` (QEMU's size syntax: '4G').
const ivshmem = (role, size, slot) => ({
  role,
  model: 'ivshmem-plain',
  slotPath: `${slot.toString(16).padStart(2, '0')}.0`,
  qemu: [
    '-object', `memory-backend-ram,id=mem_${role},size=${size},share=on`,
    '-device', `ivshmem-plain,memdev=mem_${role},bus=pcie.0,addr=0x${slot.toString(16)}`,
  ],
});

const PROFILES = {
  // The demo: one edu device on the root bus (DMA engine, MSI, INTx, no reset).
  // caps: what the profile adds to a kernel's capabilities (kernels.js), so
  // a guest test file can say it needs these devices.
  edu: {
    description: 'one edu device',
    caps: [],
    devices: [{ ...edu('edu', 'pcie.0', '0x3'), slotPath: '03.0' }],
  },

  suite: {
    description: 'edu, nvme behind a root port, e1000e, two edu devices sharing an IOMMU group',
    caps: ['suite'],
    devices: [
      { ...edu('edu', 'pcie.0', '0x3'), slotPath: '03.0' },
      // e1000e on the root bus: an I/O BAR and a ROM region.
      nic('e1000e', 0x4),
      {
        // nvme on a null drive behind a root port: FLR reset, MSI-X (65
        // vectors, MSIX_MAPPABLE); behind the port, hot reset info has a
        // dependent (on the root bus it is ENODEV).
        role: 'nvme',
        model: 'nvme',
        slotPath: '05.0/00.0',
        qemu: [
          '-device', 'pcie-root-port,id=rp_nvme,chassis=1,slot=1,bus=pcie.0,addr=0x5',
          '-drive', 'if=none,id=nvme0,file=null-co://,format=raw',
          '-device', 'nvme,drive=nvme0,serial=vfio-testbed,bus=rp_nvme,addr=0x0',
        ],
      },
      {
        // Behind a PCIe-to-PCI bridge the bridge and every device on it form
        // one IOMMU group: the case of several devices per group.
        role: 'shared-edu-1',
        model: 'edu',
        slotPath: '06.0/00.0/01.0',
        qemu: [
          '-device', 'pcie-root-port,id=rp_bridge,chassis=2,slot=2,bus=pcie.0,addr=0x6',
          '-device', 'pcie-pci-bridge,id=pcibr,bus=rp_bridge,addr=0x0',
          '-device', 'edu,bus=pcibr,addr=0x1',
        ],
      },
      { ...edu('shared-edu-2', 'pcibr', '0x2'), slotPath: '06.0/00.0/02.0' },
    ],
  },

  // igb (82576, SR-IOV with 8 VFs) exists from QEMU 8.0 on: this profile runs
  // QEMU 11.1 from its Debian 13 root (qemu-root.js).
  sriov: {
    description: 'edu, and igb (SR-IOV physical function, 8 VFs)',
    qemu: '11.1',
    caps: ['igb'],
    devices: [
      { ...edu('edu', 'pcie.0', '0x3'), slotPath: '03.0' },
      nic('igb', 0x7),
    ],
  },

  // GPU-sized BARs (issue #12): ivshmem-plain shows its memory backend as
  // BAR2, 64-bit prefetchable, of the backend's size. memory-backend-ram
  // allocates lazily, so QEMU holds only the pages the guest touches. The
  // firmware places both BARs (4 GiB and 16 GiB, each aligned to its size)
  // in q35's 64-bit PCI hole above RAM, 32 GiB by default. edu is there for
  // the files every entry runs (capabilities.test.ts).
  bigbar: {
    description: 'edu, and ivshmem-plain devices with a 4 GiB and a 16 GiB BAR2',
    caps: ['bigbar'],
    devices: [
      { ...edu('edu', 'pcie.0', '0x3'), slotPath: '03.0' },
      ivshmem('ivshmem-4g', '4G', 0x8),
      ivshmem('ivshmem-16g', '16G', 0x9),
    ],
  },
};

// A profile is named, or given whole ({ name, devices }) by a tool that
// needs another device set.
function getProfile(name) {
  if (name && typeof name === 'object') {
    if (!Array.isArray(name.devices)) throw new VmError('a custom profile needs a devices array');
    return { name: 'custom', description: 'custom', caps: [], ...name };
  }
  const p = PROFILES[name];
  if (!p) throw new VmError(`unknown profile "${name}" (known: ${Object.keys(PROFILES).join(', ')})`);
  return { name, ...p };
}

module.exports = { PROFILES, getProfile };
