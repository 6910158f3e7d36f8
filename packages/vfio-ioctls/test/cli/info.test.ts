import { unlinkSync } from 'node:fs';
import { VFIO_DEVICE_GET_IRQ_INFO } from 'vfio-bindings';
import { Group, type VfioContext } from '../../src';
import type { FakeKernel } from '../../src/testing';
import { deviceDir, link, put, run, testMachine } from './helpers';

let kernel: FakeKernel;
let context: VfioContext;
beforeEach(() => ({ kernel, context } = testMachine()));
afterEach(() => {
  // Whatever the command did, it closed everything it opened.
  expect(kernel.openFds()).toEqual([]);
  expect(kernel.liveMmaps()).toBe(0);
  kernel.dispose();
});

test('text: backend, flags, regions with capabilities, IRQs, IOMMU and hot reset', async () => {
  const r = await run(['info', '01:00.0'], { context });
  expect(r).toMatchObject({ code: 0, stderr: '' });
  expect(r.stdout.split('\n')).toEqual([
    '0000:01:00.0  1b36:0010  class 010802  driver vfio-pci  IOMMU group 8 (/dev/vfio/8)',
    'device: reset pci, 10 region indexes, 5 IRQ indexes',
    'features: low power (with wakeup)',
    '',
    'regions:',
    '  index  name             size    access           capabilities',
    '  0      BAR0             16 KiB  read write mmap  sparse mmap 0x0+4 KiB, 0x3000+4 KiB; msix-mappable',
    '  7      config           4 KiB   read write',
    '  9      device-specific  256 B   read             type 0x80860000:0x3',
    '',
    'IRQs:',
    '  index  name   count  flags',
    '  0      INTx   1      eventfd maskable automasked',
    '  1      MSI    0      eventfd noresize',
    '  2      MSI-X  65     eventfd noresize',
    '  3      ERR    0      eventfd noresize',
    '  4      REQ    0      eventfd noresize',
    '',
    'IOMMU: container, type1v2 (VFIO API 0)',
    '  page sizes   4 KiB, 2 MiB, 1 GiB (0x40201000)',
    '  IOVA ranges  0x0-0xfedfffff, 0xfef00000-0x7fffffffff',
    '  dma_avail    65535',
    '',
    'hot reset: resets 0000:01:00.0 (group 8)',
    '',
  ]);
});

test('features: what VFIO_DEVICE_FEATURE offers, typed and by uAPI name', async () => {
  // VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY
  kernel.addDevice({ address: '0000:05:00.0', group: 12, migration: { flags: 0x7 }, dmaLogging: true, lowPower: false });
  const r = await run(['info', '05:00.0'], { context });
  expect(r.stdout.split('\n')[2]).toBe('features: migration (p2p, pre-copy), DMA logging');
  const { features } = JSON.parse((await run(['info', '--json', '05:00.0'], { context })).stdout);
  expect(features).toMatchObject({
    migration: { stopCopy: true, p2p: true, preCopy: true, flags: '0x7' },
    dmaLogging: true, lowPower: false, lowPowerWakeup: false, busMaster: false, vfToken: false,
  });
  const names = features.supported.map((f: { name: string }) => f.name);
  expect(names).toEqual(expect.arrayContaining(['MIGRATION', 'MIG_DEVICE_STATE', 'DMA_LOGGING_START']));
  expect(names).not.toContain('LOW_POWER_ENTRY');
  expect(features.supported.find((f: { name: string }) => f.name === 'MIG_DEVICE_STATE')).toEqual({ name: 'MIG_DEVICE_STATE', get: true, set: true });
  kernel.addDevice({ address: '0000:05:00.1', group: 13, lowPower: false });
  expect((await run(['info', '05:00.1'], { context })).stdout.split('\n')[2]).toBe('features: none');
});

test('a device without reset or hot reset says so', async () => {
  const r = await run(['info', '0000:00:03.0'], { context });
  expect(r.code).toBe(0);
  expect(r.stdout).toContain('device: pci (no reset), 9 region indexes, 5 IRQ indexes\n');
  expect(r.stdout).toContain('  0      BAR0    1 MiB  read write mmap\n');
  expect(r.stdout).toMatch(/\nhot reset: not available \(ENODEV\)\n$/);
});

test('--json: every number checkable, 64-bit values as 0x strings', async () => {
  const r = await run(['info', '--json', '0000:01:00.0'], { context });
  expect(r.code).toBe(0);
  const info = JSON.parse(r.stdout);
  expect(info).toMatchObject({
    address: '0000:01:00.0', vendorDevice: '1b36:0010', class: 0x010802, driver: 'vfio-pci', cdev: null,
    group: { id: 8, node: '/dev/vfio/8' },
    sriov: null,
    device: { flags: 3, flagNames: ['reset', 'pci'], numRegions: 10, numIrqs: 5 },
    features: { migration: null, dmaLogging: false, lowPower: true, lowPowerWakeup: true, busMaster: false, vfToken: false },
    iommu: {
      backend: 'container', pageSizes: '0x40201000',
      iovaRanges: [{ start: '0x0', end: '0xfedfffff' }, { start: '0xfef00000', end: '0x7fffffffff' }],
      container: { apiVersion: 0, type: 'type1v2', dmaAvail: 65535 },
      hardware: null,
    },
    hotReset: { available: true, devices: [{ address: '0000:01:00.0', groupId: 8, devId: null }], reason: null },
  });
  expect(info.regions.map((g: { index: number }) => g.index)).toEqual([0, 7, 9]);
  expect(info.regions[0]).toEqual({
    index: 0, name: 'BAR0', size: '0x4000', offset: '0x0', flags: 15, flagNames: ['read', 'write', 'mmap', 'caps'],
    sparseMmap: [{ offset: '0x0', size: '0x1000' }, { offset: '0x3000', size: '0x1000' }],
    type: null, msixMappable: true, capabilities: ['SPARSE_MMAP', 'MSIX_MAPPABLE'],
  });
  expect(info.regions[1]).toMatchObject({ name: 'config', offset: '0x70000000000', sparseMmap: null, capabilities: [] });
  expect(info.regions[2]).toMatchObject({ name: 'device-specific', type: { type: 0x80860000, subtype: 3 }, capabilities: ['TYPE'] });
  expect(info.irqs[2]).toEqual({ index: 2, name: 'MSI-X', count: 65, flags: 9, flagNames: ['eventfd', 'noresize'] });
  const edu = JSON.parse((await run(['info', '--json', '00:03.0'], { context })).stdout);
  expect(edu.hotReset).toEqual({ available: false, devices: [], reason: 'ENODEV' });
});

test('opened as a program opens it (container and group), and everything is closed', async () => {
  await run(['info', '00:03.0'], { context });
  const opens = kernel.calls.filter((c) => c.syscall === 'open').map((c) => c.path);
  expect(opens.sort()).toEqual(['/dev/vfio/1', '/dev/vfio/vfio']);
  expect(kernel.calls.filter((c) => c.syscall === 'close')).toHaveLength(3); // device fd, group, container
});

describe('on a kernel with iommufd and cdevs', () => {
  let cdevKernel: FakeKernel;
  let cdevContext: VfioContext;
  beforeEach(() => ({ kernel: cdevKernel, context: cdevContext } = testMachine({ deviceCdevs: true })));
  afterEach(() => {
    expect(cdevKernel.openFds()).toEqual([]);
    cdevKernel.dispose();
  });

  test('auto picks iommufd through the cdev: the backend and the IOMMU hardware are shown', async () => {
    const r = await run(['info', '01:00.0'], { context: cdevContext });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('0000:01:00.0  1b36:0010  class 010802  driver vfio-pci  cdev vfio1');
    expect(lines).toContain('IOMMU: iommufd, intel-vtd');
    expect(lines).toContain('  dirty tracking  no');
    const opens = cdevKernel.calls.filter((c) => c.syscall === 'open').map((c) => c.path);
    expect(opens.sort()).toEqual(['/dev/iommu', '/dev/vfio/devices/vfio1']);
    const info = JSON.parse((await run(['info', '--json', '01:00.0'], { context: cdevContext })).stdout);
    expect(info).toMatchObject({ cdev: 'vfio1', iommu: { backend: 'iommufd', container: null, hardware: { type: 'intel-vtd', dirtyTracking: false } } });
    expect(info.hotReset.devices).toEqual([{ address: '0000:01:00.0', groupId: -1, devId: expect.any(Number) }]);
  });

  test('--iommu container insists on the container', async () => {
    const info = JSON.parse((await run(['info', '--json', '--iommu', 'container', '01:00.0'], { context: cdevContext })).stdout);
    expect(info.iommu).toMatchObject({ backend: 'container', container: { type: 'type1v2' }, hardware: null });
  });
});

describe('SR-IOV relations from sysfs', () => {
  test('a PF lists its enabled VFs; a VF names its PF and its index', async () => {
    kernel.addDevice({ address: '0000:04:00.0', group: 10 });
    kernel.addDevice({ address: '0000:04:10.0', group: 11 });
    kernel.addDevice({ address: '0000:04:10.2', group: 12 });
    const pf = deviceDir(kernel, '0000:04:00.0');
    put(`${pf}/sriov_totalvfs`, '7\n');
    put(`${pf}/sriov_numvfs`, '2\n');
    link(`${pf}/virtfn0`, deviceDir(kernel, '0000:04:10.0'));
    link(`${pf}/virtfn1`, deviceDir(kernel, '0000:04:10.2'));
    link(`${deviceDir(kernel, '0000:04:10.0')}/physfn`, pf);
    link(`${deviceDir(kernel, '0000:04:10.2')}/physfn`, pf);

    const pfInfo = await run(['info', '04:00.0'], { context });
    expect(pfInfo.stdout).toContain('\nSR-IOV: physical function, 2 of 7 VFs enabled: 0000:04:10.0, 0000:04:10.2\n');
    expect(JSON.parse((await run(['info', '--json', '04:00.0'], { context })).stdout).sriov)
      .toEqual({ role: 'pf', totalVfs: 7, numVfs: 2, vfs: ['0000:04:10.0', '0000:04:10.2'] });
    expect((await run(['info', '04:10.2'], { context })).stdout).toContain('\nSR-IOV: virtual function 1 of 0000:04:00.0\n');
    expect(JSON.parse((await run(['info', '--json', '04:10.2'], { context })).stdout).sriov).toEqual({ role: 'vf', pf: '0000:04:00.0', index: 1 });
  });

  test('a PF with SR-IOV off says so', async () => {
    const pf = deviceDir(kernel, '0000:00:03.0');
    put(`${pf}/sriov_totalvfs`, '8\n');
    put(`${pf}/sriov_numvfs`, '0\n');
    expect((await run(['info', '00:03.0'], { context })).stdout).toContain('\nSR-IOV: physical function, 0 of 8 VFs enabled\n');
  });
});

describe('errors: one line on stderr naming the device, nothing on stdout', () => {
  test.each([
    [['info'], "vfio: info: missing PCI address (like 0000:00:03.0) (see 'vfio help')"],
    [['info', '00:20.0'], "vfio: info: '00:20.0' is not a PCI address (expected DDDD:BB:DD.F, like 0000:00:03.0) (see 'vfio help')"],
    [['info', 'edu'], "vfio: info: 'edu' is not a PCI address (expected DDDD:BB:DD.F, like 0000:00:03.0) (see 'vfio help')"],
    [['info', '00:03.0', '01:00.0'], "vfio: info: unexpected argument '01:00.0' (see 'vfio help')"],
    [['info', '--iommu', 'vfio', '00:03.0'], "vfio: info: --iommu must be one of auto, iommufd, container, noiommu, got 'vfio' (see 'vfio help')"],
  ])('%j is a usage error (exit 2)', async (argv, line) => {
    expect(await run(argv, { context })).toEqual({ code: 2, stdout: '', stderr: `${line}\n` });
  });

  test('no such device', async () => {
    const r = await run(['info', '00:09.0'], { context });
    expect(r).toEqual({ code: 1, stdout: '', stderr: `vfio: info: no PCI device 0000:00:09.0 in ${kernel.sysfsRoot}/bus/pci/devices (see 'vfio list')\n` });
  });

  test('device bound to another driver, or to none', async () => {
    kernel.bindDriver('0000:00:03.0', 'e1000e');
    expect((await run(['info', '00:03.0'], { context })).stderr).toBe("vfio: info: 0000:00:03.0 is bound to e1000e, not vfio-pci: run 'vfio bind 0000:00:03.0' first\n");
    kernel.bindDriver('0000:00:03.0', null);
    const r = await run(['info', '00:03.0'], { context });
    expect(r).toEqual({ code: 1, stdout: '', stderr: "vfio: info: 0000:00:03.0 is not bound to any driver, not vfio-pci: run 'vfio bind 0000:00:03.0' first\n" });
  });

  test('group not viable: the library error names the device to rebind', async () => {
    kernel.bindDriver('0000:03:02.0', 'e1000e');
    const r = await run(['info', '03:01.0'], { context });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^vfio: info: 0000:03:01\.0: IOMMU group 9 is not viable: not bound to vfio-pci: 0000:03:02\.0 \(e1000e\).* \[ERR_VFIO_GROUP_NOT_VIABLE\]\n$/);
    expect(r.stderr.split('\n')).toHaveLength(2);
  });

  test('no IOMMU group', async () => {
    unlinkSync(`${kernel.sysfsRoot}/bus/pci/devices/0000:00:03.0/iommu_group`);
    expect((await run(['info', '00:03.0'], { context })).stderr).toBe('vfio: info: 0000:00:03.0 has no IOMMU group: turn the IOMMU on (intel_iommu=on or amd_iommu=on)\n');
  });

  test('group held by another user: EBUSY with the library hint, naming the device', async () => {
    const group = Group.open(1, context);
    try {
      const r = await run(['info', '00:03.0'], { context });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^vfio: info: 0000:00:03\.0: EBUSY: open failed on \/dev\/vfio\/1.*\n$/);
    } finally {
      group.close();
    }
  });

  test('a missing sysfs root', async () => {
    expect(await run(['info', '--sysfs-root', '/nonexistent', '00:03.0'])).toEqual({
      code: 1, stdout: '', stderr: 'vfio: info: /nonexistent/bus/pci/devices does not exist: is sysfs mounted at /nonexistent? (--sysfs-root)\n',
    });
  });

  test('an IRQ index the kernel refuses with EINVAL is absent, as ERR on a conventional PCI device', async () => {
    kernel.failNext({ syscall: 'ioctl', request: VFIO_DEVICE_GET_IRQ_INFO, errno: 'EINVAL', skip: 3 });
    const r = await run(['info', '--json', '00:03.0'], { context });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).irqs.map((q: { name: string }) => q.name)).toEqual(['INTx', 'MSI', 'MSI-X', 'REQ']);
    expect(kernel.pendingFaults()).toBe(0);
  });

  test('a failing ioctl mid-way reports it and still closes everything', async () => {
    kernel.failNext({ syscall: 'ioctl', request: VFIO_DEVICE_GET_IRQ_INFO, errno: 'EIO', skip: 2 });
    const r = await run(['info', '00:03.0'], { context });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^vfio: info: EIO: VFIO_DEVICE_GET_IRQ_INFO ioctl failed on 0000:00:03\.0[^\n]*\n$/);
    expect(kernel.pendingFaults()).toBe(0);
  });
});
