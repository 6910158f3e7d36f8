/* Runs inside the guest: takes "GROUP ADDRESS" pairs and walks the legacy
 * VFIO path for each: group viable, attached to one container, TYPE1v2 IOMMU
 * set (which needs interrupt remapping), device fd obtained and its info read.
 * It proves the test bed gives real, usable VFIO; it is not the library. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(const char *what, const char *arg) {
  fprintf(stderr, "FAIL %s %s: %s\n", what, arg, strerror(errno));
  return 1;
}

int main(int argc, char **argv) {
  int container = open("/dev/vfio/vfio", O_RDWR);
  if (container < 0) return fail("open", "/dev/vfio/vfio");
  printf("ok   API version %d, TYPE1v2 %s\n", ioctl(container, VFIO_GET_API_VERSION),
         ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) > 0 ? "yes" : "no");
  int groups[64], group_ids[64], ngroups = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    int id = atoi(argv[i]), fd = -1;
    const char *addr = argv[i + 1];
    for (int g = 0; g < ngroups; g++)
      if (group_ids[g] == id) fd = groups[g];
    if (fd < 0) {
      char path[64];
      snprintf(path, sizeof path, "/dev/vfio/%d", id);
      if ((fd = open(path, O_RDWR)) < 0) return fail("open", path);
      struct vfio_group_status st = {.argsz = sizeof st};
      if (ioctl(fd, VFIO_GROUP_GET_STATUS, &st)) return fail("GET_STATUS", path);
      if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) { errno = EBUSY; return fail("group not viable", path); }
      if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &container)) return fail("SET_CONTAINER", path);
      if (ngroups == 0 && ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
        return fail("SET_IOMMU TYPE1v2", path);
      groups[ngroups] = fd, group_ids[ngroups++] = id;
      printf("ok   group %d viable, in the container\n", id);
    }
    int dev = ioctl(fd, VFIO_GROUP_GET_DEVICE_FD, addr);
    if (dev < 0) return fail("GET_DEVICE_FD", addr);
    struct vfio_device_info info = {.argsz = sizeof info};
    if (ioctl(dev, VFIO_DEVICE_GET_INFO, &info)) return fail("DEVICE_GET_INFO", addr);
    printf("ok   %s: %u regions, %u irq indexes, reset %s\n", addr, info.num_regions, info.num_irqs,
           info.flags & VFIO_DEVICE_FLAGS_RESET ? "yes" : "no");
    close(dev);
  }
  printf("vfio groups: all checks passed\n");
  return 0;
}
