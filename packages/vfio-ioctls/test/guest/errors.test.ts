// @guest-needs iommu suite
// @guest-backends container iommufd
/**
 * The kernel's own error answers reach the user as VfioErrors. Where the
 * safe API refuses a mistake before the kernel sees it (a misaligned IOVA,
 * the absent VGA region), the test also sends the raw request through the
 * same backend the library uses, to pin down what the kernel answers.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, Group, VfioContext, VfioError } from 'vfio-ioctls';
import { device, GUEST_CAPS, throwsArg, throwsVfio, trackResources, openDevice } from './helpers';

const edu = device('edu');
const compat = GUEST_CAPS.includes('compat');
const { backend } = VfioContext.from();
const { keep, assertNoLeaks } = trackResources();

/** A struct argument with argsz filled in, as every VFIO ioctl wants it. */
function arg<T extends { argsz: number }>(codec: b.StructCodec<T>, value: b.EncodeInput<T>): Uint8Array {
  return codec.encode({ ...value, argsz: codec.encodedSize(value) } as b.EncodeInput<T>);
}

test('a kernel refusal is a VfioError in Node\'s errno shape, with operation, path and hint', () => {
  const error = throwsVfio(() => Group.open(4242), { code: 'ENOENT', errno: -2, syscall: 'open', path: '/dev/vfio/4242' });
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'VfioError');
  assert.match(error.message, /ENOENT/);
  assert.match(error.hint ?? '', /vfio-pci/);
});

test('unmapping what is not mapped: the kernel unmaps nothing and says so; the library\'s unmap is idempotent', () => {
  const dev = keep(Device.open(edu.address, { iommu: 'container' }));
  const container = dev.iommu as Container;
  const unmap = arg(b.vfio_iommu_type1_dma_unmap, { iova: 0x20_0000n, size: 0x1000n });
  assert.equal(backend.ioctl(container.fd, b.VFIO_IOMMU_UNMAP_DMA, unmap), 0);
  assert.equal(b.vfio_iommu_type1_dma_unmap.decode(unmap).size, 0n);

  const buffer = keep(DmaBuffer.alloc(4096));
  const mapping = container.map(buffer);
  mapping.unmap();
  mapping.unmap();
  container.unmapAll();
  buffer.close();
  dev.close();
});

test('a misaligned map: RangeError before the kernel; the kernel itself answers EINVAL', () => {
  const dev = keep(Device.open(edu.address, { iommu: 'container' }));
  const container = dev.iommu as Container;
  const buffer = keep(DmaBuffer.alloc(4096));
  throwsArg(() => container.map(buffer, { iova: 0x10_0800n }), 'RangeError', 'ERR_VFIO_MISALIGNED');
  throwsArg(() => container.map(buffer, { read: false, write: false }), 'RangeError');

  const vaddr = backend.addressOf(buffer.bytes.buffer as ArrayBuffer);
  const flags = b.VFIO_DMA_MAP_FLAG_READ | b.VFIO_DMA_MAP_FLAG_WRITE;
  for (const misaligned of [{ iova: 0x10_0800n, size: 0x1000n }, { iova: 0x10_0000n, size: 0x800n }]) {
    const map = arg(b.vfio_iommu_type1_dma_map, { flags, vaddr, ...misaligned });
    throwsVfio(() => backend.ioctl(container.fd, b.VFIO_IOMMU_MAP_DMA, map), { code: 'EINVAL', errno: -22, syscall: 'ioctl' });
  }
  assert.deepEqual(container.mappings(), []);
  buffer.close();
  dev.close();
});

test('the VGA region: EINVAL from the kernel, an absent region in the safe API', () => {
  const dev = keep(openDevice(edu.address));
  const info = arg(b.vfio_region_info, { index: b.VFIO_PCI_VGA_REGION_INDEX });
  throwsVfio(() => backend.ioctl(dev.fd, b.VFIO_DEVICE_GET_REGION_INFO, info), { code: 'EINVAL', errno: -22 });
  assert.equal(dev.region(b.VFIO_PCI_VGA_REGION_INDEX), undefined);
  assert.equal(dev.regions.has(b.VFIO_PCI_VGA_REGION_INDEX), false);
  dev.close();
});

test('reset on edu: the kernel answers EINVAL; the library refuses first with ERR_VFIO_UNSUPPORTED', () => {
  const dev = keep(openDevice(edu.address));
  throwsVfio(() => backend.ioctl(dev.fd, b.VFIO_DEVICE_RESET), { code: 'EINVAL' });
  throwsVfio(() => dev.reset(), { code: 'ERR_VFIO_UNSUPPORTED' });
  dev.close();
});

test('a wrong PCI address', () => {
  throwsVfio(() => Device.open('0000:00:1e.7'), { code: 'ENOENT', path: '/sys/bus/pci/devices/0000:00:1e.7' });
  throwsArg(() => Device.open('00:1e'), 'RangeError', 'ERR_INVALID_ARG_VALUE');
  throwsArg(() => Group.open('not-a-group'), 'RangeError');

  // The group exists but has no such device: the kernel's ENODEV.
  const container = keep(Container.open());
  const group = keep(Group.open(edu.iommuGroup));
  group.attach(container);
  throwsVfio(() => group.openDevice('0000:00:1e.7'), { code: 'ENODEV', operation: 'VFIO_GROUP_GET_DEVICE_FD', device: '0000:00:1e.7' });
  group.close();
  container.close();
});

test('a device already open elsewhere: its group node is EBUSY', async () => {
  // In this process: the group node opens once.
  const group = keep(Group.open(edu.iommuGroup));
  throwsVfio(() => Group.open(edu.iommuGroup), { code: 'EBUSY', syscall: 'open', path: edu.groupPath });
  group.close();

  // In another process: it holds the device open until its stdin closes.
  const script = `
    const { Device } = require(${JSON.stringify(require.resolve('vfio-ioctls'))});
    const dev = Device.open(${JSON.stringify(edu.address)}, { iommu: 'container' });
    process.stdout.write('open\\n');
    process.stdin.resume();
    process.stdin.on('end', () => dev.close());`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const [first] = (await once(child.stdout, 'data')) as [Buffer];
    assert.equal(first.toString().trim(), 'open');
    throwsVfio(() => Device.open(edu.address, { iommu: 'container' }), { code: 'EBUSY', syscall: 'open', path: edu.groupPath });
  } finally {
    child.stdin.end();
    await once(child, 'exit');
  }
  // Once the other process is gone the device opens here.
  const dev = keep(Device.open(edu.address, { iommu: 'container' }));
  dev.close();
});

/** Writes a sysfs attribute. */
function sysfs(path: string, value: string): void {
  writeFileSync(path, value);
}

function driverOf(address: string): string | undefined {
  const link = `/sys/bus/pci/devices/${address}/driver`;
  return existsSync(link) ? basename(readlinkSync(link)) : undefined;
}

/** Binds a PCI device to another driver through driver_override. */
function rebind(address: string, driver: string): void {
  const current = driverOf(address);
  if (current) sysfs(`/sys/bus/pci/drivers/${current}/unbind`, address);
  sysfs(`/sys/bus/pci/devices/${address}/driver_override`, driver);
  sysfs('/sys/bus/pci/drivers_probe', address);
  assert.equal(driverOf(address), driver, `${address} bound to ${driver}`);
}

/**
 * Loads uio_pci_generic from the guest kernel's own modules (the test bed
 * keeps the unpacked kernel package in its cache; a kernel with no modules
 * has it built in). It is a driver that claims DMA ownership like any
 * ordinary kernel driver, which is what makes an IOMMU group not viable;
 * vfio-pci and pci-stub never do.
 */
function loadUioPciGeneric(): void {
  if (existsSync('/sys/bus/pci/drivers/uio_pci_generic')) return;
  const modules: string = process.env.VFIO_VM_KERNEL_MODULES ?? '';
  if (!modules) assert.fail(`uio_pci_generic is neither built into ${process.env.VFIO_VM_KERNEL} nor a module of it`);
  for (const module of ['uio', 'uio_pci_generic']) {
    const candidates = ['.ko', '.ko.xz', '.ko.zst'].map((ext) => `${modules}/kernel/drivers/uio/${module}${ext}`);
    const file = candidates.find((candidate) => existsSync(candidate));
    if (!file) assert.fail(`no ${module} module under ${modules}`);
    const child = spawnSync('insmod', [file], { encoding: 'utf8' });
    assert.equal(child.status, 0, `insmod ${module}: ${child.stderr}`);
  }
}

test('a group that is not viable: the library names the culprit, the kernel answers EPERM', () => {
  const one = device('shared-edu-1');
  const two = device('shared-edu-2');
  loadUioPciGeneric();
  rebind(two.address, 'uio_pci_generic');
  try {
    const group = keep(Group.open(one.iommuGroup));
    assert.equal(group.status().viable, false);
    throwsVfio(() => group.assertViable(), { code: 'ERR_VFIO_GROUP_NOT_VIABLE', path: two.groupPath });
    assert.deepEqual(group.blockingDevices().map((d) => [d.address, d.driver]), [[two.address, 'uio_pci_generic']]);
    const container = keep(Container.open());
    const error = throwsVfio(() => group.attach(container), { code: 'ERR_VFIO_GROUP_NOT_VIABLE' });
    assert.match(error.message, new RegExp(`${two.address} \\(uio_pci_generic\\)`));
    assert.match(error.hint ?? '', /vfio-pci/);
    // The kernel's own answer to attaching a group that is not viable: VFIO's
    // container refuses the attach; iommufd's compatibility container takes
    // it and refuses the device later (iommufd-compat.test.ts).
    const fd = new Uint8Array(4);
    new DataView(fd.buffer).setInt32(0, container.fd, true);
    if (compat) backend.ioctl(group.fd, b.VFIO_GROUP_SET_CONTAINER, fd);
    else throwsVfio(() => backend.ioctl(group.fd, b.VFIO_GROUP_SET_CONTAINER, fd), { code: 'EPERM' });
    group.close();
    container.close();
    throwsVfio(() => Device.open(one.address, { iommu: 'container' }), { code: 'ERR_VFIO_GROUP_NOT_VIABLE' });
  } finally {
    rebind(two.address, 'vfio-pci');
  }
  // Viable again once every device is back on vfio-pci.
  const dev = keep(Device.open(two.address, { iommu: 'container' }));
  assert.equal(dev.group?.viable, true);
  dev.close();
});

test('a closed handle refuses every use with ERR_VFIO_CLOSED', () => {
  const dev = Device.open(edu.address, { iommu: 'container' });
  const bar0 = dev.region(0)!;
  const config = dev.config!;
  const group = dev.group!;
  dev.close();
  for (const use of [() => dev.fd, () => bar0.readUint32(0), () => config.readUint16(0), () => dev.irqInfo(0), () => dev.reset(), () => group.status()]) {
    throwsVfio(use, { code: 'ERR_VFIO_CLOSED' });
  }
  assert.ok(new VfioError('ERR_VFIO_CLOSED', 'x') instanceof Error);
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
