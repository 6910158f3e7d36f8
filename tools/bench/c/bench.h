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

#endif
