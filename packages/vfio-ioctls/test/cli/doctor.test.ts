/**
 * `vfio doctor` on the machine: the IOMMU, interrupt remapping, default
 * domains, the VFIO modules, no-IOMMU mode, iommufd and cdevs, node
 * permissions, RLIMIT_MEMLOCK and hugepages, on sysfs/proc/dev trees built
 * for each case (doctor-fixtures/machine.ts), broken ones included.
 */
import { mkdirSync, rmSync, unlinkSync } from 'node:fs';
import { DOCTOR_CHECK_IDS, runDoctor } from '../../src/cli/doctor';
import { byId, machine, own, statuses } from './doctor-fixtures/machine';

const HEALTHY = {
  'iommu.enabled': 'pass',
  'iommu.intremap': 'pass',
  'iommu.domain': 'pass',
  'modules.vfio': 'pass',
  'modules.vfio_pci': 'pass',
  'modules.vfio_iommu_type1': 'pass',
  'vfio.noiommu': 'pass',
  'iommufd.available': 'pass',
  'vfio.cdev': 'pass',
  'access.container': 'pass',
  'access.iommufd': 'pass',
  'access.devices': 'pass',
  'memory.memlock': 'pass',
  'memory.hugepages': 'warn',
};

describe('a healthy machine', () => {
  test('Intel: every machine check passes but hugepages (none reserved), in report order; exit status 0', () => {
    const m = machine();
    const report = runDoctor(m.options);
    expect(statuses(report)).toEqual(HEALTHY);
    expect(report.findings.map((f) => f.id)).toEqual(DOCTOR_CHECK_IDS.filter((id) => id in HEALTHY));
    expect(report).toMatchObject({ address: null, exitCode: 0, counts: { pass: 13, warn: 1, fail: 0 } });
    const f = byId(report);
    expect(f['iommu.enabled']!.summary).toBe('IOMMU on: dmar0 (Intel VT-d, ACPI DMAR)');
    expect(f['iommu.intremap']!.summary).toBe('interrupt remapping on (IR-IO-APIC in /proc/interrupts)');
    expect(f['iommu.domain']!.summary).toBe('default domain DMA-FQ (1 group)');
    expect(f['modules.vfio_pci']!.summary).toBe('vfio-pci is there (module)');
    expect(f['access.devices']!.summary).toBe(`uid 0 gid 0 can open ${m.vfio}/5, ${m.vfio}/devices/vfio0 read/write`);
    expect(f['memory.memlock']!.summary).toMatch(/^RLIMIT_MEMLOCK is unlimited/);
    expect(f['memory.hugepages']).toEqual({
      status: 'warn',
      summary: expect.stringMatching(/^no hugepages reserved/),
      fix: `reserve some: echo 512 > ${m.sys}/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages (or hugepages=512 on the kernel command line)`,
    });
    // Only warnings and failures carry a fix.
    expect(report.findings.filter((x) => x.fix !== undefined).map((x) => x.id)).toEqual(['memory.hugepages']);
  });

  test('AMD with hugepages reserved: AMD-Vi from IVRS, hugepages pass', () => {
    const m = machine({ vendor: 'amd', hugepages2M: [512, 500] });
    const f = byId(runDoctor(m.options));
    expect(f['iommu.enabled']).toEqual({ status: 'pass', summary: 'IOMMU on: ivhd0 (AMD-Vi, ACPI IVRS)' });
    expect(f['memory.hugepages']).toEqual({ status: 'pass', summary: 'hugepages: 512 x 2 MiB (500 free)' });
  });

  test("the iommufd selftest's mock unit is no IOMMU", () => {
    const m = machine({ vendor: 'none' });
    mkdirSync(`${m.sys}/class/iommu/iommufd_selftest_iommu`);
    expect(byId(runDoctor(m.options))['iommu.enabled']!.status).toBe('fail');
  });
});

describe('no IOMMU', () => {
  test('none in the firmware: FAIL with the firmware fix; the IOMMU-only checks drop out; exit status 1', () => {
    const m = machine({ vendor: 'none' });
    const report = runDoctor(m.options);
    expect(byId(report)['iommu.enabled']).toEqual({
      status: 'fail',
      summary: 'no IOMMU is on: the firmware describes none (no ACPI DMAR or IVRS table) and the kernel registered none',
      fix: 'enable VT-d (Intel) or AMD-Vi/IOMMU in the firmware setup, then boot with intel_iommu=on (Intel)',
    });
    expect(report.findings.map((f) => f.id)).not.toContain('iommu.intremap');
    expect(report.findings.map((f) => f.id)).not.toContain('iommu.domain');
    expect(report.exitCode).toBe(1);
  });

  test('in the firmware but not enabled: the fix follows the command line', () => {
    const off = machine({ iommuOn: false, cmdline: 'root=/dev/sda1 intel_iommu=off' });
    expect(byId(runDoctor(off.options))['iommu.enabled']).toEqual({
      status: 'fail',
      summary: 'no IOMMU is on: the firmware describes one (ACPI DMAR) but the kernel did not enable it',
      fix: 'remove intel_iommu=off from the kernel command line and reboot',
    });
    const unset = machine({ iommuOn: false, cmdline: 'root=/dev/sda1' });
    expect(byId(runDoctor(unset.options))['iommu.enabled']!.fix).toBe('add intel_iommu=on to the kernel command line and reboot');
    const amd = machine({ vendor: 'amd', iommuOn: false, cmdline: 'amd_iommu=off' });
    expect(byId(runDoctor(amd.options))['iommu.enabled']!.fix).toBe('remove amd_iommu=off from the kernel command line and reboot');
  });

  test('/sys/class/iommu missing altogether reads as no unit', () => {
    const m = machine();
    rmSync(`${m.sys}/class/iommu`, { recursive: true });
    expect(byId(runDoctor(m.options))['iommu.enabled']!.summary).toMatch(/firmware describes one \(ACPI DMAR\) but the kernel did not enable it/);
  });

  test('no-IOMMU mode: a loud WARN, the IOMMU a WARN, and CAP_SYS_RAWIO checked', () => {
    const m = machine({ vendor: 'none', noiommu: true });
    const report = runDoctor(m.options);
    const f = byId(report);
    expect(f['vfio.noiommu']).toEqual({
      status: 'warn',
      summary: expect.stringMatching(/^UNSAFE no-IOMMU mode is on \(vfio.enable_unsafe_noiommu_mode=Y\): devices can DMA anywhere/),
      fix: expect.stringContaining('boot without vfio.enable_unsafe_noiommu_mode=1'),
    });
    expect(f['iommu.enabled']).toMatchObject({ status: 'warn', summary: 'no IOMMU: VFIO runs in unsafe no-IOMMU mode instead (see vfio.noiommu)' });
    expect(f['access.rawio']!.status).toBe('pass');
    expect(f['access.devices']!.summary).toContain(`${m.vfio}/noiommu-5`);
    expect(report.exitCode).toBe(0);

    m.write(`${m.proc}/self/status`, 'Name:\tnode\nCapEff:\t0000000000000000\n');
    expect(byId(runDoctor(m.options))['access.rawio']).toEqual({
      status: 'fail',
      summary: 'no-IOMMU devices need CAP_SYS_RAWIO, which this process lacks',
      fix: 'run as root (or grant the program CAP_SYS_RAWIO)',
    });
  });
});

describe('interrupt remapping and default domains', () => {
  test('without remapping: FAIL; the fix says what the VT-d unit or the command line shows', () => {
    const m = machine({ intremap: false });
    const f = byId(runDoctor(m.options))['iommu.intremap']!;
    expect(f.status).toBe('fail');
    expect(f.summary).toBe('no interrupt remapping: VFIO refuses to attach a device (EPERM)');
    expect(f.fix).toMatch(/^the IOMMU cannot remap interrupts \(VT-d ecap.IR is 0\): enable interrupt remapping in the firmware setup; or, for trusted devices only, set vfio_iommu_type1.allow_unsafe_interrupts=1/);

    const cmdline = machine({ intremap: false, cmdline: 'intel_iommu=on intremap=off' });
    expect(byId(runDoctor(cmdline.options))['iommu.intremap']!.fix).toMatch(/^remove intremap=off \(nointremap\) from the kernel command line;/);
  });

  test('allow_unsafe_interrupts turns the FAIL into a WARN that says what it costs', () => {
    const m = machine({ intremap: false, allowUnsafeInterrupts: true });
    expect(byId(runDoctor(m.options))['iommu.intremap']).toEqual({
      status: 'warn',
      summary: 'no interrupt remapping; vfio_iommu_type1.allow_unsafe_interrupts lets VFIO run without it: a device can forge interrupts into the host',
      fix: 'the IOMMU cannot remap interrupts (VT-d ecap.IR is 0): enable interrupt remapping in the firmware setup, then drop allow_unsafe_interrupts',
    });
  });

  test('no x86 interrupt chip in /proc/interrupts: cannot tell, WARN', () => {
    const m = machine();
    m.write(`${m.proc}/interrupts`, '           CPU0\nNMI:          0   Non-maskable interrupts\n');
    expect(byId(runDoctor(m.options))['iommu.intremap']!).toMatchObject({ status: 'warn', summary: expect.stringMatching(/^cannot tell/) });
  });

  test('identity default domain: WARN, with the command line fix', () => {
    const m = machine({ domain: 'identity', cmdline: 'intel_iommu=on iommu=pt' });
    expect(byId(runDoctor(m.options))['iommu.domain']).toEqual({
      status: 'warn',
      summary: "default domain identity (1 group): identity means host drivers' DMA bypasses the IOMMU (VFIO's own devices are still isolated)",
      fix: 'for full host protection drop iommu=pt (iommu.passthrough=1) from the kernel command line',
    });
  });
});

describe('modules, iommufd and cdevs', () => {
  test('built-in modules count as there; a missing one FAILs with its modprobe', () => {
    const m = machine();
    rmSync(`${m.sys}/module/vfio/initstate`);
    rmSync(`${m.sys}/module/vfio_pci`, { recursive: true });
    let f = byId(runDoctor(m.options));
    expect(f['modules.vfio']!.summary).toBe('vfio is there (built in)');
    expect(f['modules.vfio_pci']!.summary).toBe('vfio-pci is there (built in)'); // the PCI driver is registered

    rmSync(`${m.sys}/bus/pci/drivers/vfio-pci`, { recursive: true });
    rmSync(`${m.sys}/module/vfio`, { recursive: true });
    rmSync(`${m.sys}/class/vfio`, { recursive: true });
    f = byId(runDoctor(m.options));
    expect(f['modules.vfio_pci']).toEqual({ status: 'fail', summary: 'vfio-pci is not loaded: no driver to hand PCI devices to VFIO', fix: 'modprobe vfio-pci' });
    expect(f['modules.vfio']!.summary).toBe('vfio is there (built in)'); // still its char major in /proc/devices
    m.write(`${m.proc}/devices`, 'Character devices:\n  1 mem\n');
    expect(byId(runDoctor(m.options))['modules.vfio']).toEqual({ status: 'fail', summary: 'vfio is not loaded', fix: 'modprobe vfio' });
  });

  test('vfio_iommu_type1 missing: WARN while iommufd can serve, FAIL without it', () => {
    const m = machine();
    rmSync(`${m.sys}/module/vfio_iommu_type1`, { recursive: true });
    expect(byId(runDoctor(m.options))['modules.vfio_iommu_type1']).toMatchObject({ status: 'warn', fix: expect.stringMatching(/^modprobe vfio_iommu_type1 \(not needed on a kernel whose container is iommufd's/) });
    unlinkSync(m.iommu);
    expect(byId(runDoctor(m.options))['modules.vfio_iommu_type1']).toMatchObject({ status: 'fail', fix: 'modprobe vfio_iommu_type1' });
  });

  test('a kernel without iommufd and cdevs: both WARN, and /dev/iommu access is not checked', () => {
    const m = machine({ iommufd: false });
    const report = runDoctor(m.options);
    const f = byId(report);
    expect(f['iommufd.available']).toEqual({
      status: 'warn',
      summary: `no ${m.iommu}: the iommufd backend is unavailable, devices open through the legacy container`,
      fix: 'modprobe iommufd (Linux 6.2 or later built with CONFIG_IOMMUFD)',
    });
    expect(f['vfio.cdev']!.status).toBe('warn');
    expect(f['access.iommufd']).toBeUndefined();
    expect(report.exitCode).toBe(0);
  });
});

describe('permissions', () => {
  const user = { uid: 1000, gid: 1000, groups: [1000, 27] };

  test("a user without the nodes: FAIL naming each node's owner and mode; the 0666 container passes", () => {
    const m = machine();
    const report = runDoctor({ ...m.options, ...user });
    const f = byId(report);
    expect(f['access.container']!.status).toBe('pass');
    expect(f['access.iommufd']).toMatchObject({ status: 'fail', summary: `uid 1000 gid 1000 cannot open read/write: ${m.iommu} (owner 0:0, mode 0660)` });
    expect(f['access.devices']).toEqual({
      status: 'fail',
      summary: `uid 1000 gid 1000 cannot open read/write: ${m.vfio}/5 (owner 0:0, mode 0600), ${m.vfio}/devices/vfio0 (owner 0:0, mode 0600)`,
      fix: expect.stringContaining('udev rule (SUBSYSTEM=="vfio"'),
    });
    expect(report.exitCode).toBe(1);
  });

  test('many nodes: the summary counts them, the details list them', () => {
    const m = machine({ devices: [{ address: '0000:00:03.0', group: 5 }, { address: '0000:00:04.0', group: 6 }] });
    const finding = runDoctor(m.options).findings.find((x) => x.id === 'access.devices')!;
    expect(finding.summary).toBe(`uid 0 gid 0 can open 4 nodes (${m.vfio}/5, ...) read/write`);
    expect(finding.details).toEqual({ nodes: [`${m.vfio}/5`, `${m.vfio}/6`, `${m.vfio}/devices/vfio0`, `${m.vfio}/devices/vfio1`] });
  });

  test('owner, group and supplementary group access all count', () => {
    const m = machine();
    own(`${m.vfio}/5`, 1000, 0, 0o600);
    own(`${m.vfio}/devices/vfio0`, 0, 1000, 0o660);
    own(m.iommu, 0, 27, 0o660);
    const f = byId(runDoctor({ ...m.options, ...user }));
    expect([f['access.iommufd']!.status, f['access.devices']!.status]).toEqual(['pass', 'pass']);
    own(m.iommu, 0, 27, 0o640); // read only
    expect(byId(runDoctor({ ...m.options, ...user }))['access.iommufd']!.status).toBe('fail');
  });
});

describe('memory', () => {
  test('--memory above RLIMIT_MEMLOCK: FAIL with the ulimit to set; within it: PASS', () => {
    const m = machine({ memlock: '8388608' });
    expect(byId(runDoctor({ ...m.options, memory: 1n << 30n }))['memory.memlock']).toEqual({
      status: 'fail',
      summary: 'RLIMIT_MEMLOCK is 8 MiB, but mapping 1 GiB for DMA pins 1 GiB (root is exempt on the legacy container only, not on iommufd)',
      fix: 'raise it to at least 1048576 KiB: ulimit -l 1048576 (or LimitMEMLOCK= in a systemd unit, memlock in /etc/security/limits.conf)',
    });
    expect(byId(runDoctor({ ...m.options, memory: 8n << 20n }))['memory.memlock']).toEqual({ status: 'pass', summary: 'RLIMIT_MEMLOCK 8 MiB covers mapping 8 MiB' });
  });

  test('a mapping pins whole pages: one byte over a page needs two', () => {
    const m = machine();
    const at = (limit: bigint) => byId(runDoctor({ ...m.options, memlockLimit: limit, memory: 4097n, uid: 1000 }))['memory.memlock']!;
    expect(at(8192n).status).toBe('pass');
    expect(at(4096n)).toMatchObject({ status: 'fail', summary: 'RLIMIT_MEMLOCK is 4 KiB, but mapping 4097 B for DMA pins 8 KiB' });
    expect(byId(runDoctor({ ...m.options, memlockLimit: null, memory: 1n << 40n }))['memory.memlock']!.status).toBe('pass');
  });

  test('hugepages: fewer free than --memory is a WARN that says how many to reserve', () => {
    const m = machine({ hugepages2M: [512, 100] });
    expect(byId(runDoctor({ ...m.options, memory: 1n << 30n }))['memory.hugepages']).toEqual({
      status: 'warn',
      summary: 'hugepages: 512 x 2 MiB (100 free): 200 MiB free, less than 1 GiB',
      fix: `reserve more: echo 924 > ${m.sys}/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages (or hugepages=924 on the kernel command line)`,
    });
  });
});

describe('broken trees', () => {
  test('an unreadable file turns its check into a WARN naming it; the rest of the report stands', () => {
    const m = machine();
    for (const path of [`${m.proc}/self/limits`, `${m.proc}/interrupts`, `${m.sys}/kernel/iommu_groups/5/type`]) {
      rmSync(path);
      mkdirSync(path); // reading a folder fails with EISDIR, even for root
    }
    const report = runDoctor(m.options);
    const f = byId(report);
    for (const [id, path] of [['memory.memlock', `${m.proc}/self/limits`], ['iommu.intremap', `${m.proc}/interrupts`], ['iommu.domain', `${m.sys}/kernel/iommu_groups/5/type`]] as const) {
      expect(f[id]).toEqual({
        status: 'warn',
        summary: expect.stringMatching(new RegExp(`^could not check: EISDIR: .*${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`)),
        fix: 'run vfio doctor as root, with sysfs and procfs mounted whole',
      });
    }
    expect(f['iommu.enabled']!.status).toBe('pass');
    expect(report.exitCode).toBe(0);
  });

  test('a limits file without the memlock line is a WARN, not a guess', () => {
    const m = machine();
    m.write(`${m.proc}/self/limits`, 'Limit  Soft Limit  Hard Limit  Units\n');
    expect(byId(runDoctor(m.options))['memory.memlock']).toMatchObject({ status: 'warn', summary: expect.stringContaining("has no 'Max locked memory' line") });
  });

  test('an unreadable command line only loses its hints', () => {
    const m = machine({ iommuOn: false });
    rmSync(`${m.proc}/cmdline`);
    mkdirSync(`${m.proc}/cmdline`);
    expect(byId(runDoctor(m.options))['iommu.enabled']).toMatchObject({ status: 'fail', fix: 'add intel_iommu=on to the kernel command line and reboot' });
  });
});

describe('options', () => {
  test('bad options are TypeErrors and RangeErrors naming them, before anything is read', () => {
    expect(() => runDoctor({ address: '0000:00:3' })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('options.address') }));
    expect(() => runDoctor({ memory: -1n })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('options.memory') }));
    expect(() => runDoctor({ sysfsroot: '/sys' } as never)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('did you mean sysfsRoot?') }));
    expect(() => runDoctor({ groups: [1, -1] })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('options.groups[1]') }));
    expect(() => runDoctor({ tryOpen: 'no' } as never)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('options.tryOpen') }));
  });
});
