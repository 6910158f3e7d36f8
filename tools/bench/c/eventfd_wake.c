/*
 * Host floor for issue 12's JavaScript-listener latency, with no device and
 * no TCG in the way: add 1 to an eventfd, then read(2) its count back. The
 * count is there before the read, as edu's is when the guest row's C side
 * reads at its minimum, so no sleep is on this path either.
 * Usage: eventfd_wake BATCH SAMPLES WARMUP  (all counts of batches but BATCH)
 */
#include "bench.h"
#include <sys/eventfd.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: eventfd_wake BATCH SAMPLES WARMUP\n");
		return 1;
	}
	unsigned batch = atoi(argv[1]), nsamples = atoi(argv[2]), warmup = atoi(argv[3]);
	int efd;
	CHECK(efd = eventfd(0, EFD_CLOEXEC));

	double *samples = calloc(nsamples, sizeof *samples);
	for (unsigned s = 0; s < warmup + nsamples; s++) {
		uint64_t t0 = now_ns();
		for (unsigned i = 0; i < batch; i++) {
			uint64_t one = 1, count;
			CHECK(write(efd, &one, sizeof one));
			CHECK(read(efd, &count, sizeof count));
			bench_sink = count;
		}
		uint64_t t1 = now_ns();
		if (s >= warmup)
			samples[s - warmup] = (double)(t1 - t0) / batch;
	}
	print_samples("eventfd-wake", batch, samples, nsamples);
	return 0;
}
