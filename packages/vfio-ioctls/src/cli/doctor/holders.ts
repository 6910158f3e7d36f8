/** Which processes hold a VFIO node open: the fd links under /proc/PID/fd. */
import type { DoctorContext } from './context';

export interface Holder {
  pid: number;
  /** The process's command name (/proc/PID/comm). */
  comm: string;
  /** The node it holds. */
  path: string;
}

/**
 * Every open of `paths` by any process whose fds this user may read.
 * `hidden` counts the processes whose fd folder was unreadable (only root,
 * or the owner, may list another process's fds).
 */
export function findHolders(ctx: DoctorContext, paths: readonly string[]): { holders: Holder[]; hidden: number } {
  const wanted = new Set(paths);
  const holders: Holder[] = [];
  let hidden = 0;
  for (const name of ctx.list(ctx.proc)) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = ctx.list(`${ctx.proc}/${name}/fd`);
    } catch {
      hidden++;
      continue;
    }
    const held = new Set<string>();
    for (const fd of fds) {
      let target: string | undefined;
      try {
        target = ctx.link(`${ctx.proc}/${name}/fd/${fd}`);
      } catch {
        continue; // the fd closed while we looked
      }
      if (target !== undefined && wanted.has(target)) held.add(target);
    }
    if (held.size === 0) continue;
    let comm = '?';
    try {
      comm = ctx.value(`${ctx.proc}/${name}/comm`) ?? '?';
    } catch {
      // The pid is what matters; the name is a courtesy.
    }
    for (const path of held) holders.push({ pid: Number(name), comm, path });
  }
  return { holders: holders.sort((a, b) => a.pid - b.pid), hidden };
}
