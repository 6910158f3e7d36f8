/**
 * Whether the user can open the VFIO nodes read/write, from their owner and
 * mode (ACLs are not read), and the capability no-IOMMU devices need.
 */
import type { Stats } from 'node:fs';
import type { DoctorContext } from './context';
import { noiommuMode } from './facts';
import { fail, pass, type Check, type Verdict } from './finding';
import type { DoctorUser } from './options';

/** Read and write permission of `stat` for `user` (root passes: CAP_DAC_OVERRIDE). */
export function canReadWrite(stat: Stats, user: DoctorUser): boolean {
  if (user.uid === 0) return true;
  const shift = stat.uid === user.uid ? 6 : stat.gid === user.gid || user.groups.includes(stat.gid) ? 3 : 0;
  return ((stat.mode >> shift) & 0o6) === 0o6;
}

/** '/dev/vfio/5 (0:0 0600)': what a person needs to see to fix it. */
export function describeNode(path: string, stat: Stats): string {
  return `${path} (owner ${stat.uid}:${stat.gid}, mode ${(stat.mode & 0o777).toString(8).padStart(4, '0')})`;
}

/** The nodes of `paths` that exist and the user cannot open read/write. */
export function deniedNodes(ctx: DoctorContext, paths: readonly string[]): string[] {
  return paths.flatMap((path) => {
    const stat = ctx.stat(path);
    return stat && !canReadWrite(stat, ctx.options.user) ? [describeNode(path, stat)] : [];
  });
}

function who(ctx: DoctorContext): string {
  const { uid, gid } = ctx.options.user;
  return `uid ${uid} gid ${gid}`;
}

export const NODE_FIX = "give your user the nodes with a udev rule (SUBSYSTEM==\"vfio\", OWNER=\"<user>\", or GROUP and MODE=\"0660\"), or run as root";

function nodeVerdict(ctx: DoctorContext, paths: string[], fix: string): Verdict | undefined {
  const present = paths.filter((p) => ctx.exists(p));
  if (present.length === 0) return undefined;
  const denied = deniedNodes(ctx, present);
  if (denied.length > 0) return fail(`${who(ctx)} cannot open read/write: ${denied.join(', ')}`, fix, { denied });
  // A machine with many devices has many nodes: past a few, the list goes to the details.
  const listed = present.length <= 3 ? present.join(', ') : `${present.length} nodes (${present[0]}, ...)`;
  return pass(`${who(ctx)} can open ${listed} read/write`, { nodes: present });
}

function container(ctx: DoctorContext): Verdict | undefined {
  // The kernel makes /dev/vfio/vfio 0666: a stricter mode is a local rule.
  return nodeVerdict(ctx, [`${ctx.options.devRoot}/vfio`], 'chmod 0666 the container node (its default), or run as root');
}

function iommufdNode(ctx: DoctorContext): Verdict | undefined {
  return nodeVerdict(ctx, [ctx.options.iommufdPath], 'give your user /dev/iommu with a udev rule (KERNEL=="iommu", GROUP="<group>", MODE="0660"), or run as root');
}

/** Group nodes (N, noiommu-N) and device cdevs (devices/vfioN) of every device bound to VFIO. */
function deviceNodes(ctx: DoctorContext): Verdict | undefined {
  const root = ctx.options.devRoot;
  const groups = ctx.list(root).filter((n) => /^(noiommu-)?\d+$/.test(n)).map((n) => `${root}/${n}`);
  const cdevs = ctx.list(`${root}/devices`).map((n) => `${root}/devices/${n}`);
  return nodeVerdict(ctx, [...groups, ...cdevs], NODE_FIX);
}

const CAP_SYS_RAWIO = 17n;

/** The kernel lets only CAP_SYS_RAWIO open a no-IOMMU group or cdev. */
function rawio(ctx: DoctorContext): Verdict | undefined {
  if (!noiommuMode(ctx)) return undefined;
  const status = ctx.read(`${ctx.proc}/self/status`) ?? '';
  const capEff = /^CapEff:\s*([0-9a-f]+)$/im.exec(status)?.[1];
  if (capEff === undefined) return undefined;
  if ((BigInt(`0x${capEff}`) >> CAP_SYS_RAWIO) & 1n) return pass('this process has CAP_SYS_RAWIO, which no-IOMMU devices need');
  return fail('no-IOMMU devices need CAP_SYS_RAWIO, which this process lacks', 'run as root (or grant the program CAP_SYS_RAWIO)', { capEff });
}

export const accessChecks: Check[] = [
  { id: 'access.container', run: container },
  { id: 'access.iommufd', run: iommufdNode },
  { id: 'access.devices', run: deviceNodes },
  { id: 'access.rawio', run: rawio },
];
