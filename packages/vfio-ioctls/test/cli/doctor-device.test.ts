/**
 * `vfio doctor <address>`: the device's driver, group and what blocks it,
 * its nodes, reset methods, SR-IOV role, whether it opens now (and who
 * holds it when not), and what a bus reset would touch, on the fake kernel
 * with the trees of doctor-fixtures/machine.ts.
 */
import { constants, mkdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runDoctor } from '../../src/cli/doctor';
import { expectNothingLeft } from '../helpers';
import { byId, EDU, machine, own, statuses } from './doctor-fixtures/machine';

const NIC = '0000:00:02.0';
const MATE = '0000:00:04.0';

describe('a device ready for passthrough', () => {
  test('edu on vfio-pci alone in its group: opens through iommufd; no reset method (WARN); no bus reset on the root bus', () => {
    const m = machine();
    const report = runDoctor({ ...m.options, address: '00:03.0' });
    expect(report.address).toBe(EDU);
    const device = Object.fromEntries(Object.entries(statuses(report)).filter(([id]) => id.startsWith('device.')));
    expect(device).toEqual({
      'device.present': 'pass',
      'device.driver': 'pass',
      'device.group': 'pass',
      'device.nodes': 'pass',
      'device.reset': 'warn',
      'device.open': 'pass',
      'device.hot-reset': 'pass',
    });
    const f = byId(report);
    expect(f['device.present']!.summary).toBe(`${EDU} [1234:11e8], class 00ff00`);
    expect(f['device.group']!.summary).toBe('group 5, alone in it');
    expect(f['device.nodes']!.summary).toBe(`${m.vfio}/5 and ${m.vfio}/devices/vfio0: read/write for uid 0`);
    expect(f['device.reset']!.summary).toMatch(/^no reset method/);
    expect(f['device.open']!.summary).toBe('opened it through iommufd');
    expect(f['device.hot-reset']!.summary).toMatch(/^no bus reset: the kernel has no bus or slot reset for it \(ENODEV.*\) \(the kernel's answer\)$/);
    expect(report.exitCode).toBe(0);
    expectNothingLeft(m.kernel.fake);
  });

  test('a kernel without cdevs opens it through the legacy container; reset_method lists the methods', () => {
    const m = machine({ iommufd: false });
    writeFileSync(`${m.sys}/bus/pci/devices/${EDU}/reset_method`, 'flr bus\n');
    const f = byId(runDoctor({ ...m.options, address: EDU }));
    expect(f['device.open']!.summary).toBe('opened it through the legacy container');
    expect(f['device.reset']).toEqual({ status: 'pass', summary: 'reset methods: flr, bus' });
    expect(f['device.nodes']!.summary).toBe(`${m.vfio}/5: read/write for uid 0`);
  });

  test('no-IOMMU mode: its no-IOMMU group; opened through its cdev and iommufd, or the no-IOMMU container without them', () => {
    const m = machine({ vendor: 'none', noiommu: true });
    const f = byId(runDoctor({ ...m.options, address: EDU }));
    expect(f['device.group']!.summary).toBe('no-IOMMU group 5, alone in it');
    expect(f['device.open']).toEqual({ status: 'pass', summary: 'opened it through iommufd (no-IOMMU)' });
    const groupsOnly = machine({ vendor: 'none', noiommu: true, iommufd: false });
    expect(byId(runDoctor({ ...groupsOnly.options, address: EDU }))['device.open']).toEqual({ status: 'pass', summary: 'opened it through the no-IOMMU container' });
    expectNothingLeft(m.kernel.fake);
    expectNothingLeft(groupsOnly.kernel.fake);
  });

  test('tryOpen: false leaves the device alone; the bus reset is then estimated from sysfs', () => {
    const m = machine();
    const report = runDoctor({ ...m.options, address: EDU, tryOpen: false });
    expect(report.findings.map((x) => x.id)).not.toContain('device.open');
    expect(byId(report)['device.hot-reset']!.summary).toBe('no bus reset: the device sits on a root bus, with no bridge above it to reset the bus (estimated from sysfs)');
    expect(m.kernel.fake.calls).toEqual([]);
  });
});

describe('what stands in the way', () => {
  test('no such device: FAIL, and the other device checks drop out', () => {
    const m = machine();
    const report = runDoctor({ ...m.options, address: '0000:00:1f.0' });
    expect(byId(report)['device.present']).toEqual({
      status: 'fail',
      summary: `no PCI device 0000:00:1f.0 in ${m.sys}/bus/pci/devices`,
      fix: 'check the address: lspci -D lists the devices',
    });
    expect(report.findings.filter((x) => x.id.startsWith('device.')).map((x) => x.id)).toEqual(['device.present']);
    expect(report.exitCode).toBe(1);
  });

  test('bound to a host driver: FAIL with the bind command; no node, no open', () => {
    const m = machine({ devices: [{ address: NIC, group: 2, driver: 'e1000e', vendor: 0x8086, device: 0x10d3, class: 0x020000 }] });
    const report = runDoctor({ ...m.options, address: NIC });
    expect(byId(report)['device.driver']).toEqual({
      status: 'fail',
      summary: 'bound to e1000e, not to vfio-pci',
      fix: `vfio bind ${NIC} (it unbinds e1000e first)`,
    });
    const ids = report.findings.map((x) => x.id);
    expect(ids).not.toContain('device.nodes');
    expect(ids).not.toContain('device.open');
    expect(m.kernel.fake.calls).toEqual([]);
  });

  test('unbound: FAIL', () => {
    const m = machine({ devices: [{ address: EDU, group: 5, driver: null }] });
    expect(byId(runDoctor({ ...m.options, address: EDU }))['device.driver']).toEqual({
      status: 'fail', summary: 'not bound to any driver, so VFIO cannot hand it out', fix: `vfio bind ${EDU}`,
    });
  });

  test('a group mate on a host driver blocks the group (FAIL naming it); bridges and unbound devices do not', () => {
    const blocked = machine({ devices: [{ address: EDU, group: 5 }, { address: MATE, group: 5, driver: 'e1000e' }] });
    const report = runDoctor({ ...blocked.options, address: EDU });
    expect(byId(report)['device.group']).toEqual({
      status: 'fail',
      summary: `group 5 is not viable: ${MATE} (e1000e) is bound to a host driver`,
      fix: `bind it to vfio-pci as well (vfio bind ${MATE}) or unbind it`,
    });
    expect(report.findings.find((x) => x.id === 'device.group')!.details).toMatchObject({ blocking: [MATE], members: [{ address: EDU, driver: 'vfio-pci' }, { address: MATE, driver: 'e1000e' }] });
    expect(report.findings.map((x) => x.id)).not.toContain('device.open');

    const fine = machine({ devices: [{ address: EDU, group: 5 }, { address: MATE, group: 5, driver: 'pcieport', class: 0x060400 }, { address: '0000:00:05.0', group: 5, driver: null }] });
    expect(byId(runDoctor({ ...fine.options, address: EDU }))['device.group']).toEqual({
      status: 'pass', summary: `group 5 with ${MATE} (pcieport), 0000:00:05.0 (no driver)`,
    });
  });

  test('no iommu_group link: no IOMMU covers it (FAIL)', () => {
    const m = machine();
    unlinkSync(`${m.sys}/bus/pci/devices/${EDU}/iommu_group`);
    expect(byId(runDoctor({ ...m.options, address: EDU }))['device.group']).toEqual({
      status: 'fail', summary: 'no IOMMU group: no IOMMU covers the device', fix: 'turn the IOMMU on (see iommu.enabled)',
    });
  });

  test('a dangling iommu_group link: FAIL saying sysfs is inconsistent', () => {
    const m = machine();
    rmSync(`${m.sys}/kernel/iommu_groups/5`, { recursive: true });
    const f = byId(runDoctor({ ...m.options, address: EDU }));
    expect(f['device.group']).toEqual({
      status: 'fail',
      summary: `its iommu_group link names group 5, which ${m.sys}/kernel/iommu_groups lacks`,
      fix: 'sysfs is inconsistent: check what is mounted at the sysfs root, or reboot',
    });
    expect(f['device.open']).toBeUndefined();
  });

  test("nodes the user cannot open: FAIL with their owner and mode", () => {
    const m = machine();
    own(`${m.vfio}/devices/vfio0`, 1000, 1000, 0o600);
    const f = byId(runDoctor({ ...m.options, address: EDU, uid: 1000, gid: 1000, groups: [1000], tryOpen: false }));
    expect(f['device.nodes']).toMatchObject({
      status: 'fail',
      summary: `uid 1000 gid 1000 cannot open read/write: ${m.vfio}/5 (owner 0:0, mode 0600)`,
    });
  });

  test('no node at all: FAIL pointing at devtmpfs', () => {
    const m = machine({ iommufd: false });
    unlinkSync(`${m.vfio}/5`);
    expect(byId(runDoctor({ ...m.options, address: EDU }))['device.nodes']).toMatchObject({
      status: 'fail', summary: `no node for it: ${m.vfio}/5`, fix: expect.stringContaining('devtmpfs'),
    });
  });
});

describe('busy', () => {
  test('EBUSY: names the process holding the group from /proc/PID/fd', () => {
    const m = machine();
    const held = m.kernel.fake.open(`${m.vfio}/5`, constants.O_RDWR); // another "process" has the group
    mkdirSync(`${m.proc}/4242/fd`, { recursive: true });
    writeFileSync(`${m.proc}/4242/comm`, 'qemu-system-x86\n');
    symlinkSync('/dev/null', `${m.proc}/4242/fd/0`);
    symlinkSync(`${m.vfio}/5`, `${m.proc}/4242/fd/17`);
    mkdirSync(`${m.proc}/4300/fd`, { recursive: true }); // a process holding nothing of ours
    symlinkSync(`${m.vfio}/6`, `${m.proc}/4300/fd/3`);
    const report = runDoctor({ ...m.options, address: EDU });
    expect(byId(report)['device.open']).toEqual({
      status: 'fail',
      summary: `in use (EBUSY): pid 4242 (qemu-system-x86) holds ${m.vfio}/5`,
      fix: 'stop qemu-system-x86 (kill 4242) or wait for it to let go',
    });
    expect(byId(report)['device.hot-reset']!.summary).toMatch(/\(estimated from sysfs\)$/);
    expect(report.exitCode).toBe(1);
    m.kernel.fake.close(held);
    expectNothingLeft(m.kernel.fake);
  });

  test('EBUSY with no visible holder: says so and how to see it', () => {
    const m = machine();
    const held = m.kernel.fake.open(`${m.vfio}/5`, constants.O_RDWR);
    expect(byId(runDoctor({ ...m.options, address: EDU }))['device.open']).toEqual({
      status: 'fail',
      summary: 'in use (EBUSY) by a process this user cannot see',
      fix: 'run vfio doctor as root to name the process',
    });
    m.kernel.fake.close(held);
  });

  test("another refusal is a FAIL with the library's message and hint", () => {
    const m = machine({ iommufd: false, intremap: false });
    const f = byId(runDoctor({ ...m.options, address: EDU }))['device.open']!;
    expect(f).toEqual({
      status: 'fail',
      summary: expect.stringMatching(/^cannot open it: EPERM: VFIO_SET_IOMMU ioctl failed/),
      fix: expect.stringContaining('interrupt remapping'),
    });
    expectNothingLeft(m.kernel.fake);
    // Through the cdev, the kernel's EPERM comes from IOMMU_DEVICE_BIND, which the library has no hint for: the doctor has.
    const cdev = machine({ intremap: false });
    expect(byId(runDoctor({ ...cdev.options, address: EDU }))['device.open']).toEqual({
      status: 'fail',
      summary: `cannot open it: EPERM: VFIO_DEVICE_BIND_IOMMUFD ioctl failed on ${EDU}`,
      fix: 'VFIO needs interrupt remapping (see iommu.intremap), and no-IOMMU devices CAP_SYS_RAWIO (see access.rawio)',
    });
    expectNothingLeft(cdev.kernel.fake);
  });
});

describe('bus reset', () => {
  test("the kernel's list: a dependent on a host driver is a WARN naming it; on vfio-pci a PASS", () => {
    const m = machine({ devices: [{ address: EDU, group: 5, hotResetDependents: [EDU, MATE] }, { address: MATE, group: 6, driver: 'e1000e' }] });
    expect(byId(runDoctor({ ...m.options, address: EDU }))['device.hot-reset']).toEqual({
      status: 'warn',
      summary: `a bus reset would also reset ${MATE} (e1000e); the kernel allows it only to a process that owns every one of them (the kernel's answer)`,
      fix: `bind ${MATE} to vfio-pci too and open it alongside, or do without a bus reset`,
    });
    const fine = machine({ devices: [{ address: EDU, group: 5, hotResetDependents: [EDU, MATE] }, { address: MATE, group: 6 }] });
    expect(byId(runDoctor({ ...fine.options, address: EDU }))['device.hot-reset']).toEqual({
      status: 'pass',
      summary: `a bus reset would also reset ${MATE} (vfio-pci): open their groups too to use it (the kernel's answer)`,
    });
  });

  test('estimated from sysfs below a bridge: every device under the bridge', () => {
    const m = machine();
    // A bridge at 00:1c.0 with a two-function card behind it; the doctor looks at function 0.
    const bridge = `${m.sys}/devices/pci0000:00/0000:00:1c.0`;
    for (const [address, driver] of [['0000:01:00.0', 'vfio-pci'], ['0000:01:00.1', 'snd_hda_intel']] as const) {
      const dir = join(bridge, address);
      mkdirSync(dir, { recursive: true });
      for (const [file, text] of [['vendor', '0x10de'], ['device', '0x1b80'], ['class', '0x030000']]) writeFileSync(join(dir, file), `${text}\n`);
      mkdirSync(`${m.sys}/bus/pci/drivers/${driver}`, { recursive: true });
      symlinkSync(`${m.sys}/bus/pci/drivers/${driver}`, join(dir, 'driver'));
      symlinkSync(dir, `${m.sys}/bus/pci/devices/${address}`);
    }
    const f = byId(runDoctor({ ...m.options, address: '0000:01:00.0', tryOpen: false }));
    expect(f['device.hot-reset']).toEqual({
      status: 'warn',
      summary: 'a bus reset would also reset 0000:01:00.1 (snd_hda_intel); the kernel allows it only to a process that owns every one of them (estimated from sysfs)',
      fix: 'bind 0000:01:00.1 to vfio-pci too and open it alongside, or do without a bus reset',
    });
  });
});

describe('SR-IOV', () => {
  /** Makes `vf` a VF of `pf` (its physfn link) and `pf` a PF with 8 VFs, `enabled` of them on. */
  function sriov(sys: string, pf: string, vf: string | undefined, enabled: number): void {
    const pfDir = `${sys}/bus/pci/devices/${pf}`;
    writeFileSync(`${pfDir}/sriov_totalvfs`, '8\n');
    writeFileSync(`${pfDir}/sriov_numvfs`, `${enabled}\n`);
    if (vf) symlinkSync(`../${pf}`, `${sys}/bus/pci/devices/${vf}/physfn`);
  }

  test('a VF of a PF on vfio-pci needs the VF token (WARN); of a PF on its host driver, none (PASS)', () => {
    const m = machine({ devices: [{ address: EDU, group: 5 }, { address: MATE, group: 6 }] });
    sriov(m.sys, EDU, MATE, 1);
    expect(byId(runDoctor({ ...m.options, address: MATE, tryOpen: false }))['device.sriov']).toEqual({
      status: 'warn',
      summary: `a VF of ${EDU}, which is bound to vfio-pci: it opens only with the VF token set on the PF`,
      fix: `open it with the PF's token, Device.open('${MATE}', { vfToken }) (the PF's user sets it with setVfToken)`,
    });
    expect(byId(runDoctor({ ...m.options, address: EDU, tryOpen: false }))['device.sriov']).toEqual({
      status: 'pass', summary: 'SR-IOV PF with 1 of 8 VFs enabled; on vfio-pci, its VFs open only with a VF token its user sets (setVfToken)',
    });

    const host = machine({ devices: [{ address: NIC, group: 2, driver: 'igb' }, { address: MATE, group: 6 }] });
    sriov(host.sys, NIC, MATE, 2);
    expect(byId(runDoctor({ ...host.options, address: MATE, tryOpen: false }))['device.sriov']).toEqual({
      status: 'pass', summary: `a VF of ${NIC} (igb): no VF token needed`,
    });
  });

  test('a PF on vfio-pci without VFs: vfio-pci makes them only with enable_sriov=1', () => {
    const m = machine();
    sriov(m.sys, EDU, undefined, 0);
    expect(byId(runDoctor({ ...m.options, address: EDU, tryOpen: false }))['device.sriov']!.summary).toBe('SR-IOV PF with 0 of 8 VFs enabled; vfio-pci enables VFs only when loaded with enable_sriov=1');
  });

  test('neither PF nor VF: no SR-IOV finding', () => {
    const m = machine();
    expect(runDoctor({ ...m.options, address: EDU, tryOpen: false }).findings.map((x) => x.id)).not.toContain('device.sriov');
  });
});
