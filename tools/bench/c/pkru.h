/*
 * The calling thread's PKRU register (its memory protection-key rights),
 * for the nested-guest interrupt rows: the kernel rewrites PKRU on every
 * context switch between threads whose values differ, and under TCG each
 * WRPKRU flushes QEMU's whole software TLB (tools/bench/README.md, the
 * irqfd analysis). Kernel threads hold the default, 0x55555554.
 */
#ifndef BENCH_PKRU_H
#define BENCH_PKRU_H

#include <cpuid.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h> /* pkey_alloc: the program defines _GNU_SOURCE first */

/* 0 and *pkru set when the kernel enabled protection keys (CPUID.7.0:ECX
 * OSPKE, without which RDPKRU faults); -1 otherwise. */
static inline int pkru_read(uint32_t *pkru)
{
	unsigned int a, b, c, d;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(c & (1u << 4)))
		return -1;
	uint32_t eax, edx;
	/* RDPKRU, spelt as bytes so that no -mpku is needed. */
	__asm__ volatile(".byte 0x0f, 0x01, 0xee" : "=a"(eax), "=d"(edx) : "c"(0));
	(void)edx;
	*pkru = eax;
	return 0;
}

/*
 * With BENCH_C_PKEY in the environment (the bench's --c-pkey), allocates one
 * protection key, write-disabled, as Node 20's V8 does at start-up, so that
 * this program's PKRU is the library's process's (0x55555558). Then prints
 * the PKRU on stderr, prefixed with `who`, either way.
 */
static inline void pkru_as_node_if_asked(const char *who)
{
	if (getenv("BENCH_C_PKEY") && pkey_alloc(0, PKEY_DISABLE_WRITE) < 0) {
		perror("pkey_alloc");
		exit(2);
	}
	uint32_t pkru;
	if (pkru_read(&pkru) == 0)
		fprintf(stderr, "%s: PKRU 0x%08x\n", who, pkru);
	else
		fprintf(stderr, "%s: no protection keys (OSPKE off)\n", who);
}

#endif
