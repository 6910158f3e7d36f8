/*
 * Issue 12's interrupt latency into a nested guest, the C side: edu passed
 * to a KVM guest as examples/mini-vmm does it (RAM at guest physical 0,
 * DMA-mapped at IOVA 0; BAR0 as a memory slot at 0xA0000; in-kernel
 * irqchip, the 8259 programmed by the guest), running a loop that raises
 * edu's interrupt, exits once on port 0x13, then spins until its handler
 * has run (the payload, real-mode bytes, comes from the file the JS driver
 * writes: src/guest/kvm-irq-ops.js, so both sides run the same code).
 * One op is one interrupt: from that exit to the next.
 *   kvm-irqfd:   edu's MSI eventfd is a KVM irqfd (GSI 5): at the exit the
 *                VMM only enters again; the interrupt never leaves the kernel.
 *   kvm-forward: the eventfd is the VMM's: at the exit it reads it
 *                (blocking) and injects with KVM_IRQ_LINE (5: 1 then 0).
 *   kvm-exit:    the guest entered at the payload's exit_loop (0x1072):
 *                port exits alone, the part of every op above that is
 *                not the interrupt.
 * usage: kvm_irq_bench irqfd|forward|exit container|iommufd GROUP|CDEV BDF PAYLOAD OP:BATCH:SAMPLES:WARMUP...
 */
#include "vfio_cdev.h"
#include <linux/kvm.h>
#include <sys/eventfd.h>

#define RAM_SIZE 0xa0000
#define BAR_GPA 0xa0000
#define BAR_WINDOW 0x10000
#define LOAD_AT 0x1000
#define GSI 5
#define WAIT_PORT 0x13
#define EXIT_LOOP (LOAD_AT + 0x72)

static struct vdev dev;
static int kvm, vm, vcpu, efd, forward, exit_only;
static struct kvm_run *run;

static void enter_until_wait_exit(void)
{
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			CHECK(-1);
		}
		if (run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "unexpected KVM exit %u\n", run->exit_reason);
			exit(2);
		}
		if (run->io.port == WAIT_PORT)
			return;
		/* port 0x12: the guest's batch counter ran out; it starts another */
	}
}

static void op_interrupt(void)
{
	if (forward) {
		uint64_t count;
		struct kvm_irq_level line = { .irq = GSI, .level = 1 };
		CHECK(read(efd, &count, sizeof count));
		CHECK(ioctl(vm, KVM_IRQ_LINE, &line));
		line.level = 0;
		CHECK(ioctl(vm, KVM_IRQ_LINE, &line));
	}
	enter_until_wait_exit();
}

static const struct bench_op ops[] = {
	{ "kvm-irqfd", op_interrupt, NULL },
	{ "kvm-forward", op_interrupt, NULL },
	{ "kvm-exit", op_interrupt, NULL },
};

static void set_slot(unsigned slot, uint64_t gpa, uint64_t size, void *at)
{
	struct kvm_userspace_memory_region r = { .slot = slot, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uintptr_t)at };
	CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r));
}

static void map_ram(void *ram)
{
	if (dev.iommufd >= 0) {
		struct iommu_ioas_map map = { .size = sizeof map, .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
			.ioas_id = dev.ioas_id, .user_va = (uintptr_t)ram, .length = RAM_SIZE, .iova = 0 };
		CHECK(ioctl(dev.iommufd, IOMMU_IOAS_MAP, &map));
	} else {
		struct vfio_iommu_type1_dma_map map = { .argsz = sizeof map, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = (uintptr_t)ram, .iova = 0, .size = RAM_SIZE };
		CHECK(ioctl(dev.container, VFIO_IOMMU_MAP_DMA, &map));
	}
}

/* MSI vector 0 signals `fd`; -1 turns MSI off (DATA_NONE, count 0). */
static void route_msi(int fd)
{
	struct { struct vfio_irq_set set; int32_t fd; } arg = {
		.set = { .argsz = sizeof arg, .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			 .index = VFIO_PCI_MSI_IRQ_INDEX, .start = 0, .count = 1 },
		.fd = fd,
	};
	if (fd < 0) {
		arg.set.argsz = sizeof arg.set;
		arg.set.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
		arg.set.count = 0;
	}
	CHECK(ioctl(dev.device, VFIO_DEVICE_SET_IRQS, &arg));
}

int main(int argc, char **argv)
{
	if (argc < 7 || (strcmp(argv[1], "irqfd") && strcmp(argv[1], "forward") && strcmp(argv[1], "exit"))) {
		fprintf(stderr, "usage: kvm_irq_bench irqfd|forward|exit container|iommufd GROUP|CDEV BDF PAYLOAD OP:BATCH:SAMPLES:WARMUP...\n");
		return 1;
	}
	forward = !strcmp(argv[1], "forward");
	exit_only = !strcmp(argv[1], "exit");
	if (!strcmp(argv[2], "container"))
		vdev_open(&dev, argv[3], argv[4]);
	else
		vdev_open_cdev(&dev, argv[3]);
	vdev_bus_master(&dev);

	CHECK(kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC));
	CHECK(vm = ioctl(kvm, KVM_CREATE_VM, 0));
	uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		perror("mmap RAM");
		return 2;
	}
	FILE *f = fopen(argv[5], "rb");
	if (!f || fread(ram + LOAD_AT, 1, 4096, f) == 0) {
		fprintf(stderr, "cannot read the payload %s\n", argv[5]);
		return 2;
	}
	fclose(f);
	*(uint16_t *)(ram + 0x504) = 0; /* the guest's batch: 65536 interrupts */
	map_ram(ram);
	set_slot(0, 0, RAM_SIZE, ram);
	set_slot(1, BAR_GPA, BAR_WINDOW, (void *)dev.bar0);
	CHECK(ioctl(vm, KVM_CREATE_IRQCHIP, 0));
	/* Blocking, for the forwarder's read; KVM's irqfd does not care. */
	CHECK(efd = eventfd(0, EFD_CLOEXEC));
	if (!forward) {
		struct kvm_irqfd irqfd = { .fd = efd, .gsi = GSI };
		CHECK(ioctl(vm, KVM_IRQFD, &irqfd));
	}
	route_msi(efd);

	int kvm_vfio;
	struct kvm_create_device cd = { .type = KVM_DEV_TYPE_VFIO };
	CHECK(ioctl(vm, KVM_CREATE_DEVICE, &cd));
	kvm_vfio = cd.fd;
	int32_t file = dev.group >= 0 ? dev.group : dev.device;
	struct kvm_device_attr attr = { .group = KVM_DEV_VFIO_FILE, .attr = KVM_DEV_VFIO_FILE_ADD, .addr = (uintptr_t)&file };
	CHECK(ioctl(kvm_vfio, KVM_SET_DEVICE_ATTR, &attr));

	CHECK(vcpu = ioctl(vm, KVM_CREATE_VCPU, 0));
	int run_size;
	CHECK(run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0));
	run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		perror("mmap kvm_run");
		return 2;
	}
	struct kvm_sregs sregs;
	CHECK(ioctl(vcpu, KVM_GET_SREGS, &sregs));
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	CHECK(ioctl(vcpu, KVM_SET_SREGS, &sregs));
	struct kvm_regs regs = { .rip = exit_only ? EXIT_LOOP : LOAD_AT, .rsp = 0x8000, .rflags = 2 };
	CHECK(ioctl(vcpu, KVM_SET_REGS, &regs));

	/* Up to the first raise, so every op starts at that exit. */
	enter_until_wait_exit();
	for (int i = 6; i < argc; i++)
		bench_run(argv[i], ops, sizeof ops / sizeof ops[0]);

	attr.attr = KVM_DEV_VFIO_FILE_DEL;
	CHECK(ioctl(kvm_vfio, KVM_SET_DEVICE_ATTR, &attr));
	route_msi(-1);
	munmap(run, run_size);
	close(vcpu);
	close(kvm_vfio);
	close(vm);
	close(kvm);
	close(efd);
	vdev_close(&dev);
	return 0;
}
