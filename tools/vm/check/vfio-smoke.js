'use strict';
// Runs inside the guest: checks that every device testbed.json lists is
// bound to vfio-pci, in the IOMMU group it claims, with its group node
// openable, and that the container node answers. Exit 0 when all hold.
// Usage: node tools/vm/bin/vm.js run --profile suite -- node tools/vm/check/vfio-smoke.js
const fs = require('node:fs');
const path = require('node:path');

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};
const tryOpen = (p) => {
  try {
    fs.closeSync(fs.openSync(p, 'r+'));
    return true;
  } catch (e) {
    return e.code;
  }
};

const testbed = JSON.parse(fs.readFileSync(process.env.VFIO_TESTBED, 'utf8'));
check(tryOpen('/dev/vfio/vfio') === true, 'open /dev/vfio/vfio');
for (const [role, d] of Object.entries(testbed.devices)) {
  const sys = `/sys/bus/pci/devices/${d.address}`;
  const driver = path.basename(fs.readlinkSync(`${sys}/driver`));
  const group = Number(path.basename(fs.readlinkSync(`${sys}/iommu_group`)));
  const ids = ['vendor', 'device'].map((f) => fs.readFileSync(`${sys}/${f}`, 'utf8').trim().replace(/^0x/, '')).join(':');
  check(driver === 'vfio-pci', `${role} ${d.address} driver ${driver}`);
  check(fs.readFileSync(`${sys}/driver_override`, 'utf8').trim() === 'vfio-pci', `${role} driver_override vfio-pci`);
  check(ids === d.vendorDevice, `${role} ids ${ids}`);
  check(group === d.iommuGroup, `${role} iommu group ${group}`);
  // A group node opens once at a time; devices sharing a group are opened
  // one after the other here, which is fine.
  check(tryOpen(d.groupPath) === true, `${role} open ${d.groupPath}`);
}
if (failures.length) {
  console.log(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('vfio smoke: all checks passed');
