'use strict';
// The edu device opened on one IOMMU backend through the public API, with
// the IOMMU context DMA maps into held explicitly (not Device.open's shared
// one), so the rows and the soak know exactly what is open:
//   container: Container.open, Group.open, attach, group.openDevice
//   iommufd:   Iommufd.open, allocIoas, Device.open(address, { ioas })
//              (the cdev bound to the iommufd and attached to the IOAS)
const { Container, Group, Device, Iommufd } = require('vfio-ioctls');

/**
 * Returns { device, iommu, owners }: iommu is the Container or the Ioas;
 * owners what must close after the device, in the kernel's order. `vfio`:
 * VfioOptions (the fake kernel, for a dry run on the host); none in the guest.
 */
function openOnBackend(dev, backend, vfio) {
  if (backend === 'container') {
    const container = Container.open(vfio);
    const group = Group.open(dev.iommuGroup, vfio);
    group.attach(container);
    const device = group.openDevice(dev.address);
    return { device, iommu: container, owners: [group, container] };
  }
  if (backend === 'iommufd') {
    const iommufd = Iommufd.open(vfio);
    const ioas = iommufd.allocIoas();
    const device = Device.open(dev.address, { ...vfio, ioas });
    return { device, iommu: ioas, owners: [ioas, iommufd] };
  }
  throw new Error(`unknown backend ${backend}`);
}

/** Closes the device, then its owners (IOAS before iommufd, group before container). */
function closeOnBackend(opened) {
  opened.device.close();
  for (const owner of opened.owners) owner.close();
}

module.exports = { openOnBackend, closeOnBackend };
