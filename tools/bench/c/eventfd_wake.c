/*
 * Host floor for issue 12's JavaScript-listener latency, with no device and
 * no TCG in the way: add 1 to an eventfd, then read(2) its count back. The
 * count is there before the read, as edu's is when the guest row's C side
 * reads at its minimum, so no sleep is on this path either. Then the same
 * as C's own event loop takes it (eventfd-wake-epoll): epoll_wait until
 * the eventfd is readable, then read (libuv's path for the library).
 * Usage: eventfd_wake BATCH SAMPLES WARMUP  (all counts of batches but BATCH)
 */
#include "bench.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

static int efd, epfd;

static void wake_read(void)
{
	uint64_t one = 1, count;
	CHECK(write(efd, &one, sizeof one));
	CHECK(read(efd, &count, sizeof count));
	bench_sink = count;
}

static void wake_epoll(void)
{
	uint64_t one = 1, count;
	struct epoll_event ready;
	CHECK(write(efd, &one, sizeof one));
	CHECK(epoll_wait(epfd, &ready, 1, -1));
	CHECK(read(efd, &count, sizeof count));
	bench_sink = count;
}

static void run(const char *name, void (*op)(void), unsigned batch, unsigned nsamples, unsigned warmup)
{
	double *samples = calloc(nsamples, sizeof *samples);
	for (unsigned s = 0; s < warmup + nsamples; s++) {
		uint64_t t0 = now_ns();
		for (unsigned i = 0; i < batch; i++)
			op();
		uint64_t t1 = now_ns();
		if (s >= warmup)
			samples[s - warmup] = (double)(t1 - t0) / batch;
	}
	print_samples(name, batch, samples, nsamples);
	free(samples);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: eventfd_wake BATCH SAMPLES WARMUP\n");
		return 1;
	}
	unsigned batch = atoi(argv[1]), nsamples = atoi(argv[2]), warmup = atoi(argv[3]);
	CHECK(efd = eventfd(0, EFD_CLOEXEC));
	struct epoll_event watch = { .events = EPOLLIN, .data.fd = efd };
	CHECK(epfd = epoll_create1(EPOLL_CLOEXEC));
	CHECK(epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &watch));
	run("eventfd-wake", wake_read, batch, nsamples, warmup);
	run("eventfd-wake-epoll", wake_epoll, batch, nsamples, warmup);
	return 0;
}
