/*
 * Guest floor for issue 12's MSI-X storm: 64 MSI-X vectors of the test
 * bed's nvme, each signalling its own non-blocking eventfd, all in one
 * epoll set. One op is one storm: a single VFIO_DEVICE_SET_IRQS with
 * DATA_BOOL fires all 64 vectors, then epoll_wait and read() until every
 * vector has been counted exactly once (none lost, none extra, else the
 * program fails). The library side does the same through Interrupts
 * (one poller for the range, counts drained natively).
 *
 * Usage: irq_storm GROUP_PATH BDF OP:BATCH:SAMPLES:WARMUP...
 * The group goes into a TYPE1v2 container; nothing is DMA-mapped.
 */
#include "bench.h"
#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VECTORS 64

static int container = -1, group = -1, device = -1, epfd = -1;
static int efds[VECTORS];

static struct {
	struct vfio_irq_set set;
	uint8_t bools[VECTORS];
} fire_all;

static void setup(const char *group_path, const char *bdf)
{
	CHECK(container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC));
	CHECK(group = open(group_path, O_RDWR | O_CLOEXEC));
	CHECK(ioctl(group, VFIO_GROUP_SET_CONTAINER, &container));
	CHECK(ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));
	CHECK(device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf));
	CHECK(epfd = epoll_create1(EPOLL_CLOEXEC));
	struct {
		struct vfio_irq_set set;
		int32_t fds[VECTORS];
	} req = {
		.set = {
			.argsz = sizeof req,
			.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = VECTORS,
		},
	};
	for (int i = 0; i < VECTORS; i++) {
		CHECK(efds[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
		req.fds[i] = efds[i];
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)i };
		CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, efds[i], &ev));
	}
	CHECK(ioctl(device, VFIO_DEVICE_SET_IRQS, &req));
	fire_all.set = (struct vfio_irq_set){
		.argsz = sizeof fire_all,
		.flags = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
		.index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = VECTORS,
	};
	memset(fire_all.bools, 1, sizeof fire_all.bools);
}

static void op_storm(void)
{
	uint64_t seen[VECTORS] = { 0 };
	unsigned counted = 0;
	CHECK(ioctl(device, VFIO_DEVICE_SET_IRQS, &fire_all));
	while (counted < VECTORS) {
		struct epoll_event events[VECTORS];
		int n;
		CHECK(n = epoll_wait(epfd, events, VECTORS, 5000));
		if (n == 0) {
			fprintf(stderr, "storm: %u of %d vectors arrived within 5 s\n", counted, VECTORS);
			exit(2);
		}
		for (int i = 0; i < n; i++) {
			uint32_t v = events[i].data.u32;
			uint64_t count;
			if (read(efds[v], &count, sizeof count) < 0) {
				if (errno == EAGAIN)
					continue;
				CHECK(-1);
			}
			if (!seen[v])
				counted++;
			seen[v] += count;
		}
	}
	for (int v = 0; v < VECTORS; v++) {
		if (seen[v] != 1) {
			fprintf(stderr, "storm: vector %d counted %llu times, not once\n", v, (unsigned long long)seen[v]);
			exit(2);
		}
	}
}

static const struct bench_op ops[] = { { "msix-storm", op_storm, NULL } };

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: irq_storm GROUP_PATH BDF OP:BATCH:SAMPLES:WARMUP...\n");
		return 1;
	}
	setup(argv[1], argv[2]);
	for (int i = 3; i < argc; i++)
		bench_run(argv[i], ops, sizeof ops / sizeof ops[0]);
	for (int i = 0; i < VECTORS; i++)
		close(efds[i]);
	close(epfd);
	close(device);
	close(group);
	close(container);
	return 0;
}
