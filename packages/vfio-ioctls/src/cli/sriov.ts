/**
 * SR-IOV relations from sysfs: a physical function has sriov_totalvfs and
 * a virtfnN link per enabled VF; a virtual function has a physfn link.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';

export type SriovRelation =
  | { role: 'pf'; totalVfs: number; numVfs: number; vfs: string[] }
  | { role: 'vf'; pf: string; index: number | null };

/** The device's SR-IOV role, or null when it is neither a PF nor a VF. */
export function sriovOf(deviceDir: string): SriovRelation | null {
  const pfLink = link(`${deviceDir}/physfn`);
  if (pfLink !== undefined) {
    const pf = basename(pfLink);
    const self = basename(deviceDir);
    const index = virtfns(`${deviceDir}/physfn`).find(([, address]) => address === self)?.[0] ?? null;
    return { role: 'vf', pf, index };
  }
  let total: string;
  try {
    total = readFileSync(`${deviceDir}/sriov_totalvfs`, 'utf8');
  } catch {
    return null;
  }
  const vfs = virtfns(deviceDir).map(([, address]) => address);
  const numVfs = Number(readFileSync(`${deviceDir}/sriov_numvfs`, 'utf8').trim());
  return { role: 'pf', totalVfs: Number(total.trim()), numVfs, vfs };
}

/** [index, address] of each virtfnN link of a PF, by index. */
function virtfns(pfDir: string): [number, string][] {
  let names: string[];
  try {
    names = readdirSync(pfDir);
  } catch {
    return [];
  }
  return names
    .filter((name) => /^virtfn\d+$/.test(name))
    .map((name): [number, string] => [Number(name.slice(6)), basename(readlinkSync(`${pfDir}/${name}`))])
    .sort((a, b) => a[0] - b[0]);
}

function link(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
