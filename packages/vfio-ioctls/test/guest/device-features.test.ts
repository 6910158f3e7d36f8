// @guest-needs iommu suite
/**
 * The device features of vfio-pci, as the kernel answers them: the feature
 * list of a plain PCI device, VFIO_DEVICE_IOEVENTFD on edu (the eventfd
 * signalled, the register read back, the registration gone with close),
 * low power entry, entry with a wake-up eventfd and exit on e1000e (a
 * device with PCI power management, so D3 is allowed), and the bus master
 * feature PCI devices do not have.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { Device } from 'vfio-ioctls';
import { device, EDU, openDevice, openEdu, PCI_COMMAND, sleep, throwsArg, throwsVfio, trackResources, waitFor } from './helpers';

const { keep, assertNoLeaks } = trackResources();
const PCI_COMMAND_MEMORY = 0x2;
const CAP_PM = 0x01;
const CAP_MSIX = 0x11;

/** The config space offset of capability `id`, walking the standard list from 0x34. */
function capability(dev: Device, id: number): number | undefined {
  const config = dev.config!;
  for (let at = config.readUint8(0x34) & 0xfc, hops = 0; at !== 0 && hops < 48; at = config.readUint8(at + 1) & 0xfc, hops++) {
    if (config.readUint8(at) === id) return at;
  }
  return undefined;
}

const runtimeStatus = (address: string) => `/sys/bus/pci/devices/${address}/power/runtime_status`;

test('edu lists the features a plain vfio-pci device has: low power, and DMA_BUF where the kernel exports BARs as dma-bufs', () => {
  const dev = keep(openDevice(device('edu').address));
  const features = dev.features();
  // VFIO_PCI_DMABUF is on when the kernel has PCI_P2PDMA and DMA_SHARED_BUFFER
  // (Debian's 7.3 does; 6.1 and the purpose-built kernels do not): its
  // handler is then in the kernel's symbol table (as root, modules included).
  const dmaBuf = existsSync('/proc/kallsyms') && / vfio_pci_core_feature_dma_buf\b/.test(readFileSync('/proc/kallsyms', 'utf8'));
  assert.deepEqual(features.supported.map((f) => `${f.name}:${f.get ? 'G' : ''}${f.set ? 'S' : ''}`), [
    'LOW_POWER_ENTRY:S', 'LOW_POWER_ENTRY_WITH_WAKEUP:S', 'LOW_POWER_EXIT:S', ...(dmaBuf ? ['DMA_BUF:G'] : []),
  ]);
  assert.equal(features.migration, undefined);
  assert.equal(features.dmaLogging, false);
  throwsVfio(() => dev.migration, { code: 'ERR_VFIO_UNSUPPORTED' });
  const error = throwsVfio(() => dev.startDmaLogging({ ranges: [{ iova: 0, size: 0x1000 }] }), { code: 'ENOTTY', operation: 'VFIO_DEVICE_FEATURE' });
  assert.match(error.message, /SET DMA_LOGGING_START refused/);
});

test('bus master: a PCI device has no such feature (ENOTTY); its bit is in config space', () => {
  const dev = keep(openDevice(device('edu').address));
  assert.equal(dev.probeFeature('BUS_MASTER'), false);
  const error = throwsVfio(() => dev.setBusMaster(true), { code: 'ENOTTY', operation: 'VFIO_DEVICE_FEATURE' });
  assert.match(error.hint ?? '', /PCI_COMMAND_MASTER/);
});

test('ioeventfd on edu: each signal makes the kernel write the register, at 4 and 8 bytes', async () => {
  const { dev, mmio } = openEdu(keep);
  // The kernel's ioeventfd writes only while memory decoding is on.
  dev.config!.writeUint16(PCI_COMMAND, dev.config!.readUint16(PCI_COMMAND) | PCI_COMMAND_MEMORY);
  const liveness = dev.ioeventfd({ region: 0, offset: EDU.LIVENESS, width: 4, value: 0x12345678 });
  mmio.write32(EDU.LIVENESS, 0);
  liveness.signal();
  await waitFor('the liveness register to hold the inverse of 0x12345678', () => mmio.read32(EDU.LIVENESS) === (~0x12345678 >>> 0));
  const address = dev.ioeventfd({ region: 0, offset: EDU.DMA_SRC, width: 8, value: 0x0123_4567_89ab_cdefn });
  address.signal();
  await waitFor('DMA_SRC to hold the 8-byte value', () => mmio.read64(EDU.DMA_SRC) === 0x0123_4567_89ab_cdefn);
  // Signalled again after the program changed the register: written again.
  mmio.write32(EDU.LIVENESS, 0);
  liveness.signal();
  await waitFor('the second write', () => mmio.read32(EDU.LIVENESS) === (~0x12345678 >>> 0));
  assert.equal(dev.ioeventfds().length, 2);
  dev.close();
  assert.ok(liveness.closed && address.closed);
});

test('ioeventfd: the kernel refuses the same write twice (EEXIST) until it is closed, and writes into the MSI-X table', () => {
  const dev = keep(openDevice(device('edu').address));
  const spec = { region: 0, offset: EDU.LIVENESS, width: 4, value: 7 } as const;
  const first = dev.ioeventfd(spec);
  const error = throwsVfio(() => dev.ioeventfd(spec), { code: 'EEXIST', operation: 'VFIO_DEVICE_IOEVENTFD' });
  assert.match(error.hint ?? '', /already registered/);
  first.close();
  dev.ioeventfd(spec).close();
  // Outside a BAR, or past it: refused before the kernel.
  throwsArg(() => dev.ioeventfd({ ...spec, region: 7 }), 'RangeError', 'ERR_OUT_OF_RANGE');
  throwsArg(() => dev.ioeventfd({ ...spec, offset: 2 }), 'RangeError', 'ERR_VFIO_MISALIGNED');

  const nic = keep(openDevice(device('e1000e').address));
  const msix = capability(nic, CAP_MSIX);
  assert.ok(msix, 'e1000e has MSI-X');
  const table = nic.config!.readUint32(msix + 4);
  const refused = throwsVfio(() => nic.ioeventfd({ region: table & 7, offset: table & ~7, width: 4, value: 0 }), { code: 'EINVAL', operation: 'VFIO_DEVICE_IOEVENTFD' });
  assert.match(refused.hint ?? '', /MSI-X table/);
});

test('low power on e1000e (PCI power management): entry, EINVAL on a second entry, exit, and refused while mapped', () => {
  const dev = keep(openDevice(device('e1000e').address));
  assert.ok(capability(dev, CAP_PM), 'e1000e has the power management capability (D3 allowed)');
  dev.enterLowPower();
  const again = throwsVfio(() => dev.enterLowPower(), { code: 'EINVAL', operation: 'VFIO_DEVICE_FEATURE' });
  assert.match(again.hint ?? '', /already entered/);
  dev.exitLowPower();
  dev.exitLowPower(); // the kernel allows exit without entry
  const mapping = dev.region(0)!.map();
  throwsVfio(() => dev.enterLowPower(), { code: 'ERR_VFIO_BUFFER_MAPPED' });
  mapping.unmap();
});

test('low power with a wake-up eventfd: where the kernel has runtime PM, the device suspends and an ioctl wakes it', async (t) => {
  const address = device('e1000e').address;
  const dev = keep(openDevice(address));
  const wakeup = dev.enterLowPowerWithWakeup();
  if (existsSync(runtimeStatus(address))) {
    t.diagnostic('runtime PM: waiting for the suspend, then an ioctl to wake the device');
    await waitFor('e1000e to be runtime suspended', () => readFileSync(runtimeStatus(address), 'utf8').trim() === 'suspended', 5000);
    assert.equal(wakeup.signalled(), false);
    // Any VFIO ioctl resumes the device first, and the kernel signals the wake-up.
    dev.irqInfo(0);
    await wakeup.wait({ signal: AbortSignal.timeout(5000) });
    assert.equal(readFileSync(runtimeStatus(address), 'utf8').trim(), 'active');
  } else {
    // No CONFIG_PM (vfio-7.3's tinyconfig): entry succeeds, the device never suspends, nothing wakes it.
    t.diagnostic('no runtime PM in this kernel: the device stays in D0 and no wake-up comes');
    dev.irqInfo(0);
    await sleep(100);
    assert.equal(wakeup.signalled(), false);
  }
  dev.exitLowPower();
  assert.equal(wakeup.closed, true);
});

test('no fd is left open', () => assertNoLeaks());
