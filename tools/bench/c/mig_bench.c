/*
 * Guest floor for issue 13's migration numbers: a migration v2 save of an
 * mtty sample mdev (samples/vfio-mdev/mtty.c) as a C VMM does it, with the
 * raw VFIO_DEVICE_FEATURE ioctls and a read(2) loop on the data fd. mtty's
 * whole device state is ~100 bytes, so this is the fixed cost of a save,
 * not a transfer rate.
 *
 * Usage: mig_bench GROUP_PATH UUID OP:BATCH:SAMPLES:WARMUP...
 * The mdev is opened as the library's Device.open does for it: its group
 * in a TYPE1v2 container, the device by its UUID.
 * Ops:
 *   mig-save-cycle  RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY (the data
 *                   fd), read it to its end, close it, STOP -> RUNNING_P2P
 *                   -> RUNNING
 *   mig-save-arcs   the same six arcs, the fd closed unread
 * Each save must read exactly MIG_DATA_SIZE's bytes, or the program fails.
 * Prints one JSON line per OP (see bench.h); ns per save.
 */
#include "bench.h"
#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int container = -1, group = -1, device = -1;
static uint64_t data_size; /* MIG_DATA_SIZE: what each save must read */
static uint8_t chunk[64 * 1024]; /* the library stream's default chunk */

/* SET MIG_DEVICE_STATE: one arc. Returns the data fd the arc opened, or -1. */
static int set_state(uint32_t state)
{
	struct {
		struct vfio_device_feature head;
		struct vfio_device_feature_mig_state mig;
	} req = {
		.head = { .argsz = sizeof req, .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE },
		.mig = { .device_state = state, .data_fd = -1 },
	};
	CHECK(ioctl(device, VFIO_DEVICE_FEATURE, &req));
	return req.mig.data_fd;
}

static int enter_stop_copy(void)
{
	set_state(VFIO_DEVICE_STATE_RUNNING_P2P);
	set_state(VFIO_DEVICE_STATE_STOP);
	int fd = set_state(VFIO_DEVICE_STATE_STOP_COPY);
	if (fd < 0) {
		fprintf(stderr, "STOP -> STOP_COPY returned no data fd\n");
		exit(2);
	}
	return fd;
}

static void back_to_running(void)
{
	set_state(VFIO_DEVICE_STATE_STOP);
	set_state(VFIO_DEVICE_STATE_RUNNING_P2P);
	set_state(VFIO_DEVICE_STATE_RUNNING);
}

static void op_save_cycle(void)
{
	int fd = enter_stop_copy();
	uint64_t total = 0;
	ssize_t n;
	while ((n = read(fd, chunk, sizeof chunk)) > 0)
		total += (uint64_t)n;
	CHECK(n);
	if (total != data_size) {
		fprintf(stderr, "the save read %llu bytes, MIG_DATA_SIZE said %llu\n", (unsigned long long)total,
			(unsigned long long)data_size);
		exit(2);
	}
	close(fd);
	back_to_running();
}

static void op_save_arcs(void)
{
	close(enter_stop_copy());
	back_to_running();
}

static const struct bench_op ops[] = {
	{ "mig-save-cycle", op_save_cycle, NULL },
	{ "mig-save-arcs", op_save_arcs, NULL },
};

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: mig_bench GROUP_PATH UUID OP:BATCH:SAMPLES:WARMUP...\n");
		return 1;
	}
	CHECK(container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC));
	CHECK(group = open(argv[1], O_RDWR | O_CLOEXEC));
	CHECK(ioctl(group, VFIO_GROUP_SET_CONTAINER, &container));
	CHECK(ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	CHECK(device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[2]));
	struct {
		struct vfio_device_feature head;
		struct vfio_device_feature_mig_data_size size;
	} req = { .head = { .argsz = sizeof req, .flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE } };
	CHECK(ioctl(device, VFIO_DEVICE_FEATURE, &req));
	data_size = req.size.stop_copy_length;
	for (int i = 3; i < argc; i++)
		bench_run(argv[i], ops, sizeof ops / sizeof ops[0]);
	close(device);
	close(group);
	close(container);
	return 0;
}
