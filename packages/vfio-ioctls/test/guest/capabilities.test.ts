// @guest-needs (none: runs on every kernel and boot of the matrix)
/**
 * The test bed's promises, checked both ways. tools/vm/lib/kernels.js says
 * what each kernel and boot variant offers ($VFIO_VM_CAPS); the suite
 * registers a file only where its needs are met. So a capability promised
 * and missing must fail here (never a silent skip), and one present but not
 * promised must fail too (the table would keep tests off a kernel that
 * could run them).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { Container, Group, Iommufd, VfioError } from 'vfio-ioctls';
import { device, trackResources } from './helpers';

const KNOWN = ['iommu', 'compat', 'iommufd', 'cdev', 'noiommu', 'mtty', 'kvm', 'suite', 'igb', 'bigbar'];
const promised = (process.env.VFIO_VM_CAPS ?? '').split(',').filter(Boolean);
const where = `${process.env.VFIO_VM_KERNEL} (${process.env.VFIO_VM_KERNEL_RELEASE}), boot ${process.env.VFIO_VM_BOOT}`;
const { keep, assertNoLeaks } = trackResources();

/** Asserts that what the guest shows matches what the kernel table promises. */
function matches(cap: string, present: boolean, evidence: string): void {
  const expected = promised.includes(cap);
  assert.equal(present, expected,
    `${where}: capability ${cap} is ${expected ? 'promised but missing' : 'present but not promised'} (${evidence})`);
}

test('the harness says what this kernel promises, in known words', () => {
  assert.ok(process.env.VFIO_VM_CAPS !== undefined, 'VFIO_VM_CAPS is set in the guest');
  for (const cap of promised) assert.ok(KNOWN.includes(cap), `unknown capability ${cap}`);
});

test('iommu: edu sits behind an IOMMU, and the legacy container takes TYPE1v2 for it', () => {
  // The device's own iommu link, not /sys/class/iommu: the purpose-built
  // kernel's iommufd selftest registers a mock IOMMU there on every boot.
  const { address, iommuGroup } = device('edu');
  const link = `/sys/bus/pci/devices/${address}/iommu`;
  if (!existsSync(link)) {
    matches('iommu', false, `${link} is missing`);
    return;
  }
  // Behind an IOMMU: TYPE1v2 is set when the group attaches, unless the
  // kernel refuses it (EPERM without interrupt remapping, the nointremap boot).
  const container = keep(Container.open());
  const group = keep(Group.open(iommuGroup));
  let refusal = '';
  try {
    group.attach(container);
    assert.equal(container.iommuType, b.VFIO_TYPE1v2_IOMMU);
  } catch (error) {
    refusal = (error as { code?: string }).code ?? String(error);
  } finally {
    group.close();
    container.close();
  }
  matches('iommu', refusal === '', refusal ? `attach with TYPE1v2: ${refusal}` : `${link}, TYPE1v2 set`);
});

test('iommufd: /dev/iommu', () => {
  matches('iommufd', existsSync('/dev/iommu'), '/dev/iommu');
});

test('cdev: the device cdev of edu under /dev/vfio/devices', () => {
  const cdev = (device('edu') as { cdev?: string | null }).cdev ?? null;
  matches('cdev', cdev !== null, `testbed.json cdev ${cdev}`);
  if (cdev) assert.ok(existsSync(cdev), `${cdev} exists`);
});

test('noiommu: the group node is noiommu-N and the container offers VFIO_NOIOMMU_IOMMU', () => {
  const { groupPath } = device('edu');
  matches('noiommu', groupPath.startsWith('/dev/vfio/noiommu-'), `edu's group node ${groupPath}`);
  const container = keep(Container.open());
  // VFIO's container offers it only in no-IOMMU mode; iommufd's emulation
  // answers from how the kernel was built (CONFIG_VFIO_NOIOMMU, which
  // compat-7.3 has from vfio-7.3), whatever the boot.
  assert.equal(container.checkExtension(b.VFIO_NOIOMMU_IOMMU), promised.includes('noiommu') || promised.includes('compat'));
  container.close();
});

test('compat: /dev/vfio/vfio is iommufd\'s emulation of the container', () => {
  // iommufd's /dev/vfio/vfio is an iommufd (vfio_misc_dev in
  // drivers/iommu/iommufd/main.c): it allocates an IOAS like /dev/iommu.
  // VFIO's own container answers an ioctl it does not know, with no IOMMU
  // driver set yet, EINVAL (vfio_fops_unl_ioctl in drivers/vfio/container.c).
  const node = keep(Iommufd.open({ iommufdPath: '/dev/vfio/vfio' }));
  let refusal: VfioError | undefined;
  try {
    node.allocIoas();
  } catch (error) {
    if (!(error instanceof VfioError)) throw error;
    refusal = error;
  } finally {
    node.close();
  }
  if (refusal) assert.equal(refusal.code, 'EINVAL', `IOMMU_IOAS_ALLOC on VFIO's own container: ${refusal.message}`);
  const isIommufd = refusal === undefined;
  matches('compat', isIommufd, `IOMMU_IOAS_ALLOC on /dev/vfio/vfio: ${refusal ? refusal.code : 'an IOAS'}`);

  // Where the container takes TYPE1v2, its own answer agrees: VFIO's type1
  // reports dirty page tracking (the MIGRATION capability of
  // VFIO_IOMMU_GET_INFO, since Linux 5.8); the emulation has none.
  if (!promised.includes('iommu')) return;
  const container = keep(Container.open());
  const group = keep(Group.open(device('edu').iommuGroup));
  try {
    group.attach(container);
    const migration = container.iommuInfo().migration;
    assert.equal(migration === undefined, isIommufd, `${where}: the MIGRATION capability is ${migration ? 'reported' : 'missing'}`);
  } finally {
    group.close();
    container.close();
  }
});

test('mtty: the mtty sample parent device', () => {
  matches('mtty', existsSync('/sys/class/mdev_bus/mtty'), '/sys/class/mdev_bus/mtty');
});

test('kvm: /dev/kvm creates a VM whose vCPU runs to HLT, and the KVM VFIO device', () => {
  matches('kvm', existsSync('/dev/kvm'), '/dev/kvm');
  if (!promised.includes('kvm')) return;
  const check = process.env.VFIO_VM_KVM_CHECK;
  assert.ok(check, 'VFIO_VM_KVM_CHECK names the compiled tools/vm/check/kvm-hlt.c');
  const run = spawnSync(check, { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, `kvm-hlt: ${run.stdout}${run.stderr}`);
  assert.match(run.stdout, /^ok KVM_EXIT_IO: the vCPU wrote 'K' to port 0x3f8$/m);
  assert.match(run.stdout, /^ok KVM_EXIT_HLT$/m);
  assert.match(run.stdout, /^ok KVM_CREATE_DEVICE\(KVM_DEV_TYPE_VFIO\)/m);
});

/** The devices of testbed.json, by role. */
function roles(): string[] {
  return Object.keys((JSON.parse(readFileSync(process.env.VFIO_TESTBED!, 'utf8')) as { devices: object }).devices);
}

test('suite: the suite profile\'s devices (edu, e1000e, nvme, two edu in one group)', () => {
  const all = ['edu', 'e1000e', 'nvme', 'shared-edu-1', 'shared-edu-2'].every((r) => roles().includes(r));
  matches('suite', all, `roles: ${roles().join(' ')}`);
});

test('igb: the SR-IOV profile\'s igb (QEMU 11.1)', () => {
  matches('igb', roles().includes('igb'), `roles: ${roles().join(' ')}`);
});

test('bigbar: the bigbar profile\'s ivshmem devices with 4 GiB and 16 GiB BARs', () => {
  const both = ['ivshmem-4g', 'ivshmem-16g'].every((r) => roles().includes(r));
  matches('bigbar', both, `roles: ${roles().join(' ')}`);
});

test('no fd left open', () => assertNoLeaks());
