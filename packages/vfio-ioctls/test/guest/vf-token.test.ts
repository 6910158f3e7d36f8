// @guest-needs iommu igb
/**
 * VF tokens with igb (QEMU 11.1's 82576, an SR-IOV PF): the PF bound to
 * vfio-pci, its VF token set through VFIO_DEVICE_FEATURE, two VFs created
 * through sriov_numvfs (vfio-pci captures them), and each VF opened with
 * the token, without it and with a wrong one, through its group and
 * through its cdev.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { test } from 'node:test';
import { Device } from 'vfio-ioctls';
import { device, throwsArg, throwsVfio, trackResources, waitFor } from './helpers';

const { keep, assertNoLeaks } = trackResources();
const igb = device('igb');
const pfSysfs = `/sys/bus/pci/devices/${igb.address}`;
const TOKEN = '2ab74924-c335-45f4-9b16-8569e5b08258';
const WRONG = '00000000-0000-4000-8000-000000000000';

/** The VF addresses of the PF (virtfnN links), once the kernel made them. */
function vfs(): string[] {
  const count = Number(readFileSync(`${pfSysfs}/sriov_numvfs`, 'utf8'));
  return Array.from({ length: count }, (_, i) => basename(readlinkSync(`${pfSysfs}/virtfn${i}`)));
}

const driverOf = (address: string) => {
  const link = `/sys/bus/pci/devices/${address}/driver`;
  return existsSync(link) ? basename(readlinkSync(link)) : undefined;
};

let pf: Device;

test('the PF: opened, its VF token set; two VFs created and captured by vfio-pci', async () => {
  // vfio-pci creates VFs only with enable_sriov (a module parameter writable at run time).
  writeFileSync('/sys/module/vfio_pci/parameters/enable_sriov', 'Y');
  pf = Device.open(igb.address);
  pf.setVfToken(TOKEN);
  writeFileSync(`${pfSysfs}/sriov_numvfs`, '2');
  const addresses = vfs();
  assert.equal(addresses.length, 2);
  await waitFor('the VFs to bind to vfio-pci', () => addresses.every((vf) => driverOf(vf) === 'vfio-pci'));
  throwsArg(() => pf.setVfToken('not-a-uuid'), 'RangeError', 'ERR_INVALID_ARG_VALUE');
});

for (const iommu of ['container', 'iommufd'] as const) {
  const operation = iommu === 'container' ? 'VFIO_GROUP_GET_DEVICE_FD' : 'VFIO_DEVICE_BIND_IOMMUFD';
  test(`a VF through its ${iommu === 'container' ? 'group' : 'cdev'}: refused without the token and with a wrong one, opened with it`, () => {
    const [vf] = vfs();
    for (const vfToken of [undefined, WRONG]) {
      const error = throwsVfio(() => Device.open(vf, { iommu, vfToken }), { code: 'EACCES', operation });
      assert.match(error.message, /VF token/);
      assert.match(error.hint ?? '', /vfToken/);
    }
    const dev = keep(Device.open(vf, { iommu, vfToken: TOKEN }));
    assert.equal(dev.iommu?.kind, iommu);
    assert.ok(dev.info.pci);
    // The VF answers config reads: Intel's vendor id.
    assert.equal(dev.config!.readUint16(0), 0x8086);
    dev.close();
  });
}

test('a token on a device without one (edu is no SR-IOV PF): ENOTTY with the reason', () => {
  const edu = keep(Device.open(device('edu').address));
  const error = throwsVfio(() => edu.setVfToken(TOKEN), { code: 'ENOTTY', operation: 'VFIO_DEVICE_FEATURE' });
  assert.match(error.hint ?? '', /SR-IOV PF/);
});

test('SR-IOV off and the PF closed; no fd or pinned page left behind', () => {
  // The VFs are closed (each test closes its own); SR-IOV off, then the PF.
  writeFileSync(`${pfSysfs}/sriov_numvfs`, '0');
  pf.close();
  assertNoLeaks();
});
