/*
 * Host floor for issue 6 item 7: ioctl(FIONREAD) on a pipe, the cheapest
 * ioctl there is, so what the addon adds on top of it is what is measured.
 * Usage: fionread BATCH SAMPLES WARMUP  (all counts of batches but BATCH)
 */
#include "bench.h"
#include <sys/ioctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: fionread BATCH SAMPLES WARMUP\n");
		return 1;
	}
	unsigned batch = atoi(argv[1]), nsamples = atoi(argv[2]), warmup = atoi(argv[3]);
	int fds[2];
	CHECK(pipe(fds));
	/* One byte waiting, so the kernel has something to count. */
	CHECK(write(fds[1], "x", 1));

	double *samples = calloc(nsamples, sizeof *samples);
	for (unsigned s = 0; s < warmup + nsamples; s++) {
		uint64_t t0 = now_ns();
		for (unsigned i = 0; i < batch; i++) {
			int avail;
			CHECK(ioctl(fds[0], FIONREAD, &avail));
			bench_sink = avail;
		}
		uint64_t t1 = now_ns();
		if (s >= warmup)
			samples[s - warmup] = (double)(t1 - t0) / batch;
	}
	print_samples("fionread", batch, samples, nsamples);
	return 0;
}
