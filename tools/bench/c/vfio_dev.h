/*
 * The legacy VFIO bring-up every guest measurement starts from: container,
 * group, TYPE1v2 IOMMU, device fd, BAR0 and config region offsets, BAR0
 * mapped. Setup is outside every timed loop; it is only here once so that
 * the measurements in vfio_bench.c stay one short function each. The
 * iommufd bring-up (cdev bound to an IOAS) is in vfio_cdev.h and ends in
 * the same vdev_regions().
 */
#ifndef VFIO_DEV_H
#define VFIO_DEV_H

#include "bench.h"
#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

struct vdev {
	/* -1 where the backend has none: the group path has no iommufd, the
	 * cdev path no container or group. */
	int container, group, device, iommufd;
	uint32_t ioas_id; /* the IOAS the cdev is attached to (iommufd only) */
	uint64_t bar0_offset, bar0_size, config_offset;
	volatile uint8_t *bar0; /* BAR0 mapped, for the volatile accessors */
};

/* BAR0 and config offsets and BAR0 mapped, from an open device fd. */
static inline void vdev_regions(struct vdev *d)
{
	struct vfio_region_info ri = { .argsz = sizeof ri, .index = VFIO_PCI_BAR0_REGION_INDEX };
	CHECK(ioctl(d->device, VFIO_DEVICE_GET_REGION_INFO, &ri));
	d->bar0_offset = ri.offset;
	d->bar0_size = ri.size;
	ri = (struct vfio_region_info){ .argsz = sizeof ri, .index = VFIO_PCI_CONFIG_REGION_INDEX };
	CHECK(ioctl(d->device, VFIO_DEVICE_GET_REGION_INFO, &ri));
	d->config_offset = ri.offset;

	void *p = mmap(NULL, d->bar0_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       d->device, d->bar0_offset);
	if (p == MAP_FAILED) {
		perror("mmap BAR0");
		exit(2);
	}
	d->bar0 = p;
	/* Time the right thing or nothing: edu's identification register. */
	if (*(volatile uint32_t *)d->bar0 != 0x010000ed) {
		fprintf(stderr, "BAR0 id register is not edu's 0x010000ed\n");
		exit(2);
	}
}

static inline void vdev_open(struct vdev *d, const char *group_path, const char *bdf)
{
	d->iommufd = -1;
	CHECK(d->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC));
	CHECK(d->group = open(group_path, O_RDWR | O_CLOEXEC));
	CHECK(ioctl(d->group, VFIO_GROUP_SET_CONTAINER, &d->container));
	CHECK(ioctl(d->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	CHECK(d->device = ioctl(d->group, VFIO_GROUP_GET_DEVICE_FD, bdf));
	vdev_regions(d);
}

static inline uint32_t vdev_read32(struct vdev *d, unsigned off)
{
	return *(volatile uint32_t *)(d->bar0 + off);
}

static inline void vdev_write32(struct vdev *d, unsigned off, uint32_t v)
{
	*(volatile uint32_t *)(d->bar0 + off) = v;
}

/* MSI is a memory write by the device: QEMU drops it unless bus mastering
 * is on in the PCI command register (config offset 4, bit 2). */
static inline void vdev_bus_master(struct vdev *d)
{
	uint16_t cmd;
	CHECK(pread(d->device, &cmd, 2, d->config_offset + 4));
	cmd |= 4;
	CHECK(pwrite(d->device, &cmd, 2, d->config_offset + 4));
}

static inline void vdev_close(struct vdev *d)
{
	munmap((void *)d->bar0, d->bar0_size);
	/* The kernel's order: the device first (on the cdev path that unbinds
	 * it from the iommufd), then what it was attached to. */
	close(d->device);
	if (d->group >= 0)
		close(d->group);
	if (d->container >= 0)
		close(d->container);
	if (d->iommufd >= 0)
		close(d->iommufd); /* destroys the IOAS with it */
}

#endif
