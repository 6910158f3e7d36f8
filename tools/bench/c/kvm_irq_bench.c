/*
 * Issue 12's interrupt latency into a nested guest, the C side: edu passed
 * to a KVM guest as examples/mini-vmm does it (RAM at guest physical 0,
 * DMA-mapped at IOVA 0; BAR0 as a memory slot at 0xA0000; in-kernel
 * irqchip, the 8259 programmed by the guest). The payload, real-mode bytes,
 * comes from the file the JS driver writes (src/guest/kvm-tsc-payload.js
 * for irqfd/forward, kvm-irq-ops.js's EXIT_PAYLOAD for exit), so both sides run
 * the same code.
 *   kvm-irqfd:   the guest times each interrupt itself: rdtsc, write edu
 *                0x60 (no exit), rdtsc at its handler's entry; edu's MSI
 *                eventfd is a KVM irqfd (GSI 5), no userspace on the path.
 *                The VMM only enters once and reads the deltas from guest
 *                RAM at the end, turning ticks into ns with the TSC rate
 *                measured over the run (rdtsc at both ends, each followed
 *                by a port 0x14 exit at which the VMM reads its clock; one such
 *                exit before them is a warm-up, its clock unused).
 *   kvm-forward: the same, the guest exiting on port 0x13 after each
 *                raise; the eventfd is the VMM's: it reads it (blocking)
 *                and injects with KVM_IRQ_LINE (5: 1 then 0).
 *   kvm-exit:    the guest a loop of port exits (EXIT_PAYLOAD) and nothing
 *                else, timed in the VMM from one exit to the next.
 *   kvm-irqfd-msi, kvm-forward-msi: the same two with edu's interrupt
 *                routed as an MSI (KVM_SET_GSI_ROUTING: GSI MSI_GSI ->
 *                vector 0x40 of the local APIC), as VMMs route a passed-
 *                through MSI; the forwarder injects with KVM_SIGNAL_MSI.
 *                The payload is kvm-tsc-payload.js's MSI variant (local
 *                APIC, EOI to the APIC). KVM injects an MSI route from the
 *                irqfd's wake-up itself, where an irqchip pin (GSI 5) goes
 *                through a kworker and two context switches.
 * usage: kvm_irq_bench irqfd|forward|exit|irqfd-msi|forward-msi container|iommufd GROUP|CDEV BDF PAYLOAD OP:BATCH:SAMPLES:WARMUP...
 *        (irqfd and forward: one OP spec; the guest runs once)
 * With BENCH_C_PKEY set in the environment (the bench's --c-pkey) it first
 * allocates one protection key, write-disabled, as Node 20's V8 does at
 * start-up, so that its PKRU is the library's VMM's (c/pkru.h). Either way
 * it prints its PKRU on stderr.
 */
#define _GNU_SOURCE /* pkey_alloc, PKEY_DISABLE_WRITE */
#include "pkru.h"
#include "vfio_cdev.h"
#include <linux/kvm.h>
#include <sys/eventfd.h>

#define RAM_SIZE 0xa0000
#define BAR_GPA 0xa0000
#define BAR_WINDOW 0x10000
#define LOAD_AT 0x1000
#define GSI 5
/* The MSI route's GSI (above the IOAPIC's 24 pins) and its message: local APIC 0, vector 0x40, fixed, edge. */
#define MSI_GSI 24
#define MSI_ADDRESS 0xfee00000u
#define MSI_DATA 0x40u
#define WAIT_PORT 0x13
/* kvm-tsc-payload.js's layout and ports */
#define N_AT 0x504
#define FORWARD_AT 0x506
#define TSC_START_AT 0x518
#define TSC_END_AT 0x520
#define DELTAS_AT 0x10000
#define MAX_INTERRUPTS 0x4000
#define FORWARD_PORT 0x13
#define CLOCK_PORT 0x14

static struct vdev dev;
static int kvm, vm, vcpu, efd, forward, exit_only, msi;
static const char *mode_name; /* argv[1]: the timed run's op is kvm-MODE */
static struct kvm_run *run;
static uint8_t *ram;

/* Runs the vCPU to its next exit, which must be port I/O; returns the port. */
static unsigned run_to_port_exit(void)
{
	while (ioctl(vcpu, KVM_RUN, 0) < 0) {
		if (errno != EINTR)
			CHECK(-1);
	}
	if (run->exit_reason != KVM_EXIT_IO) {
		fprintf(stderr, "unexpected KVM exit %u\n", run->exit_reason);
		exit(2);
	}
	return run->io.port;
}

static void enter_until_wait_exit(void)
{
	/* other ports (0x12): the guest's batch counter ran out; it starts another */
	while (run_to_port_exit() != WAIT_PORT)
		;
}

/* kvm-exit: one port exit and the re-entry. */
static void op_exit(void)
{
	enter_until_wait_exit();
}

static const struct bench_op ops[] = {
	{ "kvm-exit", op_exit, NULL },
};

/* The forwarder's work at each port 0x13 exit: the eventfd, then the line (or the MSI). */
static void forward_one(void)
{
	uint64_t count;
	struct kvm_irq_level line = { .irq = GSI, .level = 1 };
	CHECK(read(efd, &count, sizeof count));
	if (msi) {
		struct kvm_msi message = { .address_lo = MSI_ADDRESS, .data = MSI_DATA };
		CHECK(ioctl(vm, KVM_SIGNAL_MSI, &message));
		return;
	}
	CHECK(ioctl(vm, KVM_IRQ_LINE, &line));
	line.level = 0;
	CHECK(ioctl(vm, KVM_IRQ_LINE, &line));
}

/*
 * irqfd / forward: the guest's own run of BATCH * (WARMUP + SAMPLES)
 * interrupts; a sample is the mean of BATCH deltas, in ns, the first
 * WARMUP batches dropped.
 */
static void run_timed(const char *spec)
{
	char name[64];
	char want[32];
	snprintf(want, sizeof want, "kvm-%s", mode_name);
	unsigned batch, nsamples, warmup;
	if (sscanf(spec, "%63[^:]:%u:%u:%u", name, &batch, &nsamples, &warmup) != 4 || !batch || !nsamples ||
	    (uint64_t)batch * (warmup + nsamples) > MAX_INTERRUPTS ||
	    strcmp(name, want)) {
		fprintf(stderr, "bad op spec %s (want %s:BATCH:SAMPLES:WARMUP, at most %u interrupts)\n", spec, want, MAX_INTERRUPTS);
		exit(1);
	}
	unsigned n = batch * (warmup + nsamples);
	*(uint16_t *)(ram + N_AT) = n;
	ram[FORWARD_AT] = forward;
	/* clock[0]: the guest's warm-up exit, not used (kvm-tsc-payload.js) */
	uint64_t clock[3];
	int clocks = 0;
	while (clocks < 3) {
		unsigned port = run_to_port_exit();
		if (port == CLOCK_PORT)
			clock[clocks++] = now_ns();
		else if (forward && port == FORWARD_PORT)
			forward_one();
		else {
			fprintf(stderr, "unexpected port 0x%x\n", port);
			exit(2);
		}
	}
	uint64_t ticks = *(uint64_t *)(ram + TSC_END_AT) - *(uint64_t *)(ram + TSC_START_AT);
	double ticks_per_ns = (double)ticks / (double)(clock[2] - clock[1]);
	/* On stderr, to compare the two sides' conversions. */
	fprintf(stderr, "kvm_irq_bench %s: TSC %.4f ticks/ns over %.2f ms\n", name, ticks_per_ns, (clock[2] - clock[1]) / 1e6);
	const uint32_t *deltas = (const uint32_t *)(ram + DELTAS_AT);
	double *samples = calloc(nsamples, sizeof *samples);
	for (unsigned s = 0; s < nsamples; s++) {
		uint64_t sum = 0;
		for (unsigned i = 0; i < batch; i++)
			sum += deltas[(warmup + s) * batch + i];
		samples[s] = (double)sum / batch / ticks_per_ns;
	}
	print_samples(name, batch, samples, nsamples);
	free(samples);
}

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

/* Replaces the irqchip's routes with the one MSI route the -msi modes use. */
static void route_gsi_as_msi(void)
{
	struct { struct kvm_irq_routing head; struct kvm_irq_routing_entry entry; } table = {
		.head = { .nr = 1 },
		.entry = { .gsi = MSI_GSI, .type = KVM_IRQ_ROUTING_MSI, .u.msi = { .address_lo = MSI_ADDRESS, .data = MSI_DATA } },
	};
	CHECK(ioctl(vm, KVM_SET_GSI_ROUTING, &table));
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
	static const struct { const char *name; int forward, exit_only, msi; } modes[] = {
		{ "irqfd", 0, 0, 0 }, { "forward", 1, 0, 0 }, { "exit", 0, 1, 0 }, { "irqfd-msi", 0, 0, 1 }, { "forward-msi", 1, 0, 1 },
	};
	int mode = -1;
	for (int i = 0; argc >= 2 && i < (int)(sizeof modes / sizeof modes[0]); i++)
		if (!strcmp(argv[1], modes[i].name))
			mode = i;
	if (argc < 7 || mode < 0) {
		fprintf(stderr, "usage: kvm_irq_bench irqfd|forward|exit|irqfd-msi|forward-msi container|iommufd GROUP|CDEV BDF PAYLOAD OP:BATCH:SAMPLES:WARMUP...\n");
		return 1;
	}
	char who[64];
	snprintf(who, sizeof who, "kvm_irq_bench %s", argv[1]);
	pkru_as_node_if_asked(who);
	mode_name = modes[mode].name;
	forward = modes[mode].forward;
	exit_only = modes[mode].exit_only;
	msi = modes[mode].msi;
	if (!strcmp(argv[2], "container"))
		vdev_open(&dev, argv[3], argv[4]);
	else
		vdev_open_cdev(&dev, argv[3]);
	vdev_bus_master(&dev);

	CHECK(kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC));
	CHECK(vm = ioctl(kvm, KVM_CREATE_VM, 0));
	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		perror("mmap RAM");
		return 2;
	}
	FILE *f = fopen(argv[5], "rb");
	if (!f || fread(ram + LOAD_AT, 1, 0x1000, f) == 0) {
		fprintf(stderr, "cannot read the payload %s\n", argv[5]);
		return 2;
	}
	fclose(f);
	if (exit_only && argc < 7) {
		fprintf(stderr, "kvm_irq_bench exit: no OP spec\n");
		return 1;
	}
	if (!exit_only && argc != 7) {
		fprintf(stderr, "kvm_irq_bench %s: one OP spec (the guest runs once)\n", argv[1]);
		return 1;
	}
	map_ram(ram);
	set_slot(0, 0, RAM_SIZE, ram);
	set_slot(1, BAR_GPA, BAR_WINDOW, (void *)dev.bar0);
	CHECK(ioctl(vm, KVM_CREATE_IRQCHIP, 0));
	if (msi)
		route_gsi_as_msi();
	/* Blocking, for the forwarder's read; KVM's irqfd does not care. */
	CHECK(efd = eventfd(0, EFD_CLOEXEC));
	if (!forward) {
		struct kvm_irqfd irqfd = { .fd = efd, .gsi = msi ? MSI_GSI : GSI };
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
	struct kvm_regs regs = { .rip = LOAD_AT, .rsp = 0x8000, .rflags = 2 };
	CHECK(ioctl(vcpu, KVM_SET_REGS, &regs));

	if (exit_only) {
		/* Up to the first exit, so every op starts at one. */
		enter_until_wait_exit();
		for (int i = 6; i < argc; i++)
			bench_run(argv[i], ops, sizeof ops / sizeof ops[0]);
	} else {
		run_timed(argv[6]);
	}

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
