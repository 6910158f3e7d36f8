/*
 * Guest floor for issue 6 items 1-5: each operation as a tight loop over
 * the raw syscall (or a volatile pointer for MMIO). The JS driver runs this
 * program and the library alternately, with the same batch sizes, so the
 * two sides differ only in what sits between the loop and the kernel.
 *
 * Usage: vfio_bench container GROUP_PATH BDF OP:BATCH:SAMPLES:WARMUP...
 *        vfio_bench iommufd CDEV_PATH BDF OP:BATCH:SAMPLES:WARMUP...
 * The backend says how the device is opened (group node and a type1
 * container, or its cdev bound to an iommufd and attached to an IOAS) and
 * what the DMA ops call (VFIO_IOMMU_MAP_DMA / UNMAP_DMA on the container,
 * IOMMU_IOAS_MAP / UNMAP on the IOAS); every other op is the same ioctl,
 * pread or load on the device fd either way.
 * The dirty ops (VFIO_IOMMU_DIRTY_PAGES over 1 GiB) are the container's only.
 * Prints one JSON line per OP (see bench.h); ns per operation.
 */
#define _GNU_SOURCE /* memfd_create, MFD_HUGETLB */
#include "pkru.h"
#include "vfio_cdev.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>

/* edu BAR0 registers (QEMU docs/specs/edu.rst). */
#define EDU_ID 0x00        /* identification, read-only */
#define EDU_LIVENESS 0x04  /* read back inverted: a harmless write target */
#define EDU_IRQ_RAISE 0x60 /* value ORed into the interrupt status, MSI sent */
#define EDU_IRQ_ACK 0x64
/* Past the registers, edu reads all-ones and ignores writes: a safe place
 * for the 4 KiB region read/write. */
#define EDU_SCRATCH 0x1000

#define DMA_IOVA 0x100000ull

static struct vdev dev;
static int irq_efd = -1;
static int irq_epfd = -1; /* irq_efd in an epoll set: C's own event loop */
static void *dma_4k, *dma_2m;

static void op_region_info(void)
{
	struct vfio_region_info ri = { .argsz = sizeof ri, .index = VFIO_PCI_BAR0_REGION_INDEX };
	CHECK(ioctl(dev.device, VFIO_DEVICE_GET_REGION_INFO, &ri));
	bench_sink = ri.size;
}

static void op_irq_info(void)
{
	struct vfio_irq_info ii = { .argsz = sizeof ii, .index = VFIO_PCI_MSI_IRQ_INDEX };
	CHECK(ioctl(dev.device, VFIO_DEVICE_GET_IRQ_INFO, &ii));
	bench_sink = ii.count;
}

static void map_unmap_container(void *buf, uint64_t iova, uint64_t size)
{
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof map,
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)buf, .iova = iova, .size = size,
	};
	CHECK(ioctl(dev.container, VFIO_IOMMU_MAP_DMA, &map));
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof unmap, .iova = iova, .size = size };
	CHECK(ioctl(dev.container, VFIO_IOMMU_UNMAP_DMA, &unmap));
}

/* What the library's Ioas.map({ iova }) asks for: a fixed IOVA, read and write. */
static void map_unmap_ioas(void *buf, uint64_t iova, uint64_t size)
{
	struct iommu_ioas_map map = {
		.size = sizeof map,
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = dev.ioas_id, .user_va = (uintptr_t)buf, .length = size, .iova = iova,
	};
	CHECK(ioctl(dev.iommufd, IOMMU_IOAS_MAP, &map));
	struct iommu_ioas_unmap unmap = { .size = sizeof unmap, .ioas_id = dev.ioas_id, .iova = iova, .length = size };
	CHECK(ioctl(dev.iommufd, IOMMU_IOAS_UNMAP, &unmap));
}

static void map_unmap_at(void *buf, uint64_t iova, uint64_t size)
{
	if (dev.iommufd >= 0)
		map_unmap_ioas(buf, iova, size);
	else
		map_unmap_container(buf, iova, size);
}

static void map_unmap(void *buf, uint64_t size) { map_unmap_at(buf, DMA_IOVA, size); }

static void op_dma_4k(void) { map_unmap(dma_4k, 4096); }
static void op_dma_2m(void) { map_unmap(dma_2m, 2u << 20); }

static void op_mmio_read32(void) { bench_sink = vdev_read32(&dev, EDU_ID); }
static void op_mmio_write32(void) { vdev_write32(&dev, EDU_LIVENESS, 0x5a5a5a5a); }

static void op_pread_4(void)
{
	uint32_t v;
	CHECK(pread(dev.device, &v, 4, dev.bar0_offset + EDU_ID));
	bench_sink = v;
}

static void op_pwrite_4(void)
{
	uint32_t v = 0x5a5a5a5a;
	CHECK(pwrite(dev.device, &v, 4, dev.bar0_offset + EDU_LIVENESS));
}

static uint8_t page[4096];
static void op_pread_4k(void) { CHECK(pread(dev.device, page, sizeof page, dev.bar0_offset + EDU_SCRATCH)); }
static void op_pwrite_4k(void) { CHECK(pwrite(dev.device, page, sizeof page, dev.bar0_offset + EDU_SCRATCH)); }

/* One interrupt: raise it through BAR0, block until the eventfd counts it,
 * acknowledge. Timed alone (batch 1) it is the latency; in a batch it is
 * the sustained closed-loop rate. */
static void op_irq(void)
{
	uint64_t count;
	vdev_write32(&dev, EDU_IRQ_RAISE, 1);
	CHECK(read(irq_efd, &count, sizeof count));
	vdev_write32(&dev, EDU_IRQ_ACK, 1);
}

/* The same as an event loop in C would take it: epoll_wait until the
 * eventfd is readable, then read it (what libuv does for the library). */
static void op_irq_epoll(void)
{
	uint64_t count;
	struct epoll_event ready;
	vdev_write32(&dev, EDU_IRQ_RAISE, 1);
	while (epoll_wait(irq_epfd, &ready, 1, -1) < 0)
		if (errno != EINTR) {
			perror("epoll_wait");
			exit(2);
		}
	CHECK(read(irq_efd, &count, sizeof count));
	vdev_write32(&dev, EDU_IRQ_ACK, 1);
}

static void *alloc_pinned(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap anonymous");
		exit(2);
	}
	memset(p, 0, size); /* fault the pages in now, not in the first map */
	return p;
}

/* Guest memory (issue 12): 1 GiB of memfd memory, as a VMM's guest RAM,
 * mapped whole at 1 GiB of IOVA and unmapped; backed by 4 KiB shmem pages
 * or by 2 MiB huge pages (a hugetlbfs memfd, whose 512 pages are reserved
 * through sysfs for the op; the pool's count is put back at teardown). One
 * kind at a time: switching frees the other first (the guest has 2 GiB). */
#define GMEM_IOVA (1ull << 30)
#define GMEM_SIZE (1ull << 30)
#define HUGE_2M (2ull << 20)
#define HUGE_POOL "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
#ifndef MFD_HUGE_2MB
#define MFD_HUGE_2MB (21u << 26) /* log2(2 MiB) << MFD_HUGE_SHIFT (linux/memfd.h) */
#endif
static void *gmem;
static int gmem_fd = -1;
static unsigned gmem_flags;
static long pool_before = -1;

static long read_pool(void)
{
	long n = -1;
	FILE *f = fopen(HUGE_POOL, "r");
	if (!f || fscanf(f, "%ld", &n) != 1) {
		perror(HUGE_POOL);
		exit(2);
	}
	fclose(f);
	return n;
}

static void write_pool(long n)
{
	FILE *f = fopen(HUGE_POOL, "w");
	if (!f || fprintf(f, "%ld\n", n) < 0 || fclose(f)) {
		perror(HUGE_POOL);
		exit(2);
	}
}

static void gmem_teardown(void)
{
	if (gmem)
		munmap(gmem, GMEM_SIZE);
	gmem = NULL;
	if (gmem_fd >= 0)
		close(gmem_fd);
	gmem_fd = -1;
	if (pool_before >= 0)
		write_pool(pool_before);
	pool_before = -1;
}

static void gmem_setup(unsigned flags)
{
	if (gmem && gmem_flags == flags)
		return;
	gmem_teardown();
	if (flags & MFD_HUGETLB) {
		pool_before = read_pool();
		long want = pool_before + (long)(GMEM_SIZE / HUGE_2M);
		write_pool(want);
		if (read_pool() < want) {
			fprintf(stderr, "the guest reserved %ld of %ld 2 MiB huge pages\n", read_pool(), want);
			gmem_teardown();
			exit(1);
		}
	}
	CHECK(gmem_fd = memfd_create("bench-guest-memory", MFD_CLOEXEC | flags));
	CHECK(ftruncate(gmem_fd, GMEM_SIZE));
	gmem = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, gmem_fd, 0);
	if (gmem == MAP_FAILED) {
		perror("mmap guest memory");
		exit(2);
	}
	memset(gmem, 0, GMEM_SIZE); /* fault the pages in now, not in the first map */
	gmem_flags = flags;
}

static void gmem_4k_setup(void) { gmem_setup(0); }
static void gmem_2m_setup(void) { gmem_setup(MFD_HUGETLB | MFD_HUGE_2MB); }
static void op_gmem(void) { map_unmap_at(gmem, GMEM_IOVA, GMEM_SIZE); }

static void setup_irq(void)
{
	vdev_bus_master(&dev);
	CHECK(irq_efd = eventfd(0, EFD_CLOEXEC)); /* blocking: read() waits */
	struct {
		struct vfio_irq_set set;
		int32_t fd;
	} req = {
		.set = {
			.argsz = sizeof req,
			.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			.index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1,
		},
		.fd = irq_efd,
	};
	CHECK(ioctl(dev.device, VFIO_DEVICE_SET_IRQS, &req));
	struct epoll_event watch = { .events = EPOLLIN, .data.fd = irq_efd };
	CHECK(irq_epfd = epoll_create1(EPOLL_CLOEXEC));
	CHECK(epoll_ctl(irq_epfd, EPOLL_CTL_ADD, irq_efd, &watch));
}

/* Dirty page tracking (VFIO_IOMMU_DIRTY_PAGES, type1 only): 1 GiB mapped
 * as one mapping at 1 GiB of IOVA (clear of edu's MSI window and of the
 * DMA rows' IOVA), tracking started; set up once, before the first dirty
 * op, and left until the program ends (the dirty ops run last, so no
 * map/unmap row pays for tracking). Type1 cannot see a device's writes:
 * every page of the mapping is reported dirty at every report. */
#define DIRTY_IOVA (1ull << 30)
#define DIRTY_SIZE (1ull << 30)
#define DIRTY_PAGE 4096ull
#define DIRTY_PAGES (DIRTY_SIZE / DIRTY_PAGE)
static void *dirty_mem;
static uint64_t dirty_bitmap[DIRTY_PAGES / 64]; /* 32 KiB: one bit per page */

static void dirty_setup(void)
{
	if (dirty_mem)
		return;
	gmem_teardown(); /* 1 GiB of each would not fit the guest */
	if (dev.container < 0) {
		fprintf(stderr, "dirty ops need the container backend (VFIO_IOMMU_DIRTY_PAGES is type1's)\n");
		exit(1);
	}
	dirty_mem = alloc_pinned(DIRTY_SIZE);
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof map,
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)dirty_mem, .iova = DIRTY_IOVA, .size = DIRTY_SIZE,
	};
	CHECK(ioctl(dev.container, VFIO_IOMMU_MAP_DMA, &map));
	struct vfio_iommu_type1_dirty_bitmap start = { .argsz = sizeof start, .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_START };
	CHECK(ioctl(dev.container, VFIO_IOMMU_DIRTY_PAGES, &start));
}

/* GET_BITMAP of the whole mapping into the zeroed bitmap, as a VMM asks
 * for it at each migration pass. */
static void dirty_get(void)
{
	memset(dirty_bitmap, 0, sizeof dirty_bitmap);
	struct {
		struct vfio_iommu_type1_dirty_bitmap head;
		struct vfio_iommu_type1_dirty_bitmap_get get;
	} req = {
		.head = { .argsz = sizeof req, .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP },
		.get = {
			.iova = DIRTY_IOVA, .size = DIRTY_SIZE,
			.bitmap = { .pgsize = DIRTY_PAGE, .size = sizeof dirty_bitmap, .data = (__u64 *)dirty_bitmap },
		},
	};
	CHECK(ioctl(dev.container, VFIO_IOMMU_DIRTY_PAGES, &req));
}

static void op_dirty_ioctl(void)
{
	dirty_get();
	bench_sink = dirty_bitmap[0];
}

/* The report counted: the least a caller does with it. Time the right
 * thing or nothing: every page must be there. */
static void op_dirty_count(void)
{
	dirty_get();
	uint64_t n = 0;
	for (size_t i = 0; i < sizeof dirty_bitmap / sizeof dirty_bitmap[0]; i++)
		n += (uint64_t)__builtin_popcountll(dirty_bitmap[i]);
	if (n != DIRTY_PAGES) {
		fprintf(stderr, "GET_BITMAP reported %llu dirty pages of %llu\n", (unsigned long long)n, DIRTY_PAGES);
		exit(2);
	}
	bench_sink = n;
}

static void dirty_teardown(void)
{
	if (!dirty_mem)
		return;
	struct vfio_iommu_type1_dirty_bitmap stop = { .argsz = sizeof stop, .flags = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP };
	CHECK(ioctl(dev.container, VFIO_IOMMU_DIRTY_PAGES, &stop));
	struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof unmap, .iova = DIRTY_IOVA, .size = DIRTY_SIZE };
	CHECK(ioctl(dev.container, VFIO_IOMMU_UNMAP_DMA, &unmap));
	munmap(dirty_mem, DIRTY_SIZE);
}

static const struct bench_op ops[] = {
	{ "region-info", op_region_info, NULL }, { "irq-info", op_irq_info, NULL },
	{ "dma-4k", op_dma_4k, NULL },           { "dma-2m", op_dma_2m, NULL },
	{ "mmio-read32", op_mmio_read32, NULL }, { "mmio-write32", op_mmio_write32, NULL },
	{ "pread-4", op_pread_4, NULL },         { "pwrite-4", op_pwrite_4, NULL },
	{ "pread-4k", op_pread_4k, NULL },       { "pwrite-4k", op_pwrite_4k, NULL },
	{ "irq-latency", op_irq, NULL },         { "irq-rate", op_irq, NULL },
	{ "irq-latency-epoll", op_irq_epoll, NULL },
	{ "gmem-1g-4k", op_gmem, gmem_4k_setup }, { "gmem-1g-2m", op_gmem, gmem_2m_setup },
	{ "dirty-1g", op_dirty_count, dirty_setup }, { "dirty-1g-ioctl", op_dirty_ioctl, dirty_setup },
};

int main(int argc, char **argv)
{
	if (argc < 5 || (strcmp(argv[1], "container") && strcmp(argv[1], "iommufd"))) {
		fprintf(stderr, "usage: vfio_bench container|iommufd GROUP_PATH|CDEV_PATH BDF OP:BATCH:SAMPLES:WARMUP...\n");
		return 1;
	}
	pkru_as_node_if_asked("vfio_bench");
	if (!strcmp(argv[1], "container"))
		vdev_open(&dev, argv[2], argv[3]);
	else
		vdev_open_cdev(&dev, argv[2]); /* the cdev names the device; BDF is for the reader */
	dma_4k = alloc_pinned(4096);
	dma_2m = alloc_pinned(2u << 20);
	setup_irq();
	for (int i = 4; i < argc; i++)
		bench_run(argv[i], ops, sizeof ops / sizeof ops[0]);
	dirty_teardown();
	gmem_teardown();
	close(irq_epfd);
	close(irq_efd);
	vdev_close(&dev);
	return 0;
}
