/*
 * Shared by the C reference programs: a monotonic clock in ns and the JSON
 * line every measurement prints. The JS driver parses one JSON object per
 * line on stdout: {"op":"...","unit":"ns/op","batch":N,"samples":[...]}.
 * A sample is the time of one batch divided by the batch size, so the cost
 * of reading the clock is spread over the batch, as on the JS side.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A failed syscall ends the program: a benchmark with a silent error would
 * time the error path. The driver shows stderr. */
#define CHECK(expr)                                                          \
	do {                                                                     \
		if ((expr) < 0) {                                                    \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr,    \
				strerror(errno));                                            \
			exit(2);                                                         \
		}                                                                    \
	} while (0)

static inline void print_samples(const char *op, unsigned batch,
				 const double *samples, unsigned n)
{
	printf("{\"op\":\"%s\",\"batch\":%u,\"samples\":[", op, batch);
	for (unsigned i = 0; i < n; i++)
		printf("%s%.3f", i ? "," : "", samples[i]);
	printf("]}\n");
	fflush(stdout);
}

/* Keeps a loaded value alive so -O2 cannot drop the loop that produced it. */
static volatile uint64_t bench_sink;

/* One measurable operation of a program. setup, when there is one, runs
 * before the op's first sample and is not timed; it may be called again
 * for another op sharing it, so it must be idempotent. */
struct bench_op {
	const char *name;
	void (*fn)(void);
	void (*setup)(void);
};

/* Runs one OP:BATCH:SAMPLES:WARMUP spec against a program's op table and
 * prints its samples (ns per op). */
static inline void bench_run(const char *spec, const struct bench_op *ops, size_t nops)
{
	char name[64];
	unsigned batch, nsamples, warmup;
	if (sscanf(spec, "%63[^:]:%u:%u:%u", name, &batch, &nsamples, &warmup) != 4 || !batch) {
		fprintf(stderr, "bad op spec %s (want OP:BATCH:SAMPLES:WARMUP)\n", spec);
		exit(1);
	}
	for (size_t k = 0; k < nops; k++) {
		if (strcmp(ops[k].name, name))
			continue;
		if (ops[k].setup)
			ops[k].setup();
		double *samples = calloc(nsamples ? nsamples : 1, sizeof *samples);
		for (unsigned s = 0; s < warmup + nsamples; s++) {
			uint64_t t0 = now_ns();
			for (unsigned i = 0; i < batch; i++)
				ops[k].fn();
			uint64_t t1 = now_ns();
			if (s >= warmup)
				samples[s - warmup] = (double)(t1 - t0) / batch;
		}
		print_samples(name, batch, samples, nsamples);
		free(samples);
		return;
	}
	fprintf(stderr, "unknown op %s\n", name);
	exit(1);
}

#endif
