/** Memory for DMA: what RLIMIT_MEMLOCK lets a program pin, and the hugepages reserved. */
import type { DoctorContext } from './context';
import { fail, pass, warn, type Check, type Verdict } from './finding';
import { size as formatSize } from '../format';

/** The smallest page: a mapping pins whole pages, so `--memory` is rounded up to it. */
const PAGE = 4096n;

/**
 * RLIMIT_MEMLOCK (soft) in bytes, null when unlimited: from the options, or
 * the 'Max locked memory' line of `${procRoot}/self/limits`.
 */
function memlockLimit(ctx: DoctorContext): bigint | null {
  if (ctx.options.memlockLimit !== undefined) return ctx.options.memlockLimit;
  const path = `${ctx.proc}/self/limits`;
  const line = /^Max locked memory\s+(\S+)/m.exec(ctx.read(path) ?? '');
  if (!line) throw new Error(`${path} has no 'Max locked memory' line`);
  return line[1] === 'unlimited' ? null : BigInt(line[1]!);
}

/**
 * Pinned DMA memory counts against RLIMIT_MEMLOCK: on the legacy container
 * unless the process has CAP_IPC_LOCK, on iommufd always (its default
 * accounting charges the user).
 */
function memlock(ctx: DoctorContext): Verdict {
  const limit = memlockLimit(ctx);
  const memory = ctx.options.memory;
  const details = { limitBytes: limit === null ? null : Number(limit), memoryBytes: memory === undefined ? null : Number(memory) };
  const shown = limit === null ? 'unlimited' : formatSize(limit);
  if (memory === undefined) {
    return pass(`RLIMIT_MEMLOCK is ${shown}: the most DMA mappings can pin (check a size with --memory)`, details);
  }
  const needed = ((memory + PAGE - 1n) / PAGE) * PAGE;
  if (limit === null || limit >= needed) return pass(`RLIMIT_MEMLOCK ${shown} covers mapping ${formatSize(memory)}`, details);
  return fail(
    `RLIMIT_MEMLOCK is ${shown}, but mapping ${formatSize(memory)} for DMA pins ${formatSize(needed)}${ctx.options.user.uid === 0 ? ' (root is exempt on the legacy container only, not on iommufd)' : ''}`,
    `raise it to at least ${needed / 1024n} KiB: ulimit -l ${needed / 1024n} (or LimitMEMLOCK= in a systemd unit, memlock in /etc/security/limits.conf)`,
    details,
  );
}

/** Reserved hugepages of every size, from /sys/kernel/mm/hugepages/hugepages-<N>kB. */
function hugepages(ctx: DoctorContext): Verdict {
  const dir = `${ctx.sys}/kernel/mm/hugepages`;
  const sizes = ctx.list(dir).flatMap((name) => {
    const kb = /^hugepages-(\d+)kB$/.exec(name)?.[1];
    if (kb === undefined) return [];
    const count = (file: string) => BigInt(ctx.value(`${dir}/${name}/${file}`) ?? '0');
    return [{ pageBytes: BigInt(kb) * 1024n, total: count('nr_hugepages'), free: count('free_hugepages') }];
  });
  const reserved = sizes.filter((s) => s.total > 0n);
  const freeBytes = reserved.reduce((sum, s) => sum + s.free * s.pageBytes, 0n);
  const details = {
    sizes: reserved.map((s) => ({ pageBytes: Number(s.pageBytes), total: Number(s.total), free: Number(s.free) })),
  };
  // Fixes reserve pages of the smallest size (2 MiB on x86); nr_hugepages takes the new total.
  const smallest = [...sizes].sort((a, b) => (a.pageBytes < b.pageBytes ? -1 : 1))[0] ?? { pageBytes: 2n << 20n, total: 0n, free: 0n };
  const reserve = (bytes: bigint) => {
    const total = smallest.total + (bytes + smallest.pageBytes - 1n) / smallest.pageBytes;
    return `echo ${total} > ${dir}/hugepages-${smallest.pageBytes / 1024n}kB/nr_hugepages (or hugepages=${total} on the kernel command line)`;
  };
  const memory = ctx.options.memory;
  if (reserved.length === 0) {
    return warn(
      'no hugepages reserved: DMA memory comes in 4 KiB pages (more IOMMU mappings and TLB misses)',
      `reserve some: ${reserve(memory ?? 1n << 30n)}`,
      details,
    );
  }
  const listed = reserved.map((s) => `${s.total} x ${formatSize(s.pageBytes)} (${s.free} free)`).join(', ');
  if (memory !== undefined && freeBytes < memory) {
    return warn(`hugepages: ${listed}: ${formatSize(freeBytes)} free, less than ${formatSize(memory)}`, `reserve more: ${reserve(memory - freeBytes)}`, details);
  }
  return pass(`hugepages: ${listed}`, details);
}

export const memoryChecks: Check[] = [
  { id: 'memory.memlock', run: memlock },
  { id: 'memory.hugepages', run: hugepages },
];
