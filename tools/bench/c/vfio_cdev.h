/*
 * The iommufd bring-up, the cdev counterpart of vdev_open() in
 * vfio_dev.h: /dev/iommu, one IOAS, the device's cdev bound to the
 * iommufd (VFIO_DEVICE_BIND_IOMMUFD) and attached to the IOAS
 * (VFIO_DEVICE_ATTACH_IOMMUFD_PT), so that a mapping in the IOAS pins its
 * pages as it would for DMA. Then the same regions and BAR0 mapping.
 */
#ifndef VFIO_CDEV_H
#define VFIO_CDEV_H

#include "vfio_dev.h"
#include <linux/iommufd.h>

static inline void vdev_open_cdev(struct vdev *d, const char *cdev_path)
{
	d->container = d->group = -1;
	CHECK(d->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC));
	struct iommu_ioas_alloc alloc = { .size = sizeof alloc };
	CHECK(ioctl(d->iommufd, IOMMU_IOAS_ALLOC, &alloc));
	d->ioas_id = alloc.out_ioas_id;

	CHECK(d->device = open(cdev_path, O_RDWR | O_CLOEXEC));
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof bind, .iommufd = d->iommufd };
	CHECK(ioctl(d->device, VFIO_DEVICE_BIND_IOMMUFD, &bind));
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof attach, .pt_id = d->ioas_id };
	CHECK(ioctl(d->device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach));
	vdev_regions(d);
}

#endif
