// @guest-needs iommu igb
/**
 * igb, an SR-IOV physical function (QEMU 11.1's 82576 model, 8 VFs), through
 * VFIO: the SR-IOV extended capability in its config space agrees with what
 * sysfs says of the device, and its BARs and MSI-X are there. The ground the
 * VF token work stands on.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { device, trackResources, openDevice } from './helpers';

const { keep, assertNoLeaks } = trackResources();
const igb = device('igb');
const PCI_EXT_CAP_ID_SRIOV = 0x10;
const SRIOV_TOTAL_VFS = 0x0e;

const sysfs = (name: string) => readFileSync(`/sys/bus/pci/devices/${igb.address}/${name}`, 'utf8').trim();

test('igb is bound to vfio-pci as 8086:10c9', () => {
  assert.equal(igb.vendorDevice, '8086:10c9');
  assert.equal(igb.driver, 'vfio-pci');
});

test('igb: the SR-IOV capability in config space says what sysfs says (TotalVFs)', () => {
  const dev = keep(openDevice(igb.address));
  const config = dev.config!;
  assert.equal(config.size, 4096n, 'PCIe extended config space');
  // Extended capabilities: a chain from 0x100, each header id[15:0], next[31:20].
  let offset = 0x100;
  let sriov: number | undefined;
  for (let hops = 0; offset !== 0 && hops < 64; hops++) {
    const header = config.readUint32(offset);
    if ((header & 0xffff) === PCI_EXT_CAP_ID_SRIOV) sriov = offset;
    offset = header >>> 20;
  }
  assert.ok(sriov !== undefined, 'igb has the SR-IOV extended capability');
  const totalVfs = config.readUint16(sriov + SRIOV_TOTAL_VFS);
  assert.equal(totalVfs, Number(sysfs('sriov_totalvfs')));
  assert.equal(totalVfs, 8);
  dev.close();
});

test('igb: BAR0 is mappable MMIO and MSI-X has vectors', () => {
  const dev = keep(openDevice(igb.address));
  const bar0 = dev.region(b.VFIO_PCI_BAR0_REGION_INDEX)!;
  assert.ok(bar0.size >= 0x2_0000n, `BAR0 is ${bar0.size} bytes`);
  assert.equal(bar0.mappable, true);
  assert.ok(dev.irqInfo(b.VFIO_PCI_MSIX_IRQ_INDEX).count > 0);
  dev.close();
});

test('no fd left open', () => assertNoLeaks());
