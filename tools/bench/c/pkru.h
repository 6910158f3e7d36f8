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

#endif
